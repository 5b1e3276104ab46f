"""Document signatures: S/MIME and signed PDFs, verified against the trust roots."""
from __future__ import annotations

import base64
import datetime as dt
import email
import random

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mailhub.errors import ConfigError
from mailhub.signatures.examine import examine
from mailhub.signatures.mime import body_parts, split_entity
from mailhub.signatures.outcome import SignatureOutcome
from mailhub.signatures.pdf import check_pdf
from mailhub.signatures.smime import check_smime
from mailhub.signatures.trust import TrustRoots, load_trust_roots
from tests.signing_pki import (
    OFFICIAL_NAME,
    TestPki,
    mail_with_pdf,
    signed_pdf,
    smime_mail,
    tampered,
    tampered_smime,
    unsigned_pdf,
)

VALID, INVALID, UNSIGNED = SignatureOutcome.VALID, SignatureOutcome.INVALID, SignatureOutcome.UNSIGNED
TEXT = "Kính gửi Văn thư,\nXin gửi công văn số 123.\n"
NOW = dt.datetime.now(dt.UTC)
TEN_DAYS_AGO = NOW - dt.timedelta(days=10)  # inside expired_cert's validity (now-30d .. now-1d)


@pytest.fixture(scope="module")
def pki() -> TestPki:
    return TestPki.create()


@pytest.fixture(scope="module")
def roots(pki, tmp_path_factory) -> TrustRoots:
    return load_trust_roots(pki.write_roots(tmp_path_factory.mktemp("trust") / "roots"))


def _pdf_mail(pki, who: str, *, signed_at=None, tamper=False) -> bytes:
    pdf = signed_pdf(getattr(pki, f"{who}_cert"), getattr(pki, f"{who}_key"), signed_at=signed_at)
    return mail_with_pdf(tampered(pdf) if tamper else pdf)


def _smime(pki, who: str, *, signed_at=None, tamper=False) -> bytes:
    mail = smime_mail(TEXT, getattr(pki, f"{who}_cert"), getattr(pki, f"{who}_key"), signed_at=signed_at)
    return tampered_smime(mail) if tamper else mail


# (case, make mail, outcome, intact, trusted, valid_at_signing, problem contains)
CASES = [
    ("pdf valid", lambda p: _pdf_mail(p, "leaf"), VALID, True, True, True, ""),
    ("pdf tampered", lambda p: _pdf_mail(p, "leaf", tamper=True),
     INVALID, False, True, True, "changed after signing"),
    ("pdf untrusted CA", lambda p: _pdf_mail(p, "stranger"),
     INVALID, True, False, True, "not issued by a trusted authority"),
    ("pdf expired", lambda p: _pdf_mail(p, "expired"),
     INVALID, True, True, False, "had expired when it signed"),
    ("pdf expired since", lambda p: _pdf_mail(p, "expired", signed_at=TEN_DAYS_AGO),
     VALID, True, True, True, ""),
    ("pdf signed in the future", lambda p: _pdf_mail(p, "leaf", signed_at=NOW + dt.timedelta(days=2)),
     INVALID, True, True, False, "in the future"),
    ("smime valid", lambda p: _smime(p, "leaf"), VALID, True, True, True, ""),
    ("smime tampered", lambda p: _smime(p, "leaf", tamper=True),
     INVALID, False, True, True, "changed after signing"),
    ("smime untrusted CA", lambda p: _smime(p, "stranger"),
     INVALID, True, False, True, "not issued by a trusted authority"),
    ("smime expired", lambda p: _smime(p, "expired"),
     INVALID, True, True, False, "had expired when it signed"),
    ("smime expired since", lambda p: _smime(p, "expired", signed_at=TEN_DAYS_AGO),
     VALID, True, True, True, ""),
]


@pytest.mark.parametrize(("case", "make", "outcome", "intact", "trusted", "at_signing", "problem"),
                         CASES, ids=[c[0] for c in CASES])
def test_signature_checks(pki, roots, case, make, outcome, intact, trusted, at_signing, problem):
    check = examine(make(pki), roots)
    assert check.outcome is outcome
    [found] = check.signatures
    assert found.kind == case.split()[0]
    assert found.where == ("message" if found.kind == "smime" else "cong-van-123.pdf")
    assert (found.intact, found.trusted, found.valid_at_signing) == (intact, trusted, at_signing)
    assert problem in found.problem and bool(found.problem) == bool(problem)
    assert OFFICIAL_NAME in found.signer and "an@hcm.gov.vn" in found.signer
    assert OFFICIAL_NAME in check.signer
    assert dt.datetime.fromisoformat(found.signed_at).utcoffset() == dt.timedelta(0)


def test_signed_at_is_what_the_signature_claims(pki, roots):
    [found] = examine(_smime(pki, "expired", signed_at=TEN_DAYS_AGO), roots).signatures
    assert found.signed_at == TEN_DAYS_AGO.replace(microsecond=0).isoformat()


@pytest.mark.parametrize("mail", [
    lambda p: mail_with_pdf(unsigned_pdf()),
    lambda p: smime_mail(TEXT, p.leaf_cert, p.leaf_key).replace(b"multipart/signed", b"multipart/mixed"),
    lambda p: b"From: a@b.vn\r\nSubject: x\r\n\r\nXin chao\r\n",
], ids=["unsigned pdf", "not multipart/signed", "plain text"])
def test_unsigned(pki, roots, mail):
    assert examine(mail(pki), roots).outcome is UNSIGNED


def test_message_with_both(pki, roots):
    mail = smime_mail(TEXT, pki.leaf_cert, pki.leaf_key, pdf=signed_pdf(pki.stranger_cert, pki.stranger_key))
    check = examine(mail, roots)
    assert [(s.kind, s.valid) for s in check.signatures] == [("smime", True), ("pdf", False)]
    assert check.outcome is VALID
    assert [s.kind for s in check_smime(mail, roots)] == ["smime"]


def test_pdf_sent_as_octet_stream(pki, roots):
    mail = _pdf_mail(pki, "leaf").replace(b"Content-Type: application/pdf", b"Content-Type: application/octet-stream")
    assert examine(mail, roots).outcome is VALID


def test_x_pkcs7_signature_protocol(pki, roots):
    mail = _smime(pki, "leaf").replace(b"application/pkcs7-signature", b"application/x-pkcs7-signature")
    assert examine(mail, roots).outcome is VALID


def test_no_trust_roots_trusts_nobody(pki, tmp_path):
    nobody = load_trust_roots(tmp_path / "missing")
    assert len(nobody) == 0
    [found] = examine(_smime(pki, "leaf"), nobody).signatures
    assert (found.intact, found.trusted) == (True, False)


def test_verifies_the_bytes_as_transmitted(pki, roots):
    mail = _smime(pki, "leaf")
    reserialised = email.message_from_bytes(mail).as_bytes()  # compat32: LF line ends
    assert reserialised != mail
    assert examine(mail, roots).outcome is VALID
    assert examine(reserialised, roots).outcome is INVALID


@pytest.mark.parametrize(("body", "parts"), [
    (b"preamble\r\n--b \r\nA: 1\r\n\r\nsigned\r\n\r\n--b\r\nsecond\r\n--b--\r\nepilogue",
     [b"A: 1\r\n\r\nsigned\r\n", b"second"]),
    (b"--b\r\n\r\n--b\r\n--b\r\nx\r\n--b--", [b"", b"", b"x"]),        # empty parts
    (b"--b\nlf only\n--b\nsecond\n--b--\n", [b"lf only", b"second"]),
    (b"--b\r\n--bx not a delimiter\r\n--b\r\nlast, no close", [b"--bx not a delimiter", b"last, no close"]),
    (b"x--b\r\nnot at a line start", []),
    (b"--b\r\none\r\n--b--epilogue\r\n--b\r\nafter", [b"one"]),
], ids=["signed part", "empty parts", "LF", "prefix", "mid-line", "close"])
def test_body_parts_are_the_bytes_as_transmitted(body, parts):
    assert [body[s:e] for s, e in body_parts(body, 0, len(body), "b")] == parts


def test_first_body_part_keeps_its_own_line_breaks():
    body = b"--b\r\nA: 1\r\n\r\nsigned\r\n\r\n--b\r\nsecond\r\n--b--\r\n"
    first = body_parts(body, 0, len(body), "b")[0]
    assert split_entity(body, *first).body == b"signed\r\n"


def _issue(pki, eku: list[x509.ObjectIdentifier] | None):
    """A certificate from the trusted root with no keyUsage (any use allowed) and ``eku``."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = NOW.replace(microsecond=0)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, OFFICIAL_NAME)]))
               .issuer_name(pki.root_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30)))
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(pki.root_key, hashes.SHA256()), key


ANY_EKU = x509.ObjectIdentifier("2.5.29.37.0")


@pytest.mark.parametrize(("eku", "smime_ok"), [
    (None, True),
    ([ANY_EKU], True),
    ([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION], True),
    ([ExtendedKeyUsageOID.SERVER_AUTH], False),
], ids=["no EKU", "any EKU", "client+email", "server auth only"])
def test_extended_key_usage_is_checked_for_smime_only(pki, roots, eku, smime_ok):
    cert, key = _issue(pki, eku)
    [smime] = examine(smime_mail(TEXT, cert, key), roots).signatures
    assert smime.valid is smime_ok
    if not smime_ok:
        assert (smime.intact, smime.trusted) == (True, False)
        assert smime.problem == "the signer's certificate is not meant for signing"
    assert examine(mail_with_pdf(signed_pdf(cert, key)), roots).outcome is VALID


def test_key_usage_must_allow_signing(pki, roots):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, OFFICIAL_NAME)]))
            .issuer_name(pki.root_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=30))
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=True,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False), critical=True)
            .sign(pki.root_key, hashes.SHA256()))
    for mail in (smime_mail(TEXT, cert, key), mail_with_pdf(signed_pdf(cert, key))):
        [found] = examine(mail, roots).signatures
        assert (found.intact, found.trusted, found.problem) == (
            True, False, "the signer's certificate is not meant for signing")


# --- trust roots ----------------------------------------------------------------------------

def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def test_trust_roots_formats(pki, tmp_path):
    (tmp_path / "two.pem").write_bytes(_pem(pki.root_cert) + _pem(pki.stranger_root_cert))
    (tmp_path / "again.CER").write_bytes(pki.root_cert.public_bytes(serialization.Encoding.DER))
    (tmp_path / "official.crt").write_bytes(_pem(pki.leaf_cert))
    (tmp_path / "notes.txt").write_text("not read")
    loaded = load_trust_roots(tmp_path)
    assert len(loaded) == 2 and len(loaded.asn1) == 2
    assert loaded.skipped == ("official.crt: " + pki.leaf_cert.subject.rfc4514_string(),)


@pytest.mark.parametrize("content", [b"hello", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", b""])
def test_trust_root_that_is_not_a_certificate(tmp_path, content):
    (tmp_path / "so-gtvt.pem").write_bytes(content)
    with pytest.raises(ConfigError, match="so-gtvt.pem") as caught:
        load_trust_roots(tmp_path)
    assert "\n" not in str(caught.value)


# --- hostile input ----------------------------------------------------------------------------

def _nested(depth: int, inner: bytes) -> bytes:
    for level in range(depth):
        inner = (f'Content-Type: multipart/mixed; boundary="b{level}"\r\n\r\n--b{level}\r\n'.encode()
                 + inner + f"\r\n--b{level}--\r\n".encode())
    return b"From: a@b.vn\r\nMIME-Version: 1.0\r\n" + inner


def _truncated_pkcs7(mail: bytes) -> bytes:
    start = mail.index(b"filename=\"smime.p7s\"\r\n\r\n") + 24
    end = mail.index(b"\r\n--", start)
    return mail[:start] + mail[start:start + (end - start) // 3] + mail[end:]


def _without_signature_part(mail: bytes) -> bytes:
    start = mail.index(b"Content-Type: application/pkcs7-signature")
    return mail[:start - 2] + b"--\r\n"


def _zeroed_signature_contents(pdf: bytes) -> bytes:
    at = pdf.index(b"/Contents <") + len(b"/Contents <")
    return pdf[:at] + b"00" * 200 + pdf[at + 400:]


def _bad_byte_range(pdf: bytes) -> bytes:
    at = pdf.index(b"/ByteRange [") + len(b"/ByteRange [")
    end = pdf.index(b"]", at)
    return pdf[:at] + b"0 99999999 -5 x".ljust(end - at) + pdf[end:]


HOSTILE = [
    ("empty", lambda p: b"", UNSIGNED),
    ("random bytes", lambda p: random.Random(1).randbytes(20_000), UNSIGNED),
    ("garbage pdf", lambda p: mail_with_pdf(random.Random(2).randbytes(5000)), UNSIGNED),
    ("truncated pdf", lambda p: mail_with_pdf(signed_pdf(p.leaf_cert, p.leaf_key)[:900]), UNSIGNED),
    ("zeroed signature contents", lambda p: mail_with_pdf(_zeroed_signature_contents(signed_pdf(p.leaf_cert, p.leaf_key))), INVALID),
    ("bad byte range", lambda p: mail_with_pdf(_bad_byte_range(signed_pdf(p.leaf_cert, p.leaf_key))), None),
    ("truncated pkcs7", lambda p: _truncated_pkcs7(_smime(p, "leaf")), INVALID),
    ("no signature part", lambda p: _without_signature_part(_smime(p, "leaf")), INVALID),
    ("no boundary", lambda p: b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"\r\n\r\nx', INVALID),
    ("50 levels", lambda p: _nested(50, b"Content-Type: text/plain\r\n\r\nx"), UNSIGNED),
    ("signed pdf 50 levels down", lambda p: _nested(50, _pdf_mail(p, "leaf").split(b"MIME-Version: 1.0\r\n", 1)[1]), UNSIGNED),
    ("thousands of parts", lambda p: b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + b"--b\r\n\r\n" * 5000, UNSIGNED),
]


@pytest.mark.parametrize(("case", "make", "outcome"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_input_never_raises(pki, roots, case, make, outcome):
    check = examine(make(pki), roots)
    if outcome is not None:
        assert check.outcome is outcome
    for found in check.signatures:
        assert not found.valid and found.problem


def test_random_damage_never_raises(pki, roots):
    mail = smime_mail(TEXT, pki.leaf_cert, pki.leaf_key, pdf=signed_pdf(pki.leaf_cert, pki.leaf_key))
    rng = random.Random(5)
    for _ in range(60):
        damaged = bytearray(mail)
        for _ in range(rng.randint(1, 20)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        examine(bytes(damaged), roots)


def test_check_pdf_directly(pki, roots):
    assert check_pdf(unsigned_pdf(), "a.pdf", roots) == []
    assert check_pdf(b"not a pdf", "a.pdf", roots) == []
    [found] = check_pdf(base64.b64decode(base64.b64encode(signed_pdf(pki.leaf_cert, pki.leaf_key))), "a.pdf", roots)
    assert found.valid and found.where == "a.pdf"


def test_limits(pki, roots):
    pdf = signed_pdf(pki.leaf_cert, pki.leaf_key)
    assert examine(mail_with_pdf(pdf), roots, max_pdf_bytes=len(pdf) - 1).outcome is UNSIGNED
    both = smime_mail(TEXT, pki.leaf_cert, pki.leaf_key, pdf=pdf)
    assert [s.kind for s in examine(both, roots, max_documents=1).signatures] == ["smime"]


async def test_examine_and_helpers_inside_an_event_loop(pki, roots):
    mail = smime_mail(TEXT, pki.expired_cert, pki.expired_key, signed_at=TEN_DAYS_AGO,
                      pdf=signed_pdf(pki.leaf_cert, pki.leaf_key))
    assert [s.valid for s in examine(mail, roots).signatures] == [True, True]


def test_authority_expired_when_it_signed(pki, tmp_path):
    """A root that had expired before the signing time: the chain was not valid then,
    although certvalidator itself does not look at a trust anchor's dates."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Old City Root CA")])
    root = (x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=400)).not_valid_after(NOW - dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(root_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, OFFICIAL_NAME)]))
            .issuer_name(root_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=10)).not_valid_after(NOW + dt.timedelta(days=30))
            .sign(root_key, hashes.SHA256()))
    (tmp_path / "old.pem").write_bytes(_pem(root))
    [found] = examine(smime_mail(TEXT, cert, key), load_trust_roots(tmp_path)).signatures
    assert (found.intact, found.trusted, found.valid_at_signing) == (True, True, False)
    assert found.problem == "a certificate of the signer's authority was not valid when it signed"
