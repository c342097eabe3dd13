"""Pure mapping between LlamaIndex types and the AgentFM SDK's inputs and results.

Nothing here touches the network. The only I/O is reading artifact files that the SDK
has already extracted to local disk, to describe them (size and sha256).
"""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    ImageBlock,
    MessageRole,
    TextBlock,
)

from agentfm import ModelNotFoundError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from agentfm import ScatterResult, WorkerProfile

__all__ = [
    "FileRef",
    "ResponseMeta",
    "chat_response",
    "completion_response",
    "describe_files",
    "image_blocks",
    "messages_to_wire",
    "order_peers",
    "peer_ids",
    "pick_peer",
    "scatter_error",
    "scatter_meta",
]

_HASH_CHUNK = 1 << 16


class FileRef(TypedDict):
    """A reference to one artifact file produced by a mesh agent."""

    path: str
    mime_type: str
    size: int
    sha256: str


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


def order_peers(
    workers: Sequence[WorkerProfile], model: str, in_flight: Mapping[str, int] | None = None
) -> list[str]:
    """Order the matches of `model` for one task, least effectively loaded first.

    Telemetry is seconds old, so the load counts this client's own in-flight tasks too;
    without that, concurrent calls would all pick the same "least-loaded" worker. Ties
    keep `workers.match`'s order. The first peer is the choice; the others are fallbacks
    for a worker that turns out to be full.

    Args:
        workers: The matches, least-loaded first.
        model: The model string, for the error message.
        in_flight: This client's tasks in flight per peer id.

    Returns:
        Peer ids, best first.

    Raises:
        ModelNotFoundError: Nothing matches `model`.
    """
    if not workers:
        raise ModelNotFoundError(f"no worker matches model {model!r}", code="model_not_found")
    own = in_flight or {}

    def load(worker: WorkerProfile) -> float:
        busy = worker.current_tasks + own.get(str(worker.peer_id), 0)
        return busy / worker.max_tasks if worker.max_tasks > 0 else 0.0

    return [str(w.peer_id) for w in sorted(workers, key=load)]


def pick_peer(workers: Sequence[WorkerProfile], model: str) -> str:
    """Choose the worker for one task among the matches of `model`.

    `workers.match` lists the first matching tier least-loaded first; the first one with
    a free slot wins, as on the gateway. When all are busy the least-loaded is still
    chosen, so the worker (not this client) decides whether to queue or reject.

    Args:
        workers: The matches, least-loaded first.
        model: The model string, for the error message.

    Returns:
        The chosen peer id.

    Raises:
        ModelNotFoundError: Nothing matches `model`.
    """
    return order_peers(workers, model)[0]


def peer_ids(workers: Sequence[WorkerProfile], model: str) -> list[str]:
    """The peers a scatter for `model` may use, least-loaded first.

    Args:
        workers: The matches of `model`.
        model: The model string, for the error message.

    Returns:
        Their peer ids.

    Raises:
        ModelNotFoundError: Nothing matches `model`.
    """
    if not workers:
        raise ModelNotFoundError(f"no worker matches model {model!r}", code="model_not_found")
    return [str(worker.peer_id) for worker in workers]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def describe_files(paths: Iterable[Path | str]) -> list[FileRef]:
    """Describe extracted artifact files by reference, never by content.

    Directories are skipped; the order of `paths` is kept.

    Args:
        paths: Local paths of extracted artifact files.

    Returns:
        One `FileRef` (path, mime type, size, sha256) per regular file.
    """
    refs: list[FileRef] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            continue
        mime, _ = mimetypes.guess_type(path.name)
        refs.append(
            FileRef(
                path=str(path),
                mime_type=mime or "application/octet-stream",
                size=path.stat().st_size,
                sha256=_sha256(path),
            )
        )
    return refs


def image_blocks(files: Iterable[Mapping[str, Any]]) -> list[ImageBlock]:
    """Build an `ImageBlock` per image artifact, pointing at its local path.

    Args:
        files: File references as produced by `describe_files`.

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
    """Wrap agent output as an assistant `ChatResponse` carrying its provenance.

    Args:
        text: The text so far (the whole answer when not streaming).
        meta: Provenance; `peer_id`, `task_id` and `files` go to `additional_kwargs`,
            everything to `raw`.
        delta: The newly streamed piece, when streaming.

    Returns:
        The response.
    """
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
