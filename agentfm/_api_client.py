"""The I/O drivers behind both clients, shaped like openai-python's base client.

`agentfm._api_config.BaseAPIClient` holds what the two clients share and does no I/O (one
constructor, the headers, request preparation, `with_options`). `SyncAPIClient` and
`AsyncAPIClient` add only the I/O, each method a short driver over the pure decisions of
`agentfm._base_client` (what to send, what a response means, whether to retry) and the
sans-IO decoders:

- ``request`` / ``request_json``: one call under the retry policy;
- ``stream(spec, decoder, parse)``: open a stream, feed the decoder, flush, parse each item;
- ``drive(flow)`` / ``iterate(flow)``: run a multi-step flow (`agentfm._flow`).

Resources reach the gateway through these methods only. This module imports no resource,
so resources are typed against it without an import circle.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager, closing, contextmanager
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import httpx

from agentfm._api_config import BaseAPIClient
from agentfm._base_client import (
    RequestSpec,
    RetryPolicy,
    acall_with_retry,
    call_timeout_error,
    call_with_retry,
    decode_json,
    error_from_response,
    output_too_large_error,
)
from agentfm._flow import Emit, Pump, Sleep, Step
from agentfm._transport import AsyncShardedTransport, ShardedTransport
from agentfm.exceptions import AgentFMError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

    from typing_extensions import Self

    from agentfm._decoders import Decoder
    from agentfm._flow import Flow

__all__ = ["AsyncAPIClient", "SyncAPIClient", "mark_started"]

X = TypeVar("X")
T = TypeVar("T")
R = TypeVar("R")


class _Deadline:
    """The total deadline of a call's ``timeout=`` (None: no deadline)."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self._at = None if timeout is None else time.monotonic() + timeout

    def check(self) -> None:
        if self._at is not None and time.monotonic() > self._at:
            raise call_timeout_error(self.timeout)


class _OutputCap:
    """Count a task's output bytes and refuse more than ``max_output_bytes``."""

    def __init__(self, limit: int | None) -> None:
        self._limit = limit
        self._received = 0

    def count(self, piece: bytes) -> bytes:
        self._received += len(piece)
        if self._limit is not None and self._received > self._limit:
            raise output_too_large_error(self._limit)
        return piece


class _StreamRun(Generic[X, T]):
    """The pure half of the ``stream`` drivers: count, decode, parse, finish, map failures."""

    def __init__(
        self,
        decoder: Decoder[X],
        parse: Callable[[X], T],
        limit: int | None,
        on_end: Callable[[], None] | None,
        on_error: Callable[[AgentFMError], AgentFMError],
    ) -> None:
        self._decoder = decoder
        self._parse = parse
        self._cap = _OutputCap(limit)
        self._on_end = on_end
        self._on_error = on_error

    def feed(self, piece: bytes) -> Iterator[T]:
        """The items ``piece`` completes, parsed one by one as the caller takes them."""
        for item in self._decoder.feed(self._cap.count(piece)):
            yield self._parse(item)

    def finish(self) -> Iterator[T]:
        """The items the flush releases, then the end check."""
        for item in self._decoder.flush():
            yield self._parse(item)
        if self._on_end is not None:
            self._on_end()

    @contextmanager
    def failures(self) -> Iterator[None]:
        """Raise a failure after the 200 as ``on_error`` makes it."""
        try:
            yield
        except AgentFMError as exc:
            raise self._on_error(exc) from exc.__cause__


def _stream_policy(retries: int) -> RetryPolicy:
    """A stream is retried only while its request was never sent (it may run a task)."""
    return RetryPolicy(retries, idempotent=False)


def mark_started(exc: AgentFMError) -> AgentFMError:
    """The default ``on_error`` of `stream`: the failure came after the 200."""
    exc.task_started = True
    return exc


def _status_error(response: httpx.Response, body: bytes) -> AgentFMError:
    return error_from_response(response.status_code, response.headers, body, response=response)


def _raw_pieces(response: httpx.Response) -> Iterator[bytes]:
    """The body as it arrives, without httpx's decoding layer (bodies are uncompressed)."""
    try:
        yield from response.iter_raw()
    except httpx.StreamConsumed:
        # A response built with its content already in memory (e.g. by a mock transport).
        yield response.content


async def _araw_pieces(response: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for piece in response.aiter_raw():
            yield piece
    except httpx.StreamConsumed:
        yield response.content


class SyncAPIClient(BaseAPIClient[httpx.Client]):
    """The blocking I/O of the sync client: every method is a thin driver."""

    def _new_http(self) -> httpx.Client:
        return httpx.Client(
            transport=ShardedTransport(**self._transport_kwargs()),
            follow_redirects=False,
            timeout=self.timeout,
        )

    def close(self) -> None:
        """Release the connections (once every `with_options` copy is closed too)."""
        if self._release():
            self._http.close()

    def _send_once(self, spec: RequestSpec) -> httpx.Response:
        """Send a prepared ``spec`` once and read the whole body (typed error on failure)."""
        try:
            response = self._http.send(spec.build())
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        if response.status_code >= 400:
            raise _status_error(response, response.content)
        return response

    def request(self, spec: RequestSpec, *, retry: bool = True) -> httpx.Response:
        """Send ``spec`` under the retry policy (``retry=False``: one attempt)."""
        spec = self._prepare(spec)
        return call_with_retry(self._policy(spec, retry), lambda: self._send_once(spec))

    def request_json(self, spec: RequestSpec) -> Any:
        """Send ``spec`` and decode its JSON body."""
        return decode_json(self.request(spec))

    @contextmanager
    def _open_stream(self, spec: RequestSpec) -> Iterator[httpx.Response]:
        """Send ``spec`` as a stream (retried only while never sent); yield the 2xx response."""
        request = self._prepare(spec).build()

        def send() -> httpx.Response:
            try:
                return self._http.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise self._transport_error(exc, "stream") from exc

        with closing(call_with_retry(_stream_policy(self.retries), send)) as response:
            if response.status_code >= 400:
                try:
                    body = response.read()
                except httpx.HTTPError:
                    body = b""
                raise _status_error(response, body)
            yield response

    def _iter_body(self, response: httpx.Response, timeout: float | None) -> Iterator[bytes]:
        """The raw body pieces, within the call's total ``timeout``."""
        deadline = _Deadline(timeout)
        try:
            for piece in _raw_pieces(response):
                deadline.check()
                yield piece
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, "body") from exc

    def stream(
        self,
        spec: RequestSpec,
        decoder: Decoder[X],
        parse: Callable[[X], T],
        *,
        timeout: float | None = None,
        max_output_bytes: int | None = None,
        on_end: Callable[[], None] | None = None,
        on_error: Callable[[AgentFMError], AgentFMError] | None = None,
    ) -> Iterator[T]:
        """Open ``spec`` as a stream, feed ``decoder``, flush it, and yield ``parse(item)``.

        ``timeout`` is the call's total deadline and ``max_output_bytes`` caps the raw body
        (`OutputTooLargeError`); the idle bound travels in the spec. ``on_end`` runs after
        the flush (it may raise how the stream ended). A failure after the 200 goes through
        ``on_error`` (default: `mark_started`) before it is raised.
        """
        run = _StreamRun(decoder, parse, max_output_bytes, on_end, on_error or mark_started)
        with self._open_stream(spec) as response, run.failures():
            for piece in self._iter_body(response, timeout):
                yield from run.feed(piece)
            yield from run.finish()

    def _perform(self, step: Step) -> Any:
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            return None
        assert not isinstance(step, Emit)
        return self.request_json(step)

    def drive(self, flow: Flow[Any, R]) -> R:
        """Run ``flow`` to its end: send its requests, sleep its sleeps, return its result."""
        run: Pump[R] = Pump(flow)
        for _ in self._run(run):
            pass
        return run.result

    def iterate(self, flow: Flow[T, Any]) -> Iterator[T]:
        """Run ``flow`` and yield what it emits."""
        return self._run(Pump(flow))

    def _run(self, run: Pump[Any]) -> Iterator[T]:
        with closing(run):
            while (step := run.next()) is not None:
                if isinstance(step, Emit):
                    yield step.value
                else:
                    run.send(self._perform(step))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncAPIClient(BaseAPIClient[httpx.AsyncClient]):
    """The asyncio I/O of the async client: the same thin drivers, awaited."""

    def _new_http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=AsyncShardedTransport(**self._transport_kwargs()),
            follow_redirects=False,
            timeout=self.timeout,
        )

    async def aclose(self) -> None:
        """Release the connections (once every `with_options` copy is closed too)."""
        if self._release():
            await self._http.aclose()

    async def close(self) -> None:
        """Alias of `aclose`."""
        await self.aclose()

    async def _send_once(self, spec: RequestSpec) -> httpx.Response:
        """Send a prepared ``spec`` once and read the whole body (typed error on failure)."""
        try:
            response = await self._http.send(spec.build())
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        if response.status_code >= 400:
            raise _status_error(response, response.content)
        return response

    async def request(self, spec: RequestSpec, *, retry: bool = True) -> httpx.Response:
        """Send ``spec`` under the retry policy (``retry=False``: one attempt)."""
        spec = self._prepare(spec)
        return await acall_with_retry(self._policy(spec, retry), lambda: self._send_once(spec))

    async def request_json(self, spec: RequestSpec) -> Any:
        """Send ``spec`` and decode its JSON body."""
        return decode_json(await self.request(spec))

    @asynccontextmanager
    async def _open_stream(self, spec: RequestSpec) -> AsyncIterator[httpx.Response]:
        """Send ``spec`` as a stream (retried only while never sent); yield the 2xx response."""
        request = self._prepare(spec).build()

        async def send() -> httpx.Response:
            try:
                return await self._http.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise self._transport_error(exc, "stream") from exc

        response = await acall_with_retry(_stream_policy(self.retries), send)
        try:
            if response.status_code >= 400:
                try:
                    body = await response.aread()
                except httpx.HTTPError:
                    body = b""
                raise _status_error(response, body)
            yield response
        finally:
            await response.aclose()

    async def _iter_body(
        self, response: httpx.Response, timeout: float | None
    ) -> AsyncIterator[bytes]:
        """The raw body pieces, within the call's total ``timeout``."""
        deadline = _Deadline(timeout)
        try:
            async for piece in _araw_pieces(response):
                deadline.check()
                yield piece
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, "body") from exc

    async def stream(
        self,
        spec: RequestSpec,
        decoder: Decoder[X],
        parse: Callable[[X], T],
        *,
        timeout: float | None = None,
        max_output_bytes: int | None = None,
        on_end: Callable[[], None] | None = None,
        on_error: Callable[[AgentFMError], AgentFMError] | None = None,
    ) -> AsyncIterator[T]:
        """The asyncio twin of `SyncAPIClient.stream`."""
        run = _StreamRun(decoder, parse, max_output_bytes, on_end, on_error or mark_started)
        async with self._open_stream(spec) as response:
            with run.failures():
                async for piece in self._iter_body(response, timeout):
                    for item in run.feed(piece):
                        yield item
                for item in run.finish():
                    yield item

    async def _perform(self, step: Step) -> Any:
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None
        assert not isinstance(step, Emit)
        return await self.request_json(step)

    async def drive(self, flow: Flow[Any, R]) -> R:
        """Run ``flow`` to its end: send its requests, sleep its sleeps, return its result."""
        run: Pump[R] = Pump(flow)
        async for _ in self._run(run):
            pass
        return run.result

    def iterate(self, flow: Flow[T, Any]) -> AsyncIterator[T]:
        """Run ``flow`` and yield what it emits."""
        return self._run(Pump(flow))

    async def _run(self, run: Pump[Any]) -> AsyncIterator[T]:
        with closing(run):
            while (step := run.next()) is not None:
                if isinstance(step, Emit):
                    yield step.value
                else:
                    run.send(await self._perform(step))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
