"""Documents with secret content do not travel by email.

Hanoi letter 1616/UBND-THCB sends every document over the network "except documents with
secret content" ("trừ văn bản có nội dung mật"); these go through the confidential
channel under the state-secret protection rules. This rule is a guard against
*mistakes* (a secretary attaching a stamped document), not a data-loss-prevention
system: it reads the classification header and the Subject, not the body.
"""
from __future__ import annotations

import functools
import re
import unicodedata

from policies.context import PolicyContext
from policies.headerfields import decode_words, field_values, fold_words, plain_text
from policies.verdict import Verdict, ascii_fold, reject

_WORD = re.compile(r"[^\W_]+")


def _refused() -> Verdict:
    return reject(
        550, "5.7.1",
        "Văn bản có nội dung mật không được gửi qua thư điện tử; "
        "văn bản mật phải chuyển qua kênh dành cho văn bản mật theo quy định bảo vệ bí mật nhà nước.",
        "Documents with secret content must not be sent by email; "
        "send classified documents through the confidential channel.",
    )


@functools.lru_cache(maxsize=16)
def _subject_markers(markers: tuple[str, ...]) -> tuple[tuple[tuple[str, str], ...], ...]:
    """Each marker as words, each word as (capitals with diacritics, capitals without)."""
    out = []
    for marker in markers:
        words = _WORD.findall(unicodedata.normalize("NFC", plain_text(marker)).upper())
        if words:
            out.append(tuple((w, ascii_fold(w)) for w in words))
    return tuple(out)


def subject_has_marker(subject: str, markers: tuple[str, ...]) -> bool:
    """Does ``subject`` carry a marker as whole words written in capitals?

    A subject word matches a marker word when it is the marker word in capitals with its
    diacritics (``MẬT``) or, written without any diacritic, its plain ASCII form
    (``MAT``). Other diacritics are other words and do not match: ``MẶT TRẬN`` (the
    Fatherland Front), ``MẤT`` (lost). Lower or mixed case does not match: ``mật khẩu``
    (password), ``bí mật``, ``Mật``. All-capital ``MẬT KHẨU`` does match: in capitals
    the word reads as the secrecy stamp, and refusing is the safe side of the mistake.
    Brackets and punctuation around the marker do not matter (``[MẬT]``).
    """
    words = _WORD.findall(unicodedata.normalize("NFC", plain_text(subject)))
    if _marker_words(markers).isdisjoint(words):
        return False  # a match needs every word of a marker, so at least one of them
    for marker in _subject_markers(markers):
        n = len(marker)
        exact0, bare0 = marker[0]
        for i in range(len(words) - n + 1):
            first = words[i]
            if first != exact0 and not (first.isascii() and first == bare0):
                continue
            if all(w == exact or (w.isascii() and w == bare)
                   for w, (exact, bare) in zip(words[i:i + n], marker)):
                return True
    return False


@functools.lru_cache(maxsize=16)
def _marker_words(markers: tuple[str, ...]) -> frozenset[str]:
    """Every form a subject word must have to match some marker word."""
    return frozenset(form for marker in _subject_markers(markers)
                     for word in marker for form in word)


@functools.lru_cache(maxsize=16)
def _header_markers(markers: tuple[str, ...]) -> tuple[tuple[str, ...], frozenset[str]]:
    """The markers that are not empty once folded, and their folded forms."""
    kept = tuple(m for m in markers if fold_words(m))
    return kept, frozenset(fold_words(m) for m in kept)


def classification(ctx: PolicyContext) -> Verdict | None:
    """Refuse (550 5.7.1) a message marked secret.

    Marked means: a ``classification.header`` field (default ``X-Classification``) whose
    value, RFC 2047-decoded, equals a marker ignoring case, diacritics, surrounding
    white space and punctuation (``mật``, ``Tối Mật``, ``[TUYET MAT]``); or a ``Subject``
    (RFC 2047-decoded, raw UTF-8 accepted) carrying a marker as described in
    :func:`subject_has_marker`. Markers come from ``classification.markers``.
    """
    cfg = ctx.settings.classification
    markers, folded = _header_markers(tuple(cfg.markers))
    for value in field_values(ctx.headers, cfg.header):
        if fold_words(decode_words(value)) in folded:
            return _refused()
    for value in field_values(ctx.headers, "Subject"):
        if subject_has_marker(decode_words(value), markers):
            return _refused()
    return None
