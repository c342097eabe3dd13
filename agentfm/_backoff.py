"""The one exponential-backoff rule of the SDK (pure: no clock, no sleep).

Three places wait and grow the wait: retries of one call (`agentfm._base_client.RetryPolicy`),
re-dispatch in a scatter (`agentfm._scatter`), and rounds of refusals for a single task
(`agentfm._routing.PeerPlan`). Each has its own base and cap, tuned to what it waits for,
but they share this formula so a change to the rule is made once.
"""

from __future__ import annotations

import random

__all__ = ["exponential"]


def exponential(
    step: int,
    *,
    base: float,
    cap: float,
    jitter: float = 0.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before step ``step`` (0-based): ``min(cap, base * 2**step)`` plus jitter.

    Args:
        step: How many waits came before this one; a negative step counts as 0.
        base: The first wait.
        cap: The longest wait, before jitter.
        jitter: Up to this many seconds added at random, so clients that failed together
            do not retry together.
        rng: The random source for the jitter (tests pass a seeded one).
    """
    seconds = min(cap, base * (2 ** max(0, step)))
    if jitter > 0:
        seconds += (rng.uniform if rng is not None else random.uniform)(0, jitter)
    return float(seconds)
