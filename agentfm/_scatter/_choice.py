"""Which peer gets an attempt: pure functions over the scheduler's peer state.

`best_peer` ranks peers by expected finish (latency penalised by failure rate), then room,
then a round-robin turn; `better_wait` is the tail rule that keeps a slow peer from taking
an item faster peers would finish sooner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from agentfm._scatter._types import _Peer

__all__ = ["BREAKER_THRESHOLD", "FastestLatency", "best_peer", "better_wait", "score", "usable"]

BREAKER_THRESHOLD = 3  # consecutive failures that bench a peer
_UNBOUNDED = 1 << 30  # the room of a peer without telemetry
_SLOW_PEER_RATIO = 1.5  # a peer this much slower than the fastest is "slow" for the tail rule


def usable(peer: _Peer, now: float) -> bool:
    """Not benched, and not a failing peer whose one probe is already out."""
    if peer.benched_until > now:
        return False
    return not (peer.probing and peer.consecutive >= BREAKER_THRESHOLD)


def score(peer: _Peer, typical: float | None) -> float:
    """Expected seconds to finish: latency (the batch's typical one until measured), penalised."""
    latency = peer.latency if peer.latency is not None else (typical or 0.0)
    return latency * (1.0 + 2.0 * peer.failure_rate())


def best_peer(
    peers: Sequence[_Peer], turn: int, n: int, typical: float | None, now: float | None = None
) -> _Peer | None:
    """The peer expected to finish first; ties go to more room, then round-robin by ``turn``
    (``n``: the batch's peer count, the modulus of the rotation).

    With ``now``, only peers usable then and with a free slot count (None if there is none).
    One loop rather than filtered lists and ``min(key=...)``: it runs once per attempt over
    every peer, and was most of the scheduler's cost per task. A peer's score is compared
    first: one that scores worse than the best so far cannot win, whatever its room or
    state, so only the few that may win are checked further.
    """
    base = typical or 0.0
    best: _Peer | None = None
    best_value = 0.0
    best_key: tuple[float, int, int] | None = None
    for peer in peers:
        latency = peer.latency
        if latency is None:
            latency = base
        value = latency * (1.0 + 2.0 * peer.failure_rate()) if peer.failures else latency
        if best is not None and value > best_value:
            continue  # the usual exit: the key's other parts only break ties
        free = _UNBOUNDED if peer.limit is None else peer.limit - peer.others - peer.own
        if now is not None and (
            free <= 0
            or peer.benched_until > now
            or (peer.probing and peer.consecutive >= BREAKER_THRESHOLD)
        ):
            continue
        key = (value, -free, (peer.position - turn) % n)
        if best_key is None or key < best_key:
            best, best_value, best_key = peer, value, key
    return best


def better_wait(
    peer: _Peer,
    peers: Sequence[_Peer],
    now: float,
    backlog: int,
    fastest: float | None = None,
) -> bool:
    """Tail rule: would ``backlog`` items finish sooner queued for faster peers than on ``peer``?

    ``fastest``: the lowest latency among ``peers`` if the caller knows it. When even that
    peer is not "faster" by the rule's ratio, none is, and the peers are not scanned.
    """
    if peer.latency is None:
        return False
    if fastest is not None and fastest * _SLOW_PEER_RATIO >= peer.latency:
        return False
    faster = [
        p
        for p in peers
        if p.latency is not None and p.latency * _SLOW_PEER_RATIO < peer.latency and usable(p, now)
    ]
    if not faster:
        return False
    rate = 0.0
    for p in faster:
        if p.limit is None or p.latency is None or p.latency <= 0:
            return False
        rate += max(1, p.limit - p.others) / p.latency
    fastest = min(p.latency for p in faster if p.latency is not None)
    return backlog / rate + fastest < peer.latency


class FastestLatency:
    """The lowest latency measured among a batch's peers, for `better_wait`'s shortcut.

    Kept up to date as latencies move, and rescanned only when the fastest peer itself
    slowed down: about once per peer count of completions rather than once per dispatch.
    """

    __slots__ = ("_stale", "_value")

    def __init__(self) -> None:
        self._value: float | None = None  # None: no latency measured yet
        self._stale = False

    def moved(self, old: float | None, new: float) -> None:
        """A peer's latency went from ``old`` (None: unmeasured) to ``new``."""
        if self._stale:
            return
        value = self._value
        if value is None or new < value:
            self._value = new
        elif old == value and new > old:
            self._stale = True  # it may have been the only one that fast: rescan when asked

    def get(self, peers: Sequence[_Peer]) -> float | None:
        """The lowest latency among ``peers`` (None: none measured)."""
        if self._stale:
            measured = [p.latency for p in peers if p.latency is not None]
            self._value = min(measured) if measured else None
            self._stale = False
        return self._value
