"""JSON the way Go's ``encoding/json`` reads and writes it, so clients see identical bytes."""

from __future__ import annotations

import json
from typing import Any

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class _GoObject(dict[str, Any]):
    """A decoded JSON object that remembers every key/value pair in body order."""

    pairs: list[tuple[str, Any]]


def _make_object(pairs: list[tuple[str, Any]]) -> _GoObject:
    obj = _GoObject(pairs)
    obj.pairs = pairs
    return obj


_DECODER = json.JSONDecoder(
    parse_constant=lambda name: _reject_constant(name), object_pairs_hook=_make_object
)
_HTML_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"))
_LINE_SEPS = (("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


class GoJSONError(ValueError):
    """The body is not something Go's decoder would accept for the route's struct."""


def _reject_constant(name: str) -> Any:
    raise GoJSONError(f"invalid character {name[0]!r} looking for beginning of value")


def gofloat(value: float) -> float | int:
    """Return ``value`` in the form that makes :mod:`json` print it as Go does.

    Go prints integral floats without a fraction (``0``, ``12``); Python would print
    ``0.0``. Only that case differs for the figures the gateway reports.
    """
    value = float(value)
    if value.is_integer() and abs(value) < 1e21:
        return int(value)
    return value


def encode(obj: Any) -> str:
    """Serialise compactly with Go's HTML-safe escaping of ``<``, ``>``, ``&``, U+2028/9."""
    text = _ENCODER.encode(obj)
    if "<" in text or ">" in text or "&" in text:
        for raw, esc in _HTML_ESCAPES:
            text = text.replace(raw, esc)
    if "\u2028" in text or "\u2029" in text:
        for raw, esc in _LINE_SEPS:
            text = text.replace(raw, esc)
    return text


def encode_bytes(obj: Any, *, newline: bool = True) -> bytes:
    """Like :func:`encode`, as UTF-8 bytes; ``newline`` mimics ``json.Encoder.Encode``."""
    text = encode(obj)
    return (text + "\n").encode() if newline else text.encode()


def decode_object(body: bytes) -> dict[str, Any]:
    """Decode the first JSON value of ``body`` the way ``json.Decoder.Decode`` into a struct does.

    Trailing data after the first value is ignored, ``null`` decodes to an empty struct and
    invalid UTF-8 is replaced. Anything that is not an object raises :class:`GoJSONError`.

    Raises:
        GoJSONError: the body would fail Go's decode.
    """
    text = body.decode("utf-8", "replace")
    start = len(text) - len(text.lstrip(" \t\r\n"))
    try:
        value, _ = _DECODER.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        raise GoJSONError(str(exc)) from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise GoJSONError("cannot unmarshal into struct")
    return value


def fields(obj: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """Pick the struct fields ``names`` out of ``obj`` with Go's case-insensitive key match.

    Each body key goes to the field it names exactly, else to one it matches ignoring case;
    when several keys land on one field the last one in the body wins, as in Go.
    """
    out: dict[str, Any] = {}
    pairs = obj.pairs if isinstance(obj, _GoObject) else list(obj.items())
    for key, value in pairs:
        if key in names:
            out[key] = value
            continue
        folded = key.casefold()
        for name in names:
            if folded == name:
                out[name] = value
                break
    return out


def opt_str(value: Any) -> str:
    """A Go ``string`` field: ``null``/absent is empty, any other non-string is a decode error."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise GoJSONError("wrong type for string field")


def opt_bool(value: Any) -> bool:
    """A Go ``bool`` field."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    raise GoJSONError("wrong type for bool field")


def opt_number(value: Any) -> float:
    """A Go ``float64`` field."""
    if value is None:
        return 0.0
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise GoJSONError("wrong type for number field")
