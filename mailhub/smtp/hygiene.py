"""Protocol hygiene checks that aiosmtpd does not do for us.

- SMTP smuggling (CVE-2023-51764, CVE-2024-27305): aiosmtpd ends DATA only at
  ``<CRLF>.<CRLF>`` but keeps bare CR and bare LF inside the body. Sequences such
  as ``<LF>.<CRLF>``, ``<CRLF>.<LF>``, ``<LF>.<LF>`` or ``<CR>.<CR>`` can make a
  downstream server see a second message, and aiosmtplib rewrites line endings
  when it relays (which would also break the DKIM signature). So any bare CR or
  bare LF refuses the whole message (RFC 5321 §2.3.8: lines end in CRLF only).
- C0 control characters in command arguments (``MAIL FROM:<a\\r@x>``,
  ``EHLO x\\rY: z``) are refused before any hook sees them: they would reach the
  Received header or the logs.
"""
from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def has_bare_newline(data: bytes) -> bool:
    """True if ``data`` holds a CR not followed by LF or an LF not preceded by CR.

    Every CR and every LF belongs to a CRLF pair exactly when the three counts
    agree: three C-level scans (~10 µs on 5 KB) instead of a look-around regex
    (~140 µs)."""
    crlf = data.count(b"\r\n")
    return data.count(b"\r") != crlf or data.count(b"\n") != crlf


def has_control_chars(arg: str | None) -> bool:
    """True if a command argument holds a C0 control character or DEL."""
    return bool(arg) and _CONTROL.search(arg) is not None


_SOURCE_ROUTE = re.compile(r"^\s*(?:FROM|TO)\s*:\s*<\s*@", re.IGNORECASE)


def has_source_route(arg: str | None) -> bool:
    """True for ``MAIL FROM:<@a,@b:user@dom>``. aiosmtpd silently drops the route
    (RFC 5321 Appendix C allows that); we refuse it, as old relay tricks have no
    place in a submission service."""
    return bool(arg) and _SOURCE_ROUTE.match(arg) is not None


_HELO_SAFE = re.compile(r"[^A-Za-z0-9.\-_:\[\]]")


def safe_helo(name: str | None) -> str:
    """The EHLO name as it may appear in a Received header: a restricted charset,
    at most 255 characters, so it cannot inject header syntax or comments."""
    cleaned = _HELO_SAFE.sub("_", name or "unknown")[:255]
    return cleaned or "unknown"
