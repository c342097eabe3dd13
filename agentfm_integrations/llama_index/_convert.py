"""Pure mapping between LlamaIndex types and the AgentFM SDK's inputs and results.

Nothing here touches the network; produced files arrive already described
(`agentfm.describe_files`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypedDict, TypeVar

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    ImageBlock,
    MessageRole,
    TextBlock,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from agentfm import FileRef, ScatterResult
    from agentfm_integrations._tasks import StreamEnd

__all__ = [
    "ResponseMeta",
    "ResponseT",
    "TaskResponses",
    "Wrap",
    "chat_response",
    "completion_response",
    "image_blocks",
    "messages_to_wire",
    "scatter_error",
    "scatter_meta",
]


class ResponseMeta(TypedDict, total=False):
    """Where a response came from: the serving peer, the task and its files."""

    model: str
    peer_id: str | None
    task_id: str | None
    files: list[FileRef]
    route: str
    attempts: int
    peers_tried: list[str]


def messages_to_wire(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    """Map LlamaIndex chat messages onto the gateway's `{role, content}` shape.

    The gateway only accepts string content, so only text blocks can be carried.

    Args:
        messages: The chat history, oldest first.

    Returns:
        One `{"role", "content"}` dict per message.

    Raises:
        ValueError: A message carries a non-text block (image, audio, ...), which the
            mesh cannot deliver to an agent.
    """
    wire: list[dict[str, str]] = []
    for message in messages:
        parts: list[str] = []
        for block in message.blocks:
            if isinstance(block, TextBlock):
                parts.append(block.text)
            else:
                raise ValueError(
                    f"AgentFM agents take text only; got a {type(block).__name__} "
                    f"in a {message.role.value} message"
                )
        role = message.role.value if isinstance(message.role, MessageRole) else str(message.role)
        wire.append({"role": role, "content": "".join(parts)})
    return wire


def image_blocks(files: Iterable[Mapping[str, Any]]) -> list[ImageBlock]:
    """Build an `ImageBlock` per image artifact, pointing at its local path.

    Args:
        files: File references as produced by `agentfm.describe_files`.

    Returns:
        The image blocks, in the order of `files`.
    """
    return [
        ImageBlock(path=Path(ref["path"]), image_mimetype=ref["mime_type"])
        for ref in files
        if str(ref["mime_type"]).startswith("image/")
    ]


def _kwargs(meta: ResponseMeta) -> dict[str, Any]:
    return {
        "peer_id": meta.get("peer_id"),
        "task_id": meta.get("task_id"),
        "files": list(meta.get("files", [])),
    }


def completion_response(
    text: str, meta: ResponseMeta, *, delta: str | None = None
) -> CompletionResponse:
    """Wrap agent output as a `CompletionResponse` carrying its provenance.

    Args:
        text: The text so far (the whole answer when not streaming).
        meta: Provenance; `peer_id`, `task_id` and `files` go to `additional_kwargs`,
            everything to `raw`.
        delta: The newly streamed piece, when streaming.

    Returns:
        The response.
    """
    return CompletionResponse(
        text=text, delta=delta, additional_kwargs=_kwargs(meta), raw=dict(meta)
    )


def chat_response(text: str, meta: ResponseMeta, *, delta: str | None = None) -> ChatResponse:
    """Wrap agent output as an assistant `ChatResponse` (arguments as `completion_response`)."""
    return ChatResponse(
        message=ChatMessage(role=MessageRole.ASSISTANT, content=text),
        delta=delta,
        additional_kwargs=_kwargs(meta),
        raw=dict(meta),
    )


def scatter_meta(result: ScatterResult, model: str, files: list[FileRef]) -> ResponseMeta:
    """Provenance of one scatter item.

    Args:
        result: The scatter item's result.
        model: The model string the batch was routed by.
        files: The item's artifact files, already described.

    Returns:
        The response metadata.
    """
    return ResponseMeta(
        model=model,
        peer_id=result.worker_id or None,
        task_id=result.task_id,
        files=files,
        route="scatter",
        attempts=result.attempts,
        peers_tried=list(result.peers_tried),
    )


def scatter_error(result: ScatterResult) -> BaseException:
    """The exception to report for a failed scatter item.

    Args:
        result: A result whose status is `"failed"`.

    Returns:
        The SDK's typed exception when it kept one, else a `RuntimeError` with the error text.
    """
    if result.exception is not None:
        return result.exception
    return RuntimeError(result.error or f"scatter item {result.index} failed")


ResponseT = TypeVar("ResponseT", ChatResponse, CompletionResponse, covariant=True)
"""A response type, as a wrapper returns it."""
R = TypeVar("R", ChatResponse, CompletionResponse)
"""A response type, as `TaskResponses` builds it."""


class Wrap(Protocol[ResponseT]):
    """`chat_response` or `completion_response`: how a task's text becomes a response."""

    def __call__(self, text: str, meta: ResponseMeta, *, delta: str | None = None) -> ResponseT: ...


class TaskResponses(Generic[R]):
    """The responses of one streamed task: the text so far, then the serving peer and files."""

    def __init__(self, model: str, wrap: Wrap[R]) -> None:
        self._wrap: Wrap[R] = wrap
        self._text = ""
        self._meta = ResponseMeta(model=model, peer_id=None, task_id=None, files=[], route="task")

    def piece(self, text: str) -> R:
        """The response for one more piece of text."""
        self._text += text
        return self._wrap(self._text, self._meta, delta=text)

    def end(self, end: StreamEnd, files: list[FileRef]) -> R:
        """The closing response: who served the task, after how many attempts, its files."""
        self._meta["peer_id"] = end.peer_id
        self._meta["task_id"] = end.task_id
        self._meta["attempts"] = end.attempts
        self._meta["peers_tried"] = list(end.peers_tried)
        self._meta["files"] = files
        return self._wrap(self._text, self._meta, delta="")
