"""Thin adapters from the integrations to the SDK's routed task calls.

Routing by model, failover and retry rules live in the SDK (``tasks.run(model=…)``,
``tasks.stream(model=…)``, the same rule scatter uses). These helpers only shape the SDK's
answers for the LangChain and LlamaIndex classes; they make no decision of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import agentfm

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Sequence

__all__ = [
    "StreamEnd",
    "arun_task",
    "astream_task",
    "require_peers",
    "route_kwargs",
    "run_task",
    "stream_task",
]


def require_peers(model: str, workers: Sequence[agentfm.WorkerProfile]) -> list[str]:
    """Return the matched peer ids (a scatter's candidates), or raise ``model_not_found``."""
    if not workers:
        msg = f"no live worker matches model {model!r} (peer id, agent name or engine)"
        raise agentfm.NoWorkerForModelError(msg, code="model_not_found", status=404)
    return [w.peer_id for w in workers]


@dataclass
class StreamEnd:
    """What is known once a streamed task has finished."""

    peer_id: str
    task_id: str | None
    files_incoming: bool
    peers_tried: list[str] = field(default_factory=list)

    @property
    def attempts(self) -> int:
        """How many peers were tried, the serving one included."""
        return len(self.peers_tried)


def _end(stream: Any) -> StreamEnd:
    return StreamEnd(stream.peer_id, stream.task_id, stream.files_incoming, stream.peers_tried)


def run_task(
    client: agentfm.AgentFMClient, *, prompt: str, **route: Any
) -> tuple[agentfm.TaskResult, list[str]]:
    """``client.tasks.run(model=…, **route)``; returns the result and the peers tried.

    ``route``: ``model``, ``max_retries``, ``timeout`` and optionally ``min_honesty``, as
    `route_kwargs` builds them.
    """
    result = client.tasks.run(prompt=prompt, **route)
    return result, list(result.peers_tried)


async def arun_task(
    client: agentfm.AsyncAgentFMClient, *, prompt: str, **route: Any
) -> tuple[agentfm.TaskResult, list[str]]:
    """Async twin of `run_task`."""
    result = await client.tasks.run(prompt=prompt, **route)
    return result, list(result.peers_tried)


def stream_task(
    client: agentfm.AgentFMClient,
    *,
    prompt: str,
    stop_when: Callable[[], bool] = lambda: False,
    **route: Any,
) -> Iterator[str | StreamEnd]:
    """``client.tasks.stream(model=…, **route)`` as text pieces, then one `StreamEnd`.

    ``stop_when`` is checked after each piece so a caller that has seen a stop sequence can
    end the task early (closing the stream makes the gateway cancel the agent).
    """
    with client.tasks.stream(prompt=prompt, **route) as stream:
        for chunk in stream:
            if text := _text(chunk):
                yield text
                if stop_when():
                    break
        end = _end(stream)
    yield end


async def astream_task(
    client: agentfm.AsyncAgentFMClient,
    *,
    prompt: str,
    stop_when: Callable[[], bool] = lambda: False,
    **route: Any,
) -> AsyncIterator[str | StreamEnd]:
    """Async twin of `stream_task`."""
    stream = client.tasks.stream(prompt=prompt, **route)
    async with stream:
        async for chunk in stream:
            if text := _text(chunk):
                yield text
                if stop_when():
                    break
        end = _end(stream)
    yield end


def route_kwargs(
    model: str, *, max_retries: int, timeout: float | None, min_honesty: float | None = None
) -> dict[str, Any]:
    """The routing keywords every routed call of an integration passes to the SDK."""
    return {
        "model": model,
        "max_retries": max_retries,
        "timeout": timeout,
        "min_honesty": min_honesty,
    }


def _text(chunk: agentfm.TaskChunk) -> str:
    return chunk.text if chunk.kind == "text" and chunk.text else ""
