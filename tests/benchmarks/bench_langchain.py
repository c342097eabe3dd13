"""Benchmark: ChatAgentFM's scatter batch against per-input calls and ChatOpenAI on /v1.

Run with ``python tests/benchmarks/bench_langchain.py`` (``--prompts``, ``--peers``,
``--delay``, ``--slots`` to change the set-up; ``--quick`` for a sanity run). It starts an
embedded mesh of peers that answer ``done item-N`` after a fixed per-task delay and batches
the same prompts four ways, with the same ``max_concurrency``:

- ``scatter``: ``ChatAgentFM.batch`` (one scatter with failover);
- ``per-input``: ``ChatAgentFM(use_scatter=False).batch`` (LangChain's thread pool of
  ``invoke`` calls, each routed and failed over on its own);
- ``openai3``: ``langchain_openai.ChatOpenAI`` pointed at the mesh's ``/v1``, on the newest
  openai (3.x, httpx2) from the benchmark's own venv (``_venvs.py``; built on first run);
- ``openai2``: the same on the dev venv's openai 2.x (httpx 0.28), to show the change.

The two ``ChatOpenAI`` contenders run in a child process (``_scatter_runner.py``, which
warms the client with a small batch before its clock starts); both ``ChatAgentFM``
contenders run here, warmed the same way. The versions used are printed first.

It does so with healthy peers, then with one extra peer (same engine) that breaks every
task stream. A result counts as a failure when it is an exception or when its text is not
its item's answer (a broken stream can also come back as an empty 200 on ``/v1``). Each
contender runs ``--repeat`` times (interleaved) and the median run is printed; figures are
from one invocation on whatever machine runs it, and nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _scatter_mesh import item_of
from _scatter_runner import expected, prompt_of
from _venvs import MAIN_SHOWS, OPENAI3, ensure, versions

from agentfm.mesh import AgentContext, BreakStream, CallableAgent, EmbeddedMesh, WorkerConfig
from agentfm_integrations.langchain import ChatAgentFM

if TYPE_CHECKING:
    from collections.abc import Callable

    from langchain_core.language_models import BaseChatModel

HERE = Path(__file__).resolve().parent
ENGINE = "bench-echo"
WARM = 4
"""Prompts in each contender's warm-up batch (connections and code paths)."""
SETTLE_S = 2.5
"""Longer than the gateway's telemetry interval, so stale load never carries over."""


@dataclass
class Outcome:
    name: str
    seconds: float
    failures: int
    kinds: Counter[str]


def build_mesh(peers: int, slots: int, delay: float, *, broken: bool) -> EmbeddedMesh:
    async def echo(prompt: str, ctx: AgentContext) -> str:
        await asyncio.sleep(delay)
        return f"done {item_of(prompt)}\n"

    async def breaks(prompt: str, ctx: AgentContext) -> str:
        raise BreakStream

    workers = [
        WorkerConfig(f"echo{i}", ENGINE, CallableAgent(echo), max_tasks=slots, seed=f"bench-{i}")
        for i in range(peers)
    ]
    if broken:
        workers.append(
            WorkerConfig("broken", ENGINE, CallableAgent(breaks), max_tasks=slots, seed="bench-x")
        )
    return EmbeddedMesh(workers=workers)


def in_process(name: str, llm: BaseChatModel) -> Callable[[list[str], int], Outcome]:
    """A contender batched in this process, warmed once with a small batch."""
    llm.batch(
        [prompt_of(i) for i in range(WARM)], {"max_concurrency": WARM}, return_exceptions=True
    )

    def measure(prompts: list[str], concurrency: int) -> Outcome:
        started = time.perf_counter()
        results = llm.batch(prompts, {"max_concurrency": concurrency}, return_exceptions=True)
        seconds = time.perf_counter() - started
        kinds: Counter[str] = Counter()
        for index, result in enumerate(results):
            if isinstance(result, BaseException):
                cause = result.__cause__
                kinds[type(result).__name__ + (f"<-{type(cause).__name__}" if cause else "")] += 1
            elif str(result.content).strip() != expected(index):
                kinds["wrong or empty answer"] += 1
        return Outcome(name, seconds, sum(kinds.values()), kinds)

    return measure


def chat_openai(name: str, python: str, url: str) -> Callable[[list[str], int], Outcome]:
    """``ChatOpenAI.batch`` run by ``python`` (a venv's, or ours) in a child process."""

    def measure(prompts: list[str], concurrency: int) -> Outcome:
        spec = {
            "client": "langchain",
            "url": url,
            "engine": ENGINE,
            "peers": [],
            "items": len(prompts),
            "concurrency": concurrency,
            "options": {"return_exceptions": True},
            "warmup": WARM,
        }
        # Outside the checkout, so a venv's child never imports this repository's code.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        done = subprocess.run(
            [python, "-P", str(HERE / "_scatter_runner.py"), json.dumps(spec)],
            cwd="/",
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{name} ({python}) failed: {done.stderr.strip()[-2000:]}")
        data = json.loads(done.stdout.splitlines()[-1])
        kinds = Counter(data["failure_kinds"])
        if data["wrong"] + data["lost"] + data["duplicated"]:
            kinds["wrong or empty answer"] += data["wrong"] + data["lost"] + data["duplicated"]
        return Outcome(name, data["wall"], sum(kinds.values()), kinds)

    return measure


def scenario(args: argparse.Namespace, openai3: str, *, broken: bool) -> list[Outcome]:
    prompts = [prompt_of(i) for i in range(args.prompts)]
    concurrency = args.peers * args.slots
    with (
        build_mesh(args.peers, args.slots, args.delay, broken=broken) as mesh,
        tempfile.TemporaryDirectory() as artifacts,
    ):
        common: dict[str, Any] = {"model": ENGINE, "gateway_url": mesh.url, "api_key": None}
        models = {
            "scatter": in_process("scatter", ChatAgentFM(**common, artifacts_dir=artifacts)),
            "per-input": in_process(
                "per-input", ChatAgentFM(**common, artifacts_dir=artifacts, use_scatter=False)
            ),
            "openai3": chat_openai("openai3", openai3, mesh.url),
            "openai2": chat_openai("openai2", sys.executable, mesh.url),
        }
        runs: dict[str, list[Outcome]] = {name: [] for name in models}
        # Interleave contenders so load from the other engineers' jobs on the machine hits
        # them alike; let telemetry settle so each run starts on an idle-looking mesh.
        for _ in range(args.repeat):
            for name, measure in models.items():
                time.sleep(SETTLE_S)
                runs[name].append(measure(prompts, concurrency))
        return [statistics_median(r) for r in runs.values()]


def statistics_median(outcomes: list[Outcome]) -> Outcome:
    """The run with the median wall time (its failures are reported with it)."""
    return sorted(outcomes, key=lambda o: o.seconds)[len(outcomes) // 2]


def report(title: str, outcomes: list[Outcome], prompts: int) -> None:
    base = outcomes[0].seconds
    print(f"\n{title}")
    print(f"{'contender':<10} {'wall s':>8} {'vs scatter':>11} {'failures':>9}  why")
    for o in outcomes:
        print(
            f"{o.name:<10} {o.seconds:>8.2f} {o.seconds / base:>10.2f}x {o.failures:>5}/{prompts}"
            f"  {dict(o.kinds) or ''}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--peers", type=int, default=4, help="healthy echo peers")
    parser.add_argument("--slots", type=int, default=4, help="max_tasks per peer")
    parser.add_argument("--delay", type=float, default=0.1, help="seconds per task")
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender (median)")
    parser.add_argument("--quick", action="store_true", help="64 prompts, one run: a sanity run")
    args = parser.parse_args()
    if args.quick:
        args.prompts, args.repeat = 64, 1
    concurrency = args.peers * args.slots
    openai3 = ensure(OPENAI3)
    print(f"dev venv: {versions(sys.executable, MAIN_SHOWS)}")
    print(f"{OPENAI3.path}: {versions(openai3, OPENAI3.shows)}")
    print(
        f"{args.prompts} prompts, {args.peers} echo peers x {args.slots} slots, "
        f"{args.delay:.2f}s per task, max_concurrency={concurrency} for every contender, "
        f"median of {args.repeat} runs"
    )
    report("healthy peers", scenario(args, str(openai3), broken=False), args.prompts)
    report(
        "plus one peer failing every task", scenario(args, str(openai3), broken=True), args.prompts
    )


if __name__ == "__main__":
    main()
