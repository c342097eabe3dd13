"""The read-only routes: ``/health``, ``/metrics``, ``/api/workers``, ``/v1/models``,
``/v1/about`` and the ``/v1/events`` stream."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from agentfm.mesh._http import (
    SSE_HEADERS,
    DisconnectWatch,
    Headers,
    Receive,
    Scope,
    Send,
    allow_method,
    envelope_error,
    json_response,
    respond,
)
from agentfm.mesh._metrics import CONTENT_TYPE
from agentfm.mesh._peers import apply_trust, ledger_size, offline_listed

if TYPE_CHECKING:
    from agentfm.mesh._state import MeshState


async def health(
    state: MeshState, scope: Scope, receive: Receive, send: Send, extra: Headers
) -> None:
    """``GET /health``."""
    # No CORS headers on /health, not even on its 405.
    if not await allow_method(scope, send, "GET"):
        return
    body = {"online_workers": len(state.workers), "status": "ok"}
    await json_response(send, 200, body)


async def list_workers(
    state: MeshState, scope: Scope, receive: Receive, send: Send, extra: Headers
) -> None:
    """``GET /api/workers[?include_offline=true]``."""
    if not await allow_method(scope, send, "GET", extra):
        return
    include_offline = False
    query = scope.get("query_string", b"")
    if query:
        for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if key == "include_offline":
                include_offline = value == "true"
                break
    cpu, ram = state.cpu.percent, state.ram
    online = sorted(state.workers.values(), key=lambda w: -w.last_seen)
    agents = [apply_trust(state, w.profile(cpu, ram)) for w in online]
    offline_count = 0
    if include_offline:
        offline = sorted(state.offline.values(), key=lambda w: -w.last_seen)
        offline = [w for w in offline if offline_listed(state, w.peer_id)]
        for w in offline:
            entry = apply_trust(state, w.profile(cpu, ram))
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


async def models(
    state: MeshState, scope: Scope, receive: Receive, send: Send, extra: Headers
) -> None:
    """``GET /v1/models``."""
    if scope["method"] != "GET":
        await envelope_error(
            send, 405, "invalid_request_error", "method_not_allowed", "GET only", extra
        )
        return
    created = int(time.time())
    data = [
        apply_trust(state, w.model_entry(created, state.cpu.percent, state.ram), "agentfm_")
        for w in state.workers.values()
    ]
    await json_response(send, 200, {"object": "list", "data": data}, extra)


async def about(
    state: MeshState, scope: Scope, receive: Receive, send: Send, extra: Headers
) -> None:
    """``GET /v1/about``."""
    if not await allow_method(scope, send, "GET", extra):
        return
    settings = state.settings
    body = {
        "boss_peer_id": settings.boss_peer_id,
        "relay_peer_id": "",
        "relay_multiaddr": "",
        "reputation_floor": settings.reputation_floor,
        "ledger_tree_size": ledger_size(state),
        "version": settings.version,
        "uptime_seconds": int(time.time() - state.started),
    }
    await json_response(send, 200, body, extra)


async def metrics(
    state: MeshState, scope: Scope, receive: Receive, send: Send, extra: Headers
) -> None:
    """``GET /metrics`` (any method, as promhttp)."""
    body = state.metrics.render(len(state.workers))
    await respond(send, 200, body, ((b"Content-Type", CONTENT_TYPE),), extra)


async def events(
    state: MeshState, scope: Scope, receive: Receive, send: Send, extra: Headers
) -> None:
    """``GET /v1/events``: server-sent worker_online / worker_offline events."""
    if not await allow_method(scope, send, "GET", extra):
        return
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
