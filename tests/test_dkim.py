"""DKIM keys, DNS records and signatures (RFC 6376, RFC 8463).

Signatures are checked against the records ``dns_records`` prints -- the text an
administrator publishes -- by dkimpy and, independently, by Perl's Mail::DKIM.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import FrozenInstanceError
from email.header import Header
from pathlib import Path

import dkim
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from dkim.canonicalization import CanonicalizationPolicy, Relaxed
from dkim.util import parse_tag_value

from mailhub import signing
from mailhub.dkimkeys import (
    dns_records,
    ensure_domain_keys,
    load_domain_keys,
    signing_domain,
)
from mailhub.errors import ConfigError
from mailhub.signing import DkimSigner
from tests.dkimcheck import dkimpy_verify, txt_records

DOMAIN = "hochiminhcity.gov.vn"
SELECTOR = "mailhub"


def crlf(*lines: str | bytes) -> bytes:
    return b"".join((x.encode() if isinstance(x, str) else x) + b"\r\n" for x in lines)


# --- messages ---------------------------------------------------------------

HEAD = crlf(
    f"From: Van Phong <vanphong@{DOMAIN}>",
    "To: nguoinhan@example.org",
    "Date: Mon, 01 Dec 2025 09:00:00 +0700",
    f"Message-ID: <20251201090000.1@{DOMAIN}>",
)
SUBJECT_VI = "Thông báo lịch họp Ủy ban nhân dân Thành phố Hồ Chí Minh tháng 12 năm 2025"
BODY_VI = "Kính gửi các đồng chí,\r\nỦy ban nhân dân Thành phố trân trọng thông báo lịch họp.\r\n"

MESSAGES = {
    "plain": HEAD + crlf("Subject: Test", "") + b"Hello.\r\n",
    # RFC 2047 encoded-words, folded by the email package, and an 8bit UTF-8 body.
    "vietnamese": HEAD
    + crlf(
        "Subject: " + Header(SUBJECT_VI, "utf-8").encode(linesep="\r\n"),
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=UTF-8",
        "Content-Transfer-Encoding: 8bit",
        "",
    )
    + BODY_VI.encode(),
    # Folded headers and body whitespace that relaxed canonicalisation rewrites.
    "folded": HEAD
    + crlf(
        "Subject: a subject that a client",
        "\tfolded over  two lines",
        "Cc: a@example.org,",
        "  b@example.org",
        "",
    )
    + b"two  spaces, a\ttab and trailing blanks \t\r\n\r\n\r\n",
    "5kb": HEAD
    + crlf("Subject: =?UTF-8?B?" + base64.b64encode(SUBJECT_VI.encode()).decode() + "?=", "")
    + (BODY_VI * 50).encode(),
    "received": crlf(
        "Received: from pc-17.quan1.local (pc-17 [10.1.2.3])",
        f"\tby mailhub.{DOMAIN} with ESMTPSA; Mon, 01 Dec 2025 09:00:01 +0700",
    )
    + HEAD
    + crlf("Subject: Test", "")
    + b"Hello.\r\n",
}


def test_the_large_message_is_at_least_5_kb() -> None:
    assert len(MESSAGES["5kb"]) >= 5 * 1024


# --- helpers: the published records and the verifiers ------------------------


def cryptography_verify_ed25519(message: bytes, records: list[str], idx: int) -> bool:
    """RFC 8463 check without PyNaCl: dkimpy's parsing and canonicalisation (its
    own, not mailhub's), then Ed25519 over the SHA-256 of the header data."""
    verifier = dkim.DKIM(message)
    sig, include_headers, sig_headers = verifier.verify_headerprep(idx)
    assert sig[b"a"] == b"ed25519-sha256"
    txt = txt_records(records)[sig[b"s"] + b"._domainkey." + sig[b"d"] + b"."]
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(parse_tag_value(txt)[b"p"]))
    policy = CanonicalizationPolicy.from_c_value(sig[b"c"])
    body_hash = hashlib.sha256(policy.canonicalize_body(verifier.body)).digest()
    if body_hash != base64.b64decode(re.sub(rb"\s+", b"", sig[b"bh"])):
        return False
    hasher = hashlib.sha256()
    dkim.hash_headers(hasher, policy, policy.canonicalize_headers(verifier.headers),
                      include_headers, sig_headers[idx], sig)
    try:
        key.verify(base64.b64decode(re.sub(rb"\s+", b"", sig[b"b"])), hasher.digest())
    except InvalidSignature:
        return False
    return True


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dkim")
    ensure_domain_keys(path, DOMAIN, SELECTOR, ed25519=True)
    return path


@pytest.fixture(scope="module")
def rsa_only(keys_dir: Path) -> tuple[DkimSigner, list[str]]:
    keys = load_domain_keys(keys_dir, DOMAIN, SELECTOR, ed25519=False)
    return DkimSigner({DOMAIN: keys}), dns_records(keys_dir, DOMAIN, SELECTOR, ed25519=False)


@pytest.fixture(scope="module")
def rsa_ed25519(keys_dir: Path) -> tuple[DkimSigner, list[str]]:
    keys = load_domain_keys(keys_dir, DOMAIN, SELECTOR, ed25519=True)
    return DkimSigner({DOMAIN: keys}), dns_records(keys_dir, DOMAIN, SELECTOR, ed25519=True)


def signature_tags(signed: bytes) -> list[dict[bytes, bytes]]:
    headers, _ = dkim.rfc822_parse(signed)
    return [parse_tag_value(v) for k, v in headers if k.lower() == b"dkim-signature"]


def tamper_body(message: bytes) -> bytes:
    return message[:-2] + b"!\r\n"


def tamper_subject(message: bytes) -> bytes:
    tampered = re.sub(rb"\r\nSubject: ", b"\r\nSubject: RE: ", message, count=1)
    assert tampered != message
    return tampered


# --- keys ----------------------------------------------------------------------


def test_ensure_domain_keys_creates_private_files(tmp_path: Path) -> None:
    keys_dir = tmp_path / "dkim"
    old_umask = os.umask(0)  # the modes must not depend on the umask
    try:
        created = ensure_domain_keys(keys_dir, DOMAIN, SELECTOR, ed25519=True)
    finally:
        os.umask(old_umask)
    folder = keys_dir / DOMAIN
    assert created == [folder / "mailhub.rsa.pem", folder / "mailhub.ed25519.pem"]
    for path in created:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
    for path in (keys_dir, folder):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert sorted(p.name for p in folder.iterdir()) == ["mailhub.ed25519.pem", "mailhub.rsa.pem"]
    assert load_domain_keys(keys_dir, DOMAIN, SELECTOR, ed25519=True).rsa_key.key_size == 2048


def test_ensure_domain_keys_is_idempotent(tmp_path: Path) -> None:
    first = ensure_domain_keys(tmp_path, DOMAIN, SELECTOR, ed25519=False)
    contents = first[0].read_bytes()
    assert ensure_domain_keys(tmp_path, DOMAIN, SELECTOR, ed25519=False) == []
    # Turning Ed25519 on later adds its key and leaves the RSA key alone.
    assert ensure_domain_keys(tmp_path, DOMAIN, SELECTOR, ed25519=True) == [
        tmp_path / DOMAIN / "mailhub.ed25519.pem"
    ]
    assert ensure_domain_keys(tmp_path, DOMAIN, SELECTOR, ed25519=True) == []
    assert first[0].read_bytes() == contents


@pytest.mark.parametrize(
    ("domain", "folder"),
    [
        ("HoChiMinhCity.GOV.vn", "hochiminhcity.gov.vn"),
        ("đànẵng.gov.vn", "xn--nng-8ka8v493n.gov.vn"),
    ],
)
def test_domain_folder_is_the_lower_case_a_label(tmp_path: Path, domain: str, folder: str) -> None:
    created = ensure_domain_keys(tmp_path, domain, SELECTOR, ed25519=False)
    assert created == [tmp_path / folder / "mailhub.rsa.pem"]
    assert load_domain_keys(tmp_path, domain, SELECTOR, ed25519=False).domain == folder


@pytest.mark.parametrize(
    "domain",
    ["", "../etc", "a/b.gov.vn", "hochiminhcity..gov.vn", ".gov.vn", "gov.vn.", "a b.vn", "-x.vn"],
)
def test_bad_domain_names_are_refused(tmp_path: Path, domain: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(repr(domain))):
        ensure_domain_keys(tmp_path / "dkim", domain, SELECTOR, ed25519=False)
    assert not (tmp_path / "dkim").exists()


@pytest.mark.parametrize("selector", ["", "../x", "a/b", "Mailhub", "x" * 60])
def test_bad_selectors_are_refused(tmp_path: Path, selector: str) -> None:
    with pytest.raises(ConfigError, match="selector"):
        ensure_domain_keys(tmp_path, DOMAIN, selector, ed25519=False)


def test_missing_keys_name_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"mailhub\.rsa\.pem is missing: run `mailhub init`"):
        dns_records(tmp_path, DOMAIN, SELECTOR, ed25519=False)
    ensure_domain_keys(tmp_path, DOMAIN, SELECTOR, ed25519=False)
    with pytest.raises(ConfigError, match=r"mailhub\.ed25519\.pem is missing"):
        load_domain_keys(tmp_path, DOMAIN, SELECTOR, ed25519=True)


def test_a_damaged_key_file_is_a_config_error(tmp_path: Path) -> None:
    (path,) = ensure_domain_keys(tmp_path, DOMAIN, SELECTOR, ed25519=False)
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match="not an unencrypted PEM private key"):
        load_domain_keys(tmp_path, DOMAIN, SELECTOR, ed25519=False)


def test_domain_keys_repr_hides_key_material(keys_dir: Path) -> None:
    keys = load_domain_keys(keys_dir, DOMAIN, SELECTOR, ed25519=True)
    assert repr(keys) == f"DomainKeys(domain='{DOMAIN}', selector='mailhub')"
    assert keys.ed25519_selector == "mailhub-ed25519"
    with pytest.raises(FrozenInstanceError):
        keys.domain = "example.org"  # type: ignore[misc]


# --- DNS records ---------------------------------------------------------------


def test_dns_records_publish_the_public_keys(keys_dir: Path) -> None:
    rsa_line, ed_line = dns_records(keys_dir, DOMAIN, SELECTOR, ed25519=True)
    keys = load_domain_keys(keys_dir, DOMAIN, SELECTOR, ed25519=True)

    # RFC 1035 §3.3.14: a 2048-bit key is longer than one 255-octet string.
    owner = re.escape(f"._domainkey.{DOMAIN}.")
    match = re.fullmatch(rf'mailhub{owner} IN TXT \( ((?:"[^"]*" )+)\)', rsa_line)
    assert match, rsa_line
    strings = re.findall(r'"([^"]*)"', match.group(1))
    assert len(strings) >= 2 and all(len(s) <= 255 for s in strings)
    tags = parse_tag_value("".join(strings).encode())
    assert (tags[b"v"], tags[b"k"]) == (b"DKIM1", b"rsa")
    spki = keys.rsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert base64.b64decode(tags[b"p"]) == spki

    match = re.fullmatch(rf'mailhub-ed25519{owner} IN TXT "([^"]*)"', ed_line)
    assert match, ed_line
    tags = parse_tag_value(match.group(1).encode())
    assert (tags[b"v"], tags[b"k"]) == (b"DKIM1", b"ed25519")
    assert keys.ed25519_key is not None
    raw = keys.ed25519_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert base64.b64decode(tags[b"p"]) == raw  # RFC 8463 §4.2: the bare 32 bytes


def test_dns_records_without_ed25519(keys_dir: Path) -> None:
    (line,) = dns_records(keys_dir, DOMAIN, SELECTOR, ed25519=False)
    assert line.startswith(f"mailhub._domainkey.{DOMAIN}. IN TXT ( \"v=DKIM1; k=rsa; p=MIIB")


# --- choosing the signing domain ---------------------------------------------------


@pytest.mark.parametrize(
    ("from_domain", "expected"),
    [
        ("hochiminhcity.gov.vn", "hochiminhcity.gov.vn"),
        ("HoChiMinhCity.GOV.VN", "hochiminhcity.gov.vn"),
        ("quan1.hochiminhcity.gov.vn", "hochiminhcity.gov.vn"),
        ("a.b.hochiminhcity.gov.vn", "hochiminhcity.gov.vn"),
        ("sotttt.hochiminhcity.gov.vn", "sotttt.hochiminhcity.gov.vn"),  # closest parent
        ("x.sotttt.hochiminhcity.gov.vn", "sotttt.hochiminhcity.gov.vn"),
        ("evilhochiminhcity.gov.vn", None),
        ("gov.vn", None),
        ("example.org", None),
        ("đànẵng.gov.vn", "xn--nng-8ka8v493n.gov.vn"),
        ("", None),
        ("bad..hochiminhcity.gov.vn", None),
    ],
)
def test_signing_domain(from_domain: str, expected: str | None) -> None:
    configured = ["hochiminhcity.gov.vn", "sotttt.hochiminhcity.gov.vn", "xn--nng-8ka8v493n.gov.vn"]
    assert signing_domain(from_domain, configured) == expected


def test_signing_domain_returns_the_configured_spelling() -> None:
    assert signing_domain("xn--nng-8ka8v493n.gov.vn", ["ĐàNẵng.gov.vn"]) == "ĐàNẵng.gov.vn"


# --- signatures ----------------------------------------------------------------


@pytest.mark.parametrize("name", MESSAGES)
def test_rsa_signature_verifies_with_dkimpy(rsa_only, name: str) -> None:
    signer, records = rsa_only
    signed = signer.sign(MESSAGES[name], DOMAIN)
    assert signed.endswith(MESSAGES[name])
    (tags,) = signature_tags(signed)
    assert tags[b"a"] == b"rsa-sha256" and tags[b"c"] == b"relaxed/relaxed"
    assert (tags[b"d"], tags[b"s"]) == (DOMAIN.encode(), b"mailhub")
    assert dkimpy_verify(signed, records)
    assert not dkimpy_verify(tamper_body(signed), records)
    assert not dkimpy_verify(tamper_subject(signed), records)


@pytest.mark.parametrize("name", MESSAGES)
def test_rsa_and_ed25519_signatures_verify(rsa_ed25519, name: str) -> None:
    signer, records = rsa_ed25519
    signed = signer.sign(MESSAGES[name], DOMAIN)
    rsa_tags, ed_tags = signature_tags(signed)  # RSA on top, then Ed25519
    assert (rsa_tags[b"a"], rsa_tags[b"s"]) == (b"rsa-sha256", b"mailhub")
    assert (ed_tags[b"a"], ed_tags[b"s"]) == (b"ed25519-sha256", b"mailhub-ed25519")
    assert dkimpy_verify(signed, records, idx=0)
    assert cryptography_verify_ed25519(signed, records, idx=1)
    for tampered in (tamper_body(signed), tamper_subject(signed)):
        assert not dkimpy_verify(tampered, records, idx=0)
        assert not cryptography_verify_ed25519(tampered, records, idx=1)


def test_ed25519_signature_verifies_with_dkimpy_and_pynacl(rsa_ed25519) -> None:
    pytest.importorskip("nacl", reason="dkimpy verifies Ed25519 only with PyNaCl")
    signer, records = rsa_ed25519
    signed = signer.sign(MESSAGES["vietnamese"], DOMAIN)
    assert dkimpy_verify(signed, records, idx=1)
    assert not dkimpy_verify(tamper_body(signed), records, idx=1)


@pytest.mark.parametrize("name", MESSAGES)
def test_rsa_signature_verifies_with_perl_mail_dkim(rsa_ed25519, perl_verify, name: str) -> None:
    signer, records = rsa_ed25519
    signed = signer.sign(MESSAGES[name], DOMAIN)
    assert perl_verify(signed, records)["rsa-sha256"] == "pass"
    assert perl_verify(tamper_body(signed), records)["rsa-sha256"] == "fail"
    assert perl_verify(tamper_subject(signed), records)["rsa-sha256"] == "fail"


def test_perl_verifier_fails_with_another_key(rsa_only, perl_verify, tmp_path: Path) -> None:
    signer, _ = rsa_only
    ensure_domain_keys(tmp_path, DOMAIN, SELECTOR, ed25519=False)
    wrong_records = dns_records(tmp_path, DOMAIN, SELECTOR, ed25519=False)
    signed = signer.sign(MESSAGES["plain"], DOMAIN)
    assert perl_verify(signed, wrong_records)["rsa-sha256"] == "fail"


def test_received_is_not_signed(rsa_only) -> None:
    signer, records = rsa_only
    signed = signer.sign(MESSAGES["received"], DOMAIN)
    (tags,) = signature_tags(signed)
    assert b"received" not in tags[b"h"]
    # Relays add and rewrite Received in transit: that must not break the signature.
    assert dkimpy_verify(signed.replace(b"pc-17 [10.1.2.3]", b"pc-18 [10.1.2.4]"), records)


def test_from_is_oversigned(rsa_only) -> None:
    signer, records = rsa_only
    signed = signer.sign(MESSAGES["plain"], DOMAIN)
    (tags,) = signature_tags(signed)
    assert re.sub(rb"\s", b"", tags[b"h"]).split(b":").count(b"from") == 2
    # RFC 6376 §8.15: a From added after signing must break the signature.
    assert dkimpy_verify(signed, records)
    added = signed.replace(b"To: ", b"From: boss@hochiminhcity.gov.vn\r\nTo: ", 1)
    assert not dkimpy_verify(added, records)


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (b"To: a@example.org\r\nSubject: x\r\n\r\nbody\r\n", "no From header"),
        (b"From: a@hochiminhcity.gov.vn\nSubject: x\n\nbody\n", "CRLF"),
        (b"From: a@hochiminhcity.gov.vn\r\nSubject: x\r\n\r\nbare\rCR\r\n", "CRLF"),
    ],
)
def test_unsignable_messages_are_refused(rsa_only, message: bytes, error: str) -> None:
    signer, _ = rsa_only
    with pytest.raises(ValueError, match=error):
        signer.sign(message, DOMAIN)


def test_unknown_domain_is_a_key_error(rsa_only) -> None:
    signer, _ = rsa_only
    assert signer.domains == (DOMAIN,)
    with pytest.raises(KeyError):
        signer.sign(MESSAGES["plain"], "example.org")


def test_signing_from_many_threads(rsa_ed25519) -> None:
    signer, records = rsa_ed25519
    messages = [MESSAGES["5kb"].replace(b"Subject: ", b"Subject: %d " % i, 1) for i in range(48)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        signed = list(pool.map(lambda m: signer.sign(m, DOMAIN), messages))
    for original, result in zip(messages, signed):
        assert result.endswith(original)
        assert dkimpy_verify(result, records, idx=0)
        assert cryptography_verify_ed25519(result, records, idx=1)


# --- the shortcuts taken around dkimpy for speed stay equivalent ------------------


@pytest.mark.parametrize(
    "body",
    [b"", b"\r\n", b"\r\n\r\n", b"x", b"x\r\n\r\n", b"a b\r\n", b"a  b\r\n", b"a\tb\r\n",
     b"a \r\nb", b"trailing \t\r\n\r\n", b" lead\r\n", b"no final crlf ",
     b"\t \t lead run\r\n", b"   \r\n\t\r\n", b"a   \t  b  \r\n-- \r\n", b"a\x0b \x0c b \r\n"],
)
def test_relaxed_body_matches_dkimpy(body: bytes) -> None:
    assert signing._relaxed_body(body) == Relaxed.canonicalize_body(body)


@pytest.mark.parametrize(
    "message",
    [*MESSAGES.values(), b"From: a@b.c\r\n", b"From: a@b.c\r\n\r\n", b"\r\nbody\r\n",
     b"From: a@b.c\r\n\r\n\r\nbody after an empty line\r\n"],
)
def test_header_block_parse_matches_dkimpy(message: bytes) -> None:
    parsed = signing._MessageSignature(message)
    assert (parsed.headers, parsed.body) == dkim.rfc822_parse(message)


# --- ... and on generated input (hypothesis) ----------------------------------------


def _generated(test):
    """Run ``test(hypothesis, strategies, settings)``, or skip without hypothesis."""
    hypothesis = pytest.importorskip("hypothesis")
    settings = hypothesis.settings(max_examples=600, deadline=None, database=None)
    test(hypothesis, hypothesis.strategies, settings)


# RFC 6376 §3.4.4 matters only for WSP (SP, HTAB) and CRLF; \x0b and \x0c are white
# space to bytes.strip() but not WSP, and empty lines at the end are removed.
BODY_PIECES = [b" ", b"  ", b"\t", b" \t ", b"\r\n", b"\r\n", b"\r\n\r\n", b"\x0b", b"\x0c",
               b"a", b"Z", b"x", b".", b"..", b"-- ", "ữ".encode(), "Ủy ban".encode()]


def test_relaxed_body_matches_dkimpy_on_generated_bodies() -> None:
    def test(hypothesis, st, settings):
        piece = st.sampled_from(BODY_PIECES)
        body = st.builds(lambda parts, tail: b"".join(parts) + tail, st.lists(piece, max_size=40),
                         st.sampled_from([b"", b"", b"\r\n", b"\r\n\r\n", b" \r\n\t\r\n", b" "]))
        # and any bytes at all: bare CR, bare LF, NUL; the result must not differ either
        noise = st.lists(st.one_of(piece, st.binary(max_size=3)), max_size=30).map(b"".join)

        @settings
        @hypothesis.given(st.one_of(body, noise))
        def check(body: bytes) -> None:
            assert signing._relaxed_body(body) == Relaxed.canonicalize_body(body)

        check()

    _generated(test)


HEADER_NAMES = [b"From", b"from", b"FROM", b"To", b"Subject", b"Date", b"Message-ID", b"Cc",
                b"Reply-To", b"Sender", b"Received", b"X-Mailer", b"Content-Type", b"b"]
VALUE_PIECES = [b" ", b"  ", b"\t", b"\r\n ", b"\r\n\t", b"\n ", b"\r", b"\x0b", b"\x0c", b"a",
                b"=?utf-8?b?w6k=?=", b"<a@b.vn>", b";", b":", "ễ".encode()]


def test_relaxed_headers_match_dkimpy_on_generated_fields() -> None:
    def test(hypothesis, st, settings):
        value = st.builds(lambda parts, end: b"".join(parts) + end,
                          st.lists(st.sampled_from(VALUE_PIECES), max_size=12),
                          st.sampled_from([b"\r\n", b"\r\n", b"\n", b"x\n", b"", b"\r"]))
        field = st.tuples(st.sampled_from(HEADER_NAMES), st.one_of(value, st.binary(max_size=8)))

        @settings
        @hypothesis.given(st.lists(field, max_size=6))
        def check(fields) -> None:
            assert signing._relaxed_headers(fields) == Relaxed.canonicalize_headers(fields)

        check()

    _generated(test)


def test_header_parse_and_choice_match_dkimpy_on_generated_messages() -> None:
    def test(hypothesis, st, settings):
        value = st.lists(st.sampled_from([b" ", b"\t", b"a", b":", b"x y", "ễ".encode(), b""]),
                         max_size=5).map(b"".join)
        line = st.one_of(
            st.builds(lambda n, v: n + b":" + v, st.sampled_from(HEADER_NAMES), value),
            st.builds(lambda w, v: w + v, st.sampled_from([b" ", b"\t"]), value),  # continuation
            st.sampled_from([b"From someone Mon Dec  1 09:00:00 2025", b"no colon here", b"Fromage",
                             b" :x", b":a:b", b"Bad Name: x", b"X-\x7f: y"]),
        )
        message = st.builds(lambda lines, body: b"\r\n".join(lines) + b"\r\n\r\n" + body,
                            st.lists(line, min_size=1, max_size=8),
                            st.sampled_from([b"", b"body\r\n", b"a\r\n\r\n"]))

        def outcome(parse, message):
            try:
                return "parsed", parse(message)
            except Exception as exc:  # dkimpy refuses some lines: the same ones, the same way
                return "raised", type(exc), str(exc)

        @settings
        @hypothesis.given(message)
        def check(message: bytes) -> None:
            ours = outcome(lambda m: signing._MessageSignature(m), message)
            theirs = outcome(dkim.rfc822_parse, message)
            if ours[0] == "raised":
                assert ours == theirs
                return
            parsed = ours[1]
            assert theirs[0] == "parsed" and (parsed.headers, parsed.body) == theirs[1]
            include = tuple(n.lower() for n in dkim.DKIM(message).default_sign_headers())
            assert parsed.sign_headers() == include
            expected = dkim.select_headers(Relaxed.canonicalize_headers(parsed.headers), include)
            assert parsed.signed_fields(include) == expected

        check()

    _generated(test)
