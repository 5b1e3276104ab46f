"""One submitted message in, one :class:`DocumentCheck` out.

Walks the raw message once (:mod:`.mime`): every ``multipart/signed`` S/MIME entity
and every PDF attachment, including PDFs inside the signed part of a
multipart/signed, in document order. The work is bounded: at most ``max_documents``
S/MIME entities and PDFs together, PDFs of at most ``max_pdf_bytes`` decoded, and
the walk's own depth and entity limits. Nothing here raises on hostile input, and
nothing logs message content (only counts and sizes).

CPU-bound (pyHanko): call it from a worker thread, e.g. ``asyncio.to_thread``.
"""
from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime

from mailhub.signatures.judge import quiet_library_logs, run_sync
from mailhub.signatures.mime import Entity, walk
from mailhub.signatures.outcome import DocumentCheck, Signature
from mailhub.signatures.pdf import check_pdf_async
from mailhub.signatures.smime import check_signed_entity, is_signed_entity
from mailhub.signatures.trust import TrustRoots

log = logging.getLogger(__name__)

UNNAMED_PDF = "attachment.pdf"
MAX_NAME = 200  # characters of an attachment name kept


@dataclass(frozen=True)
class _Pdf:
    name: str
    data: bytes


def _is_pdf(entity: Entity) -> bool:
    if entity.content_type.startswith(("multipart/", "message/")):
        return False
    return entity.content_type == "application/pdf" or entity.filename.lower().endswith(".pdf")


def _name(entity: Entity) -> str:
    """The attachment's file name, without control characters, for ``Signature.where``."""
    name = "".join(c for c in entity.filename if unicodedata.category(c) != "Cc").strip()
    return name[:MAX_NAME] or UNNAMED_PDF


def _documents(data: bytes, max_documents: int, max_pdf_bytes: int) -> list[Entity | _Pdf]:
    """The S/MIME entities and decoded PDFs to check, in document order."""
    found: list[Entity | _Pdf] = []
    skipped = 0
    for entity in walk(data):
        if len(found) >= max_documents:
            log.info("signature check: more than %d documents, the rest not checked", max_documents)
            break
        if is_signed_entity(entity):
            found.append(entity)
        elif _is_pdf(entity):
            pdf = entity.decoded_body(max_pdf_bytes)
            if pdf is None:
                skipped += 1
            else:
                found.append(_Pdf(_name(entity), pdf))
    if skipped:
        log.info("signature check: %d PDF attachment(s) over %d bytes or undecodable, not checked",
                 skipped, max_pdf_bytes)
    return found


async def _check(documents: list[Entity | _Pdf], roots: TrustRoots) -> list[Signature]:
    now = datetime.now(UTC)
    signatures: list[Signature] = []
    for document in documents:
        if isinstance(document, _Pdf):
            signatures.extend(await check_pdf_async(document.data, document.name, roots, now))
        else:
            signatures.append(await check_signed_entity(document, roots, now))
    return signatures


def examine(data: bytes, roots: TrustRoots, *, max_documents: int = 20,
            max_pdf_bytes: int = 30_000_000) -> DocumentCheck:
    """Every document signature in the raw message ``data`` (RFC 5322 bytes, CRLF).

    Trusts nothing in the message. S/MIME signatures (``multipart/signed`` with
    ``application/pkcs7-signature`` or ``application/x-pkcs7-signature``) are verified
    over the first body part as transmitted; PDF attachments (``application/pdf``, or
    any part whose file name ends in ``.pdf``), decoded from base64 or
    quoted-printable, are checked for embedded signatures. See :mod:`.smime` and
    :mod:`.pdf` for what each check requires. Never raises.
    """
    quiet_library_logs()
    try:
        documents = _documents(data, max_documents, max_pdf_bytes)
        if not documents:
            return DocumentCheck()
        return DocumentCheck(tuple(run_sync(_check(documents, roots))))
    except Exception as exc:  # noqa: BLE001 - each check guards itself; this is a last resort
        log.error("signature check failed unexpectedly (%s); message treated as unsigned",
                  type(exc).__name__)
        return DocumentCheck()
