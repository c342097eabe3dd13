"""Ctrl-C in a client process during a scatter: results so far kept, no agent left running."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sdk.faults.conftest import alive, wait_until, write_agent

REPO = Path(__file__).resolve().parents[3]

# The scatter script a user would write: an embedded mesh with subprocess agents, a scatter
# printing each result as it lands, and Ctrl-C reported with what finished so far.
# A process started from a non-interactive shell in the background inherits SIGINT as
# ignored, and Python then leaves it ignored: the script installs Python's own handler so
# that Ctrl-C (here: the test's SIGINT) raises KeyboardInterrupt wherever it was started.
SCRIPT = r"""
import asyncio, json, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from agentfm import AgentFMClient, AsyncAgentFMClient
from agentfm.mesh import CommandAgent, EmbeddedMesh, WorkerConfig

flavour, agent, folder = sys.argv[1:4]
argv = [sys.executable, "-S", agent, "sleep"]
workers = [WorkerConfig("sleeper", "sleep", CommandAgent(argv), max_tasks=16)]
prompts = [f"{folder}|0"] * 4 + [f"{folder}|120"] * 4

def report(result):
    print(json.dumps({"index": result.index, "ok": result.ok, "text": result.text}), flush=True)

with EmbeddedMesh(workers, api_keys=[], graceful_timeout=1.0) as mesh:
    peer = mesh.peer_id("sleeper")
    done = 0
    try:
        if flavour == "sync":
            with AgentFMClient(mesh.url, api_key=None) as client:
                results = client.tasks.scatter_iter(prompts, peer_ids=[peer], max_concurrency=8)
                for result in results:
                    report(result)
                    done += 1
        else:
            async def main():
                global done
                async with AsyncAgentFMClient(mesh.url, api_key=None) as client:
                    async for result in client.tasks.scatter_iter(
                        prompts, peer_ids=[peer], max_concurrency=8
                    ):
                        report(result)
                        done += 1
            asyncio.run(main())
    except KeyboardInterrupt:
        print(json.dumps({"interrupted": done}), flush=True)
print(json.dumps({"exited": True}), flush=True)
"""

IGNORE_SIGINT_THEN_EXEC = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_sigint_during_scatter(flavour: str, tmp_path: Path) -> None:
    agent = write_agent(tmp_path)
    script = tmp_path / "scatter.py"
    script.write_text(SCRIPT)
    pids = tmp_path / "pids"
    pids.mkdir()
    # A private temporary folder: the mesh's working folders must be gone after Ctrl-C,
    # and a client killed by the clean-up below leaves them here, not in the shared /tmp.
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp)}
    # Start the script the way a CI job in the background does, with SIGINT ignored (the
    # disposition survives exec), whatever the disposition of this test process is.
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            IGNORE_SIGINT_THEN_EXEC,
            str(script),
            flavour,
            str(agent),
            str(pids),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    agent_pids: list[int] = []
    try:
        lines: list[dict[str, object]] = []
        assert proc.stdout is not None
        while len(lines) < 4:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            lines.append(json.loads(line))
        # Four quick prompts are done; the four slow agents are running (8 pid files).
        assert wait_until(lambda: len(list(pids.glob("*.pid"))) == 8, timeout=20)
        agent_pids = [int(p.read_text()) for p in pids.glob("*.pid")]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            # A SIGKILLed client cannot clean up: reap the agents this test caused, by pid.
            for pid in agent_pids:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
    tail = [json.loads(line) for line in out.splitlines() if line.strip()]
    results = lines + [t for t in tail if "index" in t]
    assert {"exited": True} in tail, err
    interrupted = [t for t in tail if "interrupted" in t]
    assert interrupted == [{"interrupted": len(results)}], err
    assert len({r["index"] for r in results}) == len(results)  # never a result twice
    assert sum(1 for r in results if r["ok"]) >= 4
    assert all(r["text"] == "started\nfinished\n" for r in results if r["ok"])
    # Nothing the embedded mesh started outlives the client process.
    assert all(not alive(pid) for pid in agent_pids)
    assert proc.returncode == 0
    assert list(tmp.iterdir()) == []
