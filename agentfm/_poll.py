"""Poll until a deadline: the one rule of every "try, wait a little, try again" loop.

Waiting for a task's files, for enough workers to register, or for a zip to land in a
folder all follow it; backoff after a failure is `agentfm._backoff` instead.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["poll_until"]


def poll_until(
    timeout: float, interval: float, *, clock: Callable[[], float] = time.monotonic
) -> Iterator[float]:
    """Yield the pause to take before each try: 0 before the first, then up to ``interval``.

    The deadline is ``timeout`` seconds after the first value is taken. A pause never runs
    past it, so the last try happens at the deadline; then the iteration ends. The caller
    tries after each pause and leaves the loop once it has what it waited for.

    Example:
        ```python
        for pause in poll_until(timeout, 0.5):
            time.sleep(pause)
            if ready():
                return True
        return False
        ```
    """
    deadline = clock() + timeout
    yield 0.0
    while (left := deadline - clock()) > 0:
        yield min(interval, left)
