"""Scatter glue of ``client.tasks``: the scheduler's inputs, one attempt, and the fast path.

`scheduler_flow`, `attempt_flow` and `model_peers_flow` are flows (`agentfm._flow`) the
two drivers of `agentfm.resources._task_drivers` perform. The block from
`_transport_patched` to `_FastAttempt` is the scatter fast path over `ExecutePool`
(whether to use it, and one attempt through it); `FastPathClient` is what it reads of the
client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from agentfm._defaults import scatter_concurrency
from agentfm._fast_path import failed_outcome
from agentfm._flow import Sleep
from agentfm._poll import poll_until
from agentfm._scatter import AttemptOutcome, ScatterScheduler
from agentfm._task_flows import idle_or_default
from agentfm._task_steps import FetchWorkers, MatchWorkers, RunTask, TaskFlow
from agentfm._trust import require_min_honesty, trusted_peer_ids
from agentfm._validation import (
    require_non_negative_int,
    require_peer_ids,
    require_positive_int,
    require_prompt,
    require_timeout,
)
from agentfm.exceptions import (
    InvalidRequestError,
    NoWorkerForModelError,
)
from agentfm.models import ScatterProgress, ScatterResult, WorkerProfile

__all__ = [
    "Pick",
    "ScatterCall",
    "attempt_flow",
    "in_input_order",
    "model_peers_flow",
    "scatter_call",
    "scheduler_flow",
]

log = logging.getLogger("agentfm.tasks")

Pick = Callable[[list[WorkerProfile]], list[WorkerProfile]]
ProgressCallback = Callable[[ScatterProgress], None]

_WORKER_POLL_INTERVAL = 1.0  # scatter_by_model re-reads telemetry this often while it waits


def _check_prompts(prompts: Sequence[str]) -> None:
    """Refuse one string in place of a sequence, and any invalid prompt."""
    if isinstance(prompts, str):
        raise InvalidRequestError(
            "prompts must be a sequence of strings, not one string", code="invalid_prompts"
        )
    for position, prompt in enumerate(prompts):
        require_prompt(prompt, name=f"prompts[{position}]")


@dataclass(frozen=True)
class ScatterCall:
    """The checked arguments of one scatter."""

    prompts: Sequence[str]
    peers: list[str]
    max_concurrency: int | None
    max_retries: int
    timeout: float | None
    on_progress: ProgressCallback | None
    hedge: bool
    min_honesty: float | None
    idle: float | None


def scatter_call(
    *,
    prompts: Sequence[str],
    peer_ids: Sequence[str],
    max_concurrency: int | None,
    max_retries: int,
    timeout: float | None,
    on_progress: ProgressCallback | None,
    hedge: bool,
    min_honesty: float | None,
    idle_timeout: float | None,
    client_idle: float | None,
) -> ScatterCall:
    """Check the arguments of ``tasks.scatter_iter`` (``client_idle``: the client's bound)."""
    _check_prompts(prompts)
    if max_concurrency is not None:
        require_positive_int(max_concurrency, name="max_concurrency")
    require_non_negative_int(max_retries, name="max_retries")
    timeout = require_timeout(timeout)
    peers = require_peer_ids(peer_ids)
    min_honesty = require_min_honesty(min_honesty)
    idle = idle_or_default(idle_timeout, client_idle)
    return ScatterCall(
        prompts, peers, max_concurrency, max_retries, timeout, on_progress, hedge, min_honesty, idle
    )


def in_input_order(results: Iterable[ScatterResult], count: int) -> list[ScatterResult]:
    """Scatter results (completion order) in the order of their prompts."""
    ordered: list[ScatterResult | None] = [None] * count
    for result in results:
        ordered[result.index] = result
    return [r for r in ordered if r is not None]


def scheduler_flow(call: ScatterCall) -> TaskFlow[ScatterScheduler]:
    """The scheduler of one scatter, with the workers' capacity and trust where known."""
    workers: list[WorkerProfile] | None
    try:
        workers = yield FetchWorkers()
    except Exception as exc:
        # Best effort: a gateway without the route, or a user's HTTP mock that does
        # not define it (respx raises its own error), must not fail the scatter.
        log.debug("scatter without telemetry: %r", exc)
        workers = None
    return ScatterScheduler(
        call.prompts,
        trusted_peer_ids(call.peers, workers, call.min_honesty),
        max_concurrency=call.max_concurrency or scatter_concurrency(call.peers, workers),
        max_retries=call.max_retries,
        capacity={w.peer_id: (w.max_tasks, w.current_tasks) for w in workers or []},
        hedge=call.hedge,
    )


def attempt_flow(task_id: str, run_kwargs: dict[str, Any]) -> TaskFlow[AttemptOutcome]:
    """One scatter attempt through ``tasks.run``; a failure is its outcome, never raised."""
    begun = time.monotonic()
    try:
        result = yield RunTask(run_kwargs)
    except Exception as exc:  # a failure is this item's outcome (a bug too: never lose it)
        return failed_outcome(exc, task_id, begun)
    return AttemptOutcome(
        text=result.text,
        artifacts=result.artifacts,
        task_id=getattr(result, "task_id", None) or task_id,
        duration=time.monotonic() - begun,
    )


def model_peers_flow(
    *,
    prompts: Sequence[str],
    model: str,
    max_workers: int | None,
    pick: Pick | None,
    wait_for_workers: int,
    poll_timeout: float,
    scatter_opts: dict[str, Any],
) -> TaskFlow[list[str]]:
    """The peers of ``scatter_by_model``, once ``wait_for_workers`` match (or time is up)."""
    model = require_prompt(model, name="model")
    require_non_negative_int(wait_for_workers, name="wait_for_workers")
    _check_prompts(prompts)
    min_honesty = require_min_honesty(scatter_opts.get("min_honesty"))
    matches: list[WorkerProfile] = []
    for pause in poll_until(poll_timeout, _WORKER_POLL_INTERVAL):
        if pause:
            yield Sleep(pause)
        matches = yield MatchWorkers(model, min_honesty)
        if len(matches) >= wait_for_workers:
            break
    if pick is not None:
        matches = list(pick(matches))
    elif max_workers is not None:
        matches = matches[: require_positive_int(max_workers, name="max_workers")]
    if not matches:
        raise NoWorkerForModelError(
            f"no live worker advertises model={model!r}", code="model_not_found"
        )
    return [w.peer_id for w in matches]
