"""Everything kept only so that code written for agentfm-sdk 0.3.0 runs unchanged.

The SDK's own code never calls what is here; new code should not either. Each 0.3.0 import
path is a module of a few lines that re-exports from here or from the module that now owns
the name, so this docstring is the one list of what the compatibility layer holds:

- ``agentfm.client``: `AgentFMClient`, `DEFAULT_GATEWAY`, and `make_client` (here).
- ``agentfm.async_client``: `AsyncAgentFMClient`, `DEFAULT_GATEWAY`, and
  `make_async_client` (here).
- ``agentfm.daemon``: `LocalMeshGateway` (from `agentfm.gateway`).
- ``agentfm.streaming``: `SentinelFilter`, `filter_iter`, `classify_sse_line`,
  `parse_sse_lines` and `SSE_DONE` (here, over the sans-IO decoders), with the stream types.
- ``agentfm.openai`` and ``agentfm.openai.models``: the OpenAI namespace and its models
  (from `agentfm.resources.openai` and `agentfm.types.openai`).
- ``agentfm.openai._namespaces``: ``_warned_about_routing``, the set 0.3.0 test suites
  clear to see the routing warning again.

Behaviours kept for 0.3.0 callers live with the code they concern, each commented where it
is: ``worker_id=`` beside ``peer_id=`` (`agentfm._validation.pick_peer`), `WorkerProfile.model`
as an alias of ``engine``, the plain-text 5xx classes that are also a `GatewayProtocolError`
(`agentfm.exceptions`), a bad URL scheme raised at the first request, a replaced
``tasks.run`` called with 0.3.0's arguments in a scatter (`agentfm._fast_path.run_kwargs`),
and the CLI's ``--prompt`` spelling. tests/COMPATIBILITY.md lists what 0.3.0's own tests
show.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import httpx

from agentfm._base_client import default_timeout
from agentfm._constants import ARTIFACT_INCOMING, ARTIFACT_NONE, SSE_DONE_PAYLOAD, USER_AGENT
from agentfm._decoders import MarkerDecoder

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = [
    "SSE_DONE",
    "SentinelFilter",
    "classify_sse_line",
    "filter_iter",
    "make_async_client",
    "make_client",
    "parse_sse_lines",
]


def _http_preset(
    base_url: str, timeout: float | httpx.Timeout | None, user_agent: str, api_key: str | None
) -> dict[str, Any]:
    headers = {"User-Agent": user_agent}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return {
        "base_url": base_url.rstrip("/"),
        "timeout": default_timeout(timeout),
        "headers": headers,
        "follow_redirects": False,
    }


def make_client(
    base_url: str,
    *,
    timeout: float | httpx.Timeout | None = None,
    user_agent: str = USER_AGENT,
    api_key: str | None = None,
) -> httpx.Client:
    """Return an `httpx.Client` preset for a gateway, as 0.3.0's ``make_client`` did.

    ``base_url`` is the gateway URL, ``api_key`` (if any) is sent as a bearer token, and
    redirects are not followed. `AgentFMClient` does not need it.
    """
    return httpx.Client(**_http_preset(base_url, timeout, user_agent, api_key))


def make_async_client(
    base_url: str,
    *,
    timeout: float | httpx.Timeout | None = None,
    user_agent: str = USER_AGENT,
    api_key: str | None = None,
) -> httpx.AsyncClient:
    """Return an `httpx.AsyncClient` preset for a gateway (0.3.0's ``make_async_client``).

    Same settings as `make_client`: base URL, bearer key, no redirects.
    """
    return httpx.AsyncClient(**_http_preset(base_url, timeout, user_agent, api_key))


class _Done:
    def __repr__(self) -> str:
        return "SSE_DONE"


SSE_DONE: Final = _Done()
"""Returned by `classify_sse_line` for ``data: [DONE]``."""


class SentinelFilter:
    """Line-level view of `MarkerDecoder` with the 0.3.0 attributes.

    ``feed`` yields output text, ``finalize`` returns what is left; ``artifacts_incoming``
    / ``artifacts_complete`` say which terminal marker ended the stream.
    """

    def __init__(self) -> None:
        self._decoder = MarkerDecoder()
        self.artifacts_incoming = False
        self.artifacts_complete = False

    def feed(self, chunk: str | bytes) -> Iterator[str]:
        """Yield the text released by ``chunk``."""
        yield from self._decoder.feed(chunk)

    def finalize(self) -> str:
        """Return the remaining text and record the terminal marker (never raises)."""
        rest = "".join(self._decoder.flush())
        self.artifacts_incoming = self._decoder.marker == ARTIFACT_INCOMING
        self.artifacts_complete = self._decoder.marker == ARTIFACT_NONE
        return rest


def filter_iter(chunks: Iterable[str | bytes]) -> Iterator[str]:
    """Yield the output text of a whole ``/api/execute`` body, markers removed."""
    sentinel = SentinelFilter()
    for chunk in chunks:
        yield from sentinel.feed(chunk)
    rest = sentinel.finalize()
    if rest:
        yield rest


def classify_sse_line(raw: str) -> str | _Done | None:
    """Return the payload of one ``data:`` line, `SSE_DONE`, or None for other lines."""
    line = raw.rstrip("\r\n")
    if not line.startswith("data:"):
        return None
    payload = line[5:].lstrip()
    if not payload:
        return None
    return SSE_DONE if payload == SSE_DONE_PAYLOAD else payload


def parse_sse_lines(lines: Iterable[str]) -> Iterator[str]:
    """Yield ``data:`` payloads until ``[DONE]``."""
    for line in lines:
        kind = classify_sse_line(line)
        if kind is SSE_DONE:
            return
        if isinstance(kind, str):
            yield kind
