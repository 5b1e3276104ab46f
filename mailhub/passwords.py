"""Password hashing: argon2id (RFC 9106) through argon2-cffi.

Hashes are self-describing PHC strings (``$argon2id$v=19$m=...,t=...,p=...$salt$hash``),
so the cost parameters can be raised later: :func:`needs_rehash` tells the AUTH code
when a stored hash was made with older parameters and should be replaced after a
successful login.

Nothing here raises on a wrong password or a damaged hash: :func:`verify_password`
answers ``False``. For an unknown account, call :func:`dummy_verify` so a failed
login costs the same time whether or not the account exists.
"""
from __future__ import annotations

import functools

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from mailhub.errors import InputError

MIN_LENGTH = 10
MAX_LENGTH = 1024  # argon2 accepts more, but a longer "password" is a mistake or an attack

# argon2-cffi's defaults are RFC 9106's second recommended profile
# (t=3, m=64 MiB, p=4); we only pin the variant.
_HASHER = PasswordHasher(type=Type.ID)


def hash_password(password: str) -> str:
    """Return the argon2id PHC string for ``password`` (a fresh random salt each time)."""
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if ``password`` matches ``password_hash``.

    Trusts nothing: a missing, malformed or foreign hash answers ``False`` (after a
    dummy verification, so the time taken does not reveal it), never an exception.
    """
    if not password_hash:
        dummy_verify(password)
        return False
    try:
        return _HASHER.verify(password_hash, password)
    except VerifyMismatchError:
        return False
    except (VerificationError, InvalidHashError, ValueError):
        dummy_verify(password)
        return False


def needs_rehash(password_hash: str) -> bool:
    """True if ``password_hash`` was made with other parameters than the current ones."""
    try:
        return _HASHER.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True


@functools.cache
def _dummy_hash() -> str:
    # Computed on first use, not at import: hashing costs tens of milliseconds.
    return _HASHER.hash("mailhub dummy password for unknown accounts")


def dummy_verify(password: str) -> None:
    """Spend the time of one real verification; the answer is thrown away.

    Call it when the account does not exist or has no password, so an attacker
    cannot tell those cases from a wrong password by timing (the lockout counts
    them all the same)."""
    try:
        _HASHER.verify(_dummy_hash(), password)
    except VerificationError:
        pass


def check_new_password(password: str) -> str:
    """Check a password an operator is about to set; return it or raise :class:`InputError`."""
    if not password:
        raise InputError("password: empty password refused")
    if len(password) < MIN_LENGTH:
        raise InputError(f"password: too short ({len(password)} characters, minimum {MIN_LENGTH})")
    if len(password) > MAX_LENGTH:
        raise InputError(f"password: too long (maximum {MAX_LENGTH} characters)")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in password):
        raise InputError("password: control characters are not allowed")
    return password
