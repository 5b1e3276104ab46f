"""Checking an official's password, with lockouts shared by every relay process.

A login attempt is refused without looking at the password while either the
account (``account:<email>``) or the client address (``client:<ip>``) is locked.
Failures are counted per key inside ``auth.window_seconds``; reaching
``auth.max_failures`` locks the key for ``auth.lockout_seconds``. The counters
live in the database (table ``auth_lockout``) so all processes and nodes agree.
Password hashing (argon2id, tens of milliseconds) runs in a worker thread.
"""
from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine

from mailhub.config import AuthConfig
from mailhub.db import write_transaction
from mailhub.models import AuthLockout, Official, utcnow
from mailhub.passwords import dummy_verify, verify_password
from policies.context import Sender

log = logging.getLogger("mailhub.auth")


class AuthOutcome(enum.Enum):
    OK = "ok"
    INVALID = "invalid"  # wrong login or password (we do not say which)
    LOCKED = "locked"  # too many recent failures for this account or client
    UNAVAILABLE = "unavailable"  # the directory could not be read


@dataclass(frozen=True)
class AuthAnswer:
    outcome: AuthOutcome
    sender: Sender | None = None


def _lock_keys(login: str, client_ip: str) -> tuple[str, str]:
    return f"account:{login}"[:400], f"client:{client_ip}"


class Authenticator:
    """Verifies credentials against the directory; safe to share between sessions."""

    def __init__(self, engine: Engine, settings: AuthConfig, load_sender) -> None:
        self._engine = engine
        self._settings = settings
        self._load_sender = load_sender  # (engine, email) -> Sender | None

    async def check(self, login: str, password: str, client_ip: str) -> AuthAnswer:
        try:
            return await asyncio.to_thread(self._check_sync, login.strip().lower(), password, client_ip)
        except Exception:
            log.exception("authentication backend failed for client %s", client_ip)
            return AuthAnswer(AuthOutcome.UNAVAILABLE)

    # ---- blocking part, in a worker thread ---------------------------------
    def _check_sync(self, login: str, password: str, client_ip: str) -> AuthAnswer:
        keys = _lock_keys(login, client_ip)
        now = utcnow()
        with self._engine.connect() as conn:
            locked = conn.execute(
                select(AuthLockout.key).where(
                    AuthLockout.key.in_(keys), AuthLockout.locked_until > now)
            ).first()
            stored = conn.execute(
                select(Official.password_hash).where(
                    Official.email == login, Official.active == True)  # noqa: E712
            ).scalar_one_or_none()
        if locked:
            log.warning("login refused while locked: %s from %s", login, client_ip)
            return AuthAnswer(AuthOutcome.LOCKED)
        if stored:
            ok = verify_password(stored, password)
        else:
            dummy_verify(password)  # same cost, so timing does not reveal the account
            ok = False
        if not ok:
            self._record_failure(keys, now)
            log.warning("login failed: %s from %s", login, client_ip)
            return AuthAnswer(AuthOutcome.INVALID)
        self._clear(keys)
        sender = self._load_sender(self._engine, login)
        if sender is None:
            return AuthAnswer(AuthOutcome.INVALID)
        return AuthAnswer(AuthOutcome.OK, sender)

    def _record_failure(self, keys: tuple[str, ...], now) -> None:
        cfg = self._settings
        window = timedelta(seconds=cfg.window_seconds)
        with write_transaction(self._engine) as conn:
            for key in keys:
                row = conn.execute(
                    select(AuthLockout.failures, AuthLockout.window_start)
                    .where(AuthLockout.key == key)
                ).first()
                if row is None:
                    conn.execute(AuthLockout.__table__.insert().values(
                        key=key, failures=1, window_start=now, locked_until=None))
                    failures = 1
                else:
                    failures = 1 if now - row.window_start > window else row.failures + 1
                    start = now if failures == 1 else row.window_start
                    conn.execute(AuthLockout.__table__.update()
                                 .where(AuthLockout.key == key)
                                 .values(failures=failures, window_start=start))
                if cfg.max_failures and failures >= cfg.max_failures:
                    until = now + timedelta(seconds=cfg.lockout_seconds)
                    conn.execute(AuthLockout.__table__.update()
                                 .where(AuthLockout.key == key)
                                 .values(locked_until=until, failures=0, window_start=now))
                    log.warning("locked %s until %s after %d failures", key, until, failures)

    def _clear(self, keys: tuple[str, ...]) -> None:
        with write_transaction(self._engine) as conn:
            conn.execute(delete(AuthLockout).where(
                AuthLockout.key.in_(keys), AuthLockout.locked_until.is_(None)))
