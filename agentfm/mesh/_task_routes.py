"""The native task routes: ``/api/execute``, ``/api/execute/async`` and ``/api/artifacts/{id}``."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from agentfm.mesh._gojson import GoJSONError, decode_object, fields, opt_number, opt_str
from agentfm.mesh._http import (
    TASK_ID_RE,
    ClientGone,
    DisconnectWatch,
    Headers,
    Receive,
    Scope,
    Send,
    allow_method,
    envelope_error,
    json_response,
    mint_task_id,
    plain_error,
    read_body,
)
from agentfm.mesh._peers import record_feedback
from agentfm.mesh._webhook import TOTAL_TIMEOUT, deliver
from agentfm.mesh._worker import FILES_INCOMING, NO_FILES, StreamReset, Worker

if TYPE_CHECKING:
    from pathlib import Path

    from agentfm.mesh._state import MeshState

log = logging.getLogger("agentfm.mesh")

_TEXT_STREAM_HEADERS = (
    (b"Content-Type", b"text/plain"),
    (b"Cache-Control", b"no-cache"),
    (b"Connection", b"keep-alive"),
)
_ZIP_READ = 1024 * 1024


async def _task_request(
    state: MeshState, receive: Receive, send: Send, extra: Headers, names: tuple[str, ...]
) -> tuple[dict[str, object], Worker] | None:
    """Shared validation of the two ``/api/execute*`` routes, in the gateway's order."""
    try:
        body = await read_body(receive)
    except ClientGone:
        return None
    try:
        req = fields(decode_object(body), (*names, "feedback_rating"))
        values: dict[str, object] = {name: opt_str(req.get(name)) for name in names}
        # feedback_rating is a number in the gateway's struct; its type still matters.
        opt_number(req.get("feedback_rating"))
        values["feedback_rating"] = req.get("feedback_rating")
    except GoJSONError:
        await plain_error(send, 400, "Invalid JSON payload", extra)
        return None
    if not values["worker_id"]:
        await plain_error(send, 400, "worker_id is required", extra)
        return None
    if not values["prompt"]:
        await plain_error(send, 400, "prompt is required", extra)
        return None
    task_id = values.get("task_id")
    if task_id and not TASK_ID_RE.fullmatch(str(task_id)):
        await plain_error(send, 400, "Invalid task_id format", extra)
        return None
    worker = state.workers.get(str(values["worker_id"]))
    if worker is None:
        await plain_error(send, 404, "Worker not found or offline", extra)
        return None
    refusal = state.reputation.gate(worker.peer_id)
    if refusal is not None:
        await plain_error(send, 403, f"dispatch refused: {refusal}", extra)
        return None
    return values, worker


async def execute(
    state: MeshState, scope: Scope, receive: Receive, send: Send, extra: Headers
) -> None:
    """``POST /api/execute``: stream the worker's raw output, then the terminal marker."""
    if not await allow_method(scope, send, "POST", extra):
        return
    parsed = await _task_request(
        state, receive, send, extra, ("worker_id", "prompt", "task_id", "feedback")
    )
    if parsed is None:
        return
    values, worker = parsed
    task_id = str(values["task_id"]) or mint_task_id()
    settings = state.settings
    run = worker.run(
        task_id, str(values["prompt"]), settings.run_root, settings.artifacts_dir, state.metrics
    )
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [*_TEXT_STREAM_HEADERS, *extra],
    }
    started = False
    watch = DisconnectWatch(receive)
    clean = True
    try:
        async for chunk in run:
            if not started:
                await send(start)
                started = True
            if chunk is FILES_INCOMING or chunk is NO_FILES:
                # The marker is always last: finish the body in the same write.
                watch.close()
                _task_ended(state, worker, values, clean=True)
                await send({"type": "http.response.body", "body": chunk})
                return
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except StreamReset:
        clean = False
    except asyncio.CancelledError:
        if watch.gone:
            return
        raise
    finally:
        watch.close()
        await run.aclose()
    # A reset stream or a rejection line: Go ends the chunked body normally.
    _task_ended(state, worker, values, clean=clean)
    if not started:
        await send(start)
    await send({"type": "http.response.body", "body": b""})


def _task_ended(
    state: MeshState, worker: Worker, values: dict[str, object], *, clean: bool
) -> None:
    """Count the outcome for completion ratings; after a clean end, record feedback."""
    state.reputation.record_outcome(worker.peer_id, clean)
    if clean and values.get("feedback"):
        rating = values.get("feedback_rating")
        number = float(rating) if isinstance(rating, (int, float)) else None
        record_feedback(state, worker.peer_id, str(values["feedback"]), number)


async def execute_async(
    state: MeshState, scope: Scope, receive: Receive, send: Send, extra: Headers
) -> None:
    """``POST /api/execute/async``: 202 now, run in the background, then the webhook."""
    if not await allow_method(scope, send, "POST", extra):
        return
    parsed = await _task_request(
        state, receive, send, extra, ("worker_id", "prompt", "webhook_url")
    )
    if parsed is None:
        return
    values, worker = parsed
    if len(state.async_tasks) >= state.settings.max_async_tasks:
        await envelope_error(
            send,
            503,
            "server_error",
            "async_capacity_exhausted",
            "too many async tasks in flight; retry shortly",
            (*extra, (b"Retry-After", b"5")),
        )
        return
    task_id = mint_task_id()
    task = asyncio.ensure_future(
        _run_async(state, worker, task_id, str(values["prompt"]), str(values["webhook_url"]))
    )
    state.async_tasks.add(task)
    task.add_done_callback(state.async_tasks.discard)
    body = {"message": "Task dispatched to P2P mesh.", "status": "queued", "task_id": task_id}
    await json_response(send, 202, body, extra)


async def _run_async(
    state: MeshState, worker: Worker, task_id: str, prompt: str, webhook_url: str
) -> None:
    settings = state.settings
    run = worker.run(task_id, prompt, settings.run_root, settings.artifacts_dir, state.metrics)
    try:
        async for _ in run:
            pass  # the gateway discards async output; only the webhook reports completion
    except StreamReset:
        log.warning("async task %s: worker stream reset; no webhook", task_id)
        return
    finally:
        await run.aclose()
    if not webhook_url:
        return
    try:
        await asyncio.wait_for(
            deliver(
                webhook_url,
                task_id,
                worker.peer_id,
                secret=settings.webhook_secret,
                allow_private=settings.allow_private_webhooks,
            ),
            TOTAL_TIMEOUT,
        )
    except asyncio.TimeoutError:
        log.warning("webhook for %s timed out", task_id)


async def artifact(
    state: MeshState, scope: Scope, receive: Receive, send: Send, extra: Headers
) -> None:
    """``GET /api/artifacts/{task_id}``: the task's zip, for clients without a shared folder."""
    if not await allow_method(scope, send, "GET", extra):
        return
    task_id = scope["path"][len("/api/artifacts/") :]
    path = state.settings.artifacts_dir / f"{task_id}.zip"
    size = _file_size(path) if TASK_ID_RE.fullmatch(task_id) else None
    if size is None:
        await plain_error(send, 404, "Artifact not found", extra)
        return
    headers = [
        (b"Content-Type", b"application/zip"),
        (b"Content-Length", b"%d" % size),
        *extra,
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    fh = await asyncio.to_thread(open, path, "rb")
    with fh:
        sent = 0
        while sent < size:
            chunk = await asyncio.to_thread(fh.read, min(_ZIP_READ, size - sent))
            if not chunk:
                break
            sent += len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": sent < size})
    if sent < size:
        # The file shrank underneath us; closing the connection is the honest signal.
        raise RuntimeError(f"artifact {task_id} changed while being sent")


def _file_size(path: Path) -> int | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size if path.is_file() else None
