"""Reading header fields of a parsed message, defensively. Pure; never raises on bad input.

Policies read the *raw* field values (``Message.raw_items()``) rather than
``msg[name]``: the raw value is the same whatever ``email.policy`` the front end
parsed with, and ``msg[name]`` may parse the value into a header object, which has
raised on hostile input before (here that parsing is done inside ``try``). Two repairs
are applied to every value:

- unfolding (RFC 5322 §2.2.3): CRLF followed by white space is removed;
- 8-bit bytes: ``email`` keeps undecodable bytes of raw UTF-8 header fields (sent by many
  clients with 8BITMIME, RFC 6532 style) as surrogate escapes; they are turned back
  into UTF-8 text so that ``[MẬT]`` written raw is seen as such.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from email import errors as email_errors
from email import policy as email_policy
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses

from policies.addresses import AddressError, Mailbox, parse_mailbox

_FOLD = re.compile(r"\r?\n(?=[ \t])")
# Control characters other than TAB left after unfolding: a bare CR or LF, NUL...
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_NOT_WORD = re.compile(r"[\W_]+")


def _repair(value: str) -> str:
    value = _FOLD.sub("", str(value))
    if any("\udc80" <= c <= "\udcff" for c in value):
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return value


def field_values(msg: Message | None, name: str) -> list[str]:
    """Every value of the fields called ``name`` (case-insensitive), unfolded, repaired."""
    if msg is None:
        return []
    wanted = name.lower()
    return [_repair(v) for k, v in msg.raw_items() if k.lower() == wanted]


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words; an unknown charset or bad bytes decode as UTF-8
    with replacement characters. Never raises: a refusal must not become an exception."""
    try:
        parts = decode_header(value)
    except Exception:  # HeaderParseError and friends: keep the text as written
        return value
    try:
        return str(make_header(parts))
    except (LookupError, UnicodeError, ValueError):
        pass
    out = []
    for chunk, charset in parts:
        if isinstance(chunk, str):
            out.append(chunk)
            continue
        try:
            out.append(chunk.decode(charset or "ascii", "replace"))
        except LookupError:
            out.append(chunk.decode("utf-8", "replace"))
    return " ".join(out)


def plain_text(text: str) -> str:
    """NFKC (full-width letters become plain ones) without invisible format characters
    (zero-width joiners and spaces, bidi controls: Unicode category Cf)."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(c for c in text if unicodedata.category(c) != "Cf")


@functools.lru_cache(maxsize=1)
def _fold_table() -> dict[int, int | str | None]:
    """str.translate table: drop combining marks and format characters (BMP), đ→d."""
    table: dict[int, int | str | None] = {ord("đ"): "d", ord("Đ"): "d"}
    for cp in range(0x10000):
        ch = chr(cp)
        if unicodedata.combining(ch) or unicodedata.category(ch) == "Cf":
            table[cp] = None
    return table


def fold_words(text: str) -> str:
    """Compare-form of a name or marker: compatibility-decomposed (NFKD), without
    diacritics or invisible characters, case-folded; punctuation and runs of white
    space become one space. ``"  Nguyễn  Văn-An "`` → ``"nguyen van an"``. The same
    folding as :func:`policies.verdict.ascii_fold` for Vietnamese, but fast (it runs
    over the whole directory) and other scripts are kept rather than turned to ``?``."""
    folded = unicodedata.normalize("NFKD", text).translate(_fold_table()).casefold()
    return " ".join(_NOT_WORD.sub(" ", folded).split())


def address_pairs(values: list[str]) -> list[tuple[str, str]]:
    """(decoded display name, address) of every mailbox in ``values``.

    Uses both ``email.utils.getaddresses`` and the RFC 5322 parser of
    ``email.headerregistry``: where they disagree a name hidden from one shows in the
    other, and both are returned. Comments count as names.
    """
    pairs = [(decode_words(n), a) for n, a in getaddresses(values)]
    for value in values:
        try:
            header = email_policy.default.header_factory("To", value)
            pairs += [(a.display_name, a.addr_spec) for a in header.addresses]
        except Exception:  # the stdlib parser has raised on hostile input before
            continue
    return pairs


def sole_mailbox(values: list[str]) -> tuple[str, Mailbox] | None:
    """The display name and address of a field that must occur once with one mailbox
    (``From:`` without ``Sender:``, or ``Sender:``: RFC 5322 §3.6.2), else None.

    Refused (None): zero or several fields, zero or several mailboxes, a group, control
    characters, anything the RFC 5322 parser flags as invalid, and any disagreement
    between ``getaddresses`` and that parser about the address (the CVE-2023-27043
    family: ``a@official)<b@evil>`` means one address to one program and another to
    the next). The address must then pass :func:`parse_mailbox`.
    """
    if len(values) != 1 or _CONTROL.search(values[0]):
        return None
    value = values[0]
    pairs = getaddresses([value])
    if len(pairs) != 1 or not pairs[0][1]:
        return None
    name, addr = pairs[0]
    try:
        header = email_policy.default.header_factory("From", value)
        second = [a.addr_spec for a in header.addresses]
        invalid = any(isinstance(d, email_errors.InvalidHeaderDefect) for d in header.defects)
        # RFC 5322 §3.6.2: From and Sender hold mailboxes, never a group ("Team: a@b;")
        invalid = invalid or any(g.display_name is not None for g in header.groups)
    except Exception:
        return None
    if invalid or len(second) != 1 or second[0].lower() != addr.lower():
        return None
    try:
        return decode_words(name), parse_mailbox(addr)
    except AddressError:
        return None
