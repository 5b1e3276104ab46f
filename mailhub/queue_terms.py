"""How people write and read queue selections, the same on the command line and in the console:
durations (``30m``, ``4h``, ``2d``), recipient domains in either spelling, a message's
header fields, and outside text made safe to show.
"""
from __future__ import annotations

import email.parser
import email.policy
import re
from datetime import timedelta

import idna

from mailhub.errors import InputError

# C0/C1 controls but tab and newline, and the bidi overrides that can reorder what is shown.
_HIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+)([smhdw])")


def parse_duration(text: str, option: str) -> timedelta:
    """``30m``, ``4h``, ``2d``, ``1w``, ``1h30m``; InputError naming ``option`` otherwise."""
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(compact)
    try:
        if not compact or "".join(n + u for n, u in parts) != compact:
            raise ValueError
        return timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))
    except (ValueError, OverflowError):
        raise InputError(f"{option}: expected a duration such as 30m, 4h or 2d, got {text!r}") from None


def domain_spellings(domain: str) -> tuple[str, ...]:
    """The Unicode and ``xn--`` spellings of a domain, lower-case (RFC 5890 §2.3.2.1)."""
    name = domain.strip().lstrip("@").rstrip(".").lower()
    try:
        ascii_form = idna.encode(name, uts46=True).decode("ascii")
        return tuple(dict.fromkeys((idna.decode(ascii_form), ascii_form)))
    except (idna.IDNAError, UnicodeError) as exc:
        raise InputError(f"--recipient-domain: not a domain name: {domain!r} ({exc})") from None


def header_fields(block: bytes) -> list[tuple[str, str]]:
    """The header fields of a header block, RFC 2047 words decoded, folding undone.
    A field that does not parse is shown as it is."""
    parsed = email.parser.Parser(policy=email.policy.default).parsestr(
        block.decode("utf-8", errors="replace"), headersonly=True)
    fields = []
    for name, raw in parsed.raw_items():
        try:
            value = str(email.policy.default.header_fetch_parse(name, raw))
        except Exception:  # a malformed field: the raw text is still worth showing
            value = raw
        fields.append((name, " ".join(value.split())))
    return fields


def escaped(value: object) -> str:
    """``value`` as text with controls and bidi overrides written out (``\\x1b``), so text from
    outside (headers, remote replies) cannot hide or reorder what is shown; None is empty."""
    return _HIDDEN.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), "" if value is None else str(value))
