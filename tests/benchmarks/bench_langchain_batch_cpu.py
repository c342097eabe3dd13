"""Benchmark: client CPU per task of ``ChatAgentFM.batch`` against the SDK's own scatter.

Run with ``python tests/benchmarks/bench_langchain_batch_cpu.py`` (``--prompts``,
``--workers``, ``--slots``, ``--repeat``, ``--profile``). An embedded mesh of instant
workers runs in a child process, so ``time.process_time()`` in this one counts only the
client: the same prompts go through ``client.tasks.scatter`` and through
``ChatAgentFM.batch`` (one scatter plus one traced LangChain run per input), interleaved,
and the best run of each is printed with the ratio. A third contender, core's own
``batch`` over a chat model that answers at once with no I/O, is LangChain's per-input floor
(config, callback manager, run, thread pool): what is left once the scatter and that floor
are taken away is the integration's own per-item cost.
``--profile`` prints a cProfile of one ``ChatAgentFM.batch`` run instead. Figures are from
one invocation on whatever machine runs it; nothing is asserted.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

ENGINE = "cpu-echo"


def _floor_model() -> type:
    """A chat model that answers at once with no I/O: core's own per-input batch cost."""
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    class FloorModel(BaseChatModel):
        @property
        def _llm_type(self) -> str:
            return "floor"

        def _generate(self, messages: Any, stop: Any = None, **kwargs: Any) -> ChatResult:
            message = AIMessage(content=f"echo: {messages[-1].content}")
            return ChatResult(generations=[ChatGeneration(message=message)])

    return FloorModel


def serve(workers: int, slots: int) -> None:
    """Child process: start the mesh, print its URL, serve until stdin closes."""
    from agentfm.mesh import AgentContext, CallableAgent, EmbeddedMesh, WorkerConfig

    def echo(prompt: str, ctx: AgentContext) -> str:
        return f"echo: {prompt}\n"

    configs = [
        WorkerConfig(f"cpu{i}", ENGINE, CallableAgent(echo), max_tasks=slots, seed=f"cpu-{i}")
        for i in range(workers)
    ]
    with EmbeddedMesh(workers=configs) as mesh:
        print(json.dumps({"url": mesh.url}), flush=True)
        sys.stdin.read()


def profile_all_threads(call: Callable[[], object]) -> None:
    """Print one cProfile of ``call`` and of every thread it starts (LangChain's pool)."""
    profiles: list[cProfile.Profile] = []
    original = threading.Thread.run

    def run_profiled(thread: threading.Thread) -> None:
        profiler = cProfile.Profile()
        profiles.append(profiler)
        profiler.runcall(original, thread)

    threading.Thread.run = run_profiled  # type: ignore[method-assign]
    main_profile = cProfile.Profile()
    try:
        main_profile.runcall(call)
    finally:
        threading.Thread.run = original  # type: ignore[method-assign]
    # LangChain's pool and the scatter driver end with the batch, so their profiles are
    # complete here. cProfile times are wall-clock: lock waits dominate "tottime", so read
    # the integration's own rows (second listing) for what is ours.
    stats = pstats.Stats(main_profile)
    for profiler in profiles:
        profiler.create_stats()
        stats.add(profiler)
    stats.sort_stats("tottime").print_stats(45)
    stats.sort_stats("cumtime").print_stats("agentfm_integrations", 30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.workers, args.slots)
        return

    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", f"--workers={args.workers}", f"--slots={args.slots}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        url = json.loads(child.stdout.readline())["url"]
        run(url, args)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)


def run(url: str, args: argparse.Namespace) -> None:
    from agentfm import AgentFMClient
    from agentfm_integrations.langchain import ChatAgentFM

    prompts = [f"item-{i}" for i in range(args.prompts)]
    client = AgentFMClient(gateway_url=url, routing_warning=False)
    llm = ChatAgentFM(model=ENGINE, client=client)
    peers = [w.peer_id for w in client.workers.match(ENGINE)]
    slots = args.workers * args.slots

    def scatter() -> int:
        results = client.tasks.scatter(prompts, peer_ids=peers, max_concurrency=slots)
        return sum(r.ok for r in results)

    def batch() -> int:
        answers = llm.batch(list(prompts))
        return sum(str(a.content).startswith("echo") for a in answers)

    floor_model = _floor_model()()

    def floor() -> int:
        answers = floor_model.batch(list(prompts))
        return sum(str(a.content).startswith("echo") for a in answers)

    batch()  # warm up: imports, connections, LangChain's lazy set-up
    if args.profile:
        profile_all_threads(batch)
        return

    best: dict[str, float] = {}
    contenders: dict[str, Callable[[], int]] = {
        "scatter": scatter,
        "ChatAgentFM.batch": batch,
        "LangChain floor": floor,
    }
    for _ in range(args.repeat):
        for name, call in contenders.items():
            cpu0, wall0 = time.process_time(), time.perf_counter()
            ok = call()
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            if ok != len(prompts):
                print(f"{name}: only {ok}/{len(prompts)} succeeded", file=sys.stderr)
            best[name] = min(best.get(name, cpu), cpu)
            print(f"  {name:<18} cpu {cpu:6.2f} s  wall {wall:6.2f} s", file=sys.stderr)

    n = len(prompts)
    print(f"{n} prompts, {args.workers} workers x {args.slots} slots, best of {args.repeat}")
    for name, cpu in best.items():
        print(f"{name:<18} {cpu * 1000 / n:6.3f} ms client CPU per task")
    print(f"ratio batch/scatter: {best['ChatAgentFM.batch'] / best['scatter']:.2f}x")
    ours = best["ChatAgentFM.batch"] - best["scatter"] - best["LangChain floor"]
    print(f"left for the integration itself: {ours * 1000 / n:6.3f} ms per task")
    print(
        "lowest ratio any integration on core's per-input runs can reach: "
        f"{(best['scatter'] + best['LangChain floor']) / best['scatter']:.2f}x"
    )
    llm.close()
    client.close()


if __name__ == "__main__":
    main()
