"""The pure mapping between LlamaIndex types and SDK inputs/results (no network)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    ImageBlock,
    MessageRole,
    TextBlock,
)

from agentfm import ScatterResult, describe_files
from agentfm_integrations.llama_index import _convert

if TYPE_CHECKING:
    from pathlib import Path


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


def test_image_blocks_only_for_images(tmp_path: Path) -> None:
    png = tmp_path / "plot.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    txt = tmp_path / "notes.txt"
    txt.write_text("x")
    blocks = _convert.image_blocks(describe_files([txt, png]))
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
