"""Turning pyHanko's verdict on one CMS signature into a :class:`Signature`.

pyHanko answers "is it intact" and "does the certificate validate at moment T"; the
relay asks three separate questions (see :mod:`.outcome`): is it intact, does the
signer chain to a trust root, and were the certificates valid when it signed. The
signer validates at the signing time the signature claims (CMS ``signingTime``, or
for a PDF its ``/M`` entry; now when there is none), so a certificate that expired
later still counts. That time is the signer's own claim: it is covered by the
signature, but a signer holding an expired key could backdate it.

When validation at that time fails and the certificates were not all valid then,
the same path is validated again at a moment inside all their validity periods, to
tell "untrusted" apart from "expired when it signed".
"""
from __future__ import annotations

import asyncio
import logging
import unicodedata
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.x509.oid import NameOID
from pyhanko.sign.ades.report import AdESIndeterminate
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko.sign.validation.status import SignatureStatus
from pyhanko_certvalidator.errors import InvalidCertificateError
from pyhanko_certvalidator.path import ValidationPath
from pyhanko_certvalidator.validate import async_validate_path

from mailhub.signatures.outcome import Signature
from mailhub.signatures.trust import TrustRoots

T = TypeVar("T")

FUTURE_SLACK = timedelta(minutes=5)  # clock skew allowed for a claimed signing time
MAX_SUBJECT = 300                    # characters of a signer's subject kept

UNREADABLE = "the signature cannot be read"
NOT_VERIFIED = "the signature does not verify"
UNTRUSTED = "the signer's certificate is not issued by a trusted authority"
NOT_FOR_SIGNING = "the signer's certificate is not meant for signing"
WEAK_ALGORITHM = "the signature uses an algorithm that is no longer safe"
REVOKED = "the signer's certificate was revoked"
FUTURE = "the signature claims a signing time in the future"
EXPIRED = "the signer's certificate had expired when it signed"
NOT_YET_VALID = "the signer's certificate was not yet valid when it signed"
CHAIN_NOT_VALID = "a certificate of the signer's authority was not valid when it signed"

_TRUST_PROBLEMS = {
    AdESIndeterminate.CHAIN_CONSTRAINTS_FAILURE: NOT_FOR_SIGNING,
    AdESIndeterminate.CRYPTO_CONSTRAINTS_FAILURE: WEAK_ALGORITHM,
    AdESIndeterminate.CRYPTO_CONSTRAINTS_FAILURE_NO_POE: WEAK_ALGORITHM,
    AdESIndeterminate.REVOKED_NO_POE: REVOKED,
    AdESIndeterminate.REVOKED_CA_NO_POE: REVOKED,
}


def broken(kind: str, where: str, problem: str = UNREADABLE) -> Signature:
    """A signature that is there but cannot be checked (garbage, truncated, missing)."""
    return Signature(kind=kind, where=where, intact=False, trusted=False,
                     valid_at_signing=False, signer="", signed_at="", problem=problem)


def key_usage_rule(cert: asn1_x509.Certificate) -> KeyUsageConstraints:
    """What the signer's keyUsage must allow: digitalSignature or nonRepudiation when
    the certificate has the extension; anything when it has none (RFC 5280 §4.2.1.3,
    RFC 8550 §4.4.2). No extendedKeyUsage rule here: see :func:`email_usage_allowed`
    (pyHanko's own EKU option cannot express "when present")."""
    usages = {"digital_signature", "non_repudiation"} if cert.key_usage_value is not None else set()
    return KeyUsageConstraints(key_usage=usages, match_all_key_usages=False)


def email_usage_allowed(cert: asn1_x509.Certificate) -> bool:
    """RFC 8550 §4.4.4, for S/MIME: an extendedKeyUsage extension, when present, must
    include emailProtection or anyExtendedKeyUsage. (PDF signatures have no EKU rule:
    document-signing certificates often lack emailProtection.)"""
    eku = cert.extended_key_usage_value
    return eku is None or bool({"email_protection", "any_extended_key_usage"} & set(eku.native))


def utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def validation_moment(claimed: datetime | None, now: datetime) -> datetime:
    """When to validate: the claimed signing time, or now when none or in the future."""
    return claimed if claimed is not None and claimed <= now + FUTURE_SLACK else now


def subject_text(cert: asn1_x509.Certificate) -> str:
    """The certificate's subject as an RFC 4514 string (control characters escaped)."""
    try:
        parsed = x509.load_der_x509_certificate(cert.dump())
        text = parsed.subject.rfc4514_string({NameOID.EMAIL_ADDRESS: "emailAddress"})
    except Exception:  # noqa: BLE001 - an unreadable subject is just unnamed
        return ""
    text = "".join(f"\\x{ord(c):02x}" if unicodedata.category(c) == "Cc" else c for c in text)
    return text[:MAX_SUBJECT]


def _outside(cert: asn1_x509.Certificate, moment: datetime) -> bool:
    return not utc(cert.not_valid_before) <= moment <= utc(cert.not_valid_after)


async def _trusted_outside_time(path: ValidationPath, signer: asn1_x509.Certificate,
                                roots: TrustRoots, rule: KeyUsageConstraints,
                                now: datetime) -> str:
    """Validate ``path`` at a moment inside every certificate's validity; "" when it
    validates, else the trust problem."""
    certs = list(path.iter_certs(include_root=True))
    start = max(utc(c.not_valid_before) for c in certs)
    moment = min([utc(c.not_valid_after) for c in certs] + [now])
    if moment < start:
        return UNTRUSTED  # the chain was never valid all at once
    try:
        await async_validate_path(roots.validation_context(moment), path)
        rule.validate(signer)
    except InvalidCertificateError:
        return NOT_FOR_SIGNING
    except Exception:  # noqa: BLE001 - any other failure: the chain does not hold
        return UNTRUSTED
    return ""


async def judge(status: SignatureStatus, *, kind: str, where: str, claimed: datetime | None,
                roots: TrustRoots, rule: KeyUsageConstraints, now: datetime,
                changed: str, covered: bool = True, usage_allowed: bool = True) -> Signature:
    """The :class:`Signature` for pyHanko's ``status``, which was validated at
    :func:`validation_moment` (``claimed``, ``now``) with ``rule``.

    ``changed`` is the problem text for a digest mismatch; ``covered`` is False when
    the signature does not cover what it should (a PDF changed after signing);
    ``usage_allowed`` is False when the certificate's purposes exclude this use.
    """
    claimed = utc(claimed)
    moment = validation_moment(claimed, now)
    intact = bool(status.valid and status.intact and covered)
    path = status.validation_path
    trust_problem = ""
    if not status.valid:
        trust_problem = UNTRUSTED  # pyHanko does not look at trust for a bad signature
    elif status.trust_problem_indic is not None or path is None:
        trust_problem = _TRUST_PROBLEMS.get(status.trust_problem_indic, UNTRUSTED)

    chain = list(path.iter_certs(include_root=True)) if path is not None else [status.signing_cert]
    future = claimed is not None and claimed > now + FUTURE_SLACK
    outside = [c for c in chain if _outside(c, moment)]
    if trust_problem and status.valid and path is not None and outside:
        trust_problem = await _trusted_outside_time(path, status.signing_cert, roots, rule, now)
    if not trust_problem and not usage_allowed:
        trust_problem = NOT_FOR_SIGNING

    if not status.valid:
        problem = NOT_VERIFIED
    elif not intact:
        problem = changed
    elif trust_problem:
        problem = trust_problem
    elif future:
        problem = FUTURE
    elif outside:
        signer = status.signing_cert
        if not any(c.dump() == signer.dump() for c in outside):
            problem = CHAIN_NOT_VALID
        elif moment > utc(signer.not_valid_after):
            problem = EXPIRED
        else:
            problem = NOT_YET_VALID
    else:
        problem = ""
    return Signature(
        kind=kind, where=where, intact=intact, trusted=not trust_problem,
        valid_at_signing=not future and not outside,
        signer=subject_text(status.signing_cert),
        signed_at=claimed.astimezone(UTC).replace(microsecond=0).isoformat() if claimed else "",
        problem=problem,
    )


def quiet_library_logs() -> None:
    """pyHanko and certvalidator log certificate subjects and document details taken
    from the message (at WARNING, with tracebacks); the relay never logs message
    content. Unless configured otherwise, only their CRITICAL records pass."""
    for name in ("pyhanko", "pyhanko_certvalidator"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.CRITICAL)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from synchronous code.

    The checks are CPU-bound and meant for a worker thread (``asyncio.to_thread``);
    called from a thread that runs an event loop, they run on a helper thread instead
    of failing (and block that loop meanwhile).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
