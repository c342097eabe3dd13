"""The flows of ``client.tasks`` driven by a scripted driver: decisions without sockets.

Each test answers a flow's steps by hand, as the sync and the async driver would, and
checks what the flow decides (which peer next, when to wait, when to give up).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

import agentfm
from agentfm import _routing
from agentfm._artifact_flow import collect_flow
from agentfm._flow import Emit, Pump, Sleep
from agentfm._poll import poll_until
from agentfm._streaming import StreamState
from agentfm._task_flows import arguments, routed_stream_flow, run_call
from agentfm._task_steps import (
    Download,
    Extract,
    MatchWorkers,
    NoArtifactRoute,
    OpenTask,
    Pull,
    RunTask,
    TaskFlow,
    TaskStep,
)
from agentfm.models import TaskChunk

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

WORKERS = [
    agentfm.WorkerProfile(peer_id="a", current_tasks=0, max_tasks=4),
    agentfm.WorkerProfile(peer_id="b", current_tasks=2, max_tasks=4),
]


def drive(flow: TaskFlow[Any], perform: Callable[[TaskStep], Any]) -> tuple[Any, list[Any]]:
    """Run ``flow``, answering each step with ``perform(step)`` (an exception fails it)."""
    pump = Pump(flow)
    emitted: list[Any] = []
    while (step := pump.next()) is not None:
        if isinstance(step, Emit):
            emitted.append(step.value)
            continue
        try:
            pump.send(perform(step))
        except Exception as exc:
            pump.throw(exc)
    return pump.result, emitted


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_poll_until_tries_at_once_then_never_sleeps_past_the_deadline() -> None:
    clock = Clock()
    pauses: list[float] = []
    for pause in poll_until(1.0, 0.4, clock=clock):
        pauses.append(pause)
        clock.now += pause
    assert pauses == [0.0, 0.4, 0.4, pytest.approx(0.2)]
    assert clock.now == pytest.approx(101.0)


def test_poll_until_with_no_time_tries_once() -> None:
    assert list(poll_until(0.0, 0.5, clock=Clock())) == [0.0]


def test_arguments_are_a_methods_locals_without_self() -> None:
    class Twin:
        def call(self, a: int, *, b: str) -> dict[str, Any]:
            return arguments(locals())

    assert Twin().call(1, b="x") == {"a": 1, "b": "x"}


def _routed_run(**overrides: Any) -> TaskFlow[agentfm.TaskResult]:
    options: dict[str, Any] = {
        "worker_id": None,
        "prompt": "hi",
        "artifact_timeout": 5.0,
        "task_id": "task_first",
        "timeout": None,
        "peer_id": None,
        "feedback": None,
        "feedback_rating": None,
        "idle_timeout": None,
        "model": "m",
        "max_retries": 2,
        "min_honesty": None,
    }
    return run_call(**{**options, **overrides})


def test_routed_run_fails_over_to_an_untried_peer_and_keeps_the_task_id_for_the_first() -> None:
    runs: list[dict[str, Any]] = []

    def perform(step: TaskStep) -> Any:
        if isinstance(step, MatchWorkers):
            assert (step.model, step.min_honesty) == ("m", None)
            return WORKERS
        assert isinstance(step, RunTask)
        runs.append(step.kwargs)
        if step.kwargs["worker_id"] == "a":
            raise agentfm.IncompleteStreamError("cut", code="incomplete_stream")
        return agentfm.TaskResult(worker_id=agentfm.PeerID("b"), text="ok")

    result, _ = drive(_routed_run(), perform)
    assert [r["worker_id"] for r in runs] == ["a", "b"]
    assert [r["task_id"] for r in runs] == ["task_first", None]
    assert result.peers_tried == ["a", "b"]
    assert _routing.IN_FLIGHT.snapshot() == {}


def test_routed_run_does_not_fail_over_a_bad_request() -> None:
    def perform(step: TaskStep) -> Any:
        if isinstance(step, MatchWorkers):
            return WORKERS
        raise agentfm.InvalidRequestError("bad", code="invalid_request_error", status=400)

    with pytest.raises(agentfm.InvalidRequestError):
        drive(_routed_run(), perform)


def test_refusals_from_every_peer_wait_before_the_next_round() -> None:
    steps: list[TaskStep] = []

    def perform(step: TaskStep) -> Any:
        steps.append(step)
        if isinstance(step, MatchWorkers):
            return WORKERS
        if isinstance(step, Sleep):
            return None
        raise agentfm.WorkerRejectedError("full", code="worker_rejected")

    with pytest.raises(agentfm.WorkerRejectedError):
        drive(_routed_run(max_retries=1), perform)
    kinds = [type(step).__name__ for step in steps]
    assert kinds == ["MatchWorkers", "RunTask", "RunTask", "Sleep", "RunTask", "RunTask"]


def test_routed_run_without_a_match_raises_no_worker_for_model() -> None:
    with pytest.raises(agentfm.NoWorkerForModelError):
        drive(_routed_run(), lambda step: [])


def test_routed_run_checks_its_arguments_before_any_step() -> None:
    with pytest.raises(agentfm.InvalidRequestError):
        _routed_run(worker_id="a")


class FakeStream:
    """What a flow reads of a task stream opened with `OpenTask`."""

    def __init__(self, peer: str, texts: list[str], error: Exception | None = None) -> None:
        self.peer_id, self.task_id, self.files_incoming = peer, f"task_{peer}", False
        self.chunks: Iterator[str] = iter(texts)
        self.error = error


def _pull(stream: FakeStream) -> TaskChunk | None:
    text = next(stream.chunks, None)
    if text is None and stream.error is not None:
        raise stream.error
    return None if text is None else TaskChunk(text=text, kind="text")


def test_routed_stream_holds_back_a_rejection_line_and_fails_over() -> None:
    streams = {
        "a": FakeStream(
            "a", ["❌ ERROR: ", "worker at capacity"], agentfm.WorkerRejectedError("x")
        ),
        "b": FakeStream("b", ["hel", "lo\n"]),
    }

    def perform(step: TaskStep) -> Any:
        if isinstance(step, MatchWorkers):
            return WORKERS
        if isinstance(step, OpenTask):
            return streams[step.kwargs["worker_id"]]
        assert isinstance(step, Pull)
        return _pull(step.stream)

    state = StreamState(task_id="task_caller")
    _, emitted = drive(routed_stream_flow(state, "m", None, 2, {"prompt": "hi"}), perform)
    assert "".join(chunk.text for chunk in emitted) == "hello\n"
    assert (state.peer_id, state.task_id, state.peers_tried) == ("b", "task_b", ["a", "b"])
    assert state.finished


def test_routed_stream_does_not_fail_over_once_text_reached_the_caller() -> None:
    opened: list[str] = []

    def perform(step: TaskStep) -> Any:
        if isinstance(step, MatchWorkers):
            return WORKERS
        if isinstance(step, OpenTask):
            opened.append(step.kwargs["worker_id"])
            return FakeStream("a", ["partial"], agentfm.IncompleteStreamError("cut"))
        assert isinstance(step, Pull)
        return _pull(step.stream)

    flow = routed_stream_flow(StreamState(), "m", None, 2, {"prompt": "hi"})
    with pytest.raises(agentfm.IncompleteStreamError):
        drive(flow, perform)
    assert opened == ["a"]
    assert _routing.IN_FLIGHT.snapshot() == {}


def _collect(tmp_path: Path, *, shared: bool, route_missing: bool = False) -> TaskFlow[list[Path]]:
    manager = agentfm.ArtifactManager(tmp_path, tmp_path) if shared else None
    return collect_flow(
        "task_1",
        manager,
        route_missing=route_missing,
        client_timeout=httpx.Timeout(5.0),
        timeout=60.0,
    )


def test_collect_remembers_a_gateway_without_the_route_and_gives_up(tmp_path: Path) -> None:
    steps: list[TaskStep] = []

    def perform(step: TaskStep) -> Any:
        steps.append(step)
        if isinstance(step, Download):
            raise agentfm.AgentFMError("no route", code="route_not_found", status=404)
        return None

    files, _ = drive(_collect(tmp_path, shared=False), perform)
    assert files == []
    assert [type(step).__name__ for step in steps] == ["Download", "NoArtifactRoute"]


def test_collect_waits_while_the_zip_is_absent_then_extracts_the_download(
    tmp_path: Path,
) -> None:
    answers: list[Any] = [
        agentfm.AgentFMError("not yet", code="not_found", status=404),
        None,
    ]
    steps: list[TaskStep] = []

    def perform(step: TaskStep) -> Any:
        steps.append(step)
        if isinstance(step, Download):
            answer = answers.pop(0)
            if answer is not None:
                raise answer
            return None
        if isinstance(step, Extract):
            assert step.zip_path.name == ".task_1.zip.download"
            assert not step.if_present
            return [Path("out.txt")]
        return None

    files, _ = drive(_collect(tmp_path, shared=False), perform)
    assert files == [Path("out.txt")]
    assert [type(step).__name__ for step in steps] == ["Download", "Sleep", "Download", "Extract"]


def test_collect_with_a_shared_folder_only_polls_it_once_the_route_is_known_missing(
    tmp_path: Path,
) -> None:
    looks = 0

    def perform(step: TaskStep) -> Any:
        nonlocal looks
        assert not isinstance(step, (Download, NoArtifactRoute))
        if isinstance(step, Extract):
            assert step.if_present
            looks += 1
            return None if looks < 3 else [Path("a")]
        return None

    files, _ = drive(_collect(tmp_path, shared=True, route_missing=True), perform)
    assert files == [Path("a")]
    assert looks == 3


def test_collect_passes_other_errors_through(tmp_path: Path) -> None:
    def perform(step: TaskStep) -> Any:
        raise agentfm.AuthenticationError("key", code="unauthorized", status=401)

    with pytest.raises(agentfm.AuthenticationError):
        drive(_collect(tmp_path, shared=False), perform)
