"""`AgentFMClient` and `AsyncAgentFMClient`: the resources and the health probes.

Configuration (one constructor), headers and the I/O drivers live in `agentfm._api_client`;
this module only hangs the resources off the clients. The resources import their client's
base class, never this module, so there is no import circle.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from agentfm._api_client import AsyncAPIClient, SyncAPIClient
from agentfm._base_client import RequestSpec
from agentfm._constants import DEFAULT_GATEWAY
from agentfm.exceptions import AgentFMError

if TYPE_CHECKING:
    from agentfm.resources.openai import AsyncOpenAINamespace, OpenAINamespace
    from agentfm.resources.peers import AsyncPeers, Peers
    from agentfm.resources.tasks import AsyncTasks, Tasks
    from agentfm.resources.workers import AsyncWorkers, Workers

__all__ = ["DEFAULT_GATEWAY", "AgentFMClient", "AsyncAgentFMClient"]

_HEALTH = RequestSpec("GET", "/health", auth=False, idempotent=True)


def _health_body(body: Any) -> dict[str, Any]:
    return body if isinstance(body, dict) else {"status": body}


class AgentFMClient(SyncAPIClient):
    """Synchronous client of an AgentFM gateway; safe to share between threads.

    Args:
        gateway_url: Base URL; default env ``AGENTFM_GATEWAY_URL``, then ``http://127.0.0.1:8080``.
        timeout: Timeout of short calls (float seconds or `httpx.Timeout`); tasks and
            completions never time out between bytes unless a call passes ``timeout=``.
        retries: Retries of idempotent calls and of requests that were never sent.
        artifacts_dir: Where task artifacts are extracted (``<dir>/<task_id>/``); also the
            shared-filesystem folder where the gateway drops ``<task_id>.zip``.
        api_key: Bearer key; omitted → env ``AGENTFM_API_KEY``; None → no auth.
        max_connections: Upper bound on open connections (default: unbounded).
        default_headers: Extra headers sent with every request.
        routing_warning: Warn (`AgentFMRoutingWarning`, once per model) when an
            OpenAI-compatible call names a model that is not a peer id; False for code that
            routes by agent or engine name on purpose.
        idle_timeout: Seconds a task or completion stream may send nothing before
            `AgentFMTimeoutError` (default 600, the Go gateway's own idle limit; None: wait
            for ever). ``tasks.run/stream/scatter`` also take it per call.
        max_output_bytes: Fail a task whose output passes this many bytes
            (`OutputTooLargeError`); default: no cap.
        proxy: Proxy URL (or `httpx.Proxy`); default: ``HTTP(S)_PROXY``/``ALL_PROXY`` unless
            ``NO_PROXY`` covers the gateway, as httpx reads them.
        verify: TLS verification (bool, CA bundle path or `ssl.SSLContext`) for https.
        http_client: An `httpx.Client` (`httpx.AsyncClient` for the async client) to send
            every request through, used as is and never closed by the SDK.

    URL userinfo (``http://user:pw@host``) is sent as ``Authorization: Basic`` on every
    request (it replaces a bearer key) and shown as ``http://***@host``;
    ``gateway_url`` holds the URL without it.

    Example:
        ```python
        with AgentFMClient() as client:
            peer = client.workers.list(available_only=True)[0].peer_id
            print(client.tasks.run(worker_id=peer, prompt="hello").text)
        ```
    """

    @cached_property
    def workers(self) -> Workers:
        """Worker discovery: ``list``, ``get``, ``match``."""
        from agentfm.resources.workers import Workers

        return Workers(self)

    @cached_property
    def tasks(self) -> Tasks:
        """Task dispatch: ``run``, ``stream``, ``submit_async``, ``scatter``…"""
        from agentfm.resources.tasks import Tasks

        return Tasks(self)

    @cached_property
    def openai(self) -> OpenAINamespace:
        """The OpenAI-compatible routes: ``models``, ``chat.completions``, ``completions``."""
        from agentfm.resources.openai import OpenAINamespace

        return OpenAINamespace(self)

    @cached_property
    def peers(self) -> Peers:
        """Peer trust: ``list``, ``get``, ``reputation``, ``log``, ``proof``, ``comment``…"""
        from agentfm.resources.peers import Peers

        return Peers(self)

    def ping(self) -> bool:
        """Return True if the gateway answers ``GET /health`` (no auth needed)."""
        try:
            self.request(_HEALTH, retry=False)
        except AgentFMError:
            return False
        return True

    def health(self) -> dict[str, Any]:
        """Return the ``GET /health`` body, e.g. ``{"online_workers": 3, "status": "ok"}``."""
        return _health_body(self.request_json(_HEALTH))


class AsyncAgentFMClient(AsyncAPIClient):
    """Asynchronous client of an AgentFM gateway (same arguments as `AgentFMClient`).

    Example:
        ```python
        async with AsyncAgentFMClient() as client:
            async for chunk in client.tasks.stream(worker_id=peer, prompt="hi"):
                print(chunk.text, end="")
        ```
    """

    @cached_property
    def workers(self) -> AsyncWorkers:
        """Worker discovery: ``list``, ``get``, ``match``."""
        from agentfm.resources.workers import AsyncWorkers

        return AsyncWorkers(self)

    @cached_property
    def tasks(self) -> AsyncTasks:
        """Task dispatch: ``run``, ``stream``, ``submit_async``, ``scatter``…"""
        from agentfm.resources.tasks import AsyncTasks

        return AsyncTasks(self)

    @cached_property
    def openai(self) -> AsyncOpenAINamespace:
        """The OpenAI-compatible routes: ``models``, ``chat.completions``, ``completions``."""
        from agentfm.resources.openai import AsyncOpenAINamespace

        return AsyncOpenAINamespace(self)

    @cached_property
    def peers(self) -> AsyncPeers:
        """Peer trust: ``list``, ``get``, ``reputation``, ``log``, ``proof``, ``comment``…"""
        from agentfm.resources.peers import AsyncPeers

        return AsyncPeers(self)

    async def ping(self) -> bool:
        """Return True if the gateway answers ``GET /health`` (no auth needed)."""
        try:
            await self.request(_HEALTH, retry=False)
        except AgentFMError:
            return False
        return True

    async def health(self) -> dict[str, Any]:
        """Return the ``GET /health`` body, e.g. ``{"online_workers": 3, "status": "ok"}``."""
        return _health_body(await self.request_json(_HEALTH))
