"""The one backoff rule shared by call retries, scatter re-dispatch and refusal rounds."""

from __future__ import annotations

import random

import pytest

from agentfm._backoff import exponential
from agentfm._base_client import RetryPolicy


def test_doubles_from_base_up_to_cap() -> None:
    waits = [exponential(step, base=0.25, cap=4.0) for step in range(7)]
    assert waits == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_negative_step_counts_as_first_wait() -> None:
    assert exponential(-3, base=0.1, cap=2.0) == pytest.approx(0.1)


def test_jitter_stays_within_bound_and_uses_given_rng() -> None:
    a = [exponential(1, base=0.5, cap=8.0, jitter=0.3, rng=random.Random(7)) for _ in range(3)]
    b = [exponential(1, base=0.5, cap=8.0, jitter=0.3, rng=random.Random(7)) for _ in range(3)]
    assert a == b
    assert all(1.0 <= w <= 1.3 for w in a)


def test_retry_policy_delay_uses_the_shared_rule() -> None:
    policy = RetryPolicy(retries=5, idempotent=True, backoff_base=0.5, backoff_max=3.0, jitter=0.0)
    assert [policy.delay(n, None) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3.0]
