"""Scatter a batch of prompts across several workers, with failover and a progress bar.

One of the workers here refuses every task, as a real worker at capacity (or with a
version mismatch) does. Scatter moves each refused prompt to a peer that has not been
tried yet, so every prompt still gets an answer. Run it: ``python cookbook/02_batch_scatter.py``.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from _gateway import gateway
from rich.progress import Progress

from agentfm import AgentFMClient, ScatterProgress
from agentfm.mesh import AgentContext, BreakStream, CallableAgent, WorkerConfig

if TYPE_CHECKING:
    from collections.abc import Iterator


def refuse_everything(prompt: str, ctx: AgentContext) -> Iterator[str]:
    # A refusing worker writes one "❌ ERROR:" line and closes the stream with no end-of-task
    # marker (BreakStream does the closing). The task never ran, so scatter may re-send it.
    # A stream that breaks *after* real output is not re-sent: that task may have done work.
    yield "❌ ERROR: this worker refuses every task. Try another worker.\n"
    raise BreakStream("closed without a marker")


# Same agent name and engine as the two healthy demo echo workers, so it is one of the
# peers that match "echo", as a broken peer would be on a real mesh.
BROKEN = WorkerConfig("echo", "echo", CallableAgent(refuse_everything), max_tasks=4)


def main() -> None:
    prompts = [f"item {i}" for i in range(30)]
    with gateway(extra_workers=[BROKEN]), AgentFMClient() as client:
        peers = [w.peer_id for w in client.workers.match("echo")]
        print(f"scattering {len(prompts)} prompts over {len(peers)} echo workers")

        with Progress() as bar:
            task = bar.add_task("scatter", total=len(prompts))

            def on_progress(p: ScatterProgress) -> None:
                bar.update(
                    task, completed=p.done, description=f"scatter (failovers: {p.failovers})"
                )

            results = client.tasks.scatter(
                prompts, peer_ids=peers, max_concurrency=8, max_retries=2, on_progress=on_progress
            )

    # Results come back in prompt order, one per prompt, whatever happened.
    ok = [r for r in results if r.ok]
    served = Counter(r.peer_id for r in ok)
    retried = [r for r in results if r.attempts > 1]
    print(f"{len(ok)}/{len(results)} succeeded; {len(retried)} needed a failover")
    for peer, count in served.items():
        print(f"  {peer}: {count} answers")
    first = results[0]
    print(f"first result: {first.text.strip()!r} (tried {first.peers_tried})")


if __name__ == "__main__":
    main()
