"""Short signed RSVP links: ``<public_url>/r/<token>``, one per attendee.

Twilio cannot receive SMS replies from Vietnamese numbers (FIELD-NOTES), so the
link is how an official answers from a phone; the same link is in every email.
The token names the attendee and carries an HMAC-SHA256 tag under a secret key
kept in ``<home>/rsvp.key``; nobody can make a link for another attendee or
change its number, and nothing else is needed to check it (no table of tokens).

Token layout (base64url, no padding): the attendee id as 1–8 big-endian bytes
(no leading zero bytes), then the first ``TAG_BYTES`` of
``HMAC-SHA256(key, b"rsvp:" + id bytes)``. With 10 tag bytes a forger has one
chance in 2^80 per try; an attendee id of a few thousand gives a 16-character
token, so the link fits in an SMS next to the invitation text.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from pathlib import Path

TAG_BYTES = 10
KEY_BYTES = 32
_DOMAIN = b"rsvp:"  # domain separation: this key signs nothing else


def make_token(key: bytes, attendee_id: int) -> str:
    if attendee_id < 1:
        raise ValueError("attendee_id must be positive")
    ident = attendee_id.to_bytes((attendee_id.bit_length() + 7) // 8, "big")
    tag = hmac.new(key, _DOMAIN + ident, hashlib.sha256).digest()[:TAG_BYTES]
    return base64.urlsafe_b64encode(ident + tag).rstrip(b"=").decode("ascii")


def read_token(key: bytes, token: str) -> int | None:
    """The attendee id a valid token names, or ``None`` for anything else
    (malformed, too long, wrong tag). Checks the tag in constant time."""
    if not token or len(token) > 40 or not token.isascii():
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    ident, tag = raw[:-TAG_BYTES], raw[-TAG_BYTES:]
    if not 1 <= len(ident) <= 8 or ident[0] == 0:
        return None
    expected = hmac.new(key, _DOMAIN + ident, hashlib.sha256).digest()[:TAG_BYTES]
    if not hmac.compare_digest(tag, expected):
        return None
    return int.from_bytes(ident, "big")


def rsvp_url(public_url: str, key: bytes, attendee_id: int) -> str:
    return f"{public_url.rstrip('/')}/r/{make_token(key, attendee_id)}"


def ensure_key(path: Path) -> bytes:
    """Load the key at ``path``, creating it (mode 0600) if it does not exist.
    Links stay valid as long as the file is kept: back it up with the database."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = secrets.token_bytes(KEY_BYTES)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        return key
    if len(key) < KEY_BYTES:
        raise ValueError(f"{path}: an RSVP key must be at least {KEY_BYTES} bytes, found {len(key)}")
    return key
