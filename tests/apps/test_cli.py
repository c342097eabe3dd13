"""The ``agentfm-py`` CLI against a real embedded mesh: output, files, errors, exit codes."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
from typing import TYPE_CHECKING

import httpx
import pytest

from agentfm.cli import main
from agentfm.mesh import EmbeddedMesh
from agentfm.mesh._peerid import peer_id_from_seed, seed_from_text
from tests.apps._helpers import REPO, clean_env, run_python

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

COMMANDS: list[list[str]] = [
    [],
    ["ping"],
    ["workers"],
    ["models"],
    ["chat"],
    ["run"],
    ["scatter"],
    ["mesh"],
    ["mesh", "serve"],
    ["demo"],
]

KEY = "cli-test-key-0123456789"


def cli(
    argv: Sequence[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    """Run the CLI in-process with no AgentFM settings in the environment."""
    monkeypatch.delenv("AGENTFM_GATEWAY_URL", raising=False)
    monkeypatch.delenv("AGENTFM_API_KEY", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def locked_mesh() -> Iterator[EmbeddedMesh]:
    with EmbeddedMesh.demo(api_keys=[KEY]) as mesh:
        yield mesh


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_help_everywhere(
    command: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = cli([*command, "--help"], capsys, monkeypatch)
    assert code == 0
    assert "usage:" in out.lower()
    assert "--" in out  # at least one option is documented


def test_python_dash_m_is_the_same_cli() -> None:
    proc = run_python(["-m", "agentfm", "--version"])
    assert proc.returncode == 0
    assert proc.stdout.startswith("agentfm-py ")


def test_models_table(
    demo_mesh: EmbeddedMesh, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = cli(["--gateway", demo_mesh.url, "models"], capsys, monkeypatch)
    assert code == 0
    for worker in demo_mesh.workers:
        assert worker.peer_id in out
        assert worker.name in out
    assert "0/" in out  # load column: idle workers


def test_models_table_in_a_narrow_terminal_shortens_ids_and_says_so(
    demo_mesh: EmbeddedMesh, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["--gateway", demo_mesh.url, "models"]) == 0
    captured = capsys.readouterr()
    for worker in demo_mesh.workers:
        assert f"{worker.peer_id[:12]}…{worker.peer_id[-4:]}" in captured.out
        assert worker.peer_id not in captured.out
    assert "agentfm-py workers" in captured.err


def test_models_reads_gateway_from_env(
    demo_mesh: EmbeddedMesh, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("AGENTFM_GATEWAY_URL", demo_mesh.url)
    assert main(["models", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    # /v1/models lists one entry per worker, keyed by peer id.
    assert {m["id"] for m in data["data"]} == {w.peer_id for w in demo_mesh.workers}
    assert {m["agentfm_name"] for m in data["data"]} == {"echo", "writer", "summarizer", "planner"}


def test_chat_by_model_streams(
    demo_mesh: EmbeddedMesh, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = cli(
        ["--gateway", demo_mesh.url, "chat", "--model", "echo", "hello from the cli"],
        capsys,
        monkeypatch,
    )
    assert code == 0
    # The echo agent answers a chat with the last user turn, not the flattened transcript
    # ("user: …\n\nassistant:"), and the answer ends with one newline.
    assert out == "hello from the cli\n"


def test_chat_with_a_file_writing_agent_says_where_files_are(
    demo_mesh: EmbeddedMesh, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = cli(
        ["--gateway", demo_mesh.url, "chat", "--model", "writer", "a note"], capsys, monkeypatch
    )
    assert code == 0
    assert out.startswith("wrote answer.md")
    match = re.search(r"stay with the gateway, in <its artifacts folder>/(task_\w+)\.zip", err)
    assert match, err
    assert f"agentfm-py run --peer {demo_mesh.peer_id('writer')}" in err
    assert "--out DIR" in err
    # The zip is really there, under that name.
    assert (demo_mesh.artifacts_dir / f"{match.group(1)}.zip").is_file()


def test_unknown_model_reads_the_same_in_chat_run_and_scatter(
    demo_mesh: EmbeddedMesh,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = tmp_path / "prompts.txt"
    source.write_text("a\n", encoding="utf-8")
    errors = []
    for command in (
        ["chat", "--model", "nope", "hi"],
        ["chat", "--model", "nope", "--no-stream", "hi"],
        ["run", "--model", "nope", "hi"],
        ["scatter", str(source), "--model", "nope"],
    ):
        code, out, err = cli(["--gateway", demo_mesh.url, *command], capsys, monkeypatch)
        assert (code, out) == (2, ""), command
        errors.append(err)
    assert len(set(errors)) == 1, errors
    assert errors[0].startswith("error: no worker matches 'nope'")
    assert "agentfm-py models" in errors[0]


@pytest.mark.parametrize("command", ["chat", "run", "scatter"])
def test_bad_or_absent_peer_reads_the_same_everywhere(
    command: str,
    demo_mesh: EmbeddedMesh,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = tmp_path / "prompts.txt"
    source.write_text("a\n", encoding="utf-8")
    tail = [str(source)] if command == "scatter" else ["hi"]
    # Any string is passed on, as the gateway takes any worker_id; a name gets a hint.
    code, out, err = cli(
        ["--gateway", demo_mesh.url, command, "--peer", "notapeer", *tail], capsys, monkeypatch
    )
    assert out == "" or command == "scatter"
    assert "not available" not in err
    if command == "scatter":  # each prompt is a failed result: the gateway's 404
        assert code == 1
        assert '"status": "failed"' in out or '"status":"failed"' in out, out
        assert "0 succeeded, 1 failed" in err
    else:
        assert code == 2
        assert err.startswith("error: no worker with peer id 'notapeer' on this mesh"), err
        assert "use --model" in err
        absent = peer_id_from_seed(seed_from_text("not on this mesh"))
        code, out, err = cli(
            ["--gateway", demo_mesh.url, command, "--peer", absent, *tail], capsys, monkeypatch
        )
        assert (code, out) == (2, "")
        assert err.startswith(f"error: no worker with peer id '{absent}' on this mesh"), err


def test_run_refuses_an_empty_prompt_before_picking_a_worker(
    demo_mesh: EmbeddedMesh, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = cli(
        ["--gateway", demo_mesh.url, "run", "--model", "echo", ""], capsys, monkeypatch
    )
    assert (code, out) == (2, "")
    assert err == "error: prompt must not be empty\n"


def test_chat_by_peer_without_streaming(
    demo_mesh: EmbeddedMesh, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    peer = demo_mesh.peer_id("echo")
    code, out, _ = cli(
        ["--gateway", demo_mesh.url, "chat", "--peer", peer, "--no-stream", "--prompt", "pinned"],
        capsys,
        monkeypatch,
    )
    assert code == 0
    assert "pinned" in out


def test_run_saves_artifacts(
    demo_mesh: EmbeddedMesh,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out_dir = tmp_path / "files"
    code, _, err = cli(
        ["--gateway", demo_mesh.url, "run", "--model", "writer", "a note", "--out", str(out_dir)],
        capsys,
        monkeypatch,
    )
    assert code == 0
    files = [p for p in out_dir.rglob("*") if p.is_file()]
    assert [p.name for p in files] == ["answer.md"]
    assert files[0].read_text(encoding="utf-8").strip()
    assert f"saved {files[0]}" in err


def test_scatter_file_to_jsonl_in_order(
    demo_mesh: EmbeddedMesh,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prompts = [f"prompt number {i}" for i in range(15)]
    source = tmp_path / "prompts.txt"
    source.write_text("\n".join(prompts) + "\n\n", encoding="utf-8")
    target = tmp_path / "out.jsonl"
    code, _, err = cli(
        [
            "--gateway",
            demo_mesh.url,
            "scatter",
            str(source),
            "--model",
            "echo",
            "--out",
            str(target),
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    rows = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [r["prompt"] for r in rows] == prompts
    assert [r["index"] for r in rows] == list(range(len(prompts)))
    assert all(r["status"] == "success" and r["prompt"] in r["text"] for r in rows)
    assert "15 succeeded, 0 failed" in err


def test_scatter_to_stdout(
    demo_mesh: EmbeddedMesh,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = tmp_path / "prompts.txt"
    source.write_text("a\nb\n", encoding="utf-8")
    peer = demo_mesh.peer_id("echo")
    code, out, _ = cli(
        ["--gateway", demo_mesh.url, "scatter", str(source), "--peer", peer], capsys, monkeypatch
    )
    assert code == 0
    assert [json.loads(line)["prompt"] for line in out.splitlines()] == ["a", "b"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_gateway_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    code, out, err = cli(["--gateway", url, "--timeout", "5", "models"], capsys, monkeypatch)
    assert code == 2
    assert out == ""
    assert err.startswith(f"error: could not reach the gateway at {url}: "), err
    assert err.count(url) == 1  # said once, not "cannot reach … (could not reach …)"
    assert err.count("reach") == 1
    assert "agentfm-py mesh serve --demo" in err
    assert "Traceback" not in err


def test_rejected_key_is_one_clear_line(
    locked_mesh: EmbeddedMesh, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "wrong-key-but-long-enough"
    code, _, err = cli(
        ["--gateway", locked_mesh.url, "--api-key", wrong, "models"], capsys, monkeypatch
    )
    assert code == 2
    assert "rejected the API key" in err
    assert wrong not in err
    assert "Traceback" not in err


def test_missing_key_is_reported(
    locked_mesh: EmbeddedMesh, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = cli(["--gateway", locked_mesh.url, "workers"], capsys, monkeypatch)
    assert code == 2
    assert "AGENTFM_API_KEY" in err


def test_key_from_env_is_accepted(
    locked_mesh: EmbeddedMesh, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTFM_GATEWAY_URL", locked_mesh.url)
    monkeypatch.setenv("AGENTFM_API_KEY", KEY)
    assert main(["workers"]) == 0
    peers = {w["peer_id"] for w in json.loads(capsys.readouterr().out)}
    assert peers == {w.peer_id for w in locked_mesh.workers}


@pytest.mark.parametrize(
    ("options", "names"),
    [
        (["--demo"], {"echo", "writer", "summarizer", "planner"}),
        (["--config", "cookbook/10_own_agent.toml"], {"wordcount"}),
    ],
    ids=["demo", "cookbook-toml"],
)
def test_mesh_serve_prints_url_and_stops_on_sigint(
    options: list[str], names: set[str], tmp_path: Path
) -> None:
    # A private temporary folder: the gateway's working folders must be in it while it
    # runs and gone once it stopped, whatever other tests do meanwhile.
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = serve([*options, "--port", "0"], tmp)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("http://127.0.0.1:"), line
        assert httpx.get(f"{line}/health", timeout=10).status_code == 200
        workers = httpx.get(f"{line}/api/workers", timeout=10).json()["agents"]
        assert {w["name"] for w in workers} == names
        assert [p.name.startswith("agentfm-mesh-") for p in tmp.iterdir()] == [True]
        lines = rest_of_banner(proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        stop(proc)
    assert proc.returncode == 0, err
    assert out == ""  # stdout holds the URL line only, for scripts
    # For people: every worker (name and peer id), then the line to copy.
    assert lines[0] == f"serving {len(workers)} worker(s):"
    for w in workers:
        assert any(w["name"] in row and w["peer_id"] in row for row in lines[1:]), out
    assert f"  export AGENTFM_GATEWAY_URL={line}" in lines
    assert "Traceback" not in err
    assert list(tmp.iterdir()) == []  # nothing left behind


def serve(args: list[str], tmp: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agentfm", "mesh", "serve", *args],
        cwd=REPO,
        env=clean_env({"TMPDIR": str(tmp)}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def rest_of_banner(proc: subprocess.Popen[str]) -> list[str]:
    """The lines ``mesh serve`` prints for people (stderr), up to the Ctrl-C hint."""
    assert proc.stderr is not None
    lines: list[str] = []
    while not lines or not lines[-1].startswith("Ctrl-C"):
        line = proc.stderr.readline()
        assert line, lines
        lines.append(line.rstrip("\n"))
    return lines


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_mesh_serve_without_workers_says_so(tmp_path: Path) -> None:
    proc = serve(["--port", "0"], tmp_path)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert httpx.get(f"{url}/api/workers", timeout=10).json()["agents"] == []
        lines = rest_of_banner(proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        stop(proc)
    assert proc.returncode == 0, err
    assert lines[0].startswith("serving no workers: add --demo"), lines
    assert "--config FILE" in lines[0]
    assert f"  export AGENTFM_GATEWAY_URL={url}" in lines
    assert list(tmp_path.iterdir()) == []


def test_mesh_serve_on_a_busy_port_suggests_port_0(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = serve(["--demo", "--port", str(port)], tmp_path)
        try:
            out, err = proc.communicate(timeout=60)
        finally:
            stop(proc)
    assert proc.returncode == 1
    assert out == ""
    assert f"port {port} on 127.0.0.1 is already in use" in err
    assert "--port 0" in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
