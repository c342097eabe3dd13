"""``client.openai.chat.completions``: ``POST /v1/chat/completions``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

from agentfm._resource import AsyncAPIResource, SyncAPIResource
from agentfm._streaming import AsyncStream, Stream, StreamState
from agentfm.exceptions import InvalidRequestError
from agentfm.resources.openai._common import (
    GLOBAL_WARNER,
    CompletionStream,
    check_common,
    check_stream_error,
    completion_spec,
    note_ids,
    parse_chunk,
    parse_model,
    raise_for_failed_content,
)
from agentfm.types.openai import ChatCompletion, ChatCompletionChunk, ChatMessage, coerce_messages

if TYPE_CHECKING:
    from agentfm._api_client import AsyncAPIClient, SyncAPIClient
    from agentfm._api_config import Settings
    from agentfm._base_client import RequestSpec

__all__ = ["AsyncChat", "AsyncChatCompletions", "Chat", "ChatCompletions"]

Messages = Sequence[ChatMessage | Mapping[str, Any]]
_PATH = "/v1/chat/completions"


def _build(
    settings: Settings,
    model: object,
    messages: Messages,
    stream: bool,
    timeout: float | None,
    extra: dict[str, Any],
) -> RequestSpec:
    model, timeout = check_common(model, timeout)
    wire = coerce_messages(messages)
    if not wire:
        raise InvalidRequestError("messages must not be empty", code="prompt_required")
    if settings.routing_warning:
        GLOBAL_WARNER.check(model)
    body = {**extra, "model": model, "messages": wire, "stream": stream}
    return completion_spec(settings.timeout, _PATH, body, timeout)


def _chunk(data: str, state: StreamState) -> ChatCompletionChunk:
    chunk = parse_chunk(ChatCompletionChunk, data)
    note_ids(state, chunk.agentfm_peer_id, chunk.agentfm_task_id)
    for choice in chunk.choices:
        check_stream_error(choice.delta.content, choice.finish_reason)
    return chunk


def _checked(body: Any) -> ChatCompletion:
    completion = parse_model(ChatCompletion, body, "chat completion")
    for choice in completion.choices:
        raise_for_failed_content(choice.message.content)
    return completion


def _events(state: StreamState) -> CompletionStream[ChatCompletionChunk]:
    return CompletionStream(
        lambda data: _chunk(data, state), lambda chunk: [c.delta.content for c in chunk.choices]
    )


class ChatCompletions(SyncAPIResource):
    """Sync ``client.openai.chat.completions``.

    Example:
        ```python
        reply = client.openai.chat.completions.create(
            model=peer_id, messages=[{"role": "user", "content": "hi"}]
        )
        print(reply.choices[0].message.content)
        ```
    """

    @overload
    def create(
        self,
        *,
        model: str,
        messages: Messages,
        stream: Literal[False] = False,
        timeout: float | None = None,
        **extra: Any,
    ) -> ChatCompletion: ...
    @overload
    def create(
        self,
        *,
        model: str,
        messages: Messages,
        stream: Literal[True],
        timeout: float | None = None,
        **extra: Any,
    ) -> Stream[ChatCompletionChunk]: ...
    @overload
    def create(
        self,
        *,
        model: str,
        messages: Messages,
        stream: bool,
        timeout: float | None = None,
        **extra: Any,
    ) -> ChatCompletion | Stream[ChatCompletionChunk]: ...

    def create(
        self,
        *,
        model: str,
        messages: Messages,
        stream: bool = False,
        timeout: float | None = None,
        **extra: Any,
    ) -> ChatCompletion | Stream[ChatCompletionChunk]:
        """Create a chat completion; ``stream=True`` returns a `Stream` of chunks.

        Non-streamed calls are never retried once sent (a retry would run the task again).
        """
        spec = _build(self._client.settings, model, messages, stream, timeout, extra)
        if not stream:
            return _checked(self._client.request_json(spec))
        return Stream(lambda state: self._chunks(spec, timeout, state), StreamState()).start()

    def _chunks(
        self, spec: RequestSpec, timeout: float | None, state: StreamState
    ) -> Iterator[ChatCompletionChunk]:
        events = _events(state)
        return self._client.stream(
            spec, events.decoder, events.parse, timeout=timeout, on_end=events.on_end
        )


class AsyncChatCompletions(AsyncAPIResource):
    """Async ``client.openai.chat.completions`` (``create`` is awaited, streams too)."""

    @overload
    async def create(
        self,
        *,
        model: str,
        messages: Messages,
        stream: Literal[False] = False,
        timeout: float | None = None,
        **extra: Any,
    ) -> ChatCompletion: ...
    @overload
    async def create(
        self,
        *,
        model: str,
        messages: Messages,
        stream: Literal[True],
        timeout: float | None = None,
        **extra: Any,
    ) -> AsyncStream[ChatCompletionChunk]: ...
    @overload
    async def create(
        self,
        *,
        model: str,
        messages: Messages,
        stream: bool,
        timeout: float | None = None,
        **extra: Any,
    ) -> ChatCompletion | AsyncStream[ChatCompletionChunk]: ...

    async def create(
        self,
        *,
        model: str,
        messages: Messages,
        stream: bool = False,
        timeout: float | None = None,
        **extra: Any,
    ) -> ChatCompletion | AsyncStream[ChatCompletionChunk]:
        """Create a chat completion; ``stream=True`` returns an `AsyncStream` of chunks."""
        spec = _build(self._client.settings, model, messages, stream, timeout, extra)
        if not stream:
            return _checked(await self._client.request_json(spec))
        return await AsyncStream(
            lambda state: self._chunks(spec, timeout, state), StreamState()
        ).start()

    def _chunks(
        self, spec: RequestSpec, timeout: float | None, state: StreamState
    ) -> AsyncIterator[ChatCompletionChunk]:
        events = _events(state)
        return self._client.stream(
            spec, events.decoder, events.parse, timeout=timeout, on_end=events.on_end
        )


class Chat:
    """Sync ``client.openai.chat``."""

    def __init__(self, client: SyncAPIClient) -> None:
        self.completions = ChatCompletions(client)


class AsyncChat:
    """Async ``client.openai.chat``."""

    def __init__(self, client: AsyncAPIClient) -> None:
        self.completions = AsyncChatCompletions(client)
