"""The sans-IO marker decoder of ``/api/execute`` bodies."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentfm import (
    AgentExitError,
    IncompleteStreamError,
    TaskStartError,
    WorkerRejectedError,
)
from agentfm._constants import ARTIFACT_INCOMING, ARTIFACT_NONE
from agentfm._streaming import MarkerDecoder, strip_failure_line
from agentfm.streaming import SentinelFilter, filter_iter


def decode(pieces: list[bytes]) -> tuple[str, MarkerDecoder]:
    decoder = MarkerDecoder()
    out: list[str] = []
    for piece in pieces:
        out += decoder.feed(piece)
    out += decoder.flush()
    return "".join(out), decoder


def body(output: str, marker: str = ARTIFACT_NONE) -> bytes:
    return (output + "\n" + marker + "\n").encode()


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("hello\n", "hello\n"),
        ("hello", "hello\n"),
        ("", ""),
        ("a\n\nb\n", "a\n\nb\n"),
        ("x\n\n", "x\n\n"),
        ("crlf\r\nline\r\n", "crlf\r\nline\r\n"),
    ],
)
def test_output_is_the_agent_text_without_the_separator(output: str, expected: str) -> None:
    text, decoder = decode([body(output)])
    assert text == expected
    assert decoder.marker == ARTIFACT_NONE
    assert decoder.error is None


def test_files_incoming_marker() -> None:
    text, decoder = decode([body("wrote a file\n", ARTIFACT_INCOMING)])
    assert text == "wrote a file\n"
    assert decoder.files_incoming


def test_fake_marker_mid_output_is_plain_text() -> None:
    raw = f"before\n{ARTIFACT_INCOMING}\nafter\n\n{ARTIFACT_NONE}\n".encode()
    text, decoder = decode([raw])
    assert text == f"before\n{ARTIFACT_INCOMING}\nafter\n"
    assert not decoder.files_incoming
    assert decoder.marker == ARTIFACT_NONE


def test_unknown_protocol_line_is_text_and_not_a_terminal_marker() -> None:
    text, decoder = decode([b"[AGENTFM: SOMETHING]\n"])
    assert text == "[AGENTFM: SOMETHING]\n"
    assert isinstance(decoder.error, IncompleteStreamError)


def test_missing_marker_is_incomplete() -> None:
    text, decoder = decode([b"partial out", b"put\nand a cut li"])
    assert text == "partial output\nand a cut li"
    with pytest.raises(IncompleteStreamError):
        decoder.raise_for_end()


def test_empty_body_is_incomplete() -> None:
    _, decoder = decode([])
    assert isinstance(decoder.error, IncompleteStreamError)


def test_worker_rejection_line() -> None:
    line = "❌ ERROR: Worker is at max capacity (1/1). Try another worker."
    text, decoder = decode([(line + "\n").encode()])
    assert text == line + "\n"
    with pytest.raises(WorkerRejectedError, match="max capacity"):
        decoder.raise_for_end()


def test_rejection_followed_by_marker_is_ordinary_output() -> None:
    _, decoder = decode([body("❌ ERROR: something the agent printed\n")])
    assert decoder.error is None


def test_partial_line_is_released_once_it_cannot_be_a_marker() -> None:
    decoder = MarkerDecoder()
    assert decoder.feed(b"tok") == ["tok"]
    assert decoder.feed(b"en\n") == ["en\n"]
    assert decoder.feed(b"  [AGENT") == []
    assert decoder.feed(b"X") == ["  [AGENTX"]
    assert decoder.feed(b" rest") == [" rest"]


def test_marker_prefix_is_held_until_decided() -> None:
    decoder = MarkerDecoder()
    assert decoder.feed(b"[AGENTFM: NO_") == []
    assert decoder.feed(b"WAY") == ["[AGENTFM: NO_WAY"]


def test_text_after_a_marker_looking_line_demotes_it() -> None:
    decoder = MarkerDecoder()
    out = decoder.feed(f"{ARTIFACT_INCOMING}\n  \n".encode())
    assert out == []
    out += decoder.feed(b"more\n\n" + ARTIFACT_NONE.encode() + b"\n")
    out += decoder.flush()
    assert "".join(out) == f"{ARTIFACT_INCOMING}\n  \nmore\n"
    assert decoder.marker == ARTIFACT_NONE


def test_marker_without_trailing_newline_counts() -> None:
    _, decoder = decode([b"ok\n\n[AGENTFM: FILES_INCOMING]"])
    assert decoder.files_incoming


def test_invalid_utf8_is_replaced_not_raised() -> None:
    text, _ = decode([b"bad \xff byte\n\n" + ARTIFACT_NONE.encode() + b"\n"])
    assert text == "bad \ufffd byte\n"


def test_sentinel_filter_keeps_the_seed_api() -> None:
    sentinel = SentinelFilter()
    text = "".join(sentinel.feed(body("hi\n", ARTIFACT_INCOMING))) + sentinel.finalize()
    assert text == "hi\n"
    assert sentinel.artifacts_incoming
    assert not sentinel.artifacts_complete
    assert "".join(filter_iter([body("x\n")])) == "x\n"


outputs = st.lists(
    st.sampled_from(
        ["a", "é", "€", "😀", "\n", "\r", " ", "[", "[AGENTFM:", ARTIFACT_INCOMING, "❌ ERROR:"]
    ),
    max_size=30,
).map("".join)


@settings(max_examples=150, deadline=None)
@given(output=outputs, incoming=st.booleans(), data=st.data())
def test_any_split_decodes_the_same(output: str, incoming: bool, data: st.DataObject) -> None:
    raw = body(output, ARTIFACT_INCOMING if incoming else ARTIFACT_NONE)
    whole, reference = decode([raw])
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=8)))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    split, decoder = decode(pieces)
    assert split == whole
    assert decoder.marker == reference.marker
    assert decoder.files_incoming == incoming


@pytest.mark.parametrize("text", ["héllo wörld 😀 ❌\n", "[AGENTFM: FILES_INCOMING] fake\n"])
def test_split_at_every_byte(text: str) -> None:
    raw = body(text, ARTIFACT_INCOMING)
    for cut in range(len(raw) + 1):
        got, decoder = decode([raw[:cut], raw[cut:]])
        assert got == text, cut
        assert decoder.files_incoming, cut
    one_by_one, decoder = decode([raw[i : i + 1] for i in range(len(raw))])
    assert one_by_one == text
    assert decoder.files_incoming


SANDBOX = "⚠️  Sandbox exited: "


@pytest.mark.parametrize("step", [1, 7, 4096])
@pytest.mark.parametrize(
    ("body", "kind", "detail", "text"),
    [
        (
            f"out\n{SANDBOX}exit status 3\n\n[AGENTFM: NO_FILES]\n",
            AgentExitError,
            "exit status 3",
            "out\n",
        ),
        (
            f"{'y' * 500}{SANDBOX}signal: killed\n\n[AGENTFM: FILES_INCOMING]\n",
            AgentExitError,
            "signal: killed",
            "y" * 500,
        ),
        (
            "❌ Failed to start task: no image\n\n[AGENTFM: NO_FILES]\n",
            TaskStartError,
            "no image",
            "",
        ),
    ],
)
def test_failure_lines_before_the_marker_are_typed(
    step: int, body: str, kind: type, detail: str, text: str
) -> None:
    raw = body.encode()
    decoder = MarkerDecoder()
    out: list[str] = []
    for i in range(0, len(raw), step):
        out += decoder.feed(raw[i : i + step])
    out += decoder.flush()
    assert decoder.marker is not None  # the worker's normal marker ended the stream ...
    assert isinstance(decoder.error, kind)  # ... and yet the task failed
    assert decoder.error.exit_detail == detail
    assert decoder.error.files_incoming is ("FILES_INCOMING" in body)
    assert strip_failure_line("".join(out)) == text
    with pytest.raises(kind):
        decoder.raise_for_end()


def test_a_failure_line_followed_by_more_output_is_just_output() -> None:
    decoder = MarkerDecoder()
    out = decoder.feed(f"{SANDBOX}exit status 1 (quoted by the agent)\nthen fine\n\n".encode())
    out += decoder.feed(b"[AGENTFM: NO_FILES]\n")
    out += decoder.flush()
    assert decoder.error is None
    assert "".join(out).endswith("then fine\n")
