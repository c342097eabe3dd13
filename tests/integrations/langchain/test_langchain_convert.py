"""Pure mapping between LangChain types and the SDK (no sockets)."""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from langchain_core import exceptions as lc_exc
from langchain_core.messages import (
    AIMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

import agentfm
from agentfm_integrations.langchain import _convert as cv
from agentfm_integrations.langchain import _mesh

if TYPE_CHECKING:
    from pathlib import Path


def test_messages_flatten_like_the_gateway() -> None:
    messages = [
        SystemMessage("S"),
        HumanMessage("Hi", name="bob"),
        AIMessage("Hello"),
        ChatMessage(role="critic", content="meh"),
        ToolMessage("42", tool_call_id="t1"),
    ]
    assert cv.to_wire_messages(messages) == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "critic", "content": "meh"},
        {"role": "tool", "content": "42"},
    ]
    assert cv.to_prompt([SystemMessage("S"), HumanMessage("Hi")]) == (
        "system: S\n\nuser: Hi\n\nassistant:"
    )


def test_text_blocks_are_joined_and_media_refused() -> None:
    msg = HumanMessage(content=[{"type": "text", "text": "a"}, "b"])
    assert cv.message_text(msg) == "ab"
    image = HumanMessage(content=[{"type": "image", "url": "http://x/y.png"}])
    with pytest.raises(ValueError, match="text only"):
        cv.message_text(image)


@pytest.mark.parametrize(
    ("text", "stop", "expected"),
    [
        ("hello you there", ["you"], ("hello ", True)),
        ("hello", ["you"], ("hello", False)),
        ("a STOP b END", ["END", "STOP"], ("a ", True)),
        ("abc", None, ("abc", False)),
        ("abc", [""], ("abc", False)),
    ],
)
def test_truncate_at_stop(text: str, stop: list[str] | None, expected: tuple[str, bool]) -> None:
    assert cv.truncate_at_stop(text, stop) == expected


@pytest.mark.parametrize("split", range(1, 14))
def test_stop_scanner_handles_a_stop_split_across_chunks(split: int) -> None:
    text = "hello END more"
    scan = cv.StopScanner(["END"])
    out = scan.feed(text[:split])
    out += scan.feed(text[split:])
    out += scan.flush()
    assert out == "hello "
    assert scan.stopped


def test_stop_scanner_releases_everything_without_a_stop() -> None:
    scan = cv.StopScanner(["XYZ"])
    out = "".join(scan.feed(p) for p in ["ab", "cX", "Y", "d"]) + scan.flush()
    assert out == "abcXYd"
    assert not scan.stopped
    assert cv.StopScanner(None).feed("abc") == "abc"


def test_usage_is_estimated_and_flagged() -> None:
    usage = cv.estimated_usage("x" * 8, "y" * 5)
    assert usage == {"input_tokens": 2, "output_tokens": 2, "total_tokens": 4}
    md = cv.response_metadata(model="echo", peer_id="p", task_id="t", finish_reason="stop")
    assert md["model_provider"] == "agentfm"
    assert md["agentfm"]["usage_estimated"] is True
    assert "files" not in md["agentfm"]


def test_file_refs_describe_files_by_reference(tmp_path: Path) -> None:
    f = tmp_path / "answer.md"
    f.write_text("# hi\n")
    (ref,) = cv.file_refs([f, tmp_path / "gone.txt"])
    assert ref == {
        "path": str(f),
        "mime_type": "text/markdown",
        "size": 5,
        "sha256": hashlib.sha256(b"# hi\n").hexdigest(),
    }


@pytest.mark.parametrize(
    ("sdk_error", "model_error"),
    [
        (agentfm.RateLimitError, lc_exc.ModelRateLimitError),
        (agentfm.AgentFMTimeoutError, lc_exc.ModelTimeoutError),
        (agentfm.GatewayConnectionError, lc_exc.ModelConnectionError),
        (agentfm.AuthenticationError, lc_exc.ModelAuthenticationError),
        (agentfm.DispatchRefusedError, lc_exc.ModelPermissionDeniedError),
        (agentfm.InvalidRequestError, lc_exc.ModelInvalidRequestError),
        (agentfm.ModelNotFoundError, lc_exc.ModelNotFoundError),
        (agentfm.WorkerNotFoundError, lc_exc.ModelNotFoundError),
        (agentfm.MeshOverloadedError, lc_exc.ModelAPIError),
        (agentfm.WorkerStreamError, lc_exc.ModelAPIError),
        (agentfm.IncompleteStreamError, lc_exc.ModelAPIError),
        (agentfm.WorkerRejectedError, lc_exc.ModelAPIError),
    ],
)
def test_errors_map_to_core_model_errors(
    sdk_error: type[agentfm.AgentFMError], model_error: type[Exception]
) -> None:
    mapped = cv.to_model_error(sdk_error("boom"))
    assert type(mapped) is model_error
    assert str(mapped) == "boom"


def test_failover_policy() -> None:
    assert _mesh.can_fail_over(agentfm.WorkerUnreachableError("x"), emitted=False)
    assert not _mesh.can_fail_over(agentfm.WorkerUnreachableError("x"), emitted=True)
    assert not _mesh.can_fail_over(agentfm.AuthenticationError("x"), emitted=False)
    assert not _mesh.can_fail_over(ValueError("x"), emitted=False)
    with pytest.raises(agentfm.ModelNotFoundError):
        _mesh.require_peers("nope", [])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("echo", "echo"),
        ("Deep Research (v2)!", "Deep_Research_v2"),
        ("ünïcode", "n_code"),
        ("", "agentfm_worker"),
        ("x" * 80, "x" * 64),
    ],
)
def test_safe_tool_name(raw: str, expected: str) -> None:
    assert cv.safe_tool_name(raw) == expected
    assert cv.TOOL_NAME_RE.match(cv.safe_tool_name(raw))


def test_unique_tool_names_suffix_clashes_with_peer_tail() -> None:
    names = cv.unique_tool_names(
        ["echo", "echo", "writer"], ["12D3KooWaaaaAAAA", "12D3KooWbbbbBBBB", "12D3KooWcccc"]
    )
    assert names == ["echo_aaaaAAAA", "echo_bbbbBBBB", "writer"]
    assert all(cv.TOOL_NAME_RE.match(n) for n in names)


def test_scatter_summary_lists_failures() -> None:
    summary = cv.scatter_summary(
        [
            {"index": 0, "status": "success", "text": "hello\nworld", "files": [{}]},
            {"index": 1, "status": "failed", "text": "", "error": "peer reset"},
        ]
    )
    assert summary.splitlines() == [
        "1/2 prompts succeeded.",
        "[0] ok (1 file): hello world",
        "[1] FAILED: peer reset",
    ]


def test_import_without_langchain_names_the_extra(tmp_path: Path) -> None:
    # A meta-path blocker stands in for an environment without langchain-core.
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'langchain_core':\n"
        "            raise ImportError('blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import agentfm\n"
        "assert not any(m.startswith('langchain') for m in sys.modules)\n"
        "try:\n"
        "    import agentfm_integrations.langchain\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert 'pip install "agentfm-integrations[langchain]"' in out


def test_rejection_gate_holds_only_a_leading_rejection_line() -> None:
    gate = _mesh.RejectionGate()
    assert gate.feed("❌ ERR") == ""
    assert gate.feed("OR: Worker is at max capacity (1/1).\n") == ""
    assert not gate.emitted  # a failure now may still fail over
    assert gate.feed("but more output\n") == (
        "❌ ERROR: Worker is at max capacity (1/1).\nbut more output\n"
    )
    assert gate.emitted
    plain = _mesh.RejectionGate()
    assert plain.feed("hello") == "hello"
    assert plain.feed(" world") == " world"
    ended = _mesh.RejectionGate()
    assert ended.feed("❌ ERROR: x\n") == ""
    assert ended.flush() == "❌ ERROR: x\n"


def _result(index: int, ok: bool, peer: str, exc: Exception | None = None) -> agentfm.ScatterResult:
    return agentfm.ScatterResult(
        prompt=f"p{index}",
        worker_id=peer,
        status="success" if ok else "failed",
        text="t" if ok else "",
        index=index,
        attempts=1,
        peers_tried=[peer],
        error=None if ok else "x",
        exception=exc,
    )


def test_failover_rounds_resend_only_failed_items_to_untried_peers() -> None:
    plan = _mesh.FailoverRounds(["a", "b", "c"], ["p1", "p2", "p3"], max_retries=2)
    first = plan.next_round()
    assert first is not None
    assert (first.indexes, first.peers, first.max_retries) == ([0, 1, 2], ["p1", "p2", "p3"], 2)
    broken = agentfm.IncompleteStreamError("reset")
    assert plan.settle(_result(0, True, "p1")) is not None
    assert plan.settle(_result(1, False, "p2", broken)) is None
    final = plan.settle(_result(2, False, "p3", agentfm.AuthenticationError("no")))
    assert final is not None
    assert (final.index, final.ok) == (2, False)
    second = plan.next_round()
    assert second is not None
    assert (second.indexes, second.prompts, second.peers, second.max_retries) == (
        [1],
        ["b"],
        ["p1", "p3"],
        1,
    )
    done = plan.settle(_result(0, True, "p1"))  # index is the position within the round
    assert done is not None
    assert (done.index, done.attempts, done.peers_tried) == (1, 2, ["p2", "p1"])
    assert plan.next_round() is None


def test_failover_rounds_respect_the_budget() -> None:
    plan = _mesh.FailoverRounds(["a"], ["p1", "p2"], max_retries=0)
    assert plan.next_round() is not None
    final = plan.settle(_result(0, False, "p1", agentfm.IncompleteStreamError("reset")))
    assert final is not None
    assert not final.ok
    assert plan.next_round() is None


def _plan_run(
    plan: _mesh.PeerPlan, outcomes: dict[str, list[Exception]]
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
    plan = _mesh.PeerPlan(["a", "b", "c", "a"], max_retries=1)
    steps = _plan_run(plan, {"a": [broken], "b": [broken], "c": []})
    assert steps == [("a", 0.0), ("b", 0.0)]  # two failures use the budget of 1 retry
    assert plan.tried == ["a", "b"]
    ok = _mesh.PeerPlan(["a", "b"], max_retries=2)
    assert _plan_run(ok, {"a": [broken]}) == [("a", 0.0), ("b", 0.0)]


def test_peer_plan_cycles_refusing_peers_with_backoff() -> None:
    full = agentfm.WorkerRejectedError("❌ ERROR: Worker is at max capacity (4/4).")
    plan = _mesh.PeerPlan(["a", "b"], max_retries=2)
    steps = _plan_run(plan, {"a": [full, full], "b": [full]})
    assert [p for p, _ in steps] == ["a", "b", "a", "b"]
    assert [d for _, d in steps][:2] == [0.0, 0.0]
    assert steps[2][1] > 0  # a new round after everyone refused waits a little
    always_full = _mesh.PeerPlan(["a"], max_retries=1)
    assert len(_plan_run(always_full, {"a": [full] * 10})) == 2


def test_order_peers_prefers_free_workers_and_spreads_ties() -> None:
    def worker(peer: str, current: int) -> agentfm.WorkerProfile:
        return agentfm.WorkerProfile(peer_id=peer, current_tasks=current, max_tasks=4)

    workers = [worker("busy", 3), worker("idle1", 0), worker("idle2", 0)]
    firsts = {_mesh.order_peers(workers, random.Random(seed))[0] for seed in range(20)}
    assert firsts == {"idle1", "idle2"}
    assert all(_mesh.order_peers(workers, random.Random(s))[-1] == "busy" for s in range(5))
