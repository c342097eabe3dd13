"""Webhook delivery for async tasks: SSRF guard, HMAC signature, one attempt, no redirects."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import socket
from urllib.parse import urlsplit, urlunsplit

import httpx

from agentfm.mesh._gojson import encode_bytes

log = logging.getLogger("agentfm.mesh.webhook")

_LINK_LOCAL_MULTICAST_V4 = ipaddress.ip_network("224.0.0.0/24")
_LINK_LOCAL_MULTICAST_V6 = ipaddress.ip_network("ff02::/16")
_PRIVATE_V4 = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)
_ULA_V6 = ipaddress.ip_network("fc00::/7")
TOTAL_TIMEOUT = 30.0
MAX_DRAIN = 64 * 1024


class WebhookRefused(Exception):
    """The URL fails the SSRF guard; the gateway only logs this."""


def is_blocked_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """The address classes Go's guard refuses: loopback, link-local, private, unspecified."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback or ip.is_unspecified or ip.is_link_local:
        return True
    if isinstance(ip, ipaddress.IPv4Address):
        return ip in _LINK_LOCAL_MULTICAST_V4 or any(ip in net for net in _PRIVATE_V4)
    return ip in _LINK_LOCAL_MULTICAST_V6 or ip in _ULA_V6


async def resolve(host: str, port: int) -> list[str]:
    """All addresses ``host`` resolves to (a literal IP resolves to itself)."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise WebhookRefused(f"cannot resolve {host}: {exc}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise WebhookRefused(f"{host} has no addresses")
    return addresses


async def check_url(url: str, *, allow_private: bool) -> tuple[str, str, int]:
    """Validate ``url`` for delivery and return (scheme, host, port).

    Raises:
        WebhookRefused: bad scheme, empty host, or (without ``allow_private``) a private address.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise WebhookRefused(f"unsupported scheme {parts.scheme!r}")
    host = parts.hostname or ""
    if not host:
        raise WebhookRefused("empty host")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise WebhookRefused("invalid port") from None
    if not allow_private:
        for address in await resolve(host, port):
            if is_blocked_ip(ipaddress.ip_address(address.split("%")[0])):
                raise WebhookRefused(f"{host} resolves to non-public address {address}")
    return scheme, host, port


def payload(task_id: str, worker_id: str) -> bytes:
    """The exact webhook body: compact JSON, keys in alphabetical order, no newline."""
    return encode_bytes(
        {"status": "completed", "task_id": task_id, "worker_id": worker_id}, newline=False
    )


def sign(body: bytes, secret: str) -> str:
    """Lowercase hex HMAC-SHA256 of ``body`` under ``secret``."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def deliver(
    url: str, task_id: str, worker_id: str, *, secret: str, allow_private: bool
) -> int | None:
    """POST the completion webhook once; return the status, or None when refused or failed.

    Without ``allow_private`` the host is resolved again at dial time and the connection goes
    to the first resolved address literally, so a DNS answer cannot change between the
    check and the dial.
    """
    try:
        scheme, host, port = await check_url(url, allow_private=allow_private)
        target = url
        extensions: dict[str, str] = {}
        headers = {"Content-Type": "application/json"}
        if not allow_private:
            addresses = await resolve(host, port)
            for address in addresses:
                if is_blocked_ip(ipaddress.ip_address(address.split("%")[0])):
                    raise WebhookRefused(f"{host} resolves to non-public address {address}")
            parts = urlsplit(url)
            literal = f"[{addresses[0]}]" if ":" in addresses[0] else addresses[0]
            target = urlunsplit((parts.scheme, f"{literal}:{port}", parts.path, parts.query, ""))
            headers["Host"] = parts.netloc.rsplit("@", 1)[-1]
            if scheme == "https":
                extensions["sni_hostname"] = host
    except WebhookRefused as exc:
        log.warning("webhook for %s refused: %s", task_id, exc)
        return None
    body = payload(task_id, worker_id)
    if secret:
        headers["X-AgentFM-Signature"] = sign(body, secret)
    try:
        async with (
            httpx.AsyncClient(
                timeout=TOTAL_TIMEOUT, follow_redirects=False, trust_env=False
            ) as client,
            client.stream(
                "POST", target, content=body, headers=headers, extensions=extensions
            ) as response,
        ):
            drained = 0
            async for chunk in response.aiter_raw():
                drained += len(chunk)
                if drained >= MAX_DRAIN:
                    break
            return response.status_code
    except (httpx.HTTPError, OSError) as exc:
        log.warning("webhook for %s failed: %s", task_id, exc)
        return None
