"""TLS: the self-signed certificate a fresh installation starts with, and server contexts.

The self-signed certificate lets ``make run`` offer STARTTLS and port 465 at once;
mail clients will ask the user to trust it. Production installs set
``tls.cert_file``/``tls.key_file`` to a certificate from a real CA.
"""
from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import idna
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mailhub.atomicfile import write_atomic
from mailhub.errors import ConfigError

VALIDITY = datetime.timedelta(days=5 * 365)


def _write_private(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` atomically with ``mode`` from the start, the folder made 0700 if missing."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, data, mode)


def _dns_name(hostname: str) -> str:
    try:
        return idna.encode(hostname, uts46=True).decode("ascii")
    except idna.IDNAError:
        raise ConfigError(f"server.hostname: not a valid host name: {hostname!r}") from None


def ensure_self_signed(cert_path: Path, key_path: Path, hostname: str) -> bool:
    """Create a self-signed ECDSA P-256 certificate unless both files exist.

    SAN: DNS ``hostname`` and ``localhost``, IP 127.0.0.1 and ::1; valid 5 years;
    key file 0600, folder 0700. Returns True if it created them, False if they were
    already there (their content is not checked: :func:`server_context` does that).
    """
    cert_path, key_path = Path(cert_path), Path(key_path)
    if cert_path.exists() and key_path.exists():
        return False
    name = _dns_name(hostname)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mailhub self-signed"),
    ])
    now = datetime.datetime.now(datetime.timezone.utc)
    san = [x509.DNSName(name)] + ([x509.DNSName("localhost")] if name != "localhost" else [])
    san += [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("::1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # tolerate small clock skew
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                     content_commitment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    # The key first: a certificate without its key would be taken as "already there".
    _write_private(key_path, key_pem, 0o600)
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return True


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2 or newer) with this certificate and key.

    A missing or unreadable file, or a key that does not match the certificate,
    raises ConfigError naming the files.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 8996: TLS 1.0/1.1 are deprecated
    context.options |= ssl.OP_NO_COMPRESSION  # CRIME
    try:
        context.load_cert_chain(str(cert_path), str(key_path))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"tls: cannot load certificate {cert_path} with key {key_path}: {exc}") from None
    return context
