"""Trust-aware routing: which peers a dispatch may use. The one place this is decided.

`workers.match`, scatter (and through them both integrations) ask `passes_trust` /
`trusted_peer_ids`. A peer is skipped when the gateway says ``dispatch_allowed: false``
(an equivocator), or when the caller asked for ``min_honesty`` and the peer's
``honesty_score`` is below it (a peer whose trust is unknown cannot meet a minimum).
Pure functions, no I/O.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from agentfm.exceptions import InvalidRequestError, UntrustedPeersError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from agentfm.models import WorkerProfile

__all__ = ["passes_trust", "require_min_honesty", "trusted_peer_ids"]


def require_min_honesty(value: object) -> float | None:
    """Return ``value`` as a float when it is None or a finite number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidRequestError(
            f"min_honesty must be a finite number, got {value!r}", code="invalid_min_honesty"
        )
    return float(value)


def passes_trust(worker: WorkerProfile, min_honesty: float | None = None) -> bool:
    """Whether ``worker`` may receive work under the trust rules."""
    if not worker.dispatch_allowed:
        return False
    if min_honesty is None:
        return True
    score = worker.honesty_score
    return score is not None and score >= min_honesty


def trusted_peer_ids(
    peer_ids: Sequence[str],
    workers: Sequence[WorkerProfile] | None,
    min_honesty: float | None,
) -> list[str]:
    """Keep the candidates of a scatter that pass the trust rules, in order.

    Args:
        peer_ids: the caller's candidates (duplicates kept: they act as weights).
        workers: the gateway's telemetry; None when it could not be read.
        min_honesty: the minimum ``honesty_score``, or None.

    Raises:
        UntrustedPeersError: no candidate is left, or ``min_honesty`` was asked for and
            there is no telemetry to check it against.
    """
    if workers is None:
        if min_honesty is not None:
            raise UntrustedPeersError(
                "min_honesty needs the gateway's worker list, which could not be read",
                code="untrusted_peers",
            )
        return list(peer_ids)
    known: dict[str, WorkerProfile] = {w.peer_id: w for w in workers}
    kept = []
    for peer in peer_ids:
        worker = known.get(peer)
        if worker is None:
            # Not in telemetry: the gateway answers 404 for it, unless a minimum is required.
            if min_honesty is None:
                kept.append(peer)
            continue
        if passes_trust(worker, min_honesty):
            kept.append(peer)
    if not kept:
        wanted = "" if min_honesty is None else f" with honesty_score >= {min_honesty}"
        raise UntrustedPeersError(
            f"none of the {len(peer_ids)} candidate peer(s) may be dispatched to{wanted}",
            code="untrusted_peers",
        )
    return kept
