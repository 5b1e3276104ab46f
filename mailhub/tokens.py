"""API tokens: how a secretary's tool proves who it acts for on the JSON API.

A token is ``mh_`` + 43 URL-safe characters (32 random bytes). It is shown once,
when it is issued; the database keeps only its SHA-256. A fast unsalted hash is
enough because the secret is 256 random bits, not something a person chose:
there is nothing to guess, so nothing to slow down (passwords, in contrast, are
argon2id). Checking a token is one indexed lookup of its hash, so the time taken
depends on the hash, which an attacker cannot steer towards a stored one; no
stored secret is ever compared byte by byte with what a client sent.

A token is refused when it is unknown, revoked, expired, or its official is no
longer active in the directory. :func:`check_token` returns that verdict with the
reason, for the log; the client is told only that the token is not valid.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from mailhub.config import Secret
from mailhub.db import write_transaction
from mailhub.directory import normalise_email
from mailhub.errors import DirectoryError, InputError
from mailhub.models import ApiToken, Official, as_utc, utcnow

PREFIX = "mh_"  # lets secret scanners (and people) recognise a leaked mailhub token
TOKEN_BYTES = 32
MAX_DAYS = 3650
_TOKEN_LENGTH = len(PREFIX) + 43  # base64url of 32 bytes, unpadded
LAST_USED_EVERY = timedelta(minutes=1)  # at most one write per token and minute


@dataclass(frozen=True)
class IssuedToken:
    id: int
    official_email: str
    label: str
    expires_at: datetime | None
    token: Secret  # the only copy of the token: show it once, never log it


@dataclass(frozen=True)
class TokenInfo:
    """A stored token as ``mailhub token list`` shows it (never the token)."""

    id: int
    official_email: str
    label: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and as_utc(self.expires_at) <= now:
            return "expired"
        return "active"


@dataclass(frozen=True)
class TokenOwner:
    """The official a valid token acts for, as the directory has them now."""

    token_id: int
    official_id: int
    email: str
    full_name: str
    unit_code: str
    roles: frozenset[str]


@dataclass(frozen=True)
class TokenVerdict:
    owner: TokenOwner | None  # None: refused
    reason: str = ""  # why it was refused, for the log: malformed, unknown, revoked, expired, inactive
    token_id: int | None = None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(engine: Engine, email: str, label: str = "", days: int | None = 365, *,
                now: datetime | None = None) -> IssuedToken:
    """A new token for the active official ``email``, valid ``days`` days (``None``:
    until revoked). Raises InputError for an unknown or inactive official or a bad
    ``days`` or ``label``."""
    now = now or utcnow()
    if days is not None and not 1 <= days <= MAX_DAYS:
        raise InputError(f"--days: expected 1 to {MAX_DAYS} (or 0 for a token that never expires), got {days}")
    label = label.strip()
    if len(label) > 255 or any(ord(c) < 32 for c in label):
        raise InputError("--label: at most 255 characters, no control characters")
    try:
        address = normalise_email(email)
    except DirectoryError as exc:
        raise InputError(f"EMAIL: {exc}") from None
    token = PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    with Session(engine) as session:
        official = session.exec(select(Official).where(Official.email == address)).first()
        if official is None:
            raise InputError(f"{address}: no such official")
        if not official.active:
            raise InputError(f"{address}: the official is not active")
        row = ApiToken(official_id=official.id, label=label, token_hash=token_hash(token), created_at=now,
                       expires_at=now + timedelta(days=days) if days is not None else None)
        session.add(row)
        session.commit()
        return IssuedToken(row.id, address, label, row.expires_at, Secret(token))


def check_token(engine: Engine, token: str, *, now: datetime | None = None) -> TokenVerdict:
    """The owner of ``token`` if it is valid now. Trusts nothing in ``token``: its
    shape is checked before any lookup. Records the use (``last_used_at``)."""
    now = now or utcnow()
    if len(token) != _TOKEN_LENGTH or not token.startswith(PREFIX) or not token.isascii():
        return TokenVerdict(None, "malformed")
    query = (select(ApiToken, Official).join(Official, Official.id == ApiToken.official_id)
             .where(ApiToken.token_hash == token_hash(token)))
    with Session(engine) as session:
        found = session.exec(query).first()
    if found is None:
        return TokenVerdict(None, "unknown")
    row, official = found
    if row.revoked_at is not None:
        return TokenVerdict(None, "revoked", row.id)
    if row.expires_at is not None and as_utc(row.expires_at) <= now:
        return TokenVerdict(None, "expired", row.id)
    if not official.active:
        return TokenVerdict(None, "inactive", row.id)
    if row.last_used_at is None or now - as_utc(row.last_used_at) >= LAST_USED_EVERY:
        with write_transaction(engine) as conn:
            conn.execute(update(ApiToken.__table__).where(ApiToken.__table__.c.id == row.id)
                         .values(last_used_at=now))
    return TokenVerdict(TokenOwner(row.id, official.id, official.email, official.full_name, official.unit_code,
                                   frozenset(official.role_list)))


def revoke_token(engine: Engine, token_id: int, *, now: datetime | None = None) -> bool:
    """Revoke token ``token_id``; False if it already was. InputError if there is none."""
    with Session(engine) as session:
        row = session.get(ApiToken, token_id)
        if row is None:
            raise InputError(f"no API token {token_id}")
        if row.revoked_at is not None:
            return False
        row.revoked_at = now or utcnow()
        session.add(row)
        session.commit()
        return True


def list_tokens(engine: Engine, email: str | None = None) -> list[TokenInfo]:
    """Every token (or one official's), newest first; the tokens themselves are not stored."""
    query = (select(ApiToken, Official.email).join(Official, Official.id == ApiToken.official_id)
             .order_by(ApiToken.id.desc()))
    if email is not None:
        query = query.where(Official.email == email.strip().lower())
    with Session(engine) as session:
        rows = session.exec(query).all()
    return [TokenInfo(t.id, address, t.label, t.created_at, t.last_used_at, t.expires_at, t.revoked_at)
            for t, address in rows]
