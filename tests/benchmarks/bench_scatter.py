"""Benchmark scatter against the clients people would use instead, through one embedded mesh.

Run: ``.venv/bin/python tests/benchmarks/bench_scatter.py [--quick]`` (``--help`` for filters)

The mesh (``_scatter_mesh.py``) runs in its own process with one worker group per workload;
each (workload, client) pair runs in a fresh process (``_scatter_runner.py``) so its CPU
time and peak RSS are its own. The mesh's CPU per task is read from ``/proc/<pid>/stat``.
Clients compared, all with the same concurrency (the group's total ``max_tasks``):

* ``agentfm-async`` / ``agentfm-sync``: this SDK's ``tasks.scatter_iter``;
* ``seed``: agentfm-sdk 0.3.0's ``tasks.scatter``, installed from PyPI into its own venv
  (``~/.cache/agentfm-bench/seed-venv``, created on first use) since its import name clashes;
* ``openai``: the official ``AsyncOpenAI`` client with an ``asyncio.Semaphore`` on ``/v1``;
* ``langchain``: ``ChatOpenAI.batch`` on ``/v1`` (default, and with ``return_exceptions``).

Figures are printed (and optionally saved as JSON), never asserted.
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SEED_VENV = Path.home() / ".cache" / "agentfm-bench" / "seed-venv"
SEED_VERSION = "0.3.0"
SLOTS_PER_WORKER = 4


@dataclass(frozen=True)
class Workload:
    """One row group of the results table."""

    name: str
    engine: str
    items: int
    quick_items: int
    workers: int
    latency: float
    clients: tuple[tuple[str, str, dict[str, Any]], ...]
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


ALTERNATIVES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("agentfm async", "agentfm-async", {}),
    ("agentfm sync", "agentfm-sync", {}),
    ("seed 0.3.0", "seed", {}),
    ("openai+semaphore", "openai", {}),
    ("langchain batch", "langchain", {}),
)
# A variant's fault-free run is its plain client's.
BASE_LABEL = {"langchain return_exceptions": "langchain batch"}
RAW_FLOOR: tuple[str, str, dict[str, Any]] = ("raw floor (no failover)", "raw", {})

WORKLOADS = (
    Workload(
        "W1", "w1", 2000, 500, 16, 0.020, (*ALTERNATIVES, RAW_FLOOR), note="20 ms tasks, 16x4"
    ),
    Workload(
        "W1b", "w1b", 2000, 640, 16, 0.200, (*ALTERNATIVES, RAW_FLOOR), note="200 ms tasks, 16x4"
    ),
    Workload("W2", "w2", 2000, 640, 16, 0.200, ALTERNATIVES, "W1b", "4 of 16 workers 5x slower"),
    Workload("W3ok", "w3ok", 1000, 320, 8, 0.200, ALTERNATIVES, note="8x4, fault-free"),
    Workload(
        "W3",
        "w3",
        1000,
        320,
        8,
        0.200,
        (*ALTERNATIVES, ("langchain return_exceptions", "langchain", {"return_exceptions": True})),
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
            ("agentfm async", "agentfm-async", {}),
            ("agentfm async hedge", "agentfm-async", {"hedge": True}),
            ("agentfm sync hedge", "agentfm-sync", {"hedge": True}),
            ("openai+semaphore", "openai", {}),
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
        (("agentfm async", "agentfm-async", {}), ("agentfm sync", "agentfm-sync", {})),
        note="tiny prompts, instant agents (memory reference)",
    ),
    Workload(
        "scale",
        "scale",
        100_000,
        10_000,
        16,
        0.0,
        (("agentfm async", "agentfm-async", {}), ("agentfm sync", "agentfm-sync", {})),
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


def ensure_seed_venv() -> Path:
    """The seed SDK's interpreter, creating its venv from PyPI on first use."""
    python = SEED_VENV / "bin" / "python"
    probe = [str(python), "-P", "-c", "import agentfm, sys; sys.exit(0)"]
    if python.exists() and subprocess.run(probe, cwd="/", check=False).returncode == 0:
        return python
    SEED_VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["python3", "-m", "venv", str(SEED_VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"agentfm-sdk=={SEED_VERSION}"], check=True
    )
    return python


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
    python: str, spec: dict[str, Any], mesh_pid: int, timeout: float, sdk_root: Path
) -> dict[str, Any]:
    """Run one client in a fresh process; add the mesh's CPU for the run."""
    seed = spec["client"] == "seed"
    cwd = Path("/") if seed else ROOT
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AGENTFM_API_KEY")}
    if not seed:
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
    wants_seed = any(
        client == "seed" and (labels is None or label in labels)
        for w in WORKLOADS
        if w.name in chosen
        for label, client, _ in w.clients
    )
    seed_python = str(ensure_seed_venv()) if wants_seed else sys.executable
    mesh, info = start_mesh(args.sdk_root)
    rows: list[Row] = []
    started = time.perf_counter()
    try:
        for w in WORKLOADS:
            if w.name not in chosen:
                continue
            peers = [p["peer_id"] for p in info["groups"][w.engine]]
            items = w.size(args.quick)
            for label, client, options in w.clients:
                if labels is not None and label not in labels:
                    continue
                spec = {
                    "client": client,
                    "url": info["url"],
                    "engine": w.engine,
                    "peers": peers,
                    "items": items,
                    "concurrency": w.concurrency,
                    "options": options,
                }
                python = seed_python if client == "seed" else sys.executable
                data = run_one(python, spec, mesh.pid, 300, args.sdk_root)
                rows.append(Row(w.name, label, items, data))
                summary = {k: v for k, v in data.items() if k not in ("rss_mb_before",)}
                print(f"{w.name:10} {label:28} {json.dumps(summary)}", file=sys.stderr)
    finally:
        assert mesh.stdin is not None
        mesh.stdin.close()
        mesh.wait(30)
    print(
        f"\n{os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
        f"total {time.perf_counter() - started:.0f} s, quick={args.quick}\n"
    )
    print(render(rows, {w.name: w for w in WORKLOADS}))
    if args.json is not None:
        args.json.write_text(json.dumps([r.__dict__ for r in rows], indent=1))


if __name__ == "__main__":
    main()
