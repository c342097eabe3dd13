"""Benchmark: an agent loop over 50 tasks, each model step one scatter vs one call per task.

Run with ``python tests/benchmarks/bench_agent_loop.py`` (``--tasks``, ``--peers``,
``--delay``, ``--slots``, ``--repeat``). It starts an embedded mesh of ``planner`` workers
(the demo agent that follows the prompted tool-calling contract) that each take
``--delay`` seconds per reply, like a small LLM, and runs the same tool-calling agent loop
over ``--tasks`` independent tasks in two ways:

- ``batched``: the loop advances every unfinished task together: each model step is one
  ``ChatAgentFM.bind_tools(...).batch(...)`` (one scatter over all peers), then the tools run;
- ``unbatched``: the same loop, one ``invoke`` per task and step, task after task.

Each task is a two-step loop: the model calls ``magic(n)``, the tool answers, the model
gives the final answer. A run counts its wrong answers (a final answer without the tool's
result), so a fast but wrong run shows. The median of ``--repeat`` interleaved runs is
printed with the ratio unbatched/batched; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from agentfm.mesh import AgentContext, CallableAgent, EmbeddedMesh, WorkerConfig
from agentfm.mesh.demo_agents import plan_reply
from agentfm_integrations.langchain import ChatAgentFM

if TYPE_CHECKING:
    from langchain_core.runnables import Runnable

ENGINE = "bench-planner"


@tool
def magic(input: int) -> int:
    """Apply a magic function to an input."""
    return input * 3 + 1


def build_mesh(peers: int, slots: int, delay: float) -> EmbeddedMesh:
    async def planner(prompt: str, ctx: AgentContext) -> str:
        await asyncio.sleep(delay)  # the model "thinking"
        return plan_reply(prompt)

    workers = [
        WorkerConfig(
            f"planner{i}",
            ENGINE,
            CallableAgent(planner),
            max_tasks=slots,
            seed=f"bench-planner-{i}",
            capability="tool-calling",
        )
        for i in range(peers)
    ]
    return EmbeddedMesh(workers=workers)


def run_tools(message: AIMessage) -> list[ToolMessage]:
    return [magic.invoke(call) for call in message.tool_calls]


def wrong(conversations: list[list[BaseMessage]]) -> int:
    """Tasks whose final answer does not carry the tool's result."""
    bad = 0
    for index, messages in enumerate(conversations):
        final = messages[-1]
        expected = f"magic returned {index * 3 + 1}"
        if not isinstance(final, AIMessage) or final.tool_calls or expected not in final.text:
            bad += 1
    return bad


def batched(llm: Runnable[Any, AIMessage], tasks: int, max_steps: int) -> tuple[float, int]:
    conversations: list[list[BaseMessage]] = [
        [HumanMessage(f"What is magic({i})?")] for i in range(tasks)
    ]
    active = list(range(tasks))
    started = time.perf_counter()
    for _ in range(max_steps):
        if not active:
            break
        replies = llm.batch([conversations[i] for i in active])  # one scatter per step
        still: list[int] = []
        for index, reply in zip(active, replies, strict=True):
            conversations[index].append(reply)
            if reply.tool_calls:
                conversations[index].extend(run_tools(reply))
                still.append(index)
        active = still
    return time.perf_counter() - started, wrong(conversations)


def unbatched(llm: Runnable[Any, AIMessage], tasks: int, max_steps: int) -> tuple[float, int]:
    conversations: list[list[BaseMessage]] = []
    started = time.perf_counter()
    for i in range(tasks):
        messages: list[BaseMessage] = [HumanMessage(f"What is magic({i})?")]
        for _ in range(max_steps):
            reply = llm.invoke(messages)
            messages.append(reply)
            if not reply.tool_calls:
                break
            messages.extend(run_tools(reply))
        conversations.append(messages)
    return time.perf_counter() - started, wrong(conversations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--peers", type=int, default=4)
    parser.add_argument("--slots", type=int, default=4, help="max_tasks per peer")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds per model reply")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with build_mesh(args.peers, args.slots, args.delay) as mesh:
        llm = ChatAgentFM(model=ENGINE, gateway_url=mesh.url, api_key=None)
        bound = llm.bind_tools([magic])
        bound.invoke("What is magic(1)?")  # warm up: connections, capability lookup
        times: dict[str, list[float]] = {"batched": [], "unbatched": []}
        errors: dict[str, int] = {"batched": 0, "unbatched": 0}
        for _ in range(args.repeat):
            for name, loop in (("batched", batched), ("unbatched", unbatched)):
                seconds, bad = loop(bound, args.tasks, max_steps=4)
                times[name].append(seconds)
                errors[name] += bad
        llm.close()

    print(
        f"agent loop: {args.tasks} tasks x 2 model steps, {args.peers} planner peers x "
        f"{args.slots} slots, {args.delay * 1000:.0f} ms per reply, median of {args.repeat}"
    )
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"  {name:<9} {median:7.3f} s  ({2 * args.tasks / median:6.1f} model calls/s, "
            f"{errors[name]} wrong answers)"
        )
    ratio = statistics.median(times["unbatched"]) / statistics.median(times["batched"])
    print(f"  ratio unbatched/batched: {ratio:.1f}x")


if __name__ == "__main__":
    main()
