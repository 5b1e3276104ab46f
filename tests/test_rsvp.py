"""Signed RSVP links: round trip, forgery, malformed input, the key file."""
from __future__ import annotations

import os
import stat

import pytest

from invites.rsvp import TAG_BYTES, ensure_key, make_token, read_token, rsvp_url

KEY = bytes(range(32))


@pytest.mark.parametrize("attendee_id", [1, 255, 256, 4242, 10_000, 2**31, 2**63 - 1])
def test_round_trip(attendee_id):
    token = make_token(KEY, attendee_id)
    assert read_token(KEY, token) == attendee_id
    assert token.isascii() and "=" not in token and "/" not in token and "+" not in token


def test_a_token_is_short_enough_for_an_sms():
    assert len(make_token(KEY, 9_999)) == 16
    assert rsvp_url("https://mail.hcm.gov.vn/", KEY, 9_999) == (
        "https://mail.hcm.gov.vn/r/" + make_token(KEY, 9_999))


def test_another_key_or_another_id_does_not_verify():
    token = make_token(KEY, 42)
    assert read_token(bytes(32), token) is None
    # Change the id part and keep the tag: refused.
    forged = make_token(KEY, 43)[:2] + token[2:]
    assert read_token(KEY, forged) is None


def test_every_single_character_change_is_refused():
    token = make_token(KEY, 4242)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i in range(len(token)):
        for ch in alphabet[:8]:
            changed = token[:i] + ch + token[i + 1:]
            if changed != token:
                assert read_token(KEY, changed) is None, changed


@pytest.mark.parametrize("token", [
    "", "A", "!!!!", "é" * 16, "A" * 41, "AAAAAAAAAAAAAAAA",
    make_token(KEY, 5) + "A",  # one character more
])
def test_malformed_tokens_are_refused(token):
    assert read_token(KEY, token) is None


def test_a_leading_zero_byte_is_refused():
    import base64
    import hashlib
    import hmac

    ident = b"\x00\x05"  # the same number as b"\x05", spelled differently
    tag = hmac.new(KEY, b"rsvp:" + ident, hashlib.sha256).digest()[:TAG_BYTES]
    token = base64.urlsafe_b64encode(ident + tag).rstrip(b"=").decode()
    assert read_token(KEY, token) is None


def test_key_file_is_created_once_with_mode_0600(tmp_path):
    path = tmp_path / "home" / "rsvp.key"
    first = ensure_key(path)
    assert len(first) == 32 and ensure_key(path) == first
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="rsvp.key: an RSVP key must be at least 32 bytes"):
        ensure_key(path)
