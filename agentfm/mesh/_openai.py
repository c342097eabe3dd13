"""OpenAI-compatible routes: ``/v1/chat/completions`` and ``/v1/completions``."""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any, TypeVar

from agentfm.mesh._gojson import GoJSONError, decode_object, encode_bytes, fields, opt_bool, opt_str
from agentfm.mesh._http import (
    SSE_HEADERS,
    ClientGone,
    DisconnectWatch,
    Headers,
    Receive,
    Scope,
    Send,
    envelope_error,
    json_response,
    mint_task_id,
    read_body,
)
from agentfm.mesh._peers import recorded
from agentfm.mesh._worker import StreamReset, Worker

if TYPE_CHECKING:
    from collections.abc import Callable

    from agentfm.mesh._state import MeshState

_T = TypeVar("_T")

INVALID = "invalid_request_error"
SERVER = "server_error"
MAX_LINE = 8 * 1024 * 1024
MAX_NON_STREAM = 16 * 1024 * 1024
SENTINEL = b"[AGENTFM:"
DONE_FRAME = b"data: [DONE]\n\n"


class TokenTooLong(Exception):
    """A single output line exceeded the 8 MiB scanner limit."""

    def __str__(self) -> str:
        return "bufio.Scanner: token too long"


class LineSplitter:
    """Split raw output into lines like Go's ``bufio.Scanner`` (trailing CR dropped)."""

    __slots__ = ("_parts", "_size")

    def __init__(self) -> None:
        # The unterminated tail is kept as pieces and joined only once its newline arrives,
        # so a long line delivered a few bytes at a time costs linear, not quadratic, work.
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data`` and return every line it completed.

        Raises:
            TokenTooLong: an unterminated line grew past 8 MiB.
        """
        cut = data.rfind(b"\n")
        if cut < 0:
            self._parts.append(data)
            self._size += len(data)
            if self._size > MAX_LINE:
                raise TokenTooLong
            return []
        head, tail = data[: cut + 1], data[cut + 1 :]
        if self._parts:
            self._parts.append(head)
            head = b"".join(self._parts)
        self._parts = [tail] if tail else []
        self._size = len(tail)
        if self._size > MAX_LINE:
            raise TokenTooLong
        lines = head.split(b"\n")
        lines.pop()  # the empty string after the final newline
        return [line[:-1] if line.endswith(b"\r") else line for line in lines]

    def flush(self) -> list[bytes]:
        """The final unterminated line, if any."""
        rest = b"".join(self._parts)
        self._parts, self._size = [], 0
        if not rest:
            return []
        return [rest[:-1] if rest.endswith(b"\r") else rest]


def is_sentinel(line: bytes) -> bool:
    """A protocol line: after leading spaces/tabs it starts with ``[AGENTFM:``."""
    return line.lstrip(b" \t").startswith(SENTINEL)


def flatten_messages(messages: list[tuple[str, str]]) -> str:
    """Render chat messages into the single prompt string a worker receives."""
    parts = [f"{role or 'user'}: {content}\n\n" for role, content in messages if content]
    parts.append("assistant:")
    return "".join(parts)


class ModelNotFound(Exception):
    """No live worker matches the requested model."""


class MeshOverloaded(Exception):
    """Workers match, but all of the first matching tier are at capacity."""


def pick_worker(workers: list[Worker], want: str, cpu: Callable[[Worker], float]) -> Worker:
    """The three-tier matcher: peer id, then agent name, then engine; least loaded wins.

    Raises:
        ModelNotFound: no tier matched.
        MeshOverloaded: the first non-empty tier has no free slot.
    """
    want = want.strip()
    if not want:
        raise ModelNotFound
    folded = want.casefold()
    tiers: tuple[list[Worker], list[Worker], list[Worker]] = ([], [], [])
    for worker in workers:
        if worker.peer_id == want:
            tiers[0].append(worker)
        elif worker.name.casefold() == folded:
            tiers[1].append(worker)
        elif worker.engine.casefold() == folded:
            tiers[2].append(worker)
    for tier in tiers:
        if not tier:
            continue
        available = [w for w in tier if w.current_tasks < w.max_tasks]
        if not available:
            raise MeshOverloaded
        return min(available, key=lambda w: (w.load_ratio, cpu(w)))
    raise ModelNotFound


async def _route(state: MeshState, send: Send, extra: Headers, model: str) -> Worker | None:
    try:
        # Peers the trust gate refuses are not candidates: addressing one is a 404.
        allowed = [w for w in state.workers.values() if state.reputation.refusal(w.peer_id) is None]
        return pick_worker(allowed, model, lambda _w: state.cpu.percent)
    except ModelNotFound:
        message = (
            f"model '{model}' not available on this mesh. /v1/models lists addressable peer "
            "IDs; the model field also accepts AgentName or Model engine strings as routing "
            "shortcuts (not listed because they have no stable identity in a federated mesh)."
        )
        await envelope_error(send, 404, INVALID, "model_not_found", message, extra)
    except MeshOverloaded:
        message = f"all workers matching model '{model}' are at capacity"
        await envelope_error(send, 503, SERVER, "mesh_overloaded", message, extra)
    return None


async def _read_request(
    scope: Scope,
    receive: Receive,
    send: Send,
    extra: Headers,
    parse: Callable[[dict[str, Any]], _T],
) -> tuple[str, bool, _T] | None:
    """The steps both routes share, in the gateway's order: method, JSON body, ``model`` and
    ``stream`` (with ``parse``'s route-specific field), a non-blank model.

    Returns ``(model, stream, parse(request))``, or None once an error has been answered.
    """
    if scope["method"] != "POST":
        await envelope_error(send, 405, INVALID, "method_not_allowed", "POST only", extra)
        return None
    try:
        body = await read_body(receive)
    except ClientGone:
        return None
    try:
        req = fields(decode_object(body), ("model", "messages", "prompt", "stream"))
        model = opt_str(req.get("model"))
        parsed = parse(req)
        stream = opt_bool(req.get("stream"))
    except GoJSONError:
        await envelope_error(send, 400, INVALID, INVALID, "invalid JSON payload", extra)
        return None
    if not model.strip():
        await envelope_error(
            send, 400, INVALID, "model_required", "field 'model' is required", extra
        )
        return None
    return model, stream, parsed


def _messages(value: Any) -> list[tuple[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise GoJSONError("messages must be an array")
    out = []
    for item in value:
        if item is None:
            out.append(("", ""))
            continue
        if not isinstance(item, dict):
            raise GoJSONError("message must be an object")
        msg = fields(item, ("role", "content"))
        out.append((opt_str(msg.get("role")), opt_str(msg.get("content"))))
    return out


async def chat_completions(
    state: MeshState, scope: Scope, receive: Receive, send: Send, extra: Headers
) -> None:
    """``POST /v1/chat/completions``: validate, route, run, answer as OpenAI does."""
    request = await _read_request(
        scope, receive, send, extra, lambda req: _messages(req.get("messages"))
    )
    if request is None:
        return
    model, stream, messages = request
    if not messages:
        await envelope_error(
            send,
            400,
            INVALID,
            "prompt_required",
            "field 'messages' must contain at least one message",
            extra,
        )
        return
    worker = await _route(state, send, extra, model)
    if worker is None:
        return
    await _serve(
        state, worker, flatten_messages(messages), model, stream, True, receive, send, extra
    )


def _prompt_string(value: Any) -> tuple[str, str] | str:
    """The prompt, or an ``(error code, message)`` pair."""
    if value is None:
        return ("prompt_required", "field 'prompt' is required")
    if isinstance(value, str):
        if not value.strip():
            return ("prompt_required", "field 'prompt' must not be empty")
        return value
    if isinstance(value, list):
        return (
            "unsupported_prompt_type",
            "array form of 'prompt' is not supported in this build; pass a single string",
        )
    return ("unsupported_prompt_type", "field 'prompt' must be a string")


async def completions(
    state: MeshState, scope: Scope, receive: Receive, send: Send, extra: Headers
) -> None:
    """``POST /v1/completions``: the legacy text-completion shape."""
    request = await _read_request(scope, receive, send, extra, lambda req: req.get("prompt"))
    if request is None:
        return
    model, stream, raw_prompt = request
    prompt = _prompt_string(raw_prompt)
    if isinstance(prompt, tuple):
        await envelope_error(send, 400, INVALID, prompt[0], prompt[1], extra)
        return
    worker = await _route(state, send, extra, model)
    if worker is None:
        return
    await _serve(state, worker, prompt, model, stream, False, receive, send, extra)


def _completion_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


async def _serve(
    state: MeshState,
    worker: Worker,
    prompt: str,
    model: str,
    stream: bool,
    chat: bool,
    receive: Receive,
    send: Send,
    extra: Headers,
) -> None:
    settings = state.settings
    task_id = mint_task_id()
    run = recorded(
        state,
        worker.peer_id,
        worker.run(task_id, prompt, settings.run_root, settings.artifacts_dir, state.metrics),
    )
    if not stream:
        try:
            text = await _drain(run)
        except (StreamReset, TokenTooLong) as exc:
            await envelope_error(
                send,
                502,
                SERVER,
                "worker_stream_failed",
                f"worker stream read failed: {exc}",
                extra,
            )
            return
        now = int(time.time())
        if chat:
            body: dict[str, Any] = {
                "id": _completion_id("chatcmpl-"),
                "object": "chat.completion",
                "created": now,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
            }
        else:
            body = {
                "id": _completion_id("cmpl-"),
                "object": "text_completion",
                "created": now,
                "model": model,
                "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
            }
        body["usage"] = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        await json_response(send, 200, body, extra)
        return

    created = int(time.time())
    if chat:
        head: dict[str, Any] = {
            "id": _completion_id("chatcmpl-"),
            "object": "chat.completion.chunk",
        }
    else:
        head = {"id": _completion_id("cmpl-"), "object": "text_completion"}
    head["created"] = created
    head["model"] = model
    tail = {"agentfm_peer_id": worker.peer_id, "agentfm_task_id": task_id} if chat else {}

    def frame(content: str, finish: str | None, role: str = "") -> bytes:
        if chat:
            choice: dict[str, Any] = {
                "index": 0,
                "delta": {"role": role, "content": content},
                "finish_reason": finish,
            }
        else:
            choice = {"index": 0, "text": content, "finish_reason": finish}
        return (
            b"data: " + encode_bytes({**head, "choices": [choice], **tail}, newline=False) + b"\n\n"
        )

    async def emit(data: bytes) -> None:
        await send({"type": "http.response.body", "body": data, "more_body": True})

    watch = DisconnectWatch(receive)
    splitter = LineSplitter()
    try:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *extra]}
        )
        if chat:
            await emit(frame("", None, "assistant"))
        error: Exception | None = None
        try:
            async for chunk in run:
                for line in splitter.feed(chunk):
                    if not is_sentinel(line):
                        await emit(frame(line.decode("utf-8", "replace") + "\n", None))
        except (StreamReset, TokenTooLong) as exc:
            error = exc
        for line in splitter.flush():
            if not is_sentinel(line):
                await emit(frame(line.decode("utf-8", "replace") + "\n", None))
        if error is not None:
            await emit(frame(f"\n[stream error: {error}]\n", "stop"))
        else:
            await emit(frame("", "stop"))
        watch.close()
        await send({"type": "http.response.body", "body": DONE_FRAME})
    except asyncio.CancelledError:
        if watch.gone:
            return
        raise
    finally:
        watch.close()
        await run.aclose()


async def _drain(run: Any) -> str:
    """Read a whole task stream for a non-streaming answer (markers dropped, CR stripped)."""
    splitter = LineSplitter()
    out: list[bytes] = []
    size = 0
    try:
        async for chunk in run:
            for line in splitter.feed(chunk):
                if not is_sentinel(line) and size < MAX_NON_STREAM:
                    out.append(line)
                    size += len(line) + 1
    finally:
        await run.aclose()
    out.extend(line for line in splitter.flush() if not is_sentinel(line))
    text = b"".join(line + b"\n" for line in out)[:MAX_NON_STREAM]
    return text.decode("utf-8", "replace")
