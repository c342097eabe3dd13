"""Single-call routing by model (SDK ``tasks.run/stream(model=…)``), as the integrations use it.

The planners are the SDK's pure core (`agentfm._routing`); the failover rule is scatter's own
`is_redispatchable`; the integrations' `_tasks` adapters only call the SDK.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import pytest

import agentfm
from agentfm import _routing
from agentfm._decoders import RejectionGate
from agentfm._defaults import scatter_concurrency
from agentfm._scatter import is_redispatchable
from agentfm_integrations import _tasks
from agentfm_integrations._clients import client_kwargs

if TYPE_CHECKING:
    from collections.abc import Iterator

    from agentfm.mesh import AgentContext, EmbeddedMesh

ENGINE = "routing-echo"


@pytest.fixture(scope="module")
def routing_mesh() -> Iterator[EmbeddedMesh]:
    """Two echo peers and one that breaks every stream, all with engine `ENGINE`."""
    from agentfm.mesh import BreakStream, CallableAgent, EmbeddedMesh, WorkerConfig

    def echo(prompt: str, ctx: AgentContext) -> str:
        return f"echo: {prompt}\n"

    def broken(prompt: str, ctx: AgentContext) -> str:
        raise BreakStream

    workers = [
        WorkerConfig(f"echo{i}", ENGINE, CallableAgent(echo), seed=f"rt-echo-{i}") for i in range(2)
    ]
    workers.append(WorkerConfig("broken", ENGINE, CallableAgent(broken), seed="rt-broken"))
    with EmbeddedMesh(workers=workers) as mesh:
        yield mesh


def _worker(peer: str, current: int, max_tasks: int = 4) -> agentfm.WorkerProfile:
    return agentfm.WorkerProfile(peer_id=peer, current_tasks=current, max_tasks=max_tasks)


def test_failover_policy() -> None:
    plan = _routing.PeerPlan(["a", "b", "c"], max_retries=5)
    assert plan.failed("a", agentfm.WorkerUnreachableError("x"))
    assert plan.failed("a", agentfm.IncompleteStreamError("x"))
    assert plan.failed("a", agentfm.AgentExitError("x", exit_detail="exit status 3"))
    assert not plan.failed("a", agentfm.WorkerUnreachableError("x"), emitted=True)
    assert not plan.failed("a", agentfm.AuthenticationError("x"))
    with pytest.raises(agentfm.ModelNotFoundError) as info:
        _tasks.require_peers("nope", [])
    assert info.value.code == "model_not_found"
    assert scatter_concurrency(["a", "b"], [_worker("a", 0, 4), _worker("b", 0, 0)]) == 5


@pytest.mark.parametrize(
    "exc",
    [
        agentfm.ArtifactError("zip is corrupt"),  # the task completed: do not re-run it
        agentfm.RateLimitError("locked out", code="rate_limited", status=429),
        agentfm.AuthenticationError("bad key", status=401),
        agentfm.InvalidRequestError("bad", status=400),
        agentfm.WorkerRejectedError("full"),
        agentfm.WorkerNotFoundError("gone", status=404),
        agentfm.TaskStartError("no image", exit_detail="no image"),
    ],
)
def test_single_calls_and_scatter_share_one_failover_rule(exc: agentfm.AgentFMError) -> None:
    plan = _routing.PeerPlan(["a", "b"], max_retries=3)
    assert plan.failed("a", exc) is is_redispatchable(exc)


def test_rejection_gate_holds_only_a_leading_rejection_line() -> None:
    gate = RejectionGate()
    assert gate.feed("❌ ERR") == ""
    assert gate.feed("OR: Worker is at max capacity (1/1).\n") == ""
    assert not gate.emitted  # a failure now may still fail over
    assert gate.feed("but more output\n") == (
        "❌ ERROR: Worker is at max capacity (1/1).\nbut more output\n"
    )
    assert gate.emitted
    plain = RejectionGate()
    assert plain.feed("hello") == "hello"
    assert plain.feed(" world") == " world"
    ended = RejectionGate()
    assert ended.feed("❌ ERROR: x\n") == ""
    assert ended.flush() == "❌ ERROR: x\n"


def _plan_run(
    plan: _routing.PeerPlan, outcomes: dict[str, list[Exception]]
) -> list[tuple[str, float]]:
    """Drive a plan; each peer fails with its next listed error (none left: success)."""
    steps: list[tuple[str, float]] = []
    while (step := plan.next()) is not None:
        steps.append(step)
        errors = outcomes.get(step[0], [])
        if not errors:
            break
        plan.failed(step[0], errors.pop(0))
    return steps


def test_peer_plan_fails_over_to_untried_peers_within_budget() -> None:
    broken = agentfm.IncompleteStreamError("reset")
    plan = _routing.PeerPlan(["a", "b", "c", "a"], max_retries=1)
    steps = _plan_run(plan, {"a": [broken], "b": [broken], "c": []})
    assert steps == [("a", 0.0), ("b", 0.0)]  # two failures use the budget of 1 retry
    assert plan.tried == ["a", "b"]
    ok = _routing.PeerPlan(["a", "b"], max_retries=2)
    assert _plan_run(ok, {"a": [broken]}) == [("a", 0.0), ("b", 0.0)]


def test_peer_plan_cycles_refusing_peers_with_backoff() -> None:
    full = agentfm.WorkerRejectedError("❌ ERROR: Worker is at max capacity (4/4).")
    plan = _routing.PeerPlan(["a", "b"], max_retries=2)
    steps = _plan_run(plan, {"a": [full, full], "b": [full]})
    assert [p for p, _ in steps] == ["a", "b", "a", "b"]
    assert [d for _, d in steps][:2] == [0.0, 0.0]
    assert steps[2][1] > 0  # a new round after everyone refused waits a little
    always_full = _routing.PeerPlan(["a"], max_retries=1)
    assert len(_plan_run(always_full, {"a": [full] * 10})) == 2


def test_order_peers_prefers_free_workers_and_spreads_ties() -> None:
    workers = [_worker("busy", 3), _worker("idle1", 0), _worker("idle2", 0)]
    firsts = {_routing.order_peers(workers, rng=random.Random(seed))[0] for seed in range(20)}
    assert firsts == {"idle1", "idle2"}
    assert all(_routing.order_peers(workers, rng=random.Random(s))[-1] == "busy" for s in range(5))


def test_order_peers_counts_our_own_tasks_in_flight() -> None:
    # Telemetry says both are idle, but this process already runs 3 tasks on "a".
    workers = [_worker("a", 0), _worker("b", 1)]
    for seed in range(10):
        assert _routing.order_peers(workers, {"a": 3}, random.Random(seed)) == ["b", "a"]


def test_client_kwargs_leave_unset_values_to_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import SecretStr

    monkeypatch.setenv("AGENTFM_API_KEY", "from-env")
    monkeypatch.setenv("AGENTFM_GATEWAY_URL", "http://gw.env:1")
    unset = client_kwargs(
        gateway_url=None, api_key=None, timeout=None, retries=None, artifacts_dir=None
    )
    # idle_timeout is always passed: None there means "no bound", not "unset".
    assert unset == {
        "gateway_url": None,
        "routing_warning": False,
        "idle_timeout": agentfm.DEFAULT_IDLE_TIMEOUT,
    }
    with agentfm.AgentFMClient(**unset) as client:
        assert (client.gateway_url, client.api_key) == ("http://gw.env:1", "from-env")
        assert client.routing_warning is False
    unbounded = client_kwargs(
        gateway_url=None,
        api_key=None,
        timeout=None,
        retries=None,
        artifacts_dir=None,
        idle_timeout=None,
    )
    with agentfm.AgentFMClient(**unbounded) as client:
        assert client.idle_timeout is None
    given = client_kwargs(
        gateway_url="http://gw:2", api_key=SecretStr("k"), timeout=5.0, retries=0, artifacts_dir="d"
    )
    assert given == {
        "gateway_url": "http://gw:2",
        "routing_warning": False,
        "idle_timeout": agentfm.DEFAULT_IDLE_TIMEOUT,
        "api_key": "k",
        "timeout": 5.0,
        "retries": 0,
        "artifacts_dir": "d",
    }


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_drivers_fail_over_a_broken_stream_before_any_text(
    routing_mesh: EmbeddedMesh, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    # The broken peer goes first, so every call must fail over once to succeed.
    order = [routing_mesh.peer_id("broken"), routing_mesh.peer_id("echo0")]
    monkeypatch.setattr(_routing, "order_peers", lambda *_a, **_k: order)
    if mode == "sync":
        with agentfm.AgentFMClient(routing_mesh.url, api_key=None) as client:
            result, tried = _tasks.run_task(
                client, model=ENGINE, prompt="hi", max_retries=2, timeout=None
            )
            events = list(
                _tasks.stream_task(client, model=ENGINE, prompt="yo", max_retries=2, timeout=None)
            )
    else:
        async with agentfm.AsyncAgentFMClient(routing_mesh.url, api_key=None) as aclient:
            result, tried = await _tasks.arun_task(
                aclient, model=ENGINE, prompt="hi", max_retries=2, timeout=None
            )
            events = [
                e
                async for e in _tasks.astream_task(
                    aclient, model=ENGINE, prompt="yo", max_retries=2, timeout=None
                )
            ]
    assert tried == order
    assert result.text == "echo: hi\n"
    *texts, end = events
    assert "".join(str(t) for t in texts) == "echo: yo\n"
    assert isinstance(end, _tasks.StreamEnd)
    assert (end.peer_id, end.peers_tried) == (order[1], order)
    assert _routing.IN_FLIGHT.snapshot() == {}


async def test_drivers_give_up_after_max_retries(
    routing_mesh: EmbeddedMesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = [routing_mesh.peer_id("broken"), routing_mesh.peer_id("echo0")]
    monkeypatch.setattr(_routing, "order_peers", lambda *_a, **_k: order)
    with (
        agentfm.AgentFMClient(routing_mesh.url, api_key=None) as client,
        pytest.raises(agentfm.IncompleteStreamError),
    ):
        client.tasks.run(model=ENGINE, prompt="hi", max_retries=0)
    async with agentfm.AsyncAgentFMClient(routing_mesh.url, api_key=None) as aclient:
        with pytest.raises(agentfm.IncompleteStreamError):
            await aclient.tasks.run(model=ENGINE, prompt="hi", max_retries=0)
        with pytest.raises(agentfm.NoWorkerForModelError):
            await aclient.tasks.run(model="no-such-engine", prompt="hi")
        with pytest.raises(agentfm.InvalidRequestError):
            await aclient.tasks.run(model=ENGINE, worker_id=order[0], prompt="hi")


def test_routed_stream_reports_the_serving_attempt(
    routing_mesh: EmbeddedMesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = [routing_mesh.peer_id("echo0"), routing_mesh.peer_id("echo1")]
    monkeypatch.setattr(_routing, "order_peers", lambda *_a, **_k: order)
    with agentfm.AgentFMClient(routing_mesh.url, api_key=None) as client:
        stream = client.tasks.stream(model=ENGINE, prompt="hi", task_id="task_routed1")
        with stream:
            text = "".join(c.text for c in stream)
        assert text == "echo: hi\n"
        assert (stream.peer_id, stream.task_id, stream.peers_tried) == (
            order[0],
            "task_routed1",
            [order[0]],
        )
        assert stream.attempts == 1
