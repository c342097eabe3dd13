"""0.3.0 module path of the stream helpers (see `agentfm._compat`)."""

from __future__ import annotations

from agentfm._compat import (
    SSE_DONE,
    SentinelFilter,
    classify_sse_line,
    filter_iter,
    parse_sse_lines,
)
from agentfm._constants import ARTIFACT_INCOMING, ARTIFACT_NONE, SENTINEL_PREFIX
from agentfm._streaming import AsyncStream, MarkerDecoder, SSEDecoder, Stream

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
