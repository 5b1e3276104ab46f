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

import base64
import functools
import re
import unicodedata
from email.errors import MessageError
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

_FIELD_START = re.compile(r"\r\n(?![ \t])")  # a line break not followed by a folded line
_FIELD_NAME = re.compile(r"[!-9;-~]+:")  # RFC 5322 §3.6.8 field name, then the colon
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_NOT_WORD = re.compile(r"[\W_]+")
_SURROGATE_ESCAPE = re.compile("[\udc80-\udcff]")


def parse_header_section(head: bytes) -> Message:
    """The header section ``head`` (CRLF line ends, with or without the last one) as the
    policies read it: what ``BytesHeaderParser(policy=compat32)`` gives. The common case —
    ASCII, CRLF only, every field ``name: value`` with folded lines starting with white
    space — is read directly, at a quarter of the parser's cost; anything else (8-bit
    bytes, a bare CR or LF, a line that is no field) goes to the parser itself."""
    head = head.removesuffix(b"\r\n")
    crlf = head.count(b"\r\n")
    if head.isascii() and head.count(b"\n") == crlf and head.count(b"\r") == crlf:
        fields = _FIELD_START.split(head.decode("ascii"))
        if all(_FIELD_NAME.match(f) for f in fields):
            msg = Message(policy=compat32)
            for field in fields:
                name, value = field.split(":", 1)
                msg.set_raw(name, value.lstrip(" \t"))  # compat32.header_source_parse, as the parser does
            return msg
    return BytesHeaderParser(policy=compat32).parsebytes(head + b"\r\n")


def _repair(value: str) -> str:
    value = str(value)
    if "\n" in value:
        value = _FOLD.sub("", value)
    if not value.isascii() and _SURROGATE_ESCAPE.search(value):
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return value


def field_values(msg: Message | None, name: str) -> list[str]:
    """Every value of the fields called ``name`` (case-insensitive), unfolded, repaired."""
    if msg is None:
        return []
    wanted = name.lower()
    size = len(wanted)  # only U+0130 lengthens under lower(), and not into ASCII
    return [_repair(v) for k, v in msg.raw_items() if len(k) == size and k.lower() == wanted]


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words; an unknown charset or bad bytes decode as UTF-8
    with replacement characters. Never raises: a refusal must not become an exception.

    Plain text and the usual run of UTF-8 encoded-words skip ``email.header`` (about
    20 µs) when :func:`_simple_words` can say what it would return."""
    if "=?" not in value:
        return value  # decode_header finds no encoded-word; make_header gives it back
    simple = _simple_words(value)
    if simple is not None:
        return simple
    try:
        parts = decode_header(value)
    except Exception:  # HeaderParseError and friends: keep the text as written
        return value
    try:
        return str(make_header(parts))
    except (LookupError, UnicodeError, ValueError, MessageError):
        pass  # e.g. a charset name with a NUL or U+FFFD (CharsetError): decode by hand
    out = []
    for chunk, charset in parts:
        if isinstance(chunk, str):
            out.append(chunk)
            continue
        try:
            out.append(chunk.decode(charset or "ascii", "replace"))
        except (LookupError, ValueError):  # unknown charset, or a NUL in its name
            out.append(chunk.decode("utf-8", "replace"))
    return " ".join(out)


# RFC 2047 encoded-word in UTF-8: B with canonical padding, or Q restricted to the
# characters §5(3) allows in a phrase (none of which is special to an address parser).
UTF8_WORD = (r"=\?[Uu][Tt][Ff]-8\?(?:[Bb]\?(?:[A-Za-z0-9+/]{4})*"
             r"(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})"
             r"|[Qq]\?(?:[A-Za-z0-9!*+/_-]|=[0-9A-Fa-f]{2})+)\?=")
_Q_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")


def encoded_word_octets(word: str) -> bytes:
    """The octets of one encoded-word matched by ``UTF8_WORD`` (RFC 2047 §4)."""
    _, _charset, encoding, encoded, _ = word.split("?")
    if encoding in "bB":
        return base64.b64decode(encoded, validate=True)  # the regex allows only valid base64
    return _Q_ESCAPE.sub(lambda e: bytes.fromhex(e[1].decode()),
                         encoded.replace("_", " ").encode("ascii"))


# A run of UTF-8 encoded-words, then nothing or a space and printable ASCII.
_WORDS_THEN_TEXT = re.compile(rf"(?P<words>{UTF8_WORD}(?: {UTF8_WORD})*)(?P<tail>(?: [ -~]*)?)")


def _simple_words(value: str) -> str | None:
    """What decode_header + make_header return for ``value`` when it is a run of UTF-8
    encoded-words, maybe followed by a space and plain ASCII text; None otherwise.

    decode_header drops the spaces between encoded-words and joins the octets of the
    adjacent words of one charset (RFC 2047 §6.2), which make_header decodes strictly;
    the unencoded tail follows as written (it starts with a space, so make_header adds
    none). Octets that are not UTF-8 are left to the full decoder.
    """
    m = _WORDS_THEN_TEXT.fullmatch(value)
    if m is None or "=?" in m["tail"]:
        return None
    try:
        raw = b"".join(encoded_word_octets(word) for word in m["words"].split(" "))
        return raw.decode("utf-8") + m["tail"]
    except UnicodeError:
        return None


def plain_text(text: str) -> str:
    """NFKC (full-width letters become plain ones) without invisible format characters
    (zero-width joiners and spaces, bidi controls: Unicode category Cf)."""
    text = unicodedata.normalize("NFKC", text)
    if text.isascii():
        return text  # no format character is ASCII
    if max(text) <= "\uffff":
        return text.translate(_format_table())
    return "".join(c for c in text if unicodedata.category(c) != "Cf")


@functools.lru_cache(maxsize=1)
def _format_table() -> dict[int, None]:
    """str.translate table: drop the format characters (category Cf) of the BMP."""
    return {cp: None for cp in range(0x10000) if unicodedata.category(chr(cp)) == "Cf"}


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
