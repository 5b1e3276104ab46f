"""Signed-in browsers: a random token in a cookie, its SHA-256 in ``web_session``.

A session lasts at most ``LIFETIME`` and ends after ``IDLE`` without a request; it ends at once
when the official is made inactive. Each session has its own CSRF token, put in every form the
console shows and checked on every form it receives (synchronizer token pattern). The token is
shown to the browser once, in the cookie; nothing that could rebuild it is stored or logged.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine

from mailhub.db import write_transaction
from mailhub.models import Official, WebSession, as_utc, utcnow

LIFETIME = timedelta(hours=12)  # a working day, then sign in again
IDLE = timedelta(minutes=30)
TOUCH_EVERY = timedelta(minutes=1)  # at most one write per session and minute

_ws = WebSession.__table__.c
_of = Official.__table__.c


@dataclass(frozen=True)
class Visitor:
    """The official a session belongs to, as the directory has them now."""

    official_id: int
    email: str
    name: str
    unit: str
    roles: frozenset[str]
    csrf: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def start(engine: Engine, official_id: int, now: datetime | None = None) -> str:
    """A new session for ``official_id``; returns the token for the cookie. Also removes every
    session that has ended, so the table holds only live ones."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    with write_transaction(engine) as conn:
        # Sessions that can no longer be used (over, or idle too long) go here, at sign-in.
        conn.execute(delete(WebSession).where((_ws.expires_at <= now) | (_ws.last_seen_at < now - IDLE)))
        conn.execute(insert(WebSession), [{"token_hash": _hash(token), "official_id": official_id,
                                           "csrf": secrets.token_urlsafe(32), "created_at": now,
                                           "last_seen_at": now, "expires_at": now + LIFETIME}])
    return token


def find(engine: Engine, token: str | None, now: datetime | None = None) -> Visitor | None:
    """The visitor of a live session, or None (unknown, expired, idle too long, or the official
    is no longer active). Notes the visit at most once a minute."""
    if not token or len(token) > 64:
        return None
    now = now or utcnow()
    key = _hash(token)
    with engine.connect() as conn:
        row = conn.execute(select(_ws.official_id, _ws.csrf, _ws.last_seen_at, _ws.expires_at, _of.email,
                                  _of.full_name, _of.unit_code, _of.roles, _of.active)
                           .join(Official, _of.id == _ws.official_id).where(_ws.token_hash == key)).first()
    if row is None:
        return None
    official_id, csrf, seen, expires, email, name, unit, roles, active = row
    if not active or as_utc(expires) <= now or now - as_utc(seen) > IDLE:
        end(engine, token)
        return None
    if now - as_utc(seen) > TOUCH_EVERY:
        with write_transaction(engine) as conn:
            conn.execute(update(WebSession).where(_ws.token_hash == key).values(last_seen_at=now))
    return Visitor(official_id, email, name, unit, frozenset(r for r in roles.split(",") if r), csrf)


def end(engine: Engine, token: str | None) -> None:
    if token:
        with write_transaction(engine) as conn:
            conn.execute(delete(WebSession).where(_ws.token_hash == _hash(token)))


def csrf_ok(expected: str, given: str | None) -> bool:
    """Whether a form's token is the session's (constant-time comparison)."""
    return bool(given) and hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))
