"""`decode_whole` gives exactly what the incremental `MarkerDecoder` gives, however split."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agentfm._constants import ARTIFACT_INCOMING, ARTIFACT_NONE, WORKER_REJECTION_PREFIX
from agentfm._decoders import (
    SANDBOX_EXIT_PREFIX,
    START_FAILED_PREFIX,
    MarkerDecoder,
    decode_whole,
)
from agentfm.exceptions import AgentExitError


def incremental(pieces: list[bytes]) -> tuple[str, str | None, object]:
    """Text, marker and error as `MarkerDecoder` reports them after ``flush``."""
    decoder = MarkerDecoder()
    parts: list[str] = []
    for piece in pieces:
        parts += decoder.feed(piece)
    parts += decoder.flush()
    error = decoder.error
    return "".join(parts), decoder.marker, error and (type(error), str(error), vars(error))


def whole(data: bytes) -> tuple[str, str | None, object]:
    decoded = decode_whole(data)
    error = decoded.error
    return decoded.text, decoded.marker, error and (type(error), str(error), vars(error))


# Lines a task body is made of: output, blank and whitespace lines, CRLF, markers (bare,
# indented, mid-output), rejection and failure lines, non-ASCII text and a broken byte.
FRAGMENTS = st.sampled_from(
    [
        "done item-1\n",
        "\n",
        " \n",
        "\r\n",
        "no newline",
        f"{ARTIFACT_NONE}\n",
        f"{ARTIFACT_INCOMING}\n",
        f" {ARTIFACT_NONE}\r\n",
        f"\t{ARTIFACT_INCOMING}",
        "[AGENTFM: OTHER]\n",
        "[AGENTFM",
        f"{WORKER_REJECTION_PREFIX} at max capacity\n",
        f"\u26a0\ufe0f  {SANDBOX_EXIT_PREFIX}exit status 3\n",
        f"{START_FAILED_PREFIX}no such file\n",
        "h\u00e9llo \u2603 \U0001f600\n",
        "x" * 300,
    ]
)
BODIES = st.lists(FRAGMENTS, max_size=8).map(lambda parts: "".join(parts).encode())


@settings(max_examples=400, deadline=None)
@given(data=BODIES, cuts=st.lists(st.integers(min_value=0), max_size=6))
def test_whole_body_decodes_as_the_incremental_decoder_split_anywhere(
    data: bytes, cuts: list[int]
) -> None:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert whole(data) == incremental(pieces)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=64))
def test_arbitrary_bytes_decode_as_the_incremental_decoder(data: bytes) -> None:
    assert whole(data) == incremental([data])


def test_the_usual_reply_takes_the_one_pass_path_with_the_same_result() -> None:
    data = f"done item-7\n\n{ARTIFACT_NONE}\n".encode()
    assert whole(data) == incremental([data[:5], data[5:13], data[13:]])
    assert whole(data)[:2] == ("done item-7\n", ARTIFACT_NONE)


def test_a_failure_line_before_the_marker_is_the_error_on_both_paths() -> None:
    data = f"partial\n\u26a0\ufe0f  {SANDBOX_EXIT_PREFIX}killed\n\n{ARTIFACT_INCOMING}\n".encode()
    decoded = decode_whole(data)
    assert decoded.files_incoming
    assert isinstance(decoded.error, AgentExitError)
    assert decoded.error.files_incoming
    assert whole(data) == incremental([data])


def test_a_rejection_line_without_marker_is_a_rejection_on_both_paths() -> None:
    data = f"{WORKER_REJECTION_PREFIX} busy\n".encode()
    assert type(decode_whole(data).error).__name__ == "WorkerRejectedError"
    assert whole(data) == incremental([data[:3], data[3:]])
