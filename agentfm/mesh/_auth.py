"""Bearer-key authentication with the gateway's failed-attempt rate limit and bind guard."""

from __future__ import annotations

import hmac
import ipaddress
import os
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

MIN_KEY_LENGTH = 16
BUCKET_CAPACITY = 30.0
REFILL_PER_SECOND = 30.0 / 60.0
MAX_TRACKED_IPS = 4096
IDLE_EVICT_SECONDS = 600.0
JANITOR_INTERVAL = 60.0


class AuthConfigError(ValueError):
    """The configured API keys are unusable (the gateway refuses to start)."""


def parse_keys(raw: str | Iterable[str] | None) -> tuple[bytes, ...]:
    """Normalise keys like ``AGENTFM_API_KEYS``: trim, split on commas, drop empties and repeats.

    Raises:
        AuthConfigError: a key is shorter than 16 bytes (the key itself is never echoed).
    """
    if raw is None:
        return ()
    pieces = raw.strip().split(",") if isinstance(raw, str) else list(raw)
    keys: list[bytes] = []
    for index, piece in enumerate(pieces, start=1):
        key = piece.strip().encode()
        if not key:
            continue
        if len(key) < MIN_KEY_LENGTH:
            raise AuthConfigError(
                f"auth config: API key #{index} is shorter than {MIN_KEY_LENGTH} chars"
            )
        if key not in keys:
            keys.append(key)
    return tuple(keys)


def is_loopback_host(host: str) -> bool:
    """Whether binding ``host`` keeps the gateway on this machine."""
    if host in ("", "localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, keys: tuple[bytes, ...]) -> None:
    """Refuse a public bind without keys unless ``AGENTFM_ALLOW_UNAUTH_PUBLIC=1``.

    Raises:
        AuthConfigError: the bind would expose an unauthenticated gateway.
    """
    if keys or is_loopback_host(host) or os.environ.get("AGENTFM_ALLOW_UNAUTH_PUBLIC") == "1":
        return
    raise AuthConfigError(
        f"refusing to bind {host!r} without API keys: set AGENTFM_API_KEYS "
        "or AGENTFM_ALLOW_UNAUTH_PUBLIC=1"
    )


# Outcomes of :func:`check_header`; the metric label and the 401 body both derive from them.
OK, MISSING, MALFORMED, MULTIPLE, INVALID = "ok", "missing", "malformed", "multiple", "invalid"


def check_header(values: list[bytes], keys: tuple[bytes, ...]) -> str:
    """Classify the ``Authorization`` header values of a request against ``keys``."""
    if not values:
        return MISSING
    if len(values) > 1:
        return MULTIPLE
    value = values[0].strip()
    if len(value) < 7 or value[:7].lower() != b"bearer ":
        return MALFORMED
    token = value[7:]
    if not token.strip():
        return MALFORMED
    matched = False
    for key in keys:
        # Compare against every key so timing does not reveal which one nearly matched.
        matched |= hmac.compare_digest(token, key)
    return OK if matched else INVALID


class FailureLimiter:
    """Per-IP token bucket that only failed attempts drain (30 tokens, 30 per minute)."""

    def __init__(
        self, capacity: float = BUCKET_CAPACITY, refill: float = REFILL_PER_SECOND
    ) -> None:
        self.capacity = capacity
        self.refill = refill
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()
        self._next_sweep = time.monotonic() + JANITOR_INTERVAL

    def allow_failure(self, ip: str) -> bool:
        """Spend a token for a failed attempt from ``ip``; False when the bucket is empty."""
        now = time.monotonic()
        if now >= self._next_sweep:
            self._sweep(now)
        bucket = self._buckets.get(ip)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED_IPS:
                self._buckets.popitem(last=False)
            bucket = self._buckets[ip] = [self.capacity, now]
        else:
            self._buckets.move_to_end(ip)
            bucket[0] = min(self.capacity, bucket[0] + (now - bucket[1]) * self.refill)
            bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return True
        return False

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + JANITOR_INTERVAL
        for ip in [
            ip for ip, (_, seen) in self._buckets.items() if now - seen > IDLE_EVICT_SECONDS
        ]:
            del self._buckets[ip]
