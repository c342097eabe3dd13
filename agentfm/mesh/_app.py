"""The gateway as a raw ASGI application: routing, the CORS/Origin policy and auth.

Each route lives in its route module (`_info_routes`, `_task_routes`, `_openai`, `_peers`);
a route is ``handler(state, scope, receive, send, extra)``, ``extra`` being the CORS headers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from agentfm.mesh._auth import INVALID, MULTIPLE, OK, check_header
from agentfm.mesh._http import (
    CORS_HEADERS,
    Headers,
    Receive,
    Scope,
    Send,
    envelope_error,
    plain_error,
    respond,
)
from agentfm.mesh._info_routes import about, events, health, list_workers, metrics, models
from agentfm.mesh._openai import chat_completions, completions
from agentfm.mesh._peers import handle as peers_route
from agentfm.mesh._task_routes import artifact, execute, execute_async

if TYPE_CHECKING:
    from agentfm.mesh._state import MeshState

LOOPBACK_ORIGINS = frozenset(("localhost", "127.0.0.1", "::1"))
Handler = Callable[["MeshState", Scope, Receive, Send, Headers], Awaitable[None]]


class GatewayApp:
    """Serve the AgentFM gateway protocol for the workers in ``state``."""

    def __init__(self, state: MeshState) -> None:
        self.state = state
        # path -> (handler, CORS-wrapped, bearer-protected)
        self.routes: dict[str, tuple[Handler, bool, bool]] = {
            "/health": (health, False, False),
            "/metrics": (metrics, True, False),
            "/api/workers": (list_workers, True, True),
            "/api/execute": (execute, True, True),
            "/api/execute/async": (execute_async, True, True),
            "/v1/models": (models, True, True),
            "/v1/chat/completions": (chat_completions, True, True),
            "/v1/completions": (completions, True, True),
            "/v1/about": (about, True, True),
            "/v1/events": (events, True, True),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        route = self.routes.get(path)
        if route is None:
            if path.startswith("/v1/peers/") or path == "/v1/peers":
                route = (peers_route, True, True)
            elif path.startswith("/api/artifacts/") and "/" not in path[15:] and path[15:]:
                route = (artifact, True, True)
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
        await handler(self.state, scope, receive, send, extra)

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
