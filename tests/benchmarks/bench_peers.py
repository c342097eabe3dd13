"""Benchmark the reputation ledger of the embedded gateway through the SDK.

Run: ``.venv/bin/python tests/benchmarks/bench_peers.py [--comments N]``

Times gateway-signed comments (each one: body fsynced, Ed25519-signed entries, a signed
head, two SQLite inserts), a full log page, proof fetch + client-side verification, a mesh
restart that re-verifies every stored entry, and the client-side cost of the trust filter.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from agentfm import AgentFMClient, WorkerProfile
from agentfm._trust import trusted_peer_ids
from agentfm.mesh import CallableAgent, EmbeddedMesh, WorkerConfig


def _mesh(state: Path) -> EmbeddedMesh:
    worker = WorkerConfig("w", "e", CallableAgent(lambda p, c: "ok\n"), seed="bench:w")
    return EmbeddedMesh([worker], api_keys=[], state_dir=state)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--comments", type=int, default=500)
    n = parser.parse_args().comments
    state = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    with _mesh(state) as mesh, AgentFMClient(mesh.url, api_key=None) as client:
        peer = mesh.peer_id("w")
        times = []
        for i in range(n):
            started = time.perf_counter()
            client.peers.comment(peer, f"comment {i}", rating=0.5 if i % 2 else None)
            times.append(time.perf_counter() - started)
        entries = client.peers.log(peer).entries  # warm
        started = time.perf_counter()
        page = client.peers.log(peer, limit=500)
        log_ms = (time.perf_counter() - started) * 1000
        hashes = [e.entry_hash for e in page.entries[:100] if e.entry_hash]
        started = time.perf_counter()
        for digest in hashes:
            assert client.peers.proof(peer, digest).verify(digest)
        proof_ms = (time.perf_counter() - started) * 1000 / len(hashes)
        size = client.peers.get(peer).entries_count
    started = time.perf_counter()
    with _mesh(state):
        reopen_ms = (time.perf_counter() - started) * 1000
    workers = [
        WorkerProfile(peer_id=f"p{i}", honesty_score=(i % 7 - 3) / 3)  # type: ignore[arg-type]
        for i in range(1000)
    ]
    ids = [w.peer_id for w in workers]
    started = time.perf_counter()
    for _ in range(100):
        trusted_peer_ids(ids, workers, 0.0)
    filter_us = (time.perf_counter() - started) * 1e6 / 100
    print(f"entries about the peer: {size} ({n} comments, every other one rated)")
    print(
        f"comment round trip: median {statistics.median(times) * 1000:.2f} ms, "
        f"p95 {sorted(times)[int(0.95 * len(times))] * 1000:.2f} ms"
    )
    print(f"log page of {page.returned}: {log_ms:.1f} ms ({len(entries)} in a default page)")
    print(f"proof fetch + verify: {proof_ms:.2f} ms each")
    print(f"restart re-verifying {size} entries: {reopen_ms:.0f} ms (includes mesh start)")
    print(f"trust filter over 1000 peers: {filter_us:.0f} us")


if __name__ == "__main__":
    main()
