"""The stream wrappers handed to callers: `Stream`, `AsyncStream` and their task variants.

A wrapper owns a *source* (a generator function of the `StreamState` it shares with its
caller) and adds what users expect of a stream: lazy start or `start()`, ``with``/``close``,
and the ids the source learns. The decoders the sources run live in `agentfm._decoders`
(re-exported here for the import paths tests and 0.3.0 code use).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from agentfm._decoders import (
    SANDBOX_EXIT_PREFIX,
    START_FAILED_PREFIX,
    Decoder,
    MarkerDecoder,
    failure_from_tail,
    strip_failure_line,
)
from agentfm._sse import SSEDecoder, SSEEvent

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from types import TracebackType

__all__ = [
    "SANDBOX_EXIT_PREFIX",
    "START_FAILED_PREFIX",
    "AsyncStream",
    "AsyncTaskStream",
    "Decoder",
    "MarkerDecoder",
    "SSEDecoder",
    "SSEEvent",
    "Stream",
    "StreamState",
    "TaskStream",
    "failure_from_tail",
    "strip_failure_line",
]

T = TypeVar("T")


@dataclass
class StreamState:
    """What a stream learned about its task: ids and how it ended."""

    task_id: str | None = None
    peer_id: str | None = None
    files_incoming: bool = False
    finished: bool = False
    peers_tried: list[str] = field(default_factory=list)


class _StreamBase(Generic[T]):
    """What both wrappers share: the state, the ids, and the first item `start` fetched."""

    def __init__(self, state: StreamState) -> None:
        self._state = state
        # `start()` fetches the first item to surface request errors early; it is
        # replayed by the first `next`.
        self._first: list[T] = []
        self._closed = False

    @property
    def task_id(self) -> str | None:
        """The task id (known up front for tasks; from the chunks for OpenAI streams)."""
        return self._state.task_id

    @property
    def peer_id(self) -> str | None:
        """The serving worker's peer id, when known."""
        return self._state.peer_id

    @property
    def files_incoming(self) -> bool:
        """True once the stream ended with ``FILES_INCOMING``."""
        return self._state.files_incoming


class Stream(_StreamBase[T]):
    """A synchronous stream of items; iterate it, and close it (or use ``with``).

    Example:
        ```python
        with client.tasks.stream(worker_id=peer, prompt="hi") as stream:
            for chunk in stream:
                print(chunk.text, end="")
        ```
    """

    def __init__(self, source: Callable[[StreamState], Iterator[T]], state: StreamState) -> None:
        super().__init__(state)
        self._source = source
        self._iterator: Iterator[T] | None = None

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._closed:
            raise StopIteration
        if self._first:
            return self._first.pop()
        if self._iterator is None:
            self._iterator = self._source(self._state)
        try:
            return next(self._iterator)
        except BaseException as exc:
            self._state.finished = isinstance(exc, StopIteration)
            self.close()
            raise

    def start(self) -> Stream[T]:
        """Send the request now instead of on first iteration (errors surface here)."""
        if self._iterator is None and not self._closed:
            with contextlib.suppress(StopIteration):
                self._first.append(next(self))
        return self

    def close(self) -> None:
        """Release the connection; safe to call more than once."""
        self._closed = True
        iterator, self._iterator = self._iterator, None
        close = getattr(iterator, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Stream[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncStream(_StreamBase[T]):
    """An asynchronous stream of items; ``async for`` it, and close it (or ``async with``).

    Example:
        ```python
        async with aclient.tasks.stream(worker_id=peer, prompt="hi") as stream:
            async for chunk in stream:
                print(chunk.text, end="")
        ```
    """

    def __init__(
        self, source: Callable[[StreamState], AsyncIterator[T]], state: StreamState
    ) -> None:
        super().__init__(state)
        self._source = source
        self._iterator: AsyncIterator[T] | None = None

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        if self._closed:
            raise StopAsyncIteration
        if self._first:
            return self._first.pop()
        if self._iterator is None:
            self._iterator = self._source(self._state)
        try:
            return await self._iterator.__anext__()
        except BaseException as exc:
            self._state.finished = isinstance(exc, StopAsyncIteration)
            await self.aclose()
            raise

    async def start(self) -> AsyncStream[T]:
        """Send the request now instead of on first iteration (errors surface here)."""
        if self._iterator is None and not self._closed:
            with contextlib.suppress(StopAsyncIteration):
                self._first.append(await self.__anext__())
        return self

    async def aclose(self) -> None:
        """Release the connection; safe to call more than once."""
        self._closed = True
        iterator, self._iterator = self._iterator, None
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()

    async def close(self) -> None:
        """Alias of `aclose`."""
        await self.aclose()

    async def __aenter__(self) -> AsyncStream[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class _TaskIds(_StreamBase[T]):
    """The ids of one ``/api/execute`` task, known up front (and the peers it tried)."""

    @property
    def task_id(self) -> str:
        """The task id sent to the gateway (name of the artifact zip)."""
        return self._state.task_id or ""

    @property
    def peer_id(self) -> str:
        """The worker running the task."""
        return self._state.peer_id or ""

    @property
    def peers_tried(self) -> list[str]:
        """Peers tried so far, the serving one last (more than one after a failover)."""
        return list(self._state.peers_tried) or (
            [self._state.peer_id] if self._state.peer_id else []
        )

    @property
    def attempts(self) -> int:
        """How many peers were tried, the serving one included."""
        return len(self.peers_tried)


class TaskStream(_TaskIds[T], Stream[T]):
    """A `Stream` of one ``/api/execute`` task, whose ``task_id`` and ``peer_id`` are known."""


class AsyncTaskStream(_TaskIds[T], AsyncStream[T]):
    """An `AsyncStream` of one ``/api/execute`` task; ``task_id`` and ``peer_id`` are known."""
