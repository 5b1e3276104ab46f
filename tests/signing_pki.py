"""Test helpers for signed documents: a small PKI, signed PDFs and S/MIME mail.

No tests live here. The relay tests and ``tests/test_signatures.py`` share these
names, so keep them stable. Everything is made in memory with ``cryptography``
(certificates, S/MIME signatures, as a real mail client would) and pyHanko
(PDF signatures); nothing touches the network.

The PKI is built once per test session (module-level cache): EC P-256 keys,
which pyHanko signs and verifies like RSA ones and which are much faster to make.
"""
from __future__ import annotations

import base64
import datetime as dt
import io
import re
import secrets
import unicodedata
from collections.abc import Sequence
from email.header import Header
from email.message import MIMEPart
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko_certvalidator.registry import SimpleCertificateStore

from mailhub.signatures.judge import run_sync

OFFICIAL_NAME = "Nguyễn Văn An"
OFFICIAL_EMAIL = "an@hcm.gov.vn"

_PKI: TestPki | None = None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _name(common_name: str, email: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                  x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test City"),
                  x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if email:
        attributes.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, email))
    return x509.Name(attributes)


def _ca(common_name: str, now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=365))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _official(issuer: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey,
              not_before: dt.datetime, not_after: dt.datetime,
              ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """An official's signing certificate: digitalSignature + nonRepudiation, emailProtection."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(OFFICIAL_NAME, OFFICIAL_EMAIL)).issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=True, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(OFFICIAL_EMAIL)]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                       critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    return cert, key


class TestPki:
    """The test PKI. Three certificates all name the official "Nguyễn Văn An":

    - ``leaf_cert``: valid now, issued by ``root_cert`` ("Test City Root CA");
    - ``expired_cert``: issued by the root, valid from now-30d until now-1d;
    - ``stranger_cert``: valid now, but issued by ``stranger_root_cert``, a CA that
      is not among the trust roots (a look-alike certificate).
    """

    __test__ = False  # not a test class, whatever its name

    root_cert: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey
    leaf_cert: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey
    expired_cert: x509.Certificate
    expired_key: ec.EllipticCurvePrivateKey
    stranger_root_cert: x509.Certificate
    stranger_root_key: ec.EllipticCurvePrivateKey
    stranger_cert: x509.Certificate
    stranger_key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls) -> TestPki:
        """The session's PKI (made on the first call, then reused)."""
        global _PKI
        if _PKI is None:
            now = _now()
            pki = cls()
            pki.root_cert, pki.root_key = _ca("Test City Root CA", now)
            pki.leaf_cert, pki.leaf_key = _official(
                pki.root_cert, pki.root_key, now - dt.timedelta(days=1), now + dt.timedelta(days=365))
            pki.expired_cert, pki.expired_key = _official(
                pki.root_cert, pki.root_key, now - dt.timedelta(days=30), now - dt.timedelta(days=1))
            pki.stranger_root_cert, pki.stranger_root_key = _ca("Stranger Root CA", now)
            pki.stranger_cert, pki.stranger_key = _official(
                pki.stranger_root_cert, pki.stranger_root_key,
                now - dt.timedelta(days=1), now + dt.timedelta(days=365))
            _PKI = pki
        return _PKI

    def write_roots(self, folder: Path) -> Path:
        """Write ``root_cert`` as ``root.pem`` into ``folder`` (created); return the folder."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "root.pem").write_bytes(self.root_cert.public_bytes(serialization.Encoding.PEM))
        return folder


# --- PDF -------------------------------------------------------------------------------------

def _pdf_literal(text: str) -> bytes:
    """``text`` as a PDF literal string for the standard Helvetica font (accents dropped)."""
    folded = unicodedata.normalize("NFKD", text.replace("đ", "d").replace("Đ", "D"))
    ascii_text = "".join(c for c in folded if not unicodedata.combining(c))
    raw = ascii_text.encode("ascii", "replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def unsigned_pdf(text: str = "Công văn số 123") -> bytes:
    """A small valid one-page PDF 1.7 showing ``text`` (the full text is also its /Title)."""
    content = b"BT /F1 18 Tf 72 760 Td " + _pdf_literal(text) + b" Tj ET"
    title = ("\ufeff" + text).encode("utf-16-be").hex().upper().encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
         b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>"),
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Title <" + title + b"> /Producer (mailhub tests) >>",
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref_at)
    return bytes(out)


def _asn1_cert(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _pyhanko_signer(cert, key, chain: Sequence[x509.Certificate]) -> signers.SimpleSigner:
    """A pyHanko SimpleSigner from ``cryptography`` objects (via DER in memory)."""
    key_der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return signers.SimpleSigner(
        signing_cert=_asn1_cert(cert),
        signing_key=asn1_keys.PrivateKeyInfo.load(key_der),
        cert_registry=SimpleCertificateStore.from_certs([_asn1_cert(c) for c in chain]),
    )


class _BackdatedPdfSigner(signers.PdfSigner):
    """A PdfSigner whose signing time (CMS signingTime and /M) is the one given."""

    def __init__(self, *args, signed_at: dt.datetime, **kwargs):
        super().__init__(*args, **kwargs)
        self._signed_at = signed_at

    def init_signing_session(self, *args, **kwargs):
        session = super().init_signing_session(*args, **kwargs)
        session.system_time = self._signed_at
        return session


def signed_pdf(cert, key, *, chain: Sequence[x509.Certificate] = (), text: str = "Công văn số 123",
               signed_at: dt.datetime | None = None) -> bytes:
    """``unsigned_pdf(text)`` with an invisible approval signature (adbe.pkcs7.detached).

    pyHanko does not validate the signer's certificate unless it is given a validation
    context, so this also signs with an expired certificate. ``signed_at`` (default now)
    is the signing time the signature claims.
    """
    meta = signers.PdfSignatureMetadata(field_name="Signature1", md_algorithm="sha256")
    signer = _pyhanko_signer(cert, key, chain)
    writer = IncrementalPdfFileWriter(io.BytesIO(unsigned_pdf(text)))
    pdf_signer = _BackdatedPdfSigner(meta, signer, signed_at=signed_at or _now())
    return run_sync(pdf_signer.async_sign_pdf(writer)).getvalue()  # also inside async tests


def tampered(pdf: bytes) -> bytes:
    """``pdf`` with one character of the first page text changed (same length, same offsets).

    The page content lies in the signed byte range, so the signature's digest breaks
    while the file stays a well-formed PDF.
    """
    match = re.search(rb"\(([^()\\]*?[A-Za-z0-9])", pdf[pdf.index(b"BT "):])
    if match is None:
        raise ValueError("no page text to tamper with")
    at = pdf.index(b"BT ") + match.end(1) - 1
    replacement = b"A" if pdf[at:at + 1] != b"A" else b"B"
    return pdf[:at] + replacement + pdf[at + 1:]


# --- mail ------------------------------------------------------------------------------------

def _top_headers(sender: str, to: str, subject: str) -> bytes:
    domain = sender.rpartition("@")[2] or "localhost"
    lines = [
        f"From: {sender}",
        f"To: {to}",
        "Subject: " + Header(subject, "utf-8").encode(),
        "Date: " + format_datetime(_now()),
        "Message-ID: " + make_msgid(domain=domain),
        "MIME-Version: 1.0",
    ]
    return "".join(line + "\r\n" for line in lines).encode("ascii")


def _text_part(text: str) -> MIMEPart:
    part = MIMEPart(policy=SMTP)
    part.set_content(text, charset="utf-8", cte="quoted-printable")
    return part


def _pdf_part(pdf: bytes, filename: str) -> MIMEPart:
    part = MIMEPart(policy=SMTP)
    part.set_content(pdf, maintype="application", subtype="pdf", filename=filename)
    return part


def mail_with_pdf(pdf: bytes, *, sender: str = OFFICIAL_EMAIL, to: str = "vanthu@ubnd.hcm.gov.vn",
                  subject: str = "Công văn", filename: str = "cong-van-123.pdf") -> bytes:
    """A complete message: multipart/mixed with a Vietnamese text part and ``pdf`` attached
    (base64 application/pdf). CRLF line endings, lines of at most 78 characters."""
    message = MIMEPart(policy=SMTP)
    message.set_content("Kính gửi Văn thư,\n\nXin gửi công văn đính kèm.\n\nNguyễn Văn An\n",
                        charset="utf-8", cte="quoted-printable")
    message.add_attachment(pdf, maintype="application", subtype="pdf", filename=filename)
    return _top_headers(sender, to, subject) + message.as_bytes(policy=SMTP)


def _detached_cms(content: bytes, cert, key, signed_at: dt.datetime | None) -> bytes:
    """A detached CMS SignedData (DER) over exactly ``content``.

    Made by OpenSSL through ``cryptography`` (signingTime = now), as a mail client would;
    pyHanko makes it when a past ``signed_at`` is wanted, which OpenSSL cannot set.
    """
    if signed_at is None:
        return (pkcs7.PKCS7SignatureBuilder().set_data(content)
                .add_signer(cert, key, hashes.SHA256())
                .sign(serialization.Encoding.DER,
                      [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]))
    signer = _pyhanko_signer(cert, key, ())
    signed = run_sync(signer.async_sign_general_data(
        content, "sha256", detached=True,
        signed_attr_settings=PdfCMSSignedAttributes(signing_time=signed_at)))
    return signed.dump()


def smime_entity(content: bytes, cert, key, *, signed_at: dt.datetime | None = None) -> bytes:
    """A ``multipart/signed`` entity (RFC 8551 §3.5) signing the MIME part ``content``.

    ``content`` includes its own headers; the bytes signed are exactly ``content``, which
    becomes the first body part as transmitted. The result starts with its own
    Content-Type header and ends with the close delimiter and CRLF.
    """
    signature = base64.encodebytes(_detached_cms(content, cert, key, signed_at))
    signature = signature.rstrip(b"\n").replace(b"\n", b"\r\n")
    boundary = b"----=_mailhub_signed_" + secrets.token_hex(12).encode()
    return b"".join([
        b'Content-Type: multipart/signed; protocol="application/pkcs7-signature";\r\n'
        b' micalg=sha-256; boundary="' + boundary + b'"\r\n',
        b"\r\n",
        b"This is a cryptographically signed message in MIME format.\r\n",
        b"\r\n--" + boundary + b"\r\n",
        content,
        b"\r\n--" + boundary + b"\r\n",
        (b'Content-Type: application/pkcs7-signature; name="smime.p7s"\r\n'
         b"Content-Transfer-Encoding: base64\r\n"
         b'Content-Disposition: attachment; filename="smime.p7s"\r\n'
         b"\r\n"),
        signature,
        b"\r\n--" + boundary + b"--\r\n",
    ])


def smime_mail(text: str, cert, key, *, sender: str = OFFICIAL_EMAIL,
               to: str = "vanthu@ubnd.hcm.gov.vn", subject: str = "Công văn",
               pdf: bytes | None = None, filename: str = "cong-van-123.pdf",
               signed_at: dt.datetime | None = None) -> bytes:
    """A complete S/MIME-signed message: top-level headers above ``smime_entity`` of a
    quoted-printable text part (or, with ``pdf``, of a multipart/mixed with the text
    and the PDF attached)."""
    if pdf is None:
        inner = _text_part(text)
    else:
        inner = MIMEPart(policy=SMTP)
        inner.make_mixed()
        inner.attach(_text_part(text))
        inner.attach(_pdf_part(pdf, filename))
    content = inner.as_bytes(policy=SMTP).rstrip(b"\r\n")
    return _top_headers(sender, to, subject) + smime_entity(content, cert, key, signed_at=signed_at)


def tampered_smime(mail: bytes) -> bytes:
    """``mail`` with one character of its signed text/plain body changed (same length)."""
    start = mail.lower().index(b"content-type: text/plain")
    body = mail.index(b"\r\n\r\n", start) + 4
    match = re.compile(rb"[A-Za-z0-9]").search(mail, body)
    if match is None:
        raise ValueError("no signed text to tamper with")
    at = match.start()
    replacement = b"A" if mail[at:at + 1] != b"A" else b"B"
    return mail[:at] + replacement + mail[at + 1:]
