"""The pure mapping between LlamaIndex types and SDK inputs/results (no network)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    ImageBlock,
    MessageRole,
    TextBlock,
)

from agentfm import (
    IncompleteStreamError,
    InvalidRequestError,
    ModelNotFoundError,
    ScatterResult,
    WorkerProfile,
)
from agentfm_integrations.llama_index import _convert
from agentfm_integrations.llama_index._batch import Redispatch

if TYPE_CHECKING:
    from pathlib import Path


def _worker(peer_id: str, current: int, max_tasks: int) -> WorkerProfile:
    return WorkerProfile(
        peer_id=peer_id, name="echo", current_tasks=current, max_tasks=max_tasks, hardware="echo"
    )


def test_messages_to_wire_keeps_roles_and_joins_text_blocks() -> None:
    messages = [
        ChatMessage(role=MessageRole.SYSTEM, content="be brief"),
        ChatMessage(role=MessageRole.USER, blocks=[TextBlock(text="a"), TextBlock(text="b")]),
    ]
    assert _convert.messages_to_wire(messages) == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "ab"},
    ]


def test_messages_to_wire_rejects_non_text_blocks() -> None:
    message = ChatMessage(role=MessageRole.USER, blocks=[ImageBlock(image=b"\x89PNG")])
    with pytest.raises(ValueError, match="text only"):
        _convert.messages_to_wire([message])


def test_describe_files_gives_path_mime_size_and_sha256(tmp_path: Path) -> None:
    md = tmp_path / "answer.md"
    md.write_text("# hi\n")
    blob = tmp_path / "data.unknownext"
    blob.write_bytes(b"\x00\x01")
    (tmp_path / "sub").mkdir()

    refs = _convert.describe_files([md, blob, tmp_path / "sub", tmp_path / "missing"])

    assert refs == [
        {
            "path": str(md),
            "mime_type": "text/markdown",
            "size": 5,
            "sha256": hashlib.sha256(b"# hi\n").hexdigest(),
        },
        {
            "path": str(blob),
            "mime_type": "application/octet-stream",
            "size": 2,
            "sha256": hashlib.sha256(b"\x00\x01").hexdigest(),
        },
    ]


def test_image_blocks_only_for_images(tmp_path: Path) -> None:
    png = tmp_path / "plot.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    txt = tmp_path / "notes.txt"
    txt.write_text("x")
    blocks = _convert.image_blocks(_convert.describe_files([txt, png]))
    assert len(blocks) == 1
    assert blocks[0].path == png
    assert blocks[0].image_mimetype == "image/png"


def test_responses_carry_provenance_in_kwargs_and_raw() -> None:
    meta = _convert.ResponseMeta(model="echo", peer_id="12D3KooWx", task_id="t1", files=[])
    completion = _convert.completion_response("hello", meta, delta="lo")
    chat = _convert.chat_response("hello", meta)

    assert completion.text == "hello"
    assert completion.delta == "lo"
    assert chat.message.role == MessageRole.ASSISTANT
    assert chat.message.content == "hello"
    for response in (completion, chat):
        assert response.additional_kwargs == {"peer_id": "12D3KooWx", "task_id": "t1", "files": []}
        assert response.raw["model"] == "echo"


def test_pick_peer_prefers_first_with_free_slot() -> None:
    busy = _worker("12D3KooWbusy", current=1, max_tasks=1)
    free = _worker("12D3KooWfree", current=0, max_tasks=2)
    assert _convert.pick_peer([busy, free], "echo") == "12D3KooWfree"
    assert _convert.pick_peer([busy], "echo") == "12D3KooWbusy"


def test_pick_peer_and_peer_ids_raise_typed_error_when_nothing_matches() -> None:
    with pytest.raises(ModelNotFoundError, match="nope"):
        _convert.pick_peer([], "nope")
    with pytest.raises(ModelNotFoundError):
        _convert.peer_ids([], "nope")
    assert _convert.peer_ids([_worker("12D3KooWa", 0, 1)], "echo") == ["12D3KooWa"]


def test_scatter_meta_and_error() -> None:
    ok = ScatterResult(
        prompt="p",
        worker_id="12D3KooWa",
        status="success",
        text="t",
        index=3,
        task_id="task-3",
        attempts=2,
        peers_tried=["12D3KooWb", "12D3KooWa"],
    )
    meta = _convert.scatter_meta(ok, "echo", [])
    assert meta["peer_id"] == "12D3KooWa"
    assert meta["task_id"] == "task-3"
    assert meta["attempts"] == 2
    assert meta["peers_tried"] == ["12D3KooWb", "12D3KooWa"]

    failed = ScatterResult(
        prompt="p", worker_id="12D3KooWa", status="failed", error="boom", index=1
    )
    error = _convert.scatter_error(failed)
    assert "boom" in str(error)


def _failed(index: int, peer: str, exc: Exception) -> ScatterResult:
    return ScatterResult(
        prompt="p",
        worker_id=peer,
        status="failed",
        error=str(exc),
        index=index,
        attempts=1,
        peers_tried=[peer],
        exception=exc,
    )


def test_redispatch_reruns_broken_streams_on_untried_peers_only() -> None:
    plan = Redispatch(["a", "b", "c"], ["p1", "p2", "p3"], max_retries=2, enabled=True)
    [(indices, peers, retries)] = plan.round()
    assert (indices, peers, retries) == ([0, 1, 2], ["p1", "p2", "p3"], 2)

    ok = ScatterResult(
        prompt="a",
        worker_id="p2",
        status="success",
        text="A",
        index=0,
        attempts=1,
        peers_tried=["p2"],
    )
    assert plan.record(indices, ok) is not None
    assert plan.record(indices, _failed(1, "p1", IncompleteStreamError("reset"))) is None
    final = plan.record(indices, _failed(2, "p1", InvalidRequestError("bad")))
    assert final is not None
    assert final.index == 2  # not rerun: another peer cannot fix a bad request

    [(indices, peers, retries)] = plan.round()
    assert (indices, peers, retries) == ([1], ["p2", "p3"], 1)
    rerun = ScatterResult(
        prompt="b",
        worker_id="p3",
        status="success",
        text="B",
        index=0,
        attempts=1,
        peers_tried=["p3"],
    )
    final = plan.record(indices, rerun)
    assert final is not None
    assert (final.index, final.attempts, final.peers_tried) == (1, 2, ["p1", "p3"])
    assert plan.round() == []


def test_redispatch_disabled_or_out_of_attempts_keeps_the_failure() -> None:
    off = Redispatch(["a"], ["p1", "p2"], max_retries=2, enabled=False)
    [(indices, _, _)] = off.round()
    assert off.record(indices, _failed(0, "p1", IncompleteStreamError("reset"))) is not None

    spent = Redispatch(["a"], ["p1", "p2"], max_retries=0, enabled=True)
    [(indices, _, _)] = spent.round()
    assert spent.record(indices, _failed(0, "p1", IncompleteStreamError("reset"))) is not None
