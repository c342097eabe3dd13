"""Stream the ``final_answer`` of a prompted tool-calling reply while it is still arriving.

A reply ``{"final_answer": "..."}`` is JSON, so its text can only be shown once decoded; this
sans-IO decoder releases the answer's text piece by piece (escapes split across pieces
included), and gives up at once on any reply of another shape, which is then parsed whole
by `agentfm_integrations._tool_calling`.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["FinalAnswerStream", "stream_remainder"]

_JSON_WS = " \t\n\r"
_HEAD = '{"final_answer":"'
"""The streamable head with JSON whitespace removed: ws may precede each of its tokens."""
_HEAD_WS_BEFORE = frozenset({0, 1, 15, 16})
"""Positions in `_HEAD` before which JSON whitespace is allowed (before ``{``, the key,
the colon and the opening quote of the value)."""
_PLAIN = re.compile(r'[^"\\\x00-\x1f]+')
_SIMPLE_ESCAPES = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
_HEX = frozenset("0123456789abcdefABCDEF")


class FinalAnswerStream:
    """Incremental extractor of a streamed reply's ``final_answer`` string (sans-IO).

    `feed` takes the reply as it arrives and returns the final answer's new decoded text
    (JSON escapes, ``\\uXXXX`` and surrogate pairs included, even when split across
    feeds). Text is released only once the reply is known to begin with the contract's
    ``{"final_answer": "`` (JSON whitespace allowed between tokens); anything else (prose
    or a code fence first, ``tool_calls`` first, a non-string answer, an escaped key) makes
    the extractor give up before releasing anything, and the caller's whole-reply parse
    decides alone. A malformed string (a raw control character, a bad escape) stops the
    release where it is; what was released is then a prefix of what a lenient parse of the
    string yields in practice, which the caller checks with `stream_remainder`.
    """

    def __init__(self) -> None:
        self._state: Literal["head", "string", "done", "off"] = "head"
        self._matched = 0  # how much of `_HEAD` the reply has matched so far
        self._pending = ""  # an escape sequence not yet complete
        self._parts: list[str] = []

    @property
    def streamed(self) -> str:
        """Every piece released so far, joined."""
        return "".join(self._parts)

    @property
    def streaming(self) -> bool:
        """Whether the reply was recognised as a streamable final answer."""
        return self._state in ("string", "done") or (self._state == "off" and bool(self._parts))

    def feed(self, text: str) -> str:
        """Take the next piece of the reply; return the final answer's new text."""
        pos = 0
        if self._state == "head":
            pos = self._head(text)
        if self._state != "string":
            return ""
        out = self._string(self._pending + text[pos:])
        if out:
            self._parts.append(out)
        return out

    def finish(self) -> str:
        """End of the reply: nothing more is released; returns the whole streamed text.

        An escape still incomplete at the end (a truncated reply) is not decoded: the
        caller's lenient parse decides what it meant.
        """
        if self._state in ("head", "string"):
            self._state = "off"
        self._pending = ""
        return self.streamed

    def _head(self, text: str) -> int:
        for pos, char in enumerate(text):
            if char in _JSON_WS and self._matched in _HEAD_WS_BEFORE:
                continue
            if char != _HEAD[self._matched]:
                self._state = "off"
                return len(text)
            self._matched += 1
            if self._matched == len(_HEAD):
                self._state = "string"
                return pos + 1
        return len(text)

    def _string(self, text: str) -> str:
        out: list[str] = []
        pos, end = 0, len(text)
        self._pending = ""
        while pos < end:
            plain = _PLAIN.match(text, pos)
            if plain is not None:
                out.append(plain.group())
                pos = plain.end()
                continue
            char = text[pos]
            if char == '"':
                self._state = "done"
                break
            if char != "\\":  # a raw control character: not strict JSON
                self._state = "off"
                break
            decoded, used = _escape(text, pos)
            if used == 0:  # incomplete: wait for more text
                self._pending = text[pos:]
                break
            if decoded is None:
                self._state = "off"
                break
            out.append(decoded)
            pos += used
        return "".join(out)


def _escape(text: str, pos: int) -> tuple[str | None, int]:
    """Decode the escape at ``text[pos]`` (a backslash) as `json.loads` does.

    Returns the decoded text and how many characters it used; ``(None, n)`` for an invalid
    escape and ``("", 0)`` when more text is needed to tell.
    """
    if pos + 1 >= len(text):
        return "", 0
    kind = text[pos + 1]
    if kind in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[kind], 2
    if kind != "u":
        return None, 2
    code = _hex4(text, pos + 2)
    if code is None:
        return None, 2
    if code < 0:
        return "", 0
    if not 0xD800 <= code <= 0xDBFF:
        return chr(code), 6
    # A high surrogate: joined with a following \\uDC00-\\uDFFF escape, else kept alone.
    after = text[pos + 6 : pos + 8]
    if len(after) < 2 and "\\u".startswith(after):
        return "", 0
    if after != "\\u":
        return chr(code), 6
    low = _hex4(text, pos + 8)
    if low is not None and low < 0:
        return "", 0
    if low is not None and 0xDC00 <= low <= 0xDFFF:
        return chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)), 12
    return chr(code), 6


def _hex4(text: str, pos: int) -> int | None:
    """The four hex digits at ``pos`` as a number; -1 when cut short, None when not hex."""
    digits = text[pos : pos + 4]
    if any(d not in _HEX for d in digits):
        return None
    if len(digits) < 4:
        return -1
    return int(digits, 16)


def stream_remainder(streamed: str, final: str) -> str | None:
    """What the last chunk adds after ``streamed`` so the chunks join to ``final``.

    None when ``final`` does not begin with the streamed text (a reply whose lenient parse
    disagrees with its well-formed head, e.g. a duplicated ``final_answer`` key): sent
    text cannot be taken back, so the caller reports the disagreement instead.
    """
    if final.startswith(streamed):
        return final[len(streamed) :]
    return None
