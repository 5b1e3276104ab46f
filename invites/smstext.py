"""SMS text: Vietnamese without diacritics, and how many segments it costs.

The character rules are 3GPP TS 23.038 (formerly GSM 03.38) §6.2.1: a text
made only of the default alphabet and its extension table is sent as GSM-7,
anything else as UCS-2 (UTF-16). Segment sizes are 3GPP TS 23.040 §9.2.3.24.1:
a single SMS carries 140 octets (160 septets, 70 UTF-16 units); a concatenated
part loses 6 octets to the user data header (153 septets, 67 units).

Vietnamese with diacritics is outside GSM-7, so one accented letter turns a
160-character SMS into a 70-character one (FIELD-NOTES); hence the default is
to strip them.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# TS 23.038 §6.2.1 default alphabet, in table order; ESC (0x1B) is left out: it
# only introduces an extension character and is never text of its own.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
# TS 23.038 §6.2.1.1 extension table: ESC + one septet, so 2 septets each.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7, UCS2 = "GSM-7", "UCS-2"
_LIMITS = {GSM7: (160, 153), UCS2: (70, 67)}  # (single SMS, each concatenated part)

# Punctuation that word processors and phone keyboards put into Vietnamese text
# and that is outside GSM-7: one such character would force UCS-2.
_GSM_LOOKALIKES = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u00ab": '"', "\u00bb": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
    "\u2015": "-", "\u2212": "-", "\u2022": "-",
    "\u2026": "...",
    "\u00a0": " ", "\u2007": " ", "\u2009": " ", "\u200a": " ", "\u202f": " ", "\u3000": " ",
    "\u200b": "", "\u2060": "", "\ufeff": "", "\u00ad": "",  # invisible, pasted from the web
})


def strip_diacritics(text: str) -> str:
    """``text`` without accents and with GSM-7 stand-ins for typographic punctuation.

    NFD splits each accented letter into its base letter and combining marks,
    which are dropped; đ and Đ have no decomposition (they are letters of their
    own) and are mapped by hand; NFC recomposes what is left (e.g. Hangul).
    Curly quotes, dashes, the ellipsis and odd spaces become ' " - ... and a
    space. Other characters (emoji, CJK) are kept: :func:`encoding_of` will say
    the text needs UCS-2.
    """
    decomposed = unicodedata.normalize("NFD", text.translate(_GSM_LOOKALIKES))
    bare = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return unicodedata.normalize("NFC", bare.replace("đ", "d").replace("Đ", "D"))


@dataclass(frozen=True)
class SmsEncoding:
    name: str      # GSM7 or UCS2
    segments: int  # SMS billed; 1 for an empty text
    units: int     # septets (GSM-7) or UTF-16 code units (UCS-2)


def _weights(text: str) -> tuple[str, list[int]]:
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text):
        return GSM7, [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return UCS2, [2 if ord(ch) > 0xFFFF else 1 for ch in text]  # surrogate pair


def encoding_of(text: str) -> SmsEncoding:
    """The encoding a gateway will choose for ``text`` and the segments it costs.

    Trusts nothing; any ``str`` is counted. GSM-7 if every character is in the
    default alphabet or the extension table (those count 2 septets), else UCS-2
    (characters outside the BMP count 2 units). A text longer than one SMS is
    split into parts of 153 septets or 67 units, never inside an escape
    sequence or a surrogate pair (as Twilio counts); a gateway that splits
    blindly uses at most as many parts, so the count is safe for limits.
    """
    name, weights = _weights(text)
    single, part = _LIMITS[name]
    units = sum(weights)
    if units <= single:
        return SmsEncoding(name, 1, units)
    segments, used = 1, 0
    for w in weights:
        if used + w > part:
            segments, used = segments + 1, 0
        used += w
    return SmsEncoding(name, segments, units)


_LINE_BREAK = re.compile(r"\r\n?")
_SPACES = re.compile(r"[^\S\n]+")  # whitespace except LF


def prepare_sms(text: str, *, unicode: bool = False) -> tuple[str, SmsEncoding]:
    """The text to hand to a gateway and its encoding.

    Diacritics and typographic punctuation go (:func:`strip_diacritics`) unless
    ``unicode`` is set. Line breaks are kept as one LF each (GSM-7 has LF; CRLF
    and CR become LF), empty lines are dropped, other control characters are
    removed, runs of spaces and tabs become one space, and each line is
    trimmed. The result can still be UCS-2 (an emoji, a Chinese name): the
    returned encoding says so, nothing is dropped silently.
    """
    if not unicode:
        text = strip_diacritics(text)
    text = _LINE_BREAK.sub("\n", text).replace("\t", " ")
    text = "".join(ch for ch in text if ch == "\n" or unicodedata.category(ch) != "Cc")
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    out = "\n".join(line for line in lines if line)
    return out, encoding_of(out)


ELLIPSIS = "..."


def shorten_to_fit(fixed: str, variable: str, placeholder: str = "{title}",
                   segments: int = 1) -> str:
    """``fixed`` with ``placeholder`` replaced by ``variable``, cut so the whole
    text fits in ``segments`` SMS.

    Expects both parts already prepared (:func:`prepare_sms`); counts with
    :func:`encoding_of`, so a UCS-2 text is held to UCS-2 sizes. When the text
    is too long, ``variable`` loses its end, at a word boundary where there is
    one, and gets "...". Raises ValueError if ``placeholder`` is not in
    ``fixed`` or if ``fixed`` does not fit even with "..." alone.
    """
    return fixed.replace(placeholder, fit_variable(fixed, variable, placeholder, segments))


def fit_variable(fixed: str, variable: str, placeholder: str = "{title}", segments: int = 1) -> str:
    """What :func:`shorten_to_fit` puts in place of ``placeholder``: ``variable``,
    or its cut form ending in "...". Same errors."""
    if placeholder not in fixed:
        raise ValueError(f"placeholder {placeholder!r} not in the fixed text")
    if encoding_of(fixed.replace(placeholder, variable)).segments <= segments:
        return variable
    for keep in range(len(variable) - 1, -1, -1):
        head = variable[:keep]
        if not variable[keep].isspace() and not head[-1:].isspace() and " " in head:
            head = head.rsplit(" ", 1)[0]  # do not end on half a word
        candidate = head.rstrip() + ELLIPSIS
        if encoding_of(fixed.replace(placeholder, candidate)).segments <= segments:
            return candidate
    needed = encoding_of(fixed.replace(placeholder, ELLIPSIS)).segments
    raise ValueError(f"the fixed text alone needs {needed} SMS, more than {segments}")
