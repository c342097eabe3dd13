"""Credentials in URLs: split them off once, and redact them wherever a URL is shown.

A gateway URL may carry userinfo (``http://user:pw@host``) for a Basic-auth reverse proxy.
The clients split it off at construction (`split_userinfo`): requests go to the bare URL
and the credentials travel as an ``Authorization: Basic`` header on every path, so no
request URL, log line or error message ever holds them. `redact_url` is what any repr or
serializer shows for a URL that a user passed in.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["REDACTED", "basic_auth", "redact_text", "redact_url", "split_userinfo"]

REDACTED = "***"

# scheme://userinfo@ inside arbitrary text (a message that quotes a URL).
_USERINFO_IN_TEXT = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s?#]*@")


def split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """Return ``url`` without its userinfo, and the (unquoted) user and password if any."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    bare = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    if userinfo == REDACTED:
        # A URL that went through `redact_url` (e.g. a reloaded LangChain dump): its
        # credentials are gone, so send none rather than a bogus Basic header.
        return bare, None
    user, _, password = userinfo.partition(":")
    return bare, (unquote(user), unquote(password))


def redact_url(url: str | None) -> str | None:
    """``url`` with any userinfo replaced by ``***`` (None stays None)."""
    if url is None or "@" not in url:
        return url
    return _USERINFO_IN_TEXT.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", url)


def redact_text(text: str) -> str:
    """Redact the userinfo of every URL quoted in ``text``."""
    if "@" not in text:
        return text
    return _USERINFO_IN_TEXT.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)


def basic_auth(credentials: tuple[str, str]) -> str:
    """The ``Authorization`` value for URL credentials (what httpx would send for them)."""
    user, password = credentials
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"
