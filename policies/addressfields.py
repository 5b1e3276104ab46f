"""Reading address fields (From, Sender, Reply-To) with two parsers, quickly when plain.

The rules read an address field with both ``email.utils.getaddresses`` and the strict
RFC 5322 parser of ``email.headerregistry``, because a field the two read differently
is how one address is shown to a person and another to a program (CVE-2023-27043).
The strict parser costs about 0.2 ms a field; almost every message writes its From
as ``addr``, ``<addr>`` or ``Name <addr>`` with a plain name, where the two cannot
disagree. :func:`simple_field` reads those forms with one strict regex and says what
the parsers would say; anything else, however ordinary, goes to :func:`full_parse`.
The tests check on every header case they have and on generated ones that whenever
the fast path answers, it answers exactly what the parsers do.

Each field of a message is parsed once for all the rules of one evaluation
(:func:`field_parser`).
"""
from __future__ import annotations

import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from email import errors as email_errors
from email import policy as email_policy
from email.message import Message
from email.utils import getaddresses

from policies.addresses import AddressError, Mailbox, parse_mailbox
from policies.headerfields import UTF8_WORD, decode_words, encoded_word_octets

# Control characters other than TAB left after unfolding: a bare CR or LF, NUL...
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class FieldParse:
    """What the two address parsers make of one field value.

    ``listed``: ``email.utils.getaddresses``, names as written; ``parsed``: the RFC 5322
    parser of ``email.headerregistry``, names decoded (``None`` if it raised);
    ``invalid``: that parser flagged an :class:`~email.errors.InvalidHeaderDefect` or
    found a group. ``decoded``: :func:`decode_words` of the ``listed`` names when the
    fast path knows them; else the rules call it, where they always did (it can
    raise on some charset names, and a rule that raises answers 451).
    """

    listed: tuple[tuple[str, str], ...]
    parsed: tuple[tuple[str, str], ...] | None
    invalid: bool
    decoded: tuple[str, ...] | None = field(default=None, compare=False)

    def listed_names(self) -> list[str]:
        """The ``listed`` names, RFC 2047-decoded."""
        if self.decoded is not None:
            return list(self.decoded)
        return [decode_words(name) for name, _ in self.listed]


def parse_field(value: str) -> FieldParse:
    """Both parsers' reading of an address field ``value``: :func:`simple_field` for
    the common unambiguous forms, else :func:`full_parse`."""
    return simple_field(value) or full_parse(value)


def full_parse(value: str) -> FieldParse:
    """Run both parsers on ``value`` (about 0.2 ms: the strict parser is slow)."""
    listed = tuple(getaddresses([value]))
    try:
        header = email_policy.default.header_factory("From", value)
        parsed = tuple((a.display_name, a.addr_spec) for a in header.addresses)
        invalid = any(isinstance(d, email_errors.InvalidHeaderDefect) for d in header.defects)
        # RFC 5322 §3.6.2: From and Sender hold mailboxes, never a group ("Team: a@b;")
        invalid = invalid or any(g.display_name is not None for g in header.groups)
    except Exception:  # the stdlib parser has raised on hostile input before
        return FieldParse(listed, None, True)
    return FieldParse(listed, parsed, invalid)


# The fast path: forms on which getaddresses and the RFC 5322 parser cannot disagree,
# read by one strict regex. Anything else, however ordinary, goes to full_parse.
# An address: an ASCII dot-atom of letters, digits, "_", "+", "-"; an ASCII domain.
_SIMPLE_ADDR = r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
_SIMPLE_FIELD = re.compile(
    # display-name SP <addr-spec>; the name is a run of encoded-words, a phrase of
    # word characters (letters and digits of any script, "_", "'", "-"), or a quoted
    # string of printable characters without \ " < > @ , ; : ( ) [ ] = ?
    rf"(?:(?P<words>{UTF8_WORD}(?: {UTF8_WORD})*)"
    r"|(?P<phrase>[\w'-]+(?: [\w'-]+)*)"
    r'|"(?P<quoted>[^"\\<>@,;:()\[\]=?\x00-\x1f\x7f]+)")'
    rf" <(?P<named>{_SIMPLE_ADDR})>"
    # or <addr-spec>, or addr-spec alone
    rf"|<(?P<bracketed>{_SIMPLE_ADDR})>|(?P<bare>{_SIMPLE_ADDR})"
)


def simple_field(value: str) -> FieldParse | None:
    """:func:`full_parse` of ``value`` without running the parsers, for a single
    mailbox written in one of the plain forms of ``_SIMPLE_FIELD``; None for anything
    else. A result is always equal to ``full_parse(value)``: the tests check both on
    every header case they have and on generated ones."""
    m = _SIMPLE_FIELD.fullmatch(value)
    if m is None:
        return None
    address = m["named"] or m["bracketed"] or m["bare"]
    if not m["named"]:
        pair = (("", address),)
        return FieldParse(pair, pair, False, ("",))
    name = m["words"] or m["phrase"] or m["quoted"]
    if m["words"] is None:
        # No "=?" in the name: decode_words returns it unchanged (decode_header finds
        # no encoded-word), and both parsers take a phrase or quoted string as written.
        if m["quoted"] and not name.isprintable():
            return None  # e.g. a zero-width space: let the parsers judge it
        return FieldParse(((name, address),), ((name, address),), False, (name,))
    # The RFC 5322 parser decodes each encoded-word on its own and keeps the space
    # between two of them; decode_words (decode_header) drops that space and joins
    # the octets of adjacent UTF-8 words before decoding (RFC 2047 §6.2). Taken only
    # where nothing else can differ: valid UTF-8 in every word, printable, no white
    # space but single spaces inside a word.
    texts = []
    for word in name.split(" "):
        text = _decode_utf8_word(word)
        if text is None or not text.isprintable() or text != text.strip(" ") or "  " in text:
            return None
        texts.append(text)
    return FieldParse(((name, address),), ((" ".join(texts), address),), False, ("".join(texts),))


def _decode_utf8_word(word: str) -> str | None:
    """The text of one encoded-word matched by ``UTF8_WORD``, None if not valid UTF-8."""
    try:
        return encoded_word_octets(word).decode("utf-8") or None
    except UnicodeError:
        return None


# Field values parsed for each message being evaluated, so that the rules of one
# evaluation parse a field once between them. Weak keys: an entry lives as long as
# its message; keyed by the value as well, so a changed field is parsed anew.
_PARSED: weakref.WeakKeyDictionary[Message, dict[str, FieldParse]] = weakref.WeakKeyDictionary()


def field_parser(msg: Message | None) -> Callable[[str], FieldParse]:
    """:func:`parse_field`, memoised for the field values of ``msg``."""
    if msg is None:
        return parse_field
    try:
        memo = _PARSED.get(msg)
        if memo is None:
            memo = _PARSED.setdefault(msg, {})
    except TypeError:  # not weak-referenceable or not hashable: no memo
        return parse_field

    def parse(value: str) -> FieldParse:
        result = memo.get(value)
        if result is None:
            result = memo[value] = parse_field(value)
        return result

    return parse


def address_pairs(values: list[str], parse: Callable[[str], FieldParse] = parse_field
                  ) -> list[tuple[str, str]]:
    """(decoded display name, address) of every mailbox in ``values``.

    Uses both ``email.utils.getaddresses`` and the RFC 5322 parser of
    ``email.headerregistry``: where they disagree a name hidden from one shows in the
    other, and both are returned. Comments count as names.
    """
    if not values:
        return []
    if len(values) == 1:
        one = parse(values[0])
        names = one.listed_names()
        return [*zip(names, (a for _, a in one.listed)), *(one.parsed or ())]
    # getaddresses reads several values as one list: an unbalanced quote in the first
    # can swallow the next, so the values are not read one by one here.
    pairs = [(decode_words(n), a) for n, a in getaddresses(values)]
    for value in values:
        pairs += parse(value).parsed or ()
    return pairs


def sole_mailbox(values: list[str], parse: Callable[[str], FieldParse] = parse_field
                 ) -> tuple[str, Mailbox] | None:
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
    fields = parse(values[0])
    if len(fields.listed) != 1 or not fields.listed[0][1]:
        return None
    addr = fields.listed[0][1]
    second = fields.parsed
    if fields.invalid or second is None or len(second) != 1 or second[0][1].lower() != addr.lower():
        return None
    try:
        return fields.listed_names()[0], parse_mailbox(addr)
    except AddressError:
        return None
