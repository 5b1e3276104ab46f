"""Rules on the author fields of the message, at end of ``DATA``.

What a reader sees is the ``From:`` field and its display name, not the envelope, so
the envelope checks of :mod:`policies.sender` are carried over to them here.
"""
from __future__ import annotations

import re
from typing import Mapping

from policies.addresses import canonical, canonical_set
from policies.addressfields import address_pairs, field_parser, sole_mailbox
from policies.context import PolicyContext
from policies.headerfields import field_values, fold_words
from policies.verdict import Verdict, reject

# Something that looks like an address inside a display name.
_EMBEDDED_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"']+@[^\s<>()\[\],;:\"']+")


def _from_refused(en: str) -> Verdict:
    return reject(
        550, "5.7.1",
        "Trường From (và Sender nếu có) phải chứa đúng một địa chỉ là địa chỉ người gửi.",
        en,
    )


def header_from_matches(ctx: PolicyContext) -> Verdict | None:
    """Exactly one ``From:`` with exactly one mailbox, equal (case-insensitive, canonical
    form) to the envelope sender; at most one ``Sender:``, and if present it is the
    envelope sender too. RFC 5322 §3.6.2 allows several From mailboxes with a Sender;
    an official's mail never needs that, so it is refused.

    Trusts nothing in ``ctx.headers``: a field that does not parse cleanly is a
    refusal (see :func:`policies.addressfields.sole_mailbox`), never an exception.
    """
    envelope = canonical(ctx.mail_from)
    parse = field_parser(ctx.headers)  # shared with no_impersonation: parsed once
    from_ = sole_mailbox(field_values(ctx.headers, "From"), parse)
    if from_ is None:
        return _from_refused("The message needs exactly one From header with one address.")
    if envelope is None or from_[1].address != envelope:
        return _from_refused("The From address must be the envelope sender (MAIL FROM).")
    senders = field_values(ctx.headers, "Sender")
    if senders:
        sender = sole_mailbox(senders, parse)
        if sender is None or sender[1].address != envelope:
            return _from_refused("The Sender header must be the envelope sender (MAIL FROM).")
    return None


# The directory's names in compare form -> canonical addresses bearing that name.
# Built once per directory mapping: folding tens of thousands of names costs ~0.2 s.
_name_index: tuple[Mapping[str, str], int, dict[str, frozenset[str]], frozenset[str]] | None = None


def index_directory(names: Mapping[str, str]) -> tuple[dict[str, frozenset[str]], frozenset[str]]:
    """(folded name -> addresses, all addresses) of ``names``, memoised on the mapping's
    identity and length: the mapping is read-only (see PolicyContext), so a new directory
    snapshot is a new mapping. A race between threads only builds the index twice.

    Building costs about 0.5 s for 50,000 officials: the front end should pass the same
    mapping object to every context and call this once when it loads a new snapshot,
    so that no message pays for it (and no rule runs into its timeout)."""
    global _name_index
    cached = _name_index
    if cached is not None and cached[0] is names and cached[1] == len(names):
        return cached[2], cached[3]
    index: dict[str, set[str]] = {}
    addresses = set()
    for address, full_name in names.items():
        address = canonical(address) or address.lower()
        addresses.add(address)
        key = fold_words(full_name or "")
        if key:
            index.setdefault(key, set()).add(address)
    frozen = {k: frozenset(v) for k, v in index.items()}
    _name_index = (names, len(names), frozen, frozenset(addresses))
    return frozen, _name_index[3]


def _impersonation(en: str) -> Verdict:
    return reject(
        550, "5.7.1",
        "Thư có tên hiển thị hoặc địa chỉ trả lời mạo danh một cán bộ khác.",
        en,
    )


def no_impersonation(ctx: PolicyContext) -> Verdict | None:
    """Display names in ``From:``, ``Sender:`` and ``Reply-To:`` do not claim another
    official, and ``Reply-To:`` does not send answers to another official.

    Refused (550 5.7.1):

    - a display name equal (compared by :func:`fold_words`: case, diacritics, punctuation
      and white space ignored) to the full name of a directory address the sender may
      not send as. Officials share names (many a "Nguyễn Văn An"), so a name borne by
      the sender or by any address they may send as is allowed;
    - a display name holding an address other than the field's own address
      (``"giamdoc@hochiminhcity.gov.vn" <x@evil.example>``);
    - a ``Reply-To:`` address that is in the directory and not one the sender may send as.

    Trusts ``ctx.directory_names`` and ``ctx.sender``; reads the fields defensively.
    """
    index, directory = index_directory(ctx.directory_names)
    allowed: frozenset[str] = frozenset()
    own_name = ""
    if ctx.sender is not None:
        allowed = canonical_set((*ctx.sender.may_send_as, ctx.sender.login))
        own_name = fold_words(ctx.sender.full_name or "")
    parse = field_parser(ctx.headers)  # shared with header_from_matches: parsed once
    for field in ("From", "Sender", "Reply-To"):
        # Each distinct pair once: a repeat would be judged as its first occurrence was.
        pairs = dict.fromkeys(address_pairs(field_values(ctx.headers, field), parse))
        for display_name, address in pairs:
            address = canonical(address) or address.lower()
            for embedded in _EMBEDDED_ADDRESS.findall(display_name):
                if (canonical(embedded) or embedded.lower()) != address:
                    return _impersonation("A display name holds an address other than its own.")
            name = fold_words(display_name)
            if name and name != own_name:
                bearers = index.get(name, frozenset())
                if bearers and not bearers & allowed:
                    return _impersonation(f"The {field} display name is another official's name.")
            if field == "Reply-To" and address in directory and address not in allowed:
                return _impersonation("Reply-To points to another official's address.")
    return None
