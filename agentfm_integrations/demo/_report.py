"""What the tour did (timings, peers, failovers, files) and the report printed at the end."""

from __future__ import annotations

import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.table import Table

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from rich.console import Console

    from agentfm.mesh import EmbeddedMesh


@dataclass
class Report:
    """What the tour did, for the summary at the end."""

    timings: dict[str, float] = field(default_factory=dict)
    tasks_per_peer: Counter[str] = field(default_factory=Counter)
    refusals_per_peer: Counter[str] = field(default_factory=Counter)
    failovers: int = 0
    failed_prompts: int = 0
    artifacts: list[Path] = field(default_factory=list)
    current: str = ""

    @contextmanager
    def step(self, name: str, console: Console | None = None) -> Iterator[None]:
        """Time the block under ``name``; with ``console``, open it with a heading."""
        if console is not None:
            console.rule(f"[bold]{name}", align="left")
        self.current = name
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = time.perf_counter() - start


def short(peer_id: str) -> str:
    return f"{peer_id[:12]}…{peer_id[-4:]}"


def peer_cell(console: Console, peer_id: str) -> str:
    """The full peer id when the terminal has room for it, else a recognisable short form."""
    return peer_id if console.width >= 120 else short(peer_id)


def print_report(
    console: Console, mesh: EmbeddedMesh, report: Report, artifacts_dir: Path, *, kept: bool
) -> None:
    names = {w.peer_id: w.name for w in mesh.workers}
    peers = Table(title="Peers used", title_justify="left")
    for column in ("agent", "peer id", "served", "refused"):
        peers.add_column(column, no_wrap=True)
    for peer in sorted(
        report.tasks_per_peer.keys() | report.refusals_per_peer.keys(),
        key=lambda p: (-report.tasks_per_peer[p], p),
    ):
        served, refused = report.tasks_per_peer[peer], report.refusals_per_peer[peer]
        peers.add_row(names.get(peer, "?"), peer_cell(console, peer), str(served), str(refused))
    console.print(peers)

    timings = Table(title="Timings", title_justify="left")
    timings.add_column("step")
    timings.add_column("seconds", justify="right")
    for name, seconds in report.timings.items():
        timings.add_row(name, f"{seconds:.2f}")
    console.print(timings)

    lines = [
        f"failovers: {report.failovers} (prompts moved to another peer after a refusal)",
        f"failed prompts: {report.failed_prompts}",
        f"artifacts folder: {artifacts_dir}"
        + (
            "" if kept else " (temporary: removed when the demo ends; --artifacts-dir DIR keeps it)"
        ),
        *(f"artifact: {p}" for p in report.artifacts),
    ]
    for line in lines:
        # soft_wrap: long paths stay on one line, so they can be copied.
        console.print(line, soft_wrap=True)
