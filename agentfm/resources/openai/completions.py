"""``client.openai.completions``: ``POST /v1/completions``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, overload

from agentfm._resource import AsyncAPIResource, SyncAPIResource
from agentfm._streaming import AsyncStream, Stream, StreamState
from agentfm._validation import require_prompt
from agentfm.resources.openai._common import (
    GLOBAL_WARNER,
    CompletionStream,
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

    from agentfm._api_config import Settings
    from agentfm._base_client import RequestSpec

__all__ = ["AsyncCompletions", "Completions"]

_PATH = "/v1/completions"


def _build(
    settings: Settings,
    model: object,
    prompt: object,
    stream: bool,
    timeout: float | None,
    extra: dict[str, Any],
) -> RequestSpec:
    model, timeout = check_common(model, timeout)
    prompt = require_prompt(prompt)
    if settings.routing_warning:
        GLOBAL_WARNER.check(model)
    body = {**extra, "model": model, "prompt": prompt, "stream": stream}
    return completion_spec(settings.timeout, _PATH, body, timeout)


def _chunk(data: str) -> TextCompletionChunk:
    chunk = parse_chunk(TextCompletionChunk, data)
    for choice in chunk.choices:
        check_stream_error(choice.text, choice.finish_reason)
    return chunk


def _checked(body: Any) -> TextCompletion:
    completion = parse_model(TextCompletion, body, "completion")
    for choice in completion.choices:
        raise_for_failed_content(choice.text)
    return completion


def _events() -> CompletionStream[TextCompletionChunk]:
    return CompletionStream(_chunk, lambda chunk: [choice.text for choice in chunk.choices])


class Completions(SyncAPIResource):
    """Sync ``client.openai.completions`` (the prompt reaches the worker verbatim)."""

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
        spec = _build(self._client.settings, model, prompt, stream, timeout, extra)
        if not stream:
            return _checked(self._client.request_json(spec))
        return Stream(lambda _: self._chunks(spec, timeout), StreamState()).start()

    def _chunks(self, spec: RequestSpec, timeout: float | None) -> Iterator[TextCompletionChunk]:
        events = _events()
        return self._client.stream(
            spec, events.decoder, events.parse, timeout=timeout, on_end=events.on_end
        )


class AsyncCompletions(AsyncAPIResource):
    """Async ``client.openai.completions``."""

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
        spec = _build(self._client.settings, model, prompt, stream, timeout, extra)
        if not stream:
            return _checked(await self._client.request_json(spec))
        return await AsyncStream(lambda _: self._chunks(spec, timeout), StreamState()).start()

    def _chunks(
        self, spec: RequestSpec, timeout: float | None
    ) -> AsyncIterator[TextCompletionChunk]:
        events = _events()
        return self._client.stream(
            spec, events.decoder, events.parse, timeout=timeout, on_end=events.on_end
        )
