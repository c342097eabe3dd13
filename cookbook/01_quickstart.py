"""Quickstart: discover the workers, pick one, dispatch a task, stream another.

Run it: ``python cookbook/01_quickstart.py`` (starts an embedded mesh unless
``AGENTFM_GATEWAY_URL`` points at a real gateway).
"""

from __future__ import annotations

from _gateway import gateway

from agentfm import AgentFMClient


def main() -> None:
    with gateway(), AgentFMClient() as client:  # URL and key come from the environment
        # 1. Discover: every worker advertises an agent name, an engine and its load.
        for w in client.workers.list():
            print(
                f"{w.name:<12} engine={w.engine:<12} load={w.current_tasks}/{w.max_tasks} {w.peer_id}"
            )

        # 2. Pick: `match` applies the gateway's own routing rules (peer id, then agent
        #    name, then engine) and sorts the matches least-loaded first.
        worker = client.workers.match("echo")[0]
        print(f"picked {worker.name} ({worker.peer_id})")

        # 3. Dispatch and wait for the whole answer. The peer id pins the exact worker.
        result = client.tasks.run(worker_id=worker.peer_id, prompt="hello, mesh")
        print(f"run answer: {result.text.strip()!r} in {result.duration_seconds:.2f}s")

        # 4. Stream: chunks arrive as the agent prints them.
        with client.tasks.stream(worker_id=worker.peer_id, prompt="stream this") as stream:
            for chunk in stream:
                print(f"chunk: {chunk.text!r}")
        print(f"streamed task {stream.task_id} from {stream.peer_id}")


if __name__ == "__main__":
    main()
