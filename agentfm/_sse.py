"""Sans-IO decoder of OpenAI-style server-sent event streams (``text/event-stream``)."""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from agentfm._constants import SSE_DONE_PAYLOAD
from agentfm.exceptions import IncompleteStreamError

__all__ = ["SSEDecoder", "SSEEvent"]


@dataclass
class SSEEvent:
    """One decoded server-sent event."""

    data: str
    event: str | None = None


class SSEDecoder:
    """Decode ``text/event-stream`` bytes into events, stopping at ``data: [DONE]``.

    Example:
        ```python
        decoder = SSEDecoder()
        for piece in body:
            for event in decoder.feed(piece):
                handle(json.loads(event.data))
        decoder.flush()  # IncompleteStreamError if [DONE] never came
        ```
    """

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._data: list[str] = []
        self._event: str | None = None
        self.done = False

    def feed(self, data: bytes | str) -> list[SSEEvent]:
        """Decode a piece of the stream and return the events it completed."""
        if self.done:
            return []
        text = self._utf8.decode(data) if isinstance(data, bytes) else data
        self._buffer += text
        events: list[SSEEvent] = []
        while not self.done:
            nl = self._buffer.find("\n")
            if nl < 0:
                break
            line = self._buffer[:nl].rstrip("\r")
            self._buffer = self._buffer[nl + 1 :]
            self._line(line, events)
        return events

    def flush(self) -> list[SSEEvent]:
        """Finish the stream.

        Raises:
            IncompleteStreamError: The stream ended before ``data: [DONE]``.
        """
        events: list[SSEEvent] = []
        if not self.done:
            self._buffer += self._utf8.decode(b"", final=True)
            if self._buffer:
                self._line(self._buffer.rstrip("\r"), events)
                self._buffer = ""
            if not self.done and self._data and "\n".join(self._data) == SSE_DONE_PAYLOAD:
                self.done = True
        if not self.done:
            raise IncompleteStreamError(
                "the event stream ended without data: [DONE]: the worker or the gateway "
                "stopped before the answer finished",
                code="incomplete_stream",
            )
        return events

    def _line(self, line: str, events: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                data = "\n".join(self._data)
                event, self._data, self._event = self._event, [], None
                if data == SSE_DONE_PAYLOAD:
                    self.done = True
                else:
                    events.append(SSEEvent(data=data, event=event))
            return
        if line.startswith(":"):
            return
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
