"""The city's trust roots for document signatures: a folder of CA certificates.

Only certificate authorities are roots. An end-entity certificate in the folder is
skipped (and named in :attr:`TrustRoots.skipped` and the log): trusting one directly
would make pyHanko accept it without any key-usage check, and a single official's
certificate is never what an administrator means by "a trusted authority".
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko_certvalidator import ValidationContext

from mailhub.errors import ConfigError

log = logging.getLogger(__name__)

CERTIFICATE_SUFFIXES = (".pem", ".crt", ".cer", ".der")


@dataclass(frozen=True)
class TrustRoots:
    """CA certificates that signatures must chain to, in both libraries' forms.

    ``certificates`` (``cryptography``) and ``asn1`` (asn1crypto, for pyHanko and
    pyhanko-certvalidator) hold the same certificates in the same order.
    """

    certificates: tuple[x509.Certificate, ...] = ()
    asn1: tuple[asn1_x509.Certificate, ...] = ()
    skipped: tuple[str, ...] = ()  # "file: subject" of each non-CA certificate left out

    def __len__(self) -> int:
        return len(self.certificates)

    def validation_context(self, moment: datetime) -> ValidationContext:
        """A certvalidator context that validates at ``moment`` against these roots only.

        No network (``allow_fetching=False``): no CRL, OCSP or AIA certificate fetching.
        Revocation is "soft-fail": without revocation data a certificate is not refused.
        An explicit (possibly empty) root list: never the operating system's TLS roots.
        """
        return ValidationContext(
            trust_roots=list(self.asn1),
            moment=moment,
            allow_fetching=False,
            revocation_mode="soft-fail",
        )


def _read_certificates(path: Path) -> list[x509.Certificate]:
    """Every certificate in one file (PEM with one or more certificates, or DER)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the trust root file ({exc.strerror})") from None
    try:
        if b"-----BEGIN" not in data:
            return [x509.load_der_x509_certificate(data)]
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigError(f"{path}: not an X.509 certificate (PEM or DER)") from None
    if b"PRIVATE KEY-----" in data:
        log.warning("trust roots: %s also holds a private key, which is not used; "
                    "keep private keys out of this folder", path)
    return certificates


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def load_trust_roots(folder: Path) -> TrustRoots:
    """Read the CA certificates in ``folder`` (``*.pem``, ``*.crt``, ``*.cer``, ``*.der``).

    Trusts nothing about the files. A missing folder gives empty roots (every signature
    is then untrusted). A file that is not a certificate raises :class:`ConfigError`
    naming it. Certificates without ``basicConstraints cA=TRUE`` are skipped with a
    warning; duplicates are kept once. Subfolders are not read.
    """
    if not folder.exists():
        log.info("trust roots folder %s does not exist: no signature will be trusted", folder)
        return TrustRoots()
    if not folder.is_dir():
        raise ConfigError(f"{folder}: the trust roots path is not a folder")
    certificates: list[x509.Certificate] = []
    skipped: list[str] = []
    seen: set[bytes] = set()
    files = sorted(p for p in folder.iterdir()
                   if p.suffix.lower() in CERTIFICATE_SUFFIXES and p.is_file())
    for path in files:
        for cert in _read_certificates(path):
            der = cert.public_bytes(serialization.Encoding.DER)
            if der in seen:
                continue
            seen.add(der)
            if not _is_ca(cert):
                skipped.append(f"{path.name}: {cert.subject.rfc4514_string()}")
                log.warning("trust roots: %s is not a CA certificate (%s); skipped",
                            path, cert.subject.rfc4514_string())
                continue
            certificates.append(cert)
    asn1 = tuple(asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))
                 for c in certificates)
    return TrustRoots(certificates=tuple(certificates), asn1=asn1, skipped=tuple(skipped))
