"""CommandAgent: argv/env contract, streaming, crash, timeout killing the process group."""

from __future__ import annotations

import os
import sys
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from agentfm.mesh import CommandAgent, EmbeddedMesh, WorkerConfig

if TYPE_CHECKING:
    from collections.abc import Iterator

SCRIPT = r"""
import os, subprocess, sys, time
mode, prompt = sys.argv[1], sys.argv[-1]
out = os.environ["AGENTFM_OUTPUT_DIR"]
if mode == "env":
    print(os.environ["AGENTFM_MODEL"], os.path.isdir(out), len(sys.argv), flush=True)
    sys.stderr.write("to stderr\n")
    print("prompt=" + prompt, flush=True)
elif mode == "crash":
    print("working", flush=True)
    sys.exit(3)
elif mode == "files":
    os.makedirs(os.path.join(out, "sub", "deep"))
    for i in range(25):
        open(os.path.join(out, f"f{i}.txt"), "w").write(str(i))
    open(os.path.join(out, "sub", "deep", "x.md"), "w").write("# x")
    os.symlink("/etc/hostname", os.path.join(out, "escape"))
    print("done")
elif mode == "hang":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    open(prompt, "w").write(f"{os.getpid()} {child.pid}")
    print("spawned", flush=True)
    time.sleep(60)
"""


@pytest.fixture(scope="module")
def cmd_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedMesh]:
    script = tmp_path_factory.mktemp("agent") / "agent.py"
    script.write_text(SCRIPT)

    def worker(mode: str, **kw: object) -> WorkerConfig:
        agent = CommandAgent([sys.executable, "-S", str(script), mode], **kw)  # type: ignore[arg-type]
        return WorkerConfig(mode, f"engine-{mode}", agent, seed=f"cmd:{mode}")

    workers = [worker("env"), worker("crash"), worker("files"), worker("hang", timeout=1.0)]
    with EmbeddedMesh(workers, api_keys=[]) as m:
        yield m


def run(mesh: EmbeddedMesh, name: str, prompt: str, **extra: str) -> bytes:
    resp = httpx.post(
        mesh.url + "/api/execute",
        json={"worker_id": mesh.peer_id(name), "prompt": prompt, **extra},
        timeout=30,
    )
    assert resp.status_code == 200
    return resp.content


def test_env_argv_and_stderr(cmd_mesh: EmbeddedMesh) -> None:
    body = run(cmd_mesh, "env", "a prompt with spaces\nand a newline")
    lines = body.decode().splitlines()
    # argv: interpreter script, mode, then the prompt as ONE last argument.
    assert lines[0] == "engine-env True 3"
    assert "to stderr" in lines
    assert "prompt=a prompt with spaces" in lines
    assert body.endswith(b"and a newline\n\n[AGENTFM: NO_FILES]\n")


def test_non_zero_exit(cmd_mesh: EmbeddedMesh) -> None:
    body = run(cmd_mesh, "crash", "x")
    assert body == "working\n⚠️  Sandbox exited: exit status 3\n".encode() + (
        b"\n[AGENTFM: NO_FILES]\n"
    )


def test_artifacts_from_subprocess(cmd_mesh: EmbeddedMesh) -> None:
    body = run(cmd_mesh, "files", "x", task_id="cmd-files")
    assert body == b"done\n\n[AGENTFM: FILES_INCOMING]\n"
    with zipfile.ZipFile(cmd_mesh.artifacts_dir / "cmd-files.zip") as zf:
        names = zf.namelist()
    assert {"sub/", "sub/deep/", "sub/deep/x.md"} <= set(names)
    assert len([n for n in names if n.startswith("f")]) == 25
    assert "escape" not in names


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purpose.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_timeout_kills_the_whole_process_group(cmd_mesh: EmbeddedMesh, tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    body = run(cmd_mesh, "hang", str(pids_file))
    assert body == "spawned\n⚠️  Sandbox exited: signal: killed\n".encode() + (
        b"\n[AGENTFM: NO_FILES]\n"
    )
    leader, child = (int(p) for p in pids_file.read_text().split())
    deadline = time.monotonic() + 5
    while (_alive(leader) or _alive(child)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(leader)
    assert not _alive(child)
    metrics = httpx.get(cmd_mesh.url + "/metrics").text
    assert 'agentfm_tasks_total{status="timeout"} 1' in metrics


def test_missing_binary_reports_failed_start() -> None:
    agent = CommandAgent(["/nonexistent/agentfm-agent"])
    with EmbeddedMesh([WorkerConfig("x", "x", agent)], api_keys=[]) as m:
        body = run(m, "x", "p")
    assert body.startswith("❌ Failed to start task: ".encode())
    assert body.endswith(b"\n[AGENTFM: NO_FILES]\n")


def test_stop_kills_running_subprocesses(tmp_path: Path) -> None:
    script = tmp_path / "agent.py"
    script.write_text(SCRIPT)
    pids_file = tmp_path / "pids"
    agent = CommandAgent([sys.executable, "-S", str(script), "hang"])
    mesh = EmbeddedMesh([WorkerConfig("hang", "hang", agent)], api_keys=[], graceful_timeout=0.2)
    mesh.start()
    client = httpx.Client(base_url=mesh.url, timeout=30)
    with client.stream(
        "POST", "/api/execute", json={"worker_id": mesh.peer_id("hang"), "prompt": str(pids_file)}
    ) as resp:
        seen = b""
        for chunk in resp.iter_raw():
            seen += chunk
            if seen.endswith(b"\n"):
                break
        assert seen == b"spawned\n"
        mesh.stop()
    client.close()
    leader, child = (int(p) for p in pids_file.read_text().split())
    assert not _alive(leader)
    assert not _alive(child)
