"""The sans-IO server-sent-events decoder."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentfm import IncompleteStreamError
from agentfm._streaming import SSEDecoder
from agentfm.streaming import SSE_DONE, classify_sse_line, parse_sse_lines


def decode(pieces: list[bytes]) -> list[str]:
    decoder = SSEDecoder()
    events = []
    for piece in pieces:
        events += decoder.feed(piece)
    events += decoder.flush()
    return [e.data for e in events]


def stream(*payloads: object, done: bool = True) -> bytes:
    out = b"".join(b"data: " + json.dumps(p).encode() + b"\n\n" for p in payloads)
    return out + (b"data: [DONE]\n\n" if done else b"")


def test_events_until_done() -> None:
    raw = stream({"a": 1}, {"b": "é"}) + b"data: ignored after done\n\n"
    assert [json.loads(d) for d in decode([raw])] == [{"a": 1}, {"b": "é"}]


def test_missing_done_is_incomplete() -> None:
    with pytest.raises(IncompleteStreamError):
        decode([stream({"a": 1}, done=False)])


def test_cut_mid_event_is_incomplete() -> None:
    with pytest.raises(IncompleteStreamError):
        decode([b'data: {"a": 1}\n\ndata: {"b'])


def test_comments_fields_and_crlf() -> None:
    raw = b":ready\r\nevent: update\r\ndata: one\r\ndata: two\r\n\r\nid: 3\ndata: [DONE]\n\n"
    decoder = SSEDecoder()
    events = decoder.feed(raw)
    assert [(e.event, e.data) for e in events] == [("update", "one\ntwo")]
    assert decoder.done


def test_done_without_trailing_blank_line_is_accepted() -> None:
    assert decode([b"data: x\n\ndata: [DONE]"]) == ["x"]


@settings(max_examples=100, deadline=None)
@given(
    payloads=st.lists(st.text(alphabet='aé😀{}:" ', max_size=10), max_size=5),
    data=st.data(),
)
def test_any_split_decodes_the_same(payloads: list[str], data: st.DataObject) -> None:
    raw = stream(*payloads)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=6)))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert [json.loads(d) for d in decode(pieces)] == payloads


def test_seed_line_helpers() -> None:
    assert classify_sse_line("data: [DONE]\n") is SSE_DONE
    assert classify_sse_line(": comment") is None
    assert classify_sse_line("data:   x") == "x"
    assert list(parse_sse_lines(["data: a", "", "data: [DONE]", "data: b"])) == ["a"]
