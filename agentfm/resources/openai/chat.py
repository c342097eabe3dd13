"""``client.openai.chat.completions``: ``POST /v1/chat/completions``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

from agentfm._streaming import AsyncStream, SSEDecoder, Stream, StreamState
from agentfm.exceptions import AgentFMError, InvalidRequestError
from agentfm.resources.openai._common import (
    GLOBAL_WARNER,
    FailureWatch,
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
    from agentfm._base_client import RequestSpec
    from agentfm._client import AgentFMClient, AsyncAgentFMClient

__all__ = ["AsyncChat", "AsyncChatCompletions", "Chat", "ChatCompletions"]

Messages = Sequence[ChatMessage | Mapping[str, Any]]
_PATH = "/v1/chat/completions"


def _build(
    client: Any,
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
    if client.routing_warning:
        GLOBAL_WARNER.check(model)
    body = {**extra, "model": model, "messages": wire, "stream": stream}
    return completion_spec(client, _PATH, body, timeout)


def _chunk(data: str, state: StreamState) -> ChatCompletionChunk:
    chunk = parse_chunk(ChatCompletionChunk, data)
    note_ids(state, chunk.agentfm_peer_id, chunk.agentfm_task_id)
    for choice in chunk.choices:
        check_stream_error(choice.delta.content, choice.finish_reason)
    return chunk


def _checked(completion: ChatCompletion) -> ChatCompletion:
    for choice in completion.choices:
        raise_for_failed_content(choice.message.content)
    return completion


def _watched(chunk: ChatCompletionChunk, watch: FailureWatch) -> ChatCompletionChunk:
    for choice in chunk.choices:
        watch.see(choice.delta.content)
    return chunk


class ChatCompletions:
    """Sync ``client.openai.chat.completions``.

    Example:
        ```python
        reply = client.openai.chat.completions.create(
            model=peer_id, messages=[{"role": "user", "content": "hi"}]
        )
        print(reply.choices[0].message.content)
        ```
    """

    def __init__(self, client: AgentFMClient) -> None:
        self._client = client

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
        spec = _build(self._client, model, messages, stream, timeout, extra)
        if not stream:
            return _checked(
                parse_model(ChatCompletion, self._client._request_json(spec), "chat completion")
            )
        return Stream(lambda state: self._events(spec, timeout, state), StreamState()).start()

    def _events(
        self, spec: RequestSpec, timeout: float | None, state: StreamState
    ) -> Iterator[ChatCompletionChunk]:
        decoder = SSEDecoder()
        watch = FailureWatch()
        with self._client._open_stream(spec) as response:
            try:
                for piece in self._client._iter_body(response, timeout):
                    for event in decoder.feed(piece):
                        yield _watched(_chunk(event.data, state), watch)
                for event in decoder.flush():
                    yield _watched(_chunk(event.data, state), watch)
                watch.check()
            except AgentFMError as exc:
                exc.task_started = True
                raise
        state.finished = True


class AsyncChatCompletions:
    """Async ``client.openai.chat.completions`` (``create`` is awaited, streams too)."""

    def __init__(self, client: AsyncAgentFMClient) -> None:
        self._client = client

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
        spec = _build(self._client, model, messages, stream, timeout, extra)
        if not stream:
            body = await self._client._request_json(spec)
            return _checked(parse_model(ChatCompletion, body, "chat completion"))
        return await AsyncStream(
            lambda state: self._events(spec, timeout, state), StreamState()
        ).start()

    async def _events(
        self, spec: RequestSpec, timeout: float | None, state: StreamState
    ) -> AsyncIterator[ChatCompletionChunk]:
        decoder = SSEDecoder()
        watch = FailureWatch()
        async with self._client._open_stream(spec) as response:
            try:
                async for piece in self._client._iter_body(response, timeout):
                    for event in decoder.feed(piece):
                        yield _watched(_chunk(event.data, state), watch)
                for event in decoder.flush():
                    yield _watched(_chunk(event.data, state), watch)
                watch.check()
            except AgentFMError as exc:
                exc.task_started = True
                raise
        state.finished = True


class Chat:
    """Sync ``client.openai.chat``."""

    def __init__(self, client: AgentFMClient) -> None:
        self.completions = ChatCompletions(client)


class AsyncChat:
    """Async ``client.openai.chat``."""

    def __init__(self, client: AsyncAgentFMClient) -> None:
        self.completions = AsyncChatCompletions(client)
