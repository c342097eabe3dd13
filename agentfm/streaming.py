"""0.3.0 module path of the stream helpers, backed by the sans-IO decoders."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from agentfm._constants import ARTIFACT_INCOMING, ARTIFACT_NONE, SENTINEL_PREFIX, SSE_DONE_PAYLOAD
from agentfm._streaming import AsyncStream, MarkerDecoder, SSEDecoder, Stream

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = [
    "ARTIFACT_INCOMING",
    "ARTIFACT_NONE",
    "SENTINEL_PREFIX",
    "SSE_DONE",
    "AsyncStream",
    "MarkerDecoder",
    "SSEDecoder",
    "SentinelFilter",
    "Stream",
    "classify_sse_line",
    "filter_iter",
    "parse_sse_lines",
]


class _Done:
    def __repr__(self) -> str:
        return "SSE_DONE"


SSE_DONE: Final = _Done()
"""Returned by `classify_sse_line` for ``data: [DONE]``."""


class SentinelFilter:
    """Line-level view of `MarkerDecoder` with the 0.3.0 attributes.

    ``feed`` yields output text, ``finalize`` returns what is left; ``artifacts_incoming``
    / ``artifacts_complete`` say which terminal marker ended the stream.
    """

    def __init__(self) -> None:
        self._decoder = MarkerDecoder()
        self.artifacts_incoming = False
        self.artifacts_complete = False

    def feed(self, chunk: str | bytes) -> Iterator[str]:
        """Yield the text released by ``chunk``."""
        yield from self._decoder.feed(chunk)

    def finalize(self) -> str:
        """Return the remaining text and record the terminal marker (never raises)."""
        rest = "".join(self._decoder.flush())
        self.artifacts_incoming = self._decoder.marker == ARTIFACT_INCOMING
        self.artifacts_complete = self._decoder.marker == ARTIFACT_NONE
        return rest


def filter_iter(chunks: Iterable[str | bytes]) -> Iterator[str]:
    """Yield the output text of a whole ``/api/execute`` body, markers removed."""
    sentinel = SentinelFilter()
    for chunk in chunks:
        yield from sentinel.feed(chunk)
    rest = sentinel.finalize()
    if rest:
        yield rest


def classify_sse_line(raw: str) -> str | _Done | None:
    """Return the payload of one ``data:`` line, `SSE_DONE`, or None for other lines."""
    line = raw.rstrip("\r\n")
    if not line.startswith("data:"):
        return None
    payload = line[5:].lstrip()
    if not payload:
        return None
    return SSE_DONE if payload == SSE_DONE_PAYLOAD else payload


def parse_sse_lines(lines: Iterable[str]) -> Iterator[str]:
    """Yield ``data:`` payloads until ``[DONE]``."""
    for line in lines:
        kind = classify_sse_line(line)
        if kind is SSE_DONE:
            return
        if isinstance(kind, str):
            yield kind
