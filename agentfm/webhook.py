"""Receive the gateway's task-completion webhooks.

The gateway POSTs ``{"status","task_id","worker_id"}`` and, when it has a secret, signs the
exact body with ``X-AgentFM-Signature: <hex HMAC-SHA256>``. `verify_signature` is the pure
check; `WebhookReceiver` is a small threaded HTTP server around it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import queue
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError

from agentfm._constants import ENV_WEBHOOK_SECRET
from agentfm.models import PeerID  # noqa: TC001 - pydantic resolves it at runtime

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "SIGNATURE_HEADER",
    "WebhookCallback",
    "WebhookPayload",
    "WebhookReceiver",
    "sign",
    "verify_signature",
]

log = logging.getLogger("agentfm.webhook")

DEFAULT_MAX_BODY_BYTES = 65536
SIGNATURE_HEADER = "X-AgentFM-Signature"
SOCKET_TIMEOUT = 15.0


class WebhookPayload(BaseModel):
    """The body of a completion webhook."""

    model_config = ConfigDict(extra="allow")

    task_id: str
    worker_id: PeerID
    status: str


WebhookCallback = Callable[[WebhookPayload], None]


def sign(body: bytes, secret: str) -> str:
    """Return the lowercase hex HMAC-SHA256 of ``body`` (what the gateway sends)."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str | None, secret: str | None) -> bool:
    """Check a webhook signature in constant time.

    Args:
        body: The exact request body.
        header: The ``X-AgentFM-Signature`` value (None if absent).
        secret: The shared secret; None or empty means signatures are not required.

    Returns:
        True when no secret is configured or the signature matches.
    """
    if not secret:
        return True
    if not header:
        return False
    return hmac.compare_digest(sign(body, secret), header.strip().lower())


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = SOCKET_TIMEOUT
    server_version = "agentfm-webhook"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("webhook: " + format, *args)

    def do_POST(self) -> None:
        receiver = self.server.receiver
        if urlsplit(self.path).path != receiver.path:
            self.send_error(404)
            return
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            self.send_error(411)
            return
        try:
            length = int(length_header)
        except ValueError:
            self.send_error(400, "bad Content-Length")
            return
        if length < 0:
            self.send_error(400, "bad Content-Length")
            return
        if length > receiver.max_body_bytes:
            self.send_error(413)
            return
        media = (
            (self.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
        )
        if media != "application/json":
            self.send_error(415)
            return
        body = self.rfile.read(length)
        if not verify_signature(body, self.headers.get(SIGNATURE_HEADER), receiver.secret):
            self.send_error(401)
            return
        try:
            payload = WebhookPayload.model_validate(json.loads(body or b"{}"))
        except (ValueError, UnicodeDecodeError, ValidationError):
            self.send_error(400, "invalid payload")
            return
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
        receiver._deliver(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: WebhookReceiver


class WebhookReceiver:
    """A background HTTP server that calls ``callback`` for each completion webhook.

    The callback runs on a dedicated thread after the gateway got its 200, so a slow
    callback never holds the gateway's request. ``port=0`` picks a free port (see `port`,
    `url`). ``secret`` defaults to env ``AGENTFM_WEBHOOK_SECRET``.

    Example:
        ```python
        with WebhookReceiver(port=0, callback=print) as hook:
            client.tasks.submit_async(worker_id=peer, prompt="hi", webhook_url=hook.url)
        ```
    """

    def __init__(
        self,
        *,
        port: int,
        callback: WebhookCallback,
        host: str = "127.0.0.1",
        path: str = "/cb",
        secret: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.callback = callback
        self.path = path if path.startswith("/") else "/" + path
        self.secret = secret if secret is not None else (os.environ.get(ENV_WEBHOOK_SECRET) or None)
        self.max_body_bytes = max_body_bytes
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._queue: queue.Queue[WebhookPayload | None] = queue.Queue()
        self._dispatcher: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"WebhookReceiver(url={self.url!r}, signed={self.secret is not None})"

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with ``port=0`` and started)."""
        if self._server is not None:
            return int(self._server.server_address[1])
        return self._requested_port

    @property
    def url(self) -> str:
        """The URL to pass as ``webhook_url``."""
        return f"http://{self.host}:{self.port}{self.path}"

    def _bind(self) -> _Server:
        server = _Server((self.host, self._requested_port), _Handler)
        server.receiver = self
        return server

    def _deliver(self, payload: WebhookPayload) -> None:
        self._queue.put(payload)

    def _dispatch_loop(self) -> None:
        while (payload := self._queue.get()) is not None:
            try:
                self.callback(payload)
            except Exception:
                log.exception("webhook callback failed for task %s", payload.task_id)

    def _start_dispatcher(self) -> None:
        self._dispatcher = threading.Thread(
            target=self._dispatch_loop, name="agentfm-webhook-callback", daemon=True
        )
        self._dispatcher.start()

    def _stop_dispatcher(self) -> None:
        if self._dispatcher is not None:
            self._queue.put(None)
            self._dispatcher.join(timeout=5)
            self._dispatcher = None

    def start(self) -> WebhookReceiver:
        """Serve on a background thread (no-op if already started)."""
        if self._server is not None:
            return self
        self._server = self._bind()
        self._start_dispatcher()
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="agentfm-webhook", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, deliver queued callbacks, and release the port."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        self._stop_dispatcher()

    def serve_forever(self) -> None:
        """Serve in the foreground until Ctrl-C."""
        self._server = self._bind()
        self._start_dispatcher()
        try:
            self._server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server, self._server = self._server, None
            if server is not None:
                server.server_close()
            self._stop_dispatcher()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
