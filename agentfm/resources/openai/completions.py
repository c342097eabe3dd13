"""``client.openai.completions``: ``POST /v1/completions``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, overload

from agentfm._streaming import AsyncStream, SSEDecoder, Stream, StreamState
from agentfm._validation import require_prompt
from agentfm.exceptions import AgentFMError
from agentfm.resources.openai._common import (
    GLOBAL_WARNER,
    FailureWatch,
    check_common,
    check_stream_error,
    completion_spec,
    parse_chunk,
    parse_model,
    raise_for_failed_content,
)
from agentfm.types.openai import TextCompletion, TextCompletionChunk

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from agentfm._base_client import RequestSpec
    from agentfm._client import AgentFMClient, AsyncAgentFMClient

__all__ = ["AsyncCompletions", "Completions"]

_PATH = "/v1/completions"


def _build(
    client: Any,
    model: object,
    prompt: object,
    stream: bool,
    timeout: float | None,
    extra: dict[str, Any],
) -> RequestSpec:
    model, timeout = check_common(model, timeout)
    prompt = require_prompt(prompt)
    if client.routing_warning:
        GLOBAL_WARNER.check(model)
    body = {**extra, "model": model, "prompt": prompt, "stream": stream}
    return completion_spec(client, _PATH, body, timeout)


def _chunk(data: str) -> TextCompletionChunk:
    chunk = parse_chunk(TextCompletionChunk, data)
    for choice in chunk.choices:
        check_stream_error(choice.text, choice.finish_reason)
    return chunk


def _checked(completion: TextCompletion) -> TextCompletion:
    for choice in completion.choices:
        raise_for_failed_content(choice.text)
    return completion


def _watched(chunk: TextCompletionChunk, watch: FailureWatch) -> TextCompletionChunk:
    for choice in chunk.choices:
        watch.see(choice.text)
    return chunk


class Completions:
    """Sync ``client.openai.completions`` (the prompt reaches the worker verbatim)."""

    def __init__(self, client: AgentFMClient) -> None:
        self._client = client

    @overload
    def create(
        self,
        *,
        model: str,
        prompt: str,
        stream: Literal[False] = False,
        timeout: float | None = None,
        **extra: Any,
    ) -> TextCompletion: ...
    @overload
    def create(
        self,
        *,
        model: str,
        prompt: str,
        stream: Literal[True],
        timeout: float | None = None,
        **extra: Any,
    ) -> Stream[TextCompletionChunk]: ...
    @overload
    def create(
        self,
        *,
        model: str,
        prompt: str,
        stream: bool,
        timeout: float | None = None,
        **extra: Any,
    ) -> TextCompletion | Stream[TextCompletionChunk]: ...

    def create(
        self,
        *,
        model: str,
        prompt: str,
        stream: bool = False,
        timeout: float | None = None,
        **extra: Any,
    ) -> TextCompletion | Stream[TextCompletionChunk]:
        """Create a text completion; ``stream=True`` returns a `Stream` of chunks."""
        spec = _build(self._client, model, prompt, stream, timeout, extra)
        if not stream:
            return _checked(
                parse_model(TextCompletion, self._client._request_json(spec), "completion")
            )
        return Stream(lambda state: self._events(spec, timeout, state), StreamState()).start()

    def _events(
        self, spec: RequestSpec, timeout: float | None, state: StreamState
    ) -> Iterator[TextCompletionChunk]:
        decoder = SSEDecoder()
        watch = FailureWatch()
        with self._client._open_stream(spec) as response:
            try:
                for piece in self._client._iter_body(response, timeout):
                    for event in decoder.feed(piece):
                        yield _watched(_chunk(event.data), watch)
                for event in decoder.flush():
                    yield _watched(_chunk(event.data), watch)
                watch.check()
            except AgentFMError as exc:
                exc.task_started = True
                raise
        state.finished = True


class AsyncCompletions:
    """Async ``client.openai.completions``."""

    def __init__(self, client: AsyncAgentFMClient) -> None:
        self._client = client

    @overload
    async def create(
        self,
        *,
        model: str,
        prompt: str,
        stream: Literal[False] = False,
        timeout: float | None = None,
        **extra: Any,
    ) -> TextCompletion: ...
    @overload
    async def create(
        self,
        *,
        model: str,
        prompt: str,
        stream: Literal[True],
        timeout: float | None = None,
        **extra: Any,
    ) -> AsyncStream[TextCompletionChunk]: ...
    @overload
    async def create(
        self,
        *,
        model: str,
        prompt: str,
        stream: bool,
        timeout: float | None = None,
        **extra: Any,
    ) -> TextCompletion | AsyncStream[TextCompletionChunk]: ...

    async def create(
        self,
        *,
        model: str,
        prompt: str,
        stream: bool = False,
        timeout: float | None = None,
        **extra: Any,
    ) -> TextCompletion | AsyncStream[TextCompletionChunk]:
        """Create a text completion; ``stream=True`` returns an `AsyncStream` of chunks."""
        spec = _build(self._client, model, prompt, stream, timeout, extra)
        if not stream:
            body = await self._client._request_json(spec)
            return _checked(parse_model(TextCompletion, body, "completion"))
        return await AsyncStream(
            lambda state: self._events(spec, timeout, state), StreamState()
        ).start()

    async def _events(
        self, spec: RequestSpec, timeout: float | None, state: StreamState
    ) -> AsyncIterator[TextCompletionChunk]:
        decoder = SSEDecoder()
        watch = FailureWatch()
        async with self._client._open_stream(spec) as response:
            try:
                async for piece in self._client._iter_body(response, timeout):
                    for event in decoder.feed(piece):
                        yield _watched(_chunk(event.data), watch)
                for event in decoder.flush():
                    yield _watched(_chunk(event.data), watch)
                watch.check()
            except AgentFMError as exc:
                exc.task_started = True
                raise
        state.finished = True
