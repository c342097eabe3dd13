"""Sans-IO stream decoders of the ``/api/execute`` body, and the shape every decoder has.

`MarkerDecoder` turns the raw ``/api/execute`` body into output text and decides how the
task ended (`agentfm._sse` decodes OpenAI-style event streams). Decoders take bytes through
``feed`` and finish with ``flush`` (the `Decoder` shape the clients' ``stream`` driver
runs); none does I/O, so the sync and async clients drive the same code.
"""

from __future__ import annotations

import codecs
from typing import TYPE_CHECKING, Protocol, TypeVar

from agentfm._constants import (
    ARTIFACT_INCOMING,
    ARTIFACT_NONE,
    SENTINEL_PREFIX,
    WORKER_REJECTION_PREFIX,
)
from agentfm.exceptions import (
    AgentExitError,
    AgentFMError,
    IncompleteStreamError,
    TaskFailedError,
    TaskStartError,
    WorkerRejectedError,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "SANDBOX_EXIT_PREFIX",
    "START_FAILED_PREFIX",
    "BytesDecoder",
    "Decoder",
    "MarkerDecoder",
    "RejectionGate",
    "WholeBody",
    "decode_whole",
    "failure_from_tail",
    "strip_failure_line",
]

X_co = TypeVar("X_co", covariant=True)


class Decoder(Protocol[X_co]):
    """What the clients' ``stream`` driver feeds: bytes in, decoded items out."""

    def feed(self, data: bytes) -> Sequence[X_co]:
        """Decode a piece of the body; return the items it completed."""
        ...

    def flush(self) -> Sequence[X_co]:
        """Finish the body; return the last items (may raise how the stream ended)."""
        ...


class BytesDecoder:
    """The body as it arrives, piece by piece (an artifact zip, say): no decoding at all."""

    def feed(self, data: bytes) -> list[bytes]:
        """Return ``data`` as one item (none for an empty piece)."""
        return [data] if data else []

    def flush(self) -> list[bytes]:
        """Nothing is held back."""
        return []


_MARKERS = (ARTIFACT_INCOMING, ARTIFACT_NONE)
_LINE_HEAD = 200
# A held line longer than this is output, not a marker: the worker writes its marker bare,
# and holding (and rescanning) an ever-growing blank line would cost quadratic time.
_MARKER_LINE_MAX = 256
# How much released text is kept to find a failure line before the marker (protocol §5.4).
_TAIL_KEEP = 1024
SANDBOX_EXIT_PREFIX = "Sandbox exited: "
"""Follows the ⚠️ sign on the line a worker writes when the agent exits non-zero or is killed."""
START_FAILED_PREFIX = "❌ Failed to start task: "
"""The line a worker writes when it cannot start the agent."""


def failure_from_tail(tail: str) -> TaskFailedError | None:
    """The failure told by the last line of a task's output, if that line is one.

    The worker writes ``⚠️  Sandbox exited: <err>`` or ``❌ Failed to start task: <err>`` and
    then its *normal* marker, so a stream that ended well can still be a failed task. The
    line may be glued to output that did not end in a newline, so it is looked for within
    the last line rather than only at its start.
    """
    last = tail.rstrip().rpartition("\n")[2]
    at = last.find(START_FAILED_PREFIX)
    if at >= 0:
        detail = last[at + len(START_FAILED_PREFIX) :].strip()
        return TaskStartError(
            f"the worker could not start the task: {detail}",
            exit_detail=detail,
            code="task_start_failed",
        )
    at = last.find(SANDBOX_EXIT_PREFIX)
    if at >= 0 and "\u26a0" in last[max(0, at - 4) : at]:
        detail = last[at + len(SANDBOX_EXIT_PREFIX) :].strip()
        return AgentExitError(
            f"the agent exited abnormally ({detail})", exit_detail=detail, code="agent_exited"
        )
    return None


def strip_failure_line(text: str) -> str:
    """``text`` without its trailing failure line (what the agent itself wrote)."""
    body = text.rstrip()
    cut = body.rfind("\n") + 1
    last = body[cut:]
    for prefix in (START_FAILED_PREFIX, SANDBOX_EXIT_PREFIX):
        at = last.find(prefix)
        if at >= 0:
            if prefix is SANDBOX_EXIT_PREFIX:
                at = last.rfind("\u26a0", 0, at)
                if at < 0:
                    return text
            return body[: cut + at]
    return text


def _could_be_marker(partial: str) -> bool:
    """Whether an unfinished line may still turn out to be a terminal marker."""
    core = partial.lstrip(" \t").rstrip(" \t\r")
    return any(marker.startswith(core) for marker in _MARKERS)


def _marker_of(line: str) -> str | None:
    core = line.strip(" \t\r\n")
    return core if core in _MARKERS else None


class RejectionGate:
    """Hold back a leading ``❌ ERROR:`` line until the text shows it is not a rejection.

    A worker that refuses a task (at capacity, overloaded) answers with that single line
    and no marker; keeping it from the caller lets a routed call fail over to another peer
    as if nothing had been emitted. `MarkerDecoder` uses it with ``hold_rejection=True``;
    the routed stream feeds it the text of each try.
    """

    def __init__(self) -> None:
        self._held = ""
        self.emitted = False
        """Whether any text has been released."""

    def feed(self, text: str) -> str:
        """Return the text that may reach the caller now."""
        if self.emitted:
            return text
        self._held += text
        probe = self._held.lstrip()
        if WORKER_REJECTION_PREFIX.startswith(probe) or (
            probe.startswith(WORKER_REJECTION_PREFIX) and probe.count("\n") <= 1
        ):
            return ""
        return self.flush()

    def flush(self) -> str:
        """Release what is held (the text turned out not to be a rejection)."""
        out, self._held = self._held, ""
        if out:
            self.emitted = True
        return out


class MarkerDecoder:
    """Decode an ``/api/execute`` body: output text, then one terminal marker line.

    Text is released as soon as it provably cannot be part of the terminal marker: a
    partial line is emitted once it stops being a prefix of a marker, and a marker-looking
    line is held back only until something other than whitespace follows it. Only a marker
    on the last line counts, so an agent that prints ``[AGENTFM: FILES_INCOMING]`` in the
    middle of its output does not fake an artifact. The single empty line the worker writes
    before the marker is not part of the output.

    Example:
        ```python
        decoder = MarkerDecoder()
        for chunk in body_chunks:
            for text in decoder.feed(chunk):
                print(text, end="")
        for text in decoder.flush():
            print(text, end="")
        decoder.raise_for_end()  # IncompleteStreamError / WorkerRejectedError
        decoder.files_incoming
        ```

    With ``hold_rejection=True`` a leading ``❌ ERROR: …`` line is held back until the body
    shows it is not a rejection (a second line, or a marker at the end): a worker that
    refuses a task answers with that single line and no marker, so a caller that keeps
    the line from its user can still fail over as if nothing had been emitted. `emitted`
    says whether any text has been released.
    """

    def __init__(self, *, hold_rejection: bool = False) -> None:
        self._gate_of: RejectionGate | None = RejectionGate() if hold_rejection else None
        self.emitted = False
        """Whether any output text has been released by `feed` or `flush`."""
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._line = ""
        self._line_plain = False
        self._line_head = ""
        self._held_blank: str | None = None
        self._held_marker: str | None = None
        self._after_marker: list[str] = []
        self._last_line = ""
        self._tail: list[str] = []
        self._tail_size = 0
        self.marker: str | None = None
        """The terminal marker, once `flush` found one."""
        self.error: AgentFMError | None = None
        """Why the task failed, once `flush` found no marker."""

    @property
    def files_incoming(self) -> bool:
        """True when the stream ended with ``[AGENTFM: FILES_INCOMING]``."""
        return self.marker == ARTIFACT_INCOMING

    def feed(self, data: bytes | str) -> list[str]:
        """Decode a piece of the body and return the text that can be released now."""
        text = self._utf8.decode(data) if isinstance(data, bytes) else data
        out: list[str] = []
        self._process(text, out)
        if out:
            self._keep_tail(out)
        return self._gate(out)

    def _gate(self, out: list[str]) -> list[str]:
        """Release ``out`` unless it may still be the start of a rejection line."""
        if self._gate_of is not None and out:
            text = self._gate_of.feed("".join(out))
            out = [text] if text else []
        if out:
            self.emitted = True
        return out

    def _finish(self, out: list[str]) -> list[str]:
        """Release what is held at the end, unless it was a rejection (`error` carries it)."""
        gate = self._gate_of
        if gate is not None:
            if not gate.emitted and isinstance(self.error, WorkerRejectedError):
                return []
            held = gate.flush()
            out = [held, *out] if held else out
        if out:
            self.emitted = True
        return out

    def _keep_tail(self, out: list[str]) -> None:
        # References only; joined when they exceed a few KiB (amortised), or at the end.
        self._tail.extend(out)
        self._tail_size += sum(map(len, out))
        if self._tail_size > 4 * _TAIL_KEEP:
            kept = "".join(self._tail)[-_TAIL_KEEP:]
            self._tail, self._tail_size = [kept], len(kept)

    def _settle_marker(self, marker: str | None) -> None:
        self.marker = marker
        failure = failure_from_tail("".join(self._tail)[-_TAIL_KEEP:])
        if failure is not None:
            failure.files_incoming = marker == ARTIFACT_INCOMING
            self.error = failure

    def flush(self) -> list[str]:
        """Finish the body: return the remaining text and settle how the task ended.

        After ``flush``, `marker` holds the terminal marker, and `error` says why the task
        failed, if it did (`raise_for_end` raises it): no marker, a rejection line, or a
        failure line (``⚠️  Sandbox exited`` / ``❌ Failed to start task``) before the marker.
        """
        out: list[str] = []
        self._process(self._utf8.decode(b"", final=True), out)
        if out:
            self._keep_tail(out)
        if self._held_marker is not None:
            marker = _marker_of(self._held_marker)
            self._held_marker = None
            self._after_marker = []
            self._settle_marker(marker)
            return self._finish(out)
        if self._line and not self._line_plain and _marker_of(self._line) is not None:
            marker = _marker_of(self._line)
            self._line = ""
            self._settle_marker(marker)
            return self._finish(out)
        if self._line:
            self._release_blank(out)
            out.append(self._line)
            self._line_head = self._line[:_LINE_HEAD]
        self._release_blank(out)
        last = self._line_head if self._line_head.strip() else self._last_line
        self._line = ""
        if last.lstrip().startswith(WORKER_REJECTION_PREFIX):
            self.error = WorkerRejectedError(last.strip(), code="worker_rejected")
        else:
            self.error = IncompleteStreamError(
                "the task stream ended without a terminal marker: the worker or the gateway "
                "stopped before the task finished",
                code="incomplete_stream",
            )
        return self._finish(out)

    def raise_for_end(self) -> None:
        """Raise the failure found by `flush`, if any.

        Raises:
            WorkerRejectedError: The worker refused the task (``❌ ERROR: …``, no marker).
            IncompleteStreamError: The body ended without a terminal marker.
            AgentExitError: The agent exited non-zero or was killed (``⚠️  Sandbox exited``).
            TaskStartError: The agent could not be started (``❌ Failed to start task``).
        """
        if self.error is not None:
            raise self.error

    def _process(self, text: str, out: list[str]) -> None:
        pos = 0
        end = len(text)
        if self._held_marker is None and not self._line and not self._line_plain:
            pos = self._bulk(text, out)
        while pos < end:
            nl = text.find("\n", pos)
            if nl < 0:
                self._partial(text[pos:], out)
                return
            self._complete(text[pos : nl + 1], out)
            pos = nl + 1

    def _bulk(self, text: str, out: list[str]) -> int:
        """Release every complete line of ``text`` at once when none can be a marker.

        Returns how much of ``text`` was consumed (0 when the slow path must decide).
        """
        last = text.rfind("\n")
        if last < 0 or SENTINEL_PREFIX in text[: last + 1]:
            return 0
        lines = text[: last + 1].split("\n")
        lines.pop()  # the empty string after the final newline
        self._release_blank(out)
        tail_blank = lines[-1] == ""
        if tail_blank:
            lines.pop()
        out.extend([line + "\n" for line in lines])
        if tail_blank:
            self._held_blank = "\n"
        for line in reversed(lines):
            if line.strip():
                self._last_line = line[:_LINE_HEAD] + "\n"
                break
        return last + 1

    def _release_blank(self, out: list[str]) -> None:
        if self._held_blank is not None:
            out.append(self._held_blank)
            self._held_blank = None

    def _release_marker(self, out: list[str]) -> None:
        held, trailing = self._held_marker, "".join(self._after_marker)
        self._held_marker, self._after_marker = None, []
        self._release_blank(out)
        assert held is not None
        out.append(held)
        self._last_line = held[:_LINE_HEAD]
        self._process(trailing, out)

    def _partial(self, piece: str, out: list[str]) -> None:
        if self._held_marker is not None:
            if not piece.strip():
                self._after_marker.append(piece)
                return
            self._release_marker(out)
        if self._line_plain:
            out.append(piece)
            if len(self._line_head) < _LINE_HEAD:
                self._line_head += piece[:_LINE_HEAD]
            return
        self._line += piece
        if len(self._line) > _MARKER_LINE_MAX or not _could_be_marker(self._line):
            self._release_blank(out)
            out.append(self._line)
            self._line_head = self._line[:_LINE_HEAD]
            self._line = ""
            self._line_plain = True

    def _complete(self, line: str, out: list[str]) -> None:
        if self._held_marker is not None:
            if not line.strip():
                self._after_marker.append(line)
                return
            self._release_marker(out)
        if self._line_plain:
            out.append(line)
            head = self._line_head if len(self._line_head) >= _LINE_HEAD else self._line_head + line
            if head.strip():
                self._last_line = head[:_LINE_HEAD]
            self._line_plain = False
            self._line_head = ""
            return
        if self._line:
            line = self._line + line
            self._line = ""
        if line == "\n":
            # The worker writes one newline before its marker; hold a lone empty line until
            # we know whether the marker follows it.
            self._release_blank(out)
            self._held_blank = line
            return
        if line[0] in " \t[" and _marker_of(line) is not None:
            self._held_marker = line
            return
        self._release_blank(out)
        out.append(line)
        if line.strip():
            self._last_line = line[:_LINE_HEAD]


class WholeBody:
    """What `MarkerDecoder` makes of a whole body: its text, marker and error after `flush`."""

    __slots__ = ("error", "marker", "text")

    def __init__(self, text: str, marker: str | None, error: AgentFMError | None) -> None:
        self.text = text
        self.marker = marker
        self.error = error

    @property
    def files_incoming(self) -> bool:
        """True when the body ended with ``[AGENTFM: FILES_INCOMING]``."""
        return self.marker == ARTIFACT_INCOMING


def decode_whole(data: bytes) -> WholeBody:
    """Decode a body that arrived whole, exactly as ``MarkerDecoder().feed(data)`` + ``flush()``.

    Most task replies arrive in one read, and most end the usual way: complete lines, then
    the terminal marker on the last one. That case is decided in one pass over the text
    (the output is every line before the marker, less the one empty line the worker writes
    before it; the failure line is looked for in its tail as `MarkerDecoder` does). Any
    other body (no marker, a partial last line) goes through `MarkerDecoder` itself, so the
    two can never disagree.
    """
    text = data.decode("utf-8", "replace")
    cut = text.rfind("\n", 0, len(text) - 1) + 1
    last = text[cut:]
    if last and last[-1] == "\n" and last[0] in " \t[" and (marker := _marker_of(last)):
        body = text[:cut]
        if body == "\n" or body.endswith("\n\n"):
            body = body[:-1]  # the single empty line before the marker is not output
        error = failure_from_tail(body[-_TAIL_KEEP:])
        if error is not None:
            error.files_incoming = marker == ARTIFACT_INCOMING
        return WholeBody(body, marker, error)
    decoder = MarkerDecoder()
    parts = decoder.feed(data)
    parts += decoder.flush()
    return WholeBody("".join(parts), decoder.marker, decoder.error)
