"""Reputation on one machine: honesty scores, hourly completion ratings and the trust gate.

Every entry of an embedded gateway is authored by the gateway itself, so the gateway's
EigenTrust-lite algorithm reduces to a closed form: the gateway scores 1.0 (self-seed), a
peer it rated scores 0.85 × the age-weighted mean of its ``honesty`` ratings (half-life 30
days, clamped to [-1, 1]), every other peer 0, and a marked equivocator -1.0.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agentfm._entries import parse_peer_id
from agentfm.mesh._ledger_entry import RATING, peer_id_text

if TYPE_CHECKING:
    from collections.abc import Callable

    from agentfm.mesh._ledger import Ledger

ALPHA = 0.15
HALF_LIFE_DAYS = 30.0
COMPLETION_WINDOW = 3600.0
COMPLETION_STEP = 0.1
COMPLETION_CAP = 0.5
RECOMPUTE_INTERVAL = 60.0
READ_THROTTLE = 1.0
VERIFIED_AT = 0.1


@dataclass
class _Bucket:
    successes: int = 0
    failures: int = 0
    since: float = 0.0


class Reputation:
    """Scores, completion buckets and the gate of one gateway.

    Args:
        ledger: the own log; None when the ledger is disabled (everything neutral).
        floor: the reputation floor; a score strictly below it is refused dispatch.
        clock: seconds since the epoch (injectable so tests can step an hour).
    """

    def __init__(
        self, ledger: Ledger | None, floor: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.ledger = ledger
        self.floor = floor
        self.clock = clock
        self.scores: dict[str, float] = {}
        self._last_read_recompute = -math.inf
        self._buckets: dict[str, _Bucket] = {}
        self.refusals: dict[str, int] = {}
        if ledger is not None:
            self.recompute()

    # -- scores -------------------------------------------------------------------------
    def recompute(self) -> None:
        """Rebuild the score table from the own log."""
        ledger = self.ledger
        if ledger is None:
            return
        now_ns = int(self.clock() * 1e9)
        sums: dict[bytes, list[float]] = {}
        for entry in ledger.entries:
            if entry.kind != RATING or entry.dimension != "honesty":
                continue
            if entry.rater == entry.subject or not math.isfinite(entry.score):
                continue
            age_days = max(0.0, (now_ns - entry.timestamp_ns) / 86_400e9)
            weight = 2.0 ** (-age_days / HALF_LIFE_DAYS)
            acc = sums.setdefault(entry.subject, [0.0, 0.0])
            acc[0] += weight * entry.score
            acc[1] += weight
        table = {ledger.peer_id: 1.0}
        for subject, (weighted, total) in sums.items():
            if total <= 0:
                continue
            value = (1 - ALPHA) * weighted / total
            table[peer_id_text(subject)] = max(-1.0, min(1.0, value))
        for marked in ledger.equivocators:
            table[peer_id_text(marked)] = -1.0
        self.scores = table

    def recompute_for_read(self) -> None:
        """The ``/reputation`` read's recompute, at most once per second overall."""
        now = time.monotonic()
        if now - self._last_read_recompute >= READ_THROTTLE:
            self._last_read_recompute = now
            self.recompute()

    def score(self, peer_id: str) -> float:
        """The cached honesty score (0 for an unknown peer or without a ledger)."""
        return self.scores.get(peer_id, 0.0)

    def rater_status(self, peer_id: str) -> str:
        """``verified`` when the rater's score is at least 0.1."""
        return "verified" if self.score(peer_id) >= VERIFIED_AT else "unverified"

    def is_equivocator(self, peer_id: str) -> bool:
        """Whether ``peer_id`` is marked (nothing marks peers on one machine)."""
        if self.ledger is None or not self.ledger.equivocators:
            return False
        try:
            return parse_peer_id(peer_id) in self.ledger.equivocators
        except ValueError:
            return False

    # -- the gate -----------------------------------------------------------------------
    def refusal(self, peer_id: str) -> str | None:
        """Why dispatch to ``peer_id`` is refused, or None when it is allowed."""
        if self.is_equivocator(peer_id):
            return "peer_is_equivocator"
        if self.ledger is not None and self.score(peer_id) < self.floor:
            return "reputation_below_floor"
        return None

    def gate(self, peer_id: str) -> str | None:
        """`refusal`, counting each refused dispatch attempt per peer."""
        reason = self.refusal(peer_id)
        if reason is not None:
            self.refusals[peer_id] = self.refusals.get(peer_id, 0) + 1
        return reason

    def trust_fields(self, peer_id: str) -> tuple[float, bool, bool]:
        """``(honesty_score, is_equivocator, dispatch_allowed)`` for listings."""
        marked = self.is_equivocator(peer_id)
        return self.score(peer_id), marked, not marked

    # -- completion ratings -------------------------------------------------------------
    def record_outcome(self, peer_id: str, ok: bool) -> None:
        """Count one dispatch outcome (a clean stream end is a success)."""
        if self.ledger is None:
            return
        bucket = self._buckets.get(peer_id)
        if bucket is None:
            bucket = self._buckets[peer_id] = _Bucket(since=self.clock())
        if ok:
            bucket.successes += 1
        else:
            bucket.failures += 1

    def emit_due(self) -> int:
        """Write one ``honesty`` Rating per peer whose window is at least an hour old.

        Returns:
            How many ratings were written.
        """
        ledger = self.ledger
        if ledger is None:
            return 0
        now = self.clock()
        written = 0
        for peer_id, bucket in list(self._buckets.items()):
            if now - bucket.since < COMPLETION_WINDOW:
                continue
            net = COMPLETION_STEP * (bucket.successes - bucket.failures)
            score = round(max(-COMPLETION_CAP, min(COMPLETION_CAP, net)), 10)
            context = f"task:successes={bucket.successes},failures={bucket.failures},window=3600s"
            del self._buckets[peer_id]
            if score == 0:
                continue
            try:
                subject = parse_peer_id(peer_id)
            except ValueError:
                continue
            ledger.append_rating(subject, score, context, int(now * 1e9))
            written += 1
        return written
