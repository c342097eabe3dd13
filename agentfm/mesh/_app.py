"""The gateway as a raw ASGI application: routing, CORS/Origin policy, auth, native routes."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from agentfm.mesh import _openai, _peers
from agentfm.mesh._auth import INVALID, MULTIPLE, OK, check_header
from agentfm.mesh._gojson import GoJSONError, decode_object, fields, opt_number, opt_str
from agentfm.mesh._http import (
    CORS_HEADERS,
    ClientGone,
    Headers,
    Receive,
    Scope,
    Send,
    envelope_error,
    json_response,
    plain_error,
    read_body,
    respond,
)
from agentfm.mesh._webhook import TOTAL_TIMEOUT, deliver
from agentfm.mesh._worker import FILES_INCOMING, NO_FILES, StreamReset, Worker

if TYPE_CHECKING:
    from pathlib import Path

    from agentfm.mesh._state import MeshState

log = logging.getLogger("agentfm.mesh")

TASK_ID_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}")
LOOPBACK_ORIGINS = frozenset(("localhost", "127.0.0.1", "::1"))
Handler = Callable[[Scope, Receive, Send, Headers], Awaitable[None]]
_TEXT_STREAM_HEADERS = (
    (b"Content-Type", b"text/plain"),
    (b"Cache-Control", b"no-cache"),
    (b"Connection", b"keep-alive"),
)
_ZIP_READ = 1024 * 1024


def mint_task_id() -> str:
    """A server-minted task id: ``task_`` + 24 lowercase hex characters."""
    return "task_" + os.urandom(12).hex()


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass  # an unread request body; only the disconnect matters here


class DisconnectWatch:
    """Cancel the running request task when its client hangs up mid-response.

    uvicorn silently drops writes to a closed connection, so the only signal is
    ``receive()`` returning ``http.disconnect``; watching it lets a task be torn down
    (its subprocess killed) as soon as nobody reads the output.
    """

    __slots__ = ("_done", "_task", "_watcher", "gone")

    def __init__(self, receive: Receive) -> None:
        self.gone = False
        self._done = False
        self._task = asyncio.current_task()
        self._watcher = asyncio.ensure_future(_wait_disconnect(receive))
        self._watcher.add_done_callback(self._fire)

    def _fire(self, fut: asyncio.Future[Any]) -> None:
        if self._done or fut.cancelled() or fut.exception() is not None:
            return
        self.gone = True
        if self._task is not None:
            self._task.cancel()

    def close(self) -> None:
        """Stop watching (call before the final write)."""
        self._done = True
        self._watcher.cancel()


class GatewayApp:
    """Serve the AgentFM gateway protocol for the workers in ``state``."""

    def __init__(self, state: MeshState) -> None:
        self.state = state
        # path -> (handler, CORS-wrapped, bearer-protected)
        self.routes: dict[str, tuple[Handler, bool, bool]] = {
            "/health": (self.health, False, False),
            "/metrics": (self.metrics, True, False),
            "/api/workers": (self.list_workers, True, True),
            "/api/execute": (self.execute, True, True),
            "/api/execute/async": (self.execute_async, True, True),
            "/v1/models": (self.models, True, True),
            "/v1/chat/completions": (self.chat_completions, True, True),
            "/v1/completions": (self.completions, True, True),
            "/v1/about": (self.about, True, True),
            "/v1/events": (self.events, True, True),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        route = self.routes.get(path)
        if route is None:
            if path.startswith("/v1/peers/") or path == "/v1/peers":
                route = (self.peers, True, True)
            elif path.startswith("/api/artifacts/") and "/" not in path[15:] and path[15:]:
                route = (self.artifact, True, True)
            else:
                await plain_error(send, 404, "404 page not found")
                return
        handler, cors, protected = route
        extra: Headers = ()
        if cors:
            extra = CORS_HEADERS
            method = scope["method"]
            if method == "OPTIONS":
                await respond(send, 200, b"", extra)
                return
            if method != "GET" and method != "HEAD" and not self._origin_allowed(scope):
                await plain_error(send, 403, "cross-origin request refused", extra)
                return
        if (
            protected
            and self.state.settings.api_keys
            and not await self._authorize(scope, send, extra)
        ):
            return
        await handler(scope, receive, send, extra)

    # -- policy -------------------------------------------------------------------------
    def _origin_allowed(self, scope: Scope) -> bool:
        origin = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value.decode("latin-1")
                break
        if origin is None:
            return True
        if origin == "null":
            return self.state.settings.allow_file_origin
        try:
            parts = urlsplit(origin)
            host = parts.hostname
        except ValueError:
            return False
        if parts.scheme.lower() == "file":
            return self.state.settings.allow_file_origin
        return host in LOOPBACK_ORIGINS

    async def _authorize(self, scope: Scope, send: Send, extra: Headers) -> bool:
        state = self.state
        values = [value for name, value in scope["headers"] if name == b"authorization"]
        outcome = check_header(values, state.settings.api_keys)
        if outcome == OK:
            state.metrics.auth[OK] += 1
            return True
        client = scope.get("client")
        ip = client[0] if client else ""
        if not state.limiter.allow_failure(ip):
            state.metrics.auth["rate_limited"] += 1
            await envelope_error(
                send,
                429,
                "invalid_request_error",
                "rate_limited",
                "too many failed auth attempts; slow down",
                (*extra, (b"Retry-After", b"60")),
            )
            return False
        if outcome == INVALID:
            state.metrics.auth["invalid"] += 1
            code, message = "invalid_api_key", "invalid API key"
        elif outcome == MULTIPLE:
            state.metrics.auth["malformed"] += 1
            code, message = "unauthorized", "multiple Authorization headers"
        else:
            state.metrics.auth[outcome] += 1
            code, message = "unauthorized", "missing or malformed Bearer token"
        await envelope_error(send, 401, "invalid_request_error", code, message, extra)
        return False

    # -- simple GET routes --------------------------------------------------------------
    async def health(self, scope: Scope, receive: Receive, send: Send, extra: Headers) -> None:
        """``GET /health``."""
        if scope["method"] != "GET":
            await plain_error(send, 405, "Method not allowed")
            return
        body = {"online_workers": len(self.state.workers), "status": "ok"}
        await json_response(send, 200, body)

    async def list_workers(
        self, scope: Scope, receive: Receive, send: Send, extra: Headers
    ) -> None:
        """``GET /api/workers[?include_offline=true]``."""
        if scope["method"] != "GET":
            await plain_error(send, 405, "Method not allowed", extra)
            return
        include_offline = False
        query = scope.get("query_string", b"")
        if query:
            for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
                if key == "include_offline":
                    include_offline = value == "true"
                    break
        state = self.state
        cpu, ram = state.cpu.percent, state.ram
        online = sorted(state.workers.values(), key=lambda w: -w.last_seen)
        agents = [_peers.apply_trust(state, w.profile(cpu, ram)) for w in online]
        offline_count = 0
        if include_offline:
            offline = sorted(state.offline.values(), key=lambda w: -w.last_seen)
            offline = [w for w in offline if _peers.offline_listed(state, w.peer_id)]
            for w in offline:
                entry = _peers.apply_trust(state, w.profile(cpu, ram))
                entry.pop("last_seen", None)  # eviction forgets the pulse time
                agents.append(entry)
            offline_count = len(offline)
        body = {
            "success": True,
            "agents": agents,
            "online_count": len(online),
            "offline_count": offline_count,
        }
        await json_response(send, 200, body, extra)

    async def models(self, scope: Scope, receive: Receive, send: Send, extra: Headers) -> None:
        """``GET /v1/models``."""
        if scope["method"] != "GET":
            await envelope_error(
                send, 405, "invalid_request_error", "method_not_allowed", "GET only", extra
            )
            return
        state = self.state
        created = int(time.time())
        data = [
            _peers.apply_trust(
                state, w.model_entry(created, state.cpu.percent, state.ram), "agentfm_"
            )
            for w in state.workers.values()
        ]
        await json_response(send, 200, {"object": "list", "data": data}, extra)

    async def about(self, scope: Scope, receive: Receive, send: Send, extra: Headers) -> None:
        """``GET /v1/about``."""
        if scope["method"] != "GET":
            await plain_error(send, 405, "Method not allowed", extra)
            return
        settings = self.state.settings
        body = {
            "boss_peer_id": settings.boss_peer_id,
            "relay_peer_id": "",
            "relay_multiaddr": "",
            "reputation_floor": settings.reputation_floor,
            "ledger_tree_size": _peers.ledger_size(self.state),
            "version": settings.version,
            "uptime_seconds": int(time.time() - self.state.started),
        }
        await json_response(send, 200, body, extra)

    async def metrics(self, scope: Scope, receive: Receive, send: Send, extra: Headers) -> None:
        """``GET /metrics`` (any method, as promhttp)."""
        from agentfm.mesh._metrics import CONTENT_TYPE

        body = self.state.metrics.render(len(self.state.workers))
        await respond(send, 200, body, ((b"Content-Type", CONTENT_TYPE),), extra)

    async def peers(self, scope: Scope, receive: Receive, send: Send, extra: Headers) -> None:
        """``/v1/peers/*``: summaries, reputation, log, proofs and comments."""
        await _peers.handle(self.state, scope, receive, send, extra)

    async def artifact(self, scope: Scope, receive: Receive, send: Send, extra: Headers) -> None:
        """``GET /api/artifacts/{task_id}``: the task's zip, for clients without a shared folder."""
        if scope["method"] != "GET":
            await plain_error(send, 405, "Method not allowed", extra)
            return
        task_id = scope["path"][len("/api/artifacts/") :]
        path = self.state.settings.artifacts_dir / f"{task_id}.zip"
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

    # -- task routes --------------------------------------------------------------------
    async def _task_request(
        self, receive: Receive, send: Send, extra: Headers, names: tuple[str, ...]
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
        worker = self.state.workers.get(str(values["worker_id"]))
        if worker is None:
            await plain_error(send, 404, "Worker not found or offline", extra)
            return None
        refusal = self.state.reputation.gate(worker.peer_id)
        if refusal is not None:
            await plain_error(send, 403, f"dispatch refused: {refusal}", extra)
            return None
        return values, worker

    async def execute(self, scope: Scope, receive: Receive, send: Send, extra: Headers) -> None:
        """``POST /api/execute``: stream the worker's raw output, then the terminal marker."""
        if scope["method"] != "POST":
            await plain_error(send, 405, "Method not allowed", extra)
            return
        parsed = await self._task_request(
            receive, send, extra, ("worker_id", "prompt", "task_id", "feedback")
        )
        if parsed is None:
            return
        values, worker = parsed
        task_id = str(values["task_id"]) or mint_task_id()
        settings = self.state.settings
        run = worker.run(
            task_id,
            str(values["prompt"]),
            settings.run_root,
            settings.artifacts_dir,
            self.state.metrics,
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
                    self._task_ended(worker, values, clean=True)
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
        self._task_ended(worker, values, clean=clean)
        if not started:
            await send(start)
        await send({"type": "http.response.body", "body": b""})

    def _task_ended(self, worker: Worker, values: dict[str, object], *, clean: bool) -> None:
        """Count the outcome for completion ratings; after a clean end, record feedback."""
        state = self.state
        state.reputation.record_outcome(worker.peer_id, clean)
        if clean and values.get("feedback"):
            rating = values.get("feedback_rating")
            number = float(rating) if isinstance(rating, (int, float)) else None
            _peers.record_feedback(state, worker.peer_id, str(values["feedback"]), number)

    async def execute_async(
        self, scope: Scope, receive: Receive, send: Send, extra: Headers
    ) -> None:
        """``POST /api/execute/async``: 202 now, run in the background, then the webhook."""
        if scope["method"] != "POST":
            await plain_error(send, 405, "Method not allowed", extra)
            return
        parsed = await self._task_request(
            receive, send, extra, ("worker_id", "prompt", "webhook_url")
        )
        if parsed is None:
            return
        values, worker = parsed
        state = self.state
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
            self._run_async(worker, task_id, str(values["prompt"]), str(values["webhook_url"]))
        )
        state.async_tasks.add(task)
        task.add_done_callback(state.async_tasks.discard)
        body = {"message": "Task dispatched to P2P mesh.", "status": "queued", "task_id": task_id}
        await json_response(send, 202, body, extra)

    async def _run_async(self, worker: Worker, task_id: str, prompt: str, webhook_url: str) -> None:
        settings = self.state.settings
        run = worker.run(
            task_id, prompt, settings.run_root, settings.artifacts_dir, self.state.metrics
        )
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

    # -- events -------------------------------------------------------------------------
    async def events(self, scope: Scope, receive: Receive, send: Send, extra: Headers) -> None:
        """``GET /v1/events``: server-sent worker_online / worker_offline events."""
        if scope["method"] != "GET":
            await plain_error(send, 405, "Method not allowed", extra)
            return
        from agentfm.mesh._http import SSE_HEADERS

        state = self.state
        queue = state.subscribe()
        watch = DisconnectWatch(receive)
        try:
            await send(
                {"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *extra]}
            )
            await send({"type": "http.response.body", "body": b":ready\n\n", "more_body": True})
            interval = state.settings.heartbeat_interval
            while not state.closing:
                try:
                    frame = await asyncio.wait_for(queue.get(), interval)
                except asyncio.TimeoutError:
                    frame = b":heartbeat\n\n"
                if frame is None:
                    break
                await send({"type": "http.response.body", "body": frame, "more_body": True})
        except asyncio.CancelledError:
            if watch.gone:
                return
            raise
        finally:
            watch.close()
            state.subscribers.discard(queue)
        await send({"type": "http.response.body", "body": b""})

    # -- OpenAI-compatible routes -------------------------------------------------------
    async def chat_completions(
        self, scope: Scope, receive: Receive, send: Send, extra: Headers
    ) -> None:
        """``POST /v1/chat/completions``."""
        await _openai.chat_completions(self, scope, receive, send, extra)

    async def completions(self, scope: Scope, receive: Receive, send: Send, extra: Headers) -> None:
        """``POST /v1/completions``."""
        await _openai.completions(self, scope, receive, send, extra)


def _file_size(path: Path) -> int | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size if path.is_file() else None
