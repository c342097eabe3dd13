"""Decoder properties beyond the tests beside it: random bytes, CRLF, SSE at every byte."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentfm import AgentFMError, IncompleteStreamError
from agentfm._streaming import MarkerDecoder, SSEDecoder

MARKER = b"\n[AGENTFM: FILES_INCOMING]\n"


def run_marker(pieces: list[bytes]) -> tuple[str, str | None, type[BaseException] | None]:
    decoder = MarkerDecoder()
    out: list[str] = []
    for piece in pieces:
        out += decoder.feed(piece)
    out += decoder.flush()
    return "".join(out), decoder.marker, type(decoder.error) if decoder.error else None


def run_sse(pieces: list[bytes]) -> tuple[list[tuple[str | None, str]], bool]:
    decoder = SSEDecoder()
    events = []
    for piece in pieces:
        events += decoder.feed(piece)
    try:
        events += decoder.flush()
    except IncompleteStreamError:
        return [(e.event, e.data) for e in events], False
    return [(e.event, e.data) for e in events], True


def split(raw: bytes, cuts: list[int]) -> list[bytes]:
    cuts = sorted(min(c, len(raw)) for c in cuts)
    return [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]


noise = st.one_of(
    st.binary(max_size=200),
    st.lists(
        st.sampled_from(
            [
                b"\xe2\x82",
                b"\xac",
                b"\xf0\x9f",
                b"\x98\x80",
                b"\xff",
                b"\r",
                b"\n",
                b" ",
                b"\t",
                b"[AGENTFM:",
                b" FILES_INCOMING]",
                b" NO_FILES]",
                b"\xe2\x9d\x8c ERROR:",
                b"data:",
                b"event: x",
                b":c",
                b"[DONE]",
                b"x",
            ]
        ),
        max_size=40,
    ).map(b"".join),
)


@settings(max_examples=200, deadline=None)
@given(raw=noise, cuts=st.lists(st.integers(0, 400), max_size=8))
def test_marker_decoder_random_bytes_never_crash_and_split_invariant(
    raw: bytes, cuts: list[int]
) -> None:
    whole = run_marker([raw])
    assert run_marker(split(raw, cuts)) == whole
    _text, marker, error = whole
    # Exactly one outcome: a terminal marker, or a typed failure.
    assert (marker is None) != (error is None)
    if error is not None:
        assert issubclass(error, AgentFMError)


@settings(max_examples=200, deadline=None)
@given(raw=noise, cuts=st.lists(st.integers(0, 400), max_size=8))
def test_sse_decoder_random_bytes_never_crash_and_split_invariant(
    raw: bytes, cuts: list[int]
) -> None:
    assert run_sse(split(raw, cuts)) == run_sse([raw])


@settings(max_examples=100, deadline=None)
@given(
    lines=st.lists(st.text(alphabet="aé€😀 [\t", max_size=12), max_size=6),
    cuts=st.lists(st.integers(0, 300), max_size=6),
)
def test_crlf_output_decodes_the_same_at_any_split(lines: list[str], cuts: list[int]) -> None:
    raw = "".join(line + "\r\n" for line in lines).encode() + MARKER
    text, marker, error = run_marker(split(raw, cuts))
    assert error is None
    assert marker == "[AGENTFM: FILES_INCOMING]"
    assert text == "".join(line + "\r\n" for line in lines)


@pytest.mark.parametrize("text", ["héllo 😀 €", "[AGENTFM: FILES_INCOMING]", "❌ ERROR: x"])
def test_sse_multibyte_split_at_every_byte(text: str) -> None:
    payload = json.dumps({"content": text}, ensure_ascii=False)
    raw = f"event: msg\r\ndata: {payload}\r\n\r\ndata: [DONE]\n\n".encode()
    expected = ([("msg", payload)], True)
    for cut in range(len(raw) + 1):
        assert run_sse([raw[:cut], raw[cut:]]) == expected, cut
    assert run_sse([raw[i : i + 1] for i in range(len(raw))]) == expected


def test_marker_with_crlf_and_rejection_at_every_byte() -> None:
    raw = "❌ ERROR: Worker is at max capacity (1/1). Try another worker.\r\n".encode()
    for cut in range(len(raw) + 1):
        _text, marker, error = run_marker([raw[:cut], raw[cut:]])
        assert marker is None
        assert error is not None, cut
        assert error.__name__ == "WorkerRejectedError", cut
