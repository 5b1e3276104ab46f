"""S/MIME signatures: ``multipart/signed`` entities with a detached CMS signature.

RFC 1847 §2.1 and RFC 8551 §3.5: the signature covers the first body part exactly as
transmitted, from after its delimiter line's CRLF to before the CRLF that precedes
the next delimiter. Those bytes are taken from the raw message (:mod:`.mime`), never
re-serialised, and verified with pyHanko's generic CMS validation.

Opaque signed messages (``application/pkcs7-mime; smime-type=signed-data``) are not
checked. A CMS object with several signers is reported as unreadable (pyHanko reads
one signer per signature).
"""
from __future__ import annotations

from datetime import UTC, datetime

from asn1crypto import cms
from pyhanko.sign.general import extract_certificate_info, extract_signer_info
from pyhanko.sign.validation.generic_cms import (
    async_validate_detached_cms,
    extract_self_reported_ts,
)

from mailhub.signatures.judge import (
    broken,
    email_usage_allowed,
    judge,
    key_usage_rule,
    quiet_library_logs,
    run_sync,
    utc,
    validation_moment,
)
from mailhub.signatures.mime import Entity, body_parts, split_entity, walk
from mailhub.signatures.outcome import Signature
from mailhub.signatures.trust import TrustRoots

PROTOCOLS = frozenset({"application/pkcs7-signature", "application/x-pkcs7-signature"})
MAX_SIGNATURE_BYTES = 1_000_000  # a CMS signature with its certificates is a few KB
MAX_SIGNED_ENTITIES = 20         # multipart/signed entities checked per message

MESSAGE_CHANGED = "the message was changed after signing"
SIGNATURE_MISSING = "the signature part is missing"


def is_signed_entity(entity: Entity) -> bool:
    """A ``multipart/signed`` entity whose protocol is a PKCS #7 signature."""
    return (entity.content_type == "multipart/signed"
            and entity.param("protocol").lower() in PROTOCOLS)


def _signed_data(entity: Entity) -> tuple[bytes, cms.SignedData] | None:
    """The signed bytes and the CMS SignedData of a multipart/signed entity; None when
    the signature part is missing. Raises on an unreadable signature."""
    parts = body_parts(entity.source, entity.body_start, entity.end, entity.param("boundary"))
    if len(parts) < 2:
        return None
    (content_start, content_end), (sig_start, sig_end) = parts[0], parts[1]
    signature_part = split_entity(entity.source, sig_start, sig_end, entity.depth + 1)
    if signature_part.content_type not in PROTOCOLS:
        return None
    der = signature_part.decoded_body(MAX_SIGNATURE_BYTES)
    if not der:
        raise ValueError("undecodable signature part")
    info = cms.ContentInfo.load(der)
    if info["content_type"].native != "signed_data":
        raise ValueError("not a CMS SignedData")
    return entity.source[content_start:content_end], info["content"]


async def check_signed_entity(entity: Entity, roots: TrustRoots, now: datetime) -> Signature:
    """Verify one multipart/signed entity. Never raises: an unreadable or missing
    signature comes back as a broken :class:`Signature` with its problem.

    Trusts nothing in the entity. Checks the detached CMS signature over the first body
    part, the signer's chain to ``roots`` at the claimed signing time (no network,
    revocation soft-fail), keyUsage digitalSignature or nonRepudiation, and an
    extendedKeyUsage, when present, allowing emailProtection (RFC 8550 §4.4.4).
    """
    try:
        found = _signed_data(entity)
        if found is None:
            return broken("smime", "message", SIGNATURE_MISSING)
        content, signed_data = found
        signer_info = extract_signer_info(signed_data)
        cert = extract_certificate_info(signed_data).signer_cert
        claimed = utc(extract_self_reported_ts(signer_info))
        rule = key_usage_rule(cert)
        status = await async_validate_detached_cms(
            content, signed_data,
            signer_validation_context=roots.validation_context(validation_moment(claimed, now)),
            key_usage_settings=rule,
        )
        return await judge(status, kind="smime", where="message", claimed=claimed, roots=roots,
                           rule=rule, now=now, changed=MESSAGE_CHANGED,
                           usage_allowed=email_usage_allowed(cert))
    except Exception:  # noqa: BLE001 - hostile or broken CMS: reported, never raised
        return broken("smime", "message")


async def check_entities(entities: list[Entity], roots: TrustRoots) -> list[Signature]:
    now = datetime.now(UTC)
    return [await check_signed_entity(e, roots, now) for e in entities]


def check_smime(data: bytes, roots: TrustRoots) -> list[Signature]:
    """Every S/MIME signature of the raw message ``data`` (RFC 5322 bytes, CRLF): one
    :class:`Signature` per ``multipart/signed`` entity (top level or nested), at most
    :data:`MAX_SIGNED_ENTITIES`. Never raises."""
    quiet_library_logs()
    entities = [e for e in walk(data) if is_signed_entity(e)][:MAX_SIGNED_ENTITIES]
    return run_sync(check_entities(entities, roots)) if entities else []
