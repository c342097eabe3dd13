"""Benchmark: ChatAgentFM's scatter batch against per-input calls and ChatOpenAI on /v1.

Run with ``python tests/benchmarks/bench_langchain.py`` (``--prompts``, ``--peers``,
``--delay``, ``--slots`` to change the set-up). It starts an embedded mesh of echo-like
peers with a fixed per-task delay and batches the same prompts three ways, with the same
``max_concurrency``:

- ``scatter``: ``ChatAgentFM.batch`` (one scatter with failover);
- ``per-input``: ``ChatAgentFM(use_scatter=False).batch`` (LangChain's thread pool of
  ``invoke`` calls, each routed and failed over on its own);
- ``openai``: ``langchain_openai.ChatOpenAI`` pointed at the mesh's ``/v1``.

It does so with healthy peers, then with one extra peer (same engine) that breaks every
task stream. A result counts as a failure when it is an exception or when its text does
not echo its prompt (a broken stream can also come back as an empty 200 on ``/v1``).
Each contender runs ``--repeat`` times (interleaved) and the median run is printed;
figures are from one invocation on whatever machine runs it, and nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_openai import ChatOpenAI

from agentfm.mesh import AgentContext, BreakStream, CallableAgent, EmbeddedMesh, WorkerConfig
from agentfm_integrations.langchain import ChatAgentFM

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

ENGINE = "bench-echo"
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
        return f"echo: {prompt}\n"

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


def contenders(url: str, artifacts: str) -> dict[str, BaseChatModel]:
    common: dict[str, Any] = {"model": ENGINE, "gateway_url": url, "api_key": None}
    return {
        "scatter": ChatAgentFM(**common, artifacts_dir=artifacts),
        "per-input": ChatAgentFM(**common, artifacts_dir=artifacts, use_scatter=False),
        "openai": ChatOpenAI(model=ENGINE, base_url=f"{url}/v1", api_key="unused", max_retries=2),
    }


def measure(name: str, llm: BaseChatModel, prompts: list[str], concurrency: int) -> Outcome:
    started = time.perf_counter()
    results = llm.batch(prompts, {"max_concurrency": concurrency}, return_exceptions=True)
    seconds = time.perf_counter() - started
    kinds: Counter[str] = Counter()
    for prompt, result in zip(prompts, results, strict=True):
        if isinstance(result, BaseException):
            cause = result.__cause__
            kinds[type(result).__name__ + (f"<-{type(cause).__name__}" if cause else "")] += 1
        elif prompt not in str(result.content):
            kinds["wrong or empty answer"] += 1
    return Outcome(name, seconds, sum(kinds.values()), kinds)


def scenario(args: argparse.Namespace, *, broken: bool) -> list[Outcome]:
    prompts = [f"prompt number {i}" for i in range(args.prompts)]
    concurrency = args.peers * args.slots
    with (
        build_mesh(args.peers, args.slots, args.delay, broken=broken) as mesh,
        tempfile.TemporaryDirectory() as artifacts,
    ):
        models = contenders(mesh.url, artifacts)
        for llm in models.values():  # warm connections and code paths
            llm.batch(prompts[:4], {"max_concurrency": 4}, return_exceptions=True)
        runs: dict[str, list[Outcome]] = {name: [] for name in models}
        # Interleave contenders so load from the other engineers' jobs on the machine hits
        # them alike; let telemetry settle so each run starts on an idle-looking mesh.
        for _ in range(args.repeat):
            for name, llm in models.items():
                time.sleep(SETTLE_S)
                runs[name].append(measure(name, llm, prompts, concurrency))
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
    args = parser.parse_args()
    concurrency = args.peers * args.slots
    print(
        f"{args.prompts} prompts, {args.peers} echo peers x {args.slots} slots, "
        f"{args.delay:.2f}s per task, max_concurrency={concurrency} for every contender, "
        f"median of {args.repeat} runs"
    )
    report("healthy peers", scenario(args, broken=False), args.prompts)
    report("plus one peer failing every task", scenario(args, broken=True), args.prompts)


if __name__ == "__main__":
    main()
