"""Signed PDF attachments, verified with pyHanko.

Coverage: a signature counts as intact only when its digest matches and either it
covers the whole file, or the file only grew after it by incremental updates that
pyHanko's difference analysis classes as signature maintenance or form filling
(which is how a later signature is added) and that the signature's DocMDP
permissions allow. Any other later change (page content, annotations, anything
pyHanko cannot explain) gives intact=False, "the document was changed after signing".

Document timestamps (``/DocTimeStamp``) are not signatures by a person and are not
reported. The reader is strict (pyHanko's default, which refuses hybrid-reference
files) and uses pyHanko's decoding limits for untrusted input.
"""
from __future__ import annotations

from datetime import UTC, datetime
from io import BytesIO
from itertools import islice

from pyhanko.pdf_utils.crypt.api import AuthStatus
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.fields import enumerate_sig_fields
from pyhanko.sign.validation.pdf_embedded import (
    EmbeddedPdfSignature,
    async_validate_pdf_signature,
)
from pyhanko.sign.validation.status import PdfSignatureStatus, SignatureCoverageLevel

from mailhub.signatures.judge import (
    broken,
    judge,
    key_usage_rule,
    quiet_library_logs,
    run_sync,
    utc,
    validation_moment,
)
from mailhub.signatures.outcome import Signature
from mailhub.signatures.trust import TrustRoots

MAX_SIGNATURES = 10  # signatures checked per PDF

DOCUMENT_CHANGED = "the document was changed after signing"


def _covered(status: PdfSignatureStatus) -> bool:
    """Whether the signature covers the document as received (see the module doc)."""
    if status.coverage == SignatureCoverageLevel.ENTIRE_FILE:
        return True
    if status.coverage != SignatureCoverageLevel.ENTIRE_REVISION or status.docmdp_ok is not True:
        return False
    level = status.modification_level
    return level is not None and level <= ModificationLevel.FORM_FILLING


def _claimed_time(signature: EmbeddedPdfSignature) -> datetime | None:
    """CMS signingTime, else the signature dictionary's /M; None when unreadable."""
    try:
        return utc(signature.self_reported_timestamp)
    except Exception:  # noqa: BLE001 - a malformed /M date is no date
        return None


async def _check_field(reader: PdfFileReader, field, fq_name: str, name: str,
                       roots: TrustRoots, now: datetime) -> Signature | None:
    try:
        signature = EmbeddedPdfSignature(reader, field, fq_name)
        if signature.sig_object_type != "/Sig":
            return None
        claimed = _claimed_time(signature)
        rule = key_usage_rule(signature.signer_cert)
        status = await async_validate_pdf_signature(
            signature,
            signer_validation_context=roots.validation_context(validation_moment(claimed, now)),
            key_usage_settings=rule,
        )
        return await judge(status, kind="pdf", where=name, claimed=claimed, roots=roots,
                           rule=rule, now=now, changed=DOCUMENT_CHANGED, covered=_covered(status))
    except Exception:  # noqa: BLE001 - broken signature dictionary or CMS: reported
        return broken("pdf", name)


def _open(data: bytes) -> PdfFileReader | None:
    """A reader for ``data``; None when it is not a readable PDF (or needs a password)."""
    try:
        reader = PdfFileReader(BytesIO(data))
        if reader.encrypted and reader.decrypt(b"").status == AuthStatus.FAILED:
            return None
        return reader
    except Exception:  # noqa: BLE001 - not a PDF we can read
        return None


async def check_pdf_async(data: bytes, name: str, roots: TrustRoots,
                          now: datetime | None = None) -> list[Signature]:
    """:func:`check_pdf` for callers that already run an event loop (no I/O inside)."""
    now = now or datetime.now(UTC)
    reader = _open(data)
    if reader is None:
        return []
    try:
        fields = list(islice(enumerate_sig_fields(reader, filled_status=True), MAX_SIGNATURES))
    except Exception:  # noqa: BLE001 - an unreadable form: no signature found
        return []
    found = [await _check_field(reader, field, fq_name, name, roots, now)
             for fq_name, _value, field in fields]
    return [s for s in found if s is not None]


def check_pdf(data: bytes, name: str, roots: TrustRoots) -> list[Signature]:
    """Every signature embedded in the PDF ``data`` (an attachment named ``name``).

    Trusts nothing in the file. For each signature field with a value (at most
    :data:`MAX_SIGNATURES`): the CMS signature over its byte range, the coverage rule
    above, the signer's chain to ``roots`` at the claimed signing time (no network,
    revocation soft-fail), keyUsage digitalSignature or nonRepudiation, no
    extendedKeyUsage requirement. A PDF that cannot be read, or has no signature,
    gives []; a signature that cannot be read gives a broken :class:`Signature`.
    Never raises.
    """
    quiet_library_logs()
    return run_sync(check_pdf_async(data, name, roots))
