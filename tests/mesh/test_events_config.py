"""/v1/events SSE, runtime worker changes, identities, TOML config, demo mesh and the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from agentfm.mesh import CallableAgent, EmbeddedMesh, WorkerConfig
from agentfm.mesh._peerid import _B58_ALPHABET, peer_id_from_public_key


def _b58decode(text: str) -> bytes:
    number = 0
    for ch in text:
        number = number * 58 + _B58_ALPHABET.index(ch)
    return number.to_bytes((number.bit_length() + 7) // 8, "big")


def test_peer_id_encoding_is_identity_multihash_of_protobuf_key() -> None:
    pub = bytes(range(32))
    peer = peer_id_from_public_key(pub)
    assert peer.startswith("12D3KooW")
    # base58 drops the leading 0x00 multihash code into a "1"; the rest is the protobuf key.
    assert _b58decode(peer[1:]) == bytes([0x24, 0x08, 0x01, 0x12, 0x20]) + pub


def test_key_dir_makes_ids_stable_across_restarts(tmp_path: Path) -> None:
    def cfgs() -> list[WorkerConfig]:
        agent = CallableAgent(lambda p, c: p)
        return [WorkerConfig("w", "e", agent), WorkerConfig("w", "e", agent)]

    with EmbeddedMesh(cfgs(), api_keys=[], key_dir=tmp_path) as first:
        ids = [w.peer_id for w in first.workers]
    with EmbeddedMesh(cfgs(), api_keys=[], key_dir=tmp_path) as second:
        assert [w.peer_id for w in second.workers] == ids
    assert len(set(ids)) == 2
    key = (tmp_path / "w.key").read_bytes()
    assert key[:4] == b"\x08\x01\x12\x40"
    assert len(key) == 68
    assert oct((tmp_path / "w-1.key").stat().st_mode & 0o777) == "0o600"


def test_events_stream_online_offline() -> None:
    base = WorkerConfig("base", "e", CallableAgent(lambda p, c: p))
    with EmbeddedMesh([base], api_keys=[]) as mesh, httpx.Client(base_url=mesh.url) as c:
        with c.stream("GET", "/v1/events") as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"] == "text/event-stream"
            assert resp.headers["access-control-allow-origin"] == "*"
            lines = resp.iter_lines()
            assert next(lines) == ":ready"
            assert next(lines) == ""
            added = mesh.add_worker(WorkerConfig("late", "e", CallableAgent(lambda p, c: p)))
            assert next(lines) == "event: worker_online"
            data = next(lines)
            assert data == (
                f'data: {{"agent_name":"late","honesty_score":0,"peer_id":"{added.peer_id}"}}'
            )
            assert next(lines) == ""
            # include_offline lists an offline peer only when the ledger has entries on it.
            rated = c.post(f"/v1/peers/{added.peer_id}/comments/self", json={"text": "seen"})
            assert rated.status_code == 201
            mesh.remove_worker("late")
            assert next(lines) == "event: worker_offline"
            assert next(lines) == f'data: {{"peer_id":"{added.peer_id}"}}'
        listing = c.get("/api/workers").json()
        assert [a["name"] for a in listing["agents"]] == ["base"]
        offline = c.get("/api/workers", params={"include_offline": "true"}).json()
        assert offline["offline_count"] == 1
        assert offline["agents"][-1]["online"] is False
        assert offline["agents"][-1]["peer_id"] == added.peer_id
        assert "last_seen" not in offline["agents"][-1]
        assert (
            c.post("/api/execute", json={"worker_id": added.peer_id, "prompt": "x"}).status_code
            == 404
        )
        assert c.post("/v1/events").status_code == 405


def test_events_heartbeat() -> None:
    with (
        EmbeddedMesh([], api_keys=[], heartbeat_interval=0.05) as mesh,
        httpx.stream("GET", mesh.url + "/v1/events") as resp,
    ):
        lines = resp.iter_lines()
        assert [next(lines), next(lines), next(lines)] == [":ready", "", ":heartbeat"]


def test_demo_mesh_serves_everything(tmp_path: Path) -> None:
    with EmbeddedMesh.demo() as mesh, httpx.Client(base_url=mesh.url, timeout=30) as c:
        names = sorted(w.name for w in mesh.workers)
        assert names == ["echo", "echo", "planner", "summarizer", "writer"]
        assert mesh.peer_id("echo") == mesh.workers[0].peer_id
        echo = c.post("/api/execute", json={"worker_id": mesh.peer_id("echo"), "prompt": "a\nb"})
        assert echo.content == b"a\nb\n\n[AGENTFM: NO_FILES]\n"
        w = c.post(
            "/api/execute",
            json={"worker_id": mesh.peer_id("writer"), "prompt": "hi", "task_id": "demo-w"},
        )
        assert w.content.endswith(b"\n[AGENTFM: FILES_INCOMING]\n")
        assert (mesh.artifacts_dir / "demo-w.zip").is_file()
        text = (
            "Cats sleep a lot. Cats are curious animals and cats like boxes. The weather is mild. "
            "Dogs bark. Curious cats explore boxes and cats nap in boxes."
        )
        summary = c.post("/v1/completions", json={"model": "summarizer", "prompt": text}).json()[
            "choices"
        ][0]["text"]
        assert summary.count("\n") >= 2
        assert "The weather is mild." not in summary
        assert "Cats are curious animals and cats like boxes." in summary
        first_id = mesh.workers[0].peer_id
    # Demo identities are deterministic.
    with EmbeddedMesh.demo() as again:
        assert again.workers[0].peer_id == first_id


PRINT_GREETING = "import sys, os; print(os.environ['GREETING'], sys.argv[-1])"


def test_from_toml(tmp_path: Path) -> None:
    (tmp_path / "mesh.toml").write_text(
        textwrap.dedent(
            f"""
            [mesh]
            artifacts_dir = "arts"
            key_dir = "keys"
            max_async_tasks = 3

            [[workers]]
            name = "echo"
            engine = "echo"
            demo = "echo"
            replicas = 2
            max_tasks = 3

            [[workers]]
            name = "cmd"
            engine = "sh"
            author = "tester"
            command = ["{sys.executable}", "-c", "{PRINT_GREETING}"]
            env = {{ GREETING = "hello" }}
            timeout = 20
            """
        )
    )
    with EmbeddedMesh.from_toml(tmp_path / "mesh.toml", api_keys=[]) as mesh:
        assert [w.name for w in mesh.workers] == ["echo", "echo", "cmd"]
        assert mesh.workers[0].max_tasks == 3
        assert mesh.artifacts_dir == (tmp_path / "arts").resolve()
        assert mesh.max_async_tasks == 3
        resp = httpx.post(
            mesh.url + "/api/execute",
            json={"worker_id": mesh.peer_id("cmd"), "prompt": "world"},
            timeout=30,
        )
        assert resp.content == b"hello world\n\n[AGENTFM: NO_FILES]\n"
    # The gateway's ledger (api_ledger.db, comments/) lives beside the keys by default.
    assert sorted(p.name for p in (tmp_path / "keys").iterdir() if p.suffix == ".key") == [
        "cmd.key", "echo-1.key", "echo.key", "gateway.key",
    ]  # fmt: skip


def test_toml_rejects_ambiguous_agent(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text(
        '[[workers]]\nname="x"\nengine="y"\ndemo="echo"\ncommand=["a"]\n'
    )
    with pytest.raises(ValueError, match="exactly one"):
        EmbeddedMesh.from_toml(tmp_path / "bad.toml")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_serve_prints_url_and_exits_cleanly(sig: signal.Signals) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("AGENTFM_API_KEYS", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentfm.mesh", "serve", "--demo", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().decode().strip()
        assert url.startswith("http://127.0.0.1:")
        health = httpx.get(url + "/health").json()
        assert health == {"online_workers": 5, "status": "ok"}
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()
    assert out == b""


def test_cli_refuses_short_keys() -> None:
    env = {**os.environ, "AGENTFM_API_KEYS": "short"}
    proc = subprocess.run(
        [sys.executable, "-m", "agentfm.mesh", "--port", "0"],
        capture_output=True,
        env=env,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 1
    assert b"shorter than 16 chars" in proc.stderr
    assert proc.stdout == b""
