"""`MarkerDecoder(hold_rejection=True)`: a leading ``❌ ERROR:`` line is held back.

A worker that refuses a task answers with that one line and no marker. Holding it in the
decoder lets a routed stream fail over as if nothing had been emitted, with no gate of
its own on top of the decoder.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentfm import IncompleteStreamError, WorkerRejectedError
from agentfm._constants import ARTIFACT_INCOMING, ARTIFACT_NONE, WORKER_REJECTION_PREFIX
from agentfm._decoders import MarkerDecoder

REJECTION = WORKER_REJECTION_PREFIX + " worker at capacity\n"


def run(pieces: list[bytes], *, hold: bool = True) -> tuple[list[list[str]], MarkerDecoder]:
    """Every ``feed`` result, then the ``flush`` result, as the caller saw them."""
    decoder = MarkerDecoder(hold_rejection=hold)
    seen = [decoder.feed(piece) for piece in pieces]
    seen.append(decoder.flush())
    return seen, decoder


def joined(seen: list[list[str]]) -> str:
    return "".join(piece for pieces in seen for piece in pieces)


def test_a_lone_rejection_line_is_never_released() -> None:
    seen, decoder = run([REJECTION.encode()])
    assert seen == [[], []]
    assert decoder.emitted is False
    assert isinstance(decoder.error, WorkerRejectedError)
    assert str(decoder.error).startswith(WORKER_REJECTION_PREFIX)


def test_a_rejection_split_inside_its_prefix_is_held_from_the_first_byte() -> None:
    data = ("  " + REJECTION).encode()
    seen, decoder = run([data[:3], data[3:9], data[9:]])
    assert all(piece == [] for piece in seen)
    assert decoder.emitted is False
    with pytest.raises(WorkerRejectedError):
        decoder.raise_for_end()


def test_without_the_hold_the_rejection_line_reaches_the_caller() -> None:
    seen, decoder = run([REJECTION.encode()], hold=False)
    assert joined(seen) == REJECTION
    assert decoder.emitted is True
    assert isinstance(decoder.error, WorkerRejectedError)


def test_a_second_line_shows_it_was_output_and_releases_both() -> None:
    decoder = MarkerDecoder(hold_rejection=True)
    assert decoder.feed(REJECTION.encode()) == []
    assert decoder.emitted is False
    released = decoder.feed(b"more output\n")
    assert "".join(released) == REJECTION + "more output\n"
    assert decoder.emitted is True
    assert decoder.feed(b"tail\n") == ["tail\n"]


def test_an_error_line_that_ends_with_a_marker_is_output() -> None:
    body = (REJECTION + "\n" + ARTIFACT_INCOMING + "\n").encode()
    seen, decoder = run([body])
    assert seen[0] == []
    assert "".join(seen[-1]) == REJECTION
    assert decoder.error is None
    assert decoder.files_incoming
    assert decoder.emitted is True


def test_ordinary_output_is_released_at_once() -> None:
    decoder = MarkerDecoder(hold_rejection=True)
    assert decoder.feed(b"hello ") == ["hello "]
    assert decoder.emitted is True


def test_a_partial_prefix_then_other_text_is_released() -> None:
    decoder = MarkerDecoder(hold_rejection=True)
    assert decoder.feed("❌ ".encode()) == []
    assert "".join(decoder.feed(b"done\n")) == "❌ done\n"
    assert decoder.emitted is True


def test_a_held_line_cut_before_its_marker_is_dropped_with_the_rejection() -> None:
    seen, decoder = run([REJECTION.rstrip("\n").encode()])
    assert seen == [[], []]
    assert isinstance(decoder.error, WorkerRejectedError)


def test_an_empty_body_emits_nothing() -> None:
    seen, decoder = run([])
    assert seen == [[]]
    assert decoder.emitted is False
    assert isinstance(decoder.error, IncompleteStreamError)


@settings(max_examples=200, deadline=None)
@given(
    output=st.sampled_from(
        [
            "",
            "hello\n",
            REJECTION,
            REJECTION + "and more\n",
            "  " + REJECTION,
            "❌ ERR\n",
            "x" * 300 + "\n",
            "❌ Failed to start task: boom\n",
        ]
    ),
    marker=st.sampled_from([ARTIFACT_NONE, ARTIFACT_INCOMING, None]),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6),
)
def test_holding_changes_only_whether_a_rejection_is_shown(
    output: str, marker: str | None, cuts: list[int]
) -> None:
    """With the hold the text is the same, except a rejection's line, which never shows."""
    data = (output + ("\n" + marker + "\n" if marker else "")).encode()
    points = sorted({min(cut, len(data)) for cut in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    held, held_decoder = run(pieces, hold=True)
    plain, plain_decoder = run(pieces, hold=False)
    held_text, plain_text = joined(held), joined(plain)
    assert type(held_decoder.error) is type(plain_decoder.error)
    assert held_decoder.marker == plain_decoder.marker
    if isinstance(plain_decoder.error, WorkerRejectedError):
        assert held_text == ""
        assert held_decoder.emitted is False
    else:
        assert held_text == plain_text
        assert held_decoder.emitted is bool(plain_text)
