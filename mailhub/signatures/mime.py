"""A MIME walker over raw bytes, for signature checks.

A ``multipart/signed`` signature covers its first body part exactly as transmitted
(RFC 1847 §2.1, RFC 8551 §3.5), so nothing here re-serialises: every entity is a
slice of the original message. Headers are read with the standard library's header
parser, which only reads them. The walk is iterative and bounded (depth and number of
entities), so hostile nesting costs little and never raises.

Entities inside ``message/rfc822`` parts are not visited: a forwarded message's
signatures and attachments belong to that other message, not to this submission.
"""
from __future__ import annotations

import binascii
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

log = logging.getLogger(__name__)

MAX_DEPTH = 16      # multipart nesting followed at most this deep
MAX_ENTITIES = 500  # entities visited per message at most
MAX_FALSE_DELIMITERS = 1000  # lines starting like a delimiter that are not one

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_DELIMITER_TAIL = re.compile(rb"(--)|[ \t]*(?:\r?\n|\Z)")  # what follows "--boundary"


@dataclass(frozen=True)
class Entity:
    """One MIME entity: its parsed headers and where it lies in the message.

    Offsets into the original bytes let nested entities share the message instead
    of copying it at every level; ``body`` is a slice made on demand.
    """

    headers: Message
    source: bytes
    start: int       # first byte of the entity (its headers)
    body_start: int  # first byte of its body
    end: int         # one past its last byte
    depth: int

    @property
    def body(self) -> bytes:
        """The body, still transfer-encoded, exactly as transmitted."""
        return self.source[self.body_start:self.end]

    @property
    def content_type(self) -> str:
        """``maintype/subtype`` in lower case (``text/plain`` when absent or broken)."""
        return self.headers.get_content_type()

    def param(self, name: str) -> str:
        """A Content-Type parameter, "" when absent."""
        value = self.headers.get_param(name, header="content-type")
        if isinstance(value, tuple):  # RFC 2231 (charset, language, value)
            value = value[2]
        return value.strip() if isinstance(value, str) else ""

    @property
    def filename(self) -> str:
        """The file name from Content-Disposition or the Content-Type ``name``, decoded."""
        raw = self.headers.get_filename() or self.param("name")
        if "=?" in raw:  # RFC 2047 encoded-words, which many clients put in parameters
            try:
                raw = str(make_header(decode_header(raw)))
            except (ValueError, LookupError, UnicodeError):
                pass
        return raw

    def decoded_body(self, limit: int) -> bytes | None:
        """The body without its Content-Transfer-Encoding; None when it is undecodable or
        would exceed ``limit`` bytes."""
        encoding = str(self.headers.get("content-transfer-encoding", "")).strip().lower()
        size = self.end - self.body_start
        try:
            if encoding == "base64":
                if size * 3 // 4 > limit + 1024:
                    return None
                # non-strict: line breaks and stray characters are skipped; the extra
                # padding completes a body whose final "=" were lost
                data = binascii.a2b_base64(self.body + b"==")
            elif encoding == "quoted-printable":
                if size > 3 * limit + 1024:
                    return None
                data = binascii.a2b_qp(self.body)
            else:  # 7bit, 8bit, binary or unknown: as transmitted
                if size > limit:
                    return None
                data = self.body
        except (binascii.Error, ValueError):
            return None
        return data if len(data) <= limit else None


def split_entity(source: bytes, start: int = 0, end: int | None = None,
                 depth: int = 0) -> Entity:
    """The entity in ``source[start:end]``; one starting with a blank line has no headers."""
    end = len(source) if end is None else end
    if source.startswith(b"\r\n", start, end) or source.startswith(b"\n", start, end):
        head_end = start
        body_start = start + (2 if source.startswith(b"\r\n", start, end) else 1)
    else:
        match = _HEADER_END.search(source, start, end)
        head_end, body_start = (end, end) if match is None else (match.start(), match.end())
    headers = BytesHeaderParser(policy=compat32).parsebytes(source[start:head_end])
    return Entity(headers=headers, source=source, start=start, body_start=body_start,
                  end=end, depth=depth)


def body_parts(source: bytes, start: int, end: int, boundary: str,
               max_parts: int = MAX_ENTITIES) -> list[tuple[int, int]]:
    """Where the body parts of the multipart body ``source[start:end]`` lie, each
    exactly as transmitted (RFC 2046 §5.1.1); at most ``max_parts`` of them.

    A delimiter line is "--boundary" at the start of a line followed only by transport
    padding; "--boundary--" starts the close delimiter. A part runs from after its delimiter
    line's line break to before the line break that precedes the next delimiter.
    Returns [] when the boundary is unusable; a missing close delimiter ends the last
    part at the end of the body. The boundary may not start a line inside a part
    (RFC 2046 §5.1.1), so after :data:`MAX_FALSE_DELIMITERS` lines that start like a
    delimiter but are not one, the body is treated as hostile and splitting stops.
    """
    if not boundary or len(boundary) > 200:
        return []
    dashes = b"--" + boundary.encode("ascii", "replace")
    parts: list[tuple[int, int]] = []
    part_start: int | None = None
    false_delimiters = 0
    found = start if source.startswith(dashes, start, end) else -1  # at the body's start
    at = start
    while True:
        if found < 0:
            found = source.find(b"\n" + dashes, at, end)
            if found < 0:
                break
            found += 1  # the "--" after the line break
        line = _DELIMITER_TAIL.match(source, found + len(dashes), end)
        if line is None:
            false_delimiters += 1
            if false_delimiters > MAX_FALSE_DELIMITERS:
                return parts
            at, found = found, -1
            continue
        if part_start is not None:  # the line break before the delimiter belongs to it
            part_end = found - 2 if source[found - 2:found] == b"\r\n" else found - 1
            parts.append((part_start, max(part_start, part_end)))
        if line.group(1) or len(parts) >= max_parts:
            return parts
        part_start = line.end()
        at, found = max(part_start - 1, found + 1), -1  # an empty part's "\n--" is at its start
    if part_start is not None and part_start < end:
        parts.append((part_start, end))
    return parts


def walk(message: bytes, *, max_depth: int = MAX_DEPTH,
         max_entities: int = MAX_ENTITIES) -> Iterator[Entity]:
    """Every entity of ``message``, depth first in document order, the message first.

    Multipart bodies are split on their boundary; parts deeper than ``max_depth`` or
    beyond ``max_entities`` are not visited. Never raises on malformed input.
    """
    stack = [(0, len(message), 0)]
    seen = 0
    while stack and seen < max_entities:
        start, end, depth = stack.pop()
        try:
            entity = split_entity(message, start, end, depth)
            parts = []
            if entity.content_type.startswith("multipart/") and depth < max_depth:
                parts = body_parts(message, entity.body_start, end, entity.param("boundary"))
        except Exception:  # noqa: BLE001 - hostile headers: skip the entity
            log.debug("skipped an unreadable MIME entity at depth %d", depth)
            continue
        seen += 1
        yield entity
        stack.extend((s, e, depth + 1) for s, e in reversed(parts))
