"""Scatter through a real embedded mesh: exactly once, in order, failover, breaker, hedging.

Every test runs with the sync and the async client, and the ordering test also over the
regular httpx path, so the twins and the two transports cannot drift apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentfm import ScatterProgress, WorkerRejectedError
from tests.helpers import call
from tests.sdk.scatter.conftest import REJECTION

if TYPE_CHECKING:
    from tests.sdk.scatter.conftest import Runs


async def scatter_iter(client: Any, prompts: list[str], **options: Any) -> list[Any]:
    iterator = client.tasks.scatter_iter(prompts, **options)
    if hasattr(iterator, "__aiter__"):
        return [r async for r in iterator]
    return list(iterator)


async def test_every_item_exactly_once_in_input_order(
    scatter_client: Any, peers: dict[str, str], transport_path: str
) -> None:
    good = [peers["good0"], peers["good1"], peers["good2"]]
    prompts = [f"p{i}" for i in range(60)]
    results = await call(scatter_client.tasks.scatter, prompts, peer_ids=good, max_concurrency=7)
    assert [r.index for r in results] == list(range(60))
    assert [r.prompt for r in results] == prompts
    assert [r.text for r in results] == [f"done {p}\n" for p in prompts]
    assert all(r.ok and r.attempts == 1 and r.worker_id in good for r in results)
    streamed = await scatter_iter(scatter_client, prompts, peer_ids=good, max_concurrency=5)
    assert sorted(r.index for r in streamed) == list(range(60))


async def test_broken_streams_fail_over_to_untried_peers(
    scatter_client: Any, peers: dict[str, str], runs: Runs
) -> None:
    pool = [peers["broken"], peers["good0"], peers["good1"]]
    prompts = [f"q{i}" for i in range(30)]
    results = await call(
        scatter_client.tasks.scatter, prompts, peer_ids=pool, max_concurrency=6, max_retries=2
    )
    assert [r.index for r in results] == list(range(30))
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    # The partial output of a broken stream is never the answer.
    assert [r.text for r in results] == [f"done {p}\n" for p in prompts]
    assert runs["broken"] >= 1
    failed_over = [r for r in results if r.attempts > 1]
    assert failed_over
    for r in failed_over:
        assert r.peers_tried[0] == peers["broken"]
        assert len(set(r.peers_tried)) == len(r.peers_tried)  # each retry on an untried peer
        assert r.worker_id == r.peers_tried[-1] != peers["broken"]


async def test_a_rejection_line_is_never_a_success(
    scatter_client: Any, peers: dict[str, str]
) -> None:
    pool = [peers["rejecting"], peers["good2"]]
    results = await call(
        scatter_client.tasks.scatter, ["a", "b", "c", "d"], peer_ids=pool, max_retries=1
    )
    assert [r.text for r in results] == ["done a\n", "done b\n", "done c\n", "done d\n"]
    assert all(r.ok and r.worker_id == peers["good2"] for r in results)

    [alone] = await call(
        scatter_client.tasks.scatter, ["e"], peer_ids=[peers["rejecting"]], max_retries=0
    )
    assert alone.status == "failed"
    assert isinstance(alone.exception, WorkerRejectedError)
    assert alone.text == ""
    assert REJECTION.strip() in (alone.error or "")


async def test_circuit_breaker_benches_a_failing_peer(
    scatter_client: Any, peers: dict[str, str], runs: Runs
) -> None:
    # The good peers have 8 slots and the scatter wants 12 in flight, so the broken peer is
    # offered work whenever it has a free slot, unless it is benched.
    pool = [peers["broken"], peers["good0"], peers["good1"]]
    prompts = [f"b{i}" for i in range(120)]
    results = await call(
        scatter_client.tasks.scatter, prompts, peer_ids=pool, max_concurrency=12, max_retries=3
    )
    assert all(r.ok for r in results)
    # Unbenched, it would fail dozens of attempts; benched after 3 failures, it only sees
    # those, the attempts already in flight, and one probe per (doubling) bench period.
    assert runs["broken"] <= 10


async def test_hedging_keeps_one_result_and_cancels_the_straggler(
    scatter_client: Any, peers: dict[str, str], runs: Runs
) -> None:
    pool = [peers["sloth"], peers["good0"], peers["good1"]]
    prompts = [f"h{i}" for i in range(40)]
    progress: list[ScatterProgress] = []
    results = await scatter_iter(
        scatter_client,
        prompts,
        peer_ids=pool,
        max_concurrency=6,
        hedge=True,
        on_progress=progress.append,
    )
    assert sorted(r.index for r in results) == list(range(40))  # one result per item
    assert all(r.ok and r.text == f"done {r.prompt}\n" for r in results)
    hedged = [r for r in results if peers["sloth"] in r.peers_tried]
    assert hedged, "the stalled peer got no work"
    for r in hedged:
        assert r.attempts == 2
        assert r.worker_id != peers["sloth"]
    assert progress[-1].done == 40
    assert progress[-1].succeeded == 40
    assert progress[-1].in_flight == 0


async def test_in_flight_never_exceeds_max_concurrency(
    scatter_client: Any, peers: dict[str, str]
) -> None:
    progress: list[ScatterProgress] = []
    good = [peers["good0"], peers["good1"], peers["good2"], peers["broken"]]
    await call(
        scatter_client.tasks.scatter,
        [f"m{i}" for i in range(50)],
        peer_ids=good,
        max_concurrency=3,
        on_progress=progress.append,
    )
    assert progress
    assert max(p.in_flight for p in progress) <= 3
    assert progress[-1].done == 50
