"""Benchmark scatter against the clients people would use instead, through one embedded mesh.

Run: ``.venv/bin/python tests/benchmarks/bench_scatter.py [--quick]`` (``--help`` for filters).
The first run builds the benchmark's own venvs (``_venvs.py``, about half a minute).

The mesh (``_scatter_mesh.py``) runs in its own process with one worker group per workload;
each (workload, client) pair runs in a fresh process (``_scatter_runner.py``) so its CPU
time and peak RSS are its own. The mesh's CPU per task is read from ``/proc/<pid>/stat``.
Clients compared, all with the same concurrency (the group's total ``max_tasks``):

* ``agentfm async`` / ``agentfm sync``: this SDK's ``tasks.scatter_iter``;
* ``ChatAgentFM.batch``: this repository's LangChain integration on the same mesh (default
  options, ``max_concurrency`` = capacity);
* ``seed 0.3.0``: agentfm-sdk 0.3.0's ``tasks.scatter``, from its own venv (its import name
  clashes with this repository's);
* ``openai3+semaphore``: the newest ``AsyncOpenAI`` (openai 3.x on httpx2, from the
  ``openai3-venv``) with an ``asyncio.Semaphore`` on ``/v1``; ``openai2+semaphore`` is the
  same code on the dev venv's openai 2.x (httpx 0.28), on W1/W1b only, to show the change;
* ``langchain batch``: ``ChatOpenAI.batch`` on ``/v1`` from the ``openai3-venv`` (default,
  and with ``return_exceptions``);
* ``raw floor``: keep-alive raw HTTP/1.1 with no parsing or error handling;
* ``raw parsed``: the raw floor's client with each reply framed by the parser our fast
  path uses (httptools, else h11) and its terminal marker checked: the least a correct
  client must do.

The output starts with the versions used, then the results table, then the ratios of client
CPU per task taken in this one run. Figures are printed (and optionally saved as JSON),
never asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _venvs import MAIN_SHOWS, OPENAI3, SEED, BenchVenv, ensure, versions

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SLOTS_PER_WORKER = 4


@dataclass(frozen=True)
class Client:
    """One row's client: its label, its ``_scatter_runner`` entry, options and interpreter."""

    label: str
    runner: str
    options: dict[str, Any] = field(default_factory=dict)
    venv: BenchVenv | None = None  # None: the interpreter running this benchmark


@dataclass(frozen=True)
class Workload:
    """One row group of the results table."""

    name: str
    engine: str
    items: int
    quick_items: int
    workers: int
    latency: float
    clients: tuple[Client, ...]
    baseline: str | None = None  # workload whose same-client run is the ratio's denominator
    note: str = ""

    def size(self, quick: bool) -> int:
        return self.quick_items if quick else self.items

    @property
    def concurrency(self) -> int:
        return self.workers * SLOTS_PER_WORKER

    def ideal(self, items: int) -> float:
        """Makespan with every slot busy all the time on healthy workers."""
        return math.ceil(items / self.concurrency) * self.latency


ASYNC = Client("agentfm async", "agentfm-async")
SYNC = Client("agentfm sync", "agentfm-sync")
CHAT_AGENTFM = Client("ChatAgentFM.batch", "chat-agentfm")
OPENAI = Client("openai3+semaphore", "openai", venv=OPENAI3)
RAW = Client("raw floor (no failover)", "raw")
RAW_PARSED = Client("raw parsed (no failover)", "raw-parsed")
ALTERNATIVES = (
    ASYNC,
    SYNC,
    CHAT_AGENTFM,
    Client("seed 0.3.0", "seed", venv=SEED),
    OPENAI,
    Client("langchain batch", "langchain", venv=OPENAI3),
)
# The dev venv's openai 2.x, where the healthy runs show what moving to 3.x changes.
WITH_FLOOR = (*ALTERNATIVES, Client("openai2+semaphore", "openai"), RAW, RAW_PARSED)
# A variant's fault-free run is its plain client's.
BASE_LABEL = {"langchain return_exceptions": "langchain batch"}

WORKLOADS = (
    Workload("W1", "w1", 2000, 500, 16, 0.020, WITH_FLOOR, note="20 ms tasks, 16x4"),
    Workload("W1b", "w1b", 2000, 640, 16, 0.200, WITH_FLOOR, note="200 ms tasks, 16x4"),
    Workload("W2", "w2", 2000, 640, 16, 0.200, ALTERNATIVES, "W1b", "4 of 16 workers 5x slower"),
    Workload("W3ok", "w3ok", 1000, 320, 8, 0.200, ALTERNATIVES, note="8x4, fault-free"),
    Workload(
        "W3",
        "w3",
        1000,
        320,
        8,
        0.200,
        (
            *ALTERNATIVES,
            Client(
                "langchain return_exceptions", "langchain", {"return_exceptions": True}, OPENAI3
            ),
        ),
        "W3ok",
        "8x4, 1 peer breaks every stream",
    ),
    Workload(
        "stragglers",
        "strag",
        2000,
        640,
        16,
        0.200,
        (
            ASYNC,
            Client("agentfm async hedge", "agentfm-async", {"hedge": True}),
            Client("agentfm sync hedge", "agentfm-sync", {"hedge": True}),
            OPENAI,
        ),
        note="1% of attempts 20x longer",
    ),
    Workload(
        "scale-10k",
        "scale",
        10_000,
        1_000,
        16,
        0.0,
        (ASYNC, SYNC),
        note="tiny prompts, instant agents (memory reference)",
    ),
    Workload(
        "scale",
        "scale",
        100_000,
        10_000,
        16,
        0.0,
        (ASYNC, SYNC),
        note="tiny prompts, instant agents",
    ),
)


@dataclass
class Row:
    """One measured run."""

    workload: str
    label: str
    items: int
    data: dict[str, Any] = field(default_factory=dict)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tasks_run(url: str) -> int:
    """Tasks the mesh has run so far, any outcome (``agentfm_tasks_total`` in /metrics)."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("agentfm_tasks_total{")
    )


def start_mesh(sdk_root: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """Start the mesh process; return it and its URL/groups line."""
    proc = subprocess.Popen(
        [sys.executable, "-P", str(HERE / "_scatter_mesh.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(sdk_root)},
    )
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


def run_one(
    client: Client, spec: dict[str, Any], mesh_pid: int, timeout: float, sdk_root: Path
) -> dict[str, Any]:
    """Run one client in a fresh process; add the mesh's CPU for the run."""
    # A venv's client runs outside the checkout, so this repository's ``agentfm`` stays
    # out of its imports; ours get ``sdk_root`` first on the path.
    python = str(client.venv.python) if client.venv else sys.executable
    cwd = Path("/") if client.venv else ROOT
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AGENTFM_API_KEY")}
    if client.venv is None:
        env["PYTHONPATH"] = str(sdk_root)
    cpu0 = cpu_seconds(mesh_pid)
    runs0 = tasks_run(spec["url"])
    try:
        done = subprocess.run(
            [python, "-P", str(HERE / "_scatter_runner.py"), json.dumps(spec)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    mesh_cpu = cpu_seconds(mesh_pid) - cpu0
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:200]}
    data: dict[str, Any] = json.loads(lines[-1])
    data["mesh_cpu"] = mesh_cpu
    data["task_runs"] = tasks_run(spec["url"]) - runs0
    return data


def fmt(value: float | None, spec: str, suffix: str = "") -> str:
    if value is None or value != value:
        return "-"
    return f"{value:{spec}}{suffix}"


def render(rows: list[Row], workloads: dict[str, Workload]) -> str:
    """The results as a Markdown table."""
    walls = {(r.workload, r.label): r.data.get("wall") for r in rows}
    head = (
        "| workload | client | items | wall s | tasks/s | efficiency | vs baseline"
        " | client CPU ms/task"
        " | mesh CPU ms/task | ok | failed | lost | wrong | extra runs | p50 s | p99 s"
        " | peak RSS MB |"
    )
    lines = [head, "|" + "---|" * 17]
    for r in rows:
        w = workloads[r.workload]
        d = r.data
        if "error" in d:
            lines.append(f"| {r.workload} | {r.label} | {r.items} | error: {d['error']} |")
            continue
        wall = d["wall"]
        ratio = None
        if w.baseline is not None:
            base = walls.get((w.baseline, BASE_LABEL.get(r.label, r.label)))
            ratio = wall / base if base else None
        eff = w.ideal(r.items) / wall if w.latency and w.baseline is None else None
        lines.append(
            "| "
            + " | ".join(
                (
                    r.workload,
                    r.label,
                    str(r.items),
                    fmt(wall, ".2f"),
                    fmt(r.items / wall, ".0f"),
                    fmt(eff, ".3f"),
                    fmt(ratio, ".3f", "x"),
                    fmt(d["cpu"] / r.items * 1000, ".3f"),
                    fmt(d["mesh_cpu"] / r.items * 1000, ".3f"),
                    str(d["ok"]),
                    str(d["failed"]),
                    str(d["lost"]),
                    str(d["wrong"] + d["duplicated"]),
                    str(d["task_runs"] - r.items),
                    fmt(d["p50"], ".3f"),
                    fmt(d["p99"], ".3f"),
                    fmt(d["rss_mb_peak"], ".0f"),
                )
            )
            + " |"
        )
    return "\n".join(lines)


def render_ratios(rows: list[Row]) -> str:
    """Client CPU per task against the raw floor, the raw parsed client and our async scatter.

    Taken from one run so machine load moves numerator and denominator alike. The two
    ratios issue #16 aims at are printed under the table.
    """
    measured = [r for r in rows if "error" not in r.data]
    cpu = {(r.workload, r.label): r.data["cpu"] / r.items * 1000 for r in measured}
    wall = {(r.workload, r.label): r.data["wall"] for r in measured}

    def ratio(table: dict[tuple[str, str], float], row: Row, label: str) -> float | None:
        base = table.get((row.workload, label))
        return table[(row.workload, row.label)] / base if base else None

    lines = [
        "| workload | client | client CPU ms/task | CPU vs raw floor | CPU vs raw parsed"
        " | CPU vs agentfm async | wall vs agentfm async |",
        "|" + "---|" * 7,
    ]
    for r in measured:
        lines.append(
            f"| {r.workload} | {r.label} | {cpu[(r.workload, r.label)]:.3f}"
            f" | {fmt(ratio(cpu, r, RAW.label), '.2f', 'x')}"
            f" | {fmt(ratio(cpu, r, RAW_PARSED.label), '.2f', 'x')}"
            f" | {fmt(ratio(cpu, r, ASYNC.label), '.2f', 'x')}"
            f" | {fmt(ratio(wall, r, ASYNC.label), '.2f', 'x')} |"
        )
    targets = (
        (ASYNC.label, RAW.label, "issue #16 aims at <= 1.25x"),
        (ASYNC.label, RAW_PARSED.label, "the least a correct client does"),
        (CHAT_AGENTFM.label, ASYNC.label, "issue #16 aims at <= 2x"),
    )
    for label, base, aim in targets:
        found = [
            f"{r.workload} {fmt(ratio(cpu, r, base), '.2f', 'x')}"
            for r in measured
            if r.label == label and (r.workload, base) in cpu
        ]
        if found:
            lines.append(f"\n{label} client CPU / {base} ({aim}): " + ", ".join(found))
    return "\n".join(lines)


def versions_used(venvs: set[BenchVenv]) -> str:
    """The interpreter and the alternatives' versions, per venv that ran a row."""
    lines = [
        f"python {sys.version.split()[0]} ({sys.executable}): "
        f"{versions(sys.executable, MAIN_SHOWS)}"
    ]
    lines += [f"{v.path}: {versions(v.python, v.shows)}" for v in sorted(venvs, key=str)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller batches, a sanity run")
    parser.add_argument("--only", help="comma-separated workload names (default: all)")
    parser.add_argument("--clients", help="comma-separated client labels (default: all)")
    parser.add_argument("--json", type=Path, help="also save the raw rows here")
    parser.add_argument(
        "--sdk-root", type=Path, default=ROOT, help="checkout whose agentfm is measured"
    )
    args = parser.parse_args()
    chosen = {w.name for w in WORKLOADS}
    if args.only:
        chosen = set(args.only.split(","))
    labels = set(args.clients.split(",")) if args.clients else None
    plan = [
        (w, c)
        for w in WORKLOADS
        if w.name in chosen
        for c in w.clients
        if labels is None or c.label in labels
    ]
    venvs = {c.venv for _, c in plan if c.venv is not None}
    for venv in sorted(venvs, key=str):
        ensure(venv)
    header = versions_used(venvs)
    print(header, file=sys.stderr)
    mesh, info = start_mesh(args.sdk_root)
    rows: list[Row] = []
    started = time.perf_counter()
    try:
        for w, client in plan:
            items = w.size(args.quick)
            spec = {
                "client": client.runner,
                "url": info["url"],
                "engine": w.engine,
                "peers": [p["peer_id"] for p in info["groups"][w.engine]],
                "items": items,
                "concurrency": w.concurrency,
                "options": client.options,
            }
            data = run_one(client, spec, mesh.pid, 300, args.sdk_root)
            rows.append(Row(w.name, client.label, items, data))
            summary = {k: v for k, v in data.items() if k not in ("rss_mb_before",)}
            print(f"{w.name:10} {client.label:28} {json.dumps(summary)}", file=sys.stderr)
    finally:
        assert mesh.stdin is not None
        mesh.stdin.close()
        mesh.wait(30)
    print(
        f"\n{os.cpu_count()} CPUs, total {time.perf_counter() - started:.0f} s, "
        f"quick={args.quick}\n{header}\n"
    )
    print(render(rows, {w.name: w for w in WORKLOADS}))
    print("\nRatios from this run:\n")
    print(render_ratios(rows))
    if args.json is not None:
        args.json.write_text(json.dumps([r.__dict__ for r in rows], indent=1))


if __name__ == "__main__":
    main()
