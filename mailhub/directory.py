"""The directory: units, officials, aliases and shared unit mailboxes.

Every function takes a ``bind``: an :class:`~sqlalchemy.engine.Engine` (the function
opens a session and commits) or a :class:`~sqlmodel.Session` (the function only
flushes; the caller owns the transaction, as the CSV import does).

Input is trusted for nothing: addresses are checked by the relay's own rules
(:mod:`policies.addresses`: strict syntax, lower case, IDNA A-label domain) and
must be in an official domain of the configuration, roles come from
:data:`mailhub.models.ROLES`, phones are normalised to E.164. A refusal raises
:class:`~mailhub.errors.DirectoryError` with a message meant for an operator.
"""
from __future__ import annotations

import contextlib
import re
import unicodedata
from collections.abc import Iterable, Iterator

from sqlalchemy import delete, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from mailhub import passwords, phones
from mailhub.config import DomainsConfig
from mailhub.errors import DirectoryError, InputError
from mailhub.models import ROLES, Mailbox, MailboxGrant, MailboxKind, Official, Unit, UnitKind, WebSession
from policies import addresses
from policies.context import Sender

Bind = Engine | Session

PHONE_REGION = "VN"  # a number without +country is Vietnamese (0912345678)
_UNIT_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


# ---- checks shared with the CSV import --------------------------------------

def normalise_email(text: str) -> str:
    """``Local@Domain`` → ``local@domain`` (A-label domain), by the relay's own address rules."""
    try:
        return addresses.parse_mailbox(text.strip()).address
    except addresses.AddressError as exc:
        raise DirectoryError(f"{text.strip()!r}: {exc}") from None


def official_email(text: str, domains: DomainsConfig) -> str:
    """A normalised address in an official domain, or DirectoryError."""
    address = normalise_email(text)
    domain = address.rpartition("@")[2]
    if not addresses.is_official(domain, domains):
        raise DirectoryError(f"{address}: {domain} is not an official domain")
    return address


def normalise_phone(text: str | None) -> str | None:
    """``0912 345 678`` → ``+84912345678``; empty → None; invalid → DirectoryError
    (the rules are :func:`mailhub.phones.normalise_phone`)."""
    if text is None or not text.strip():
        return None
    try:
        return phones.normalise_phone(text, PHONE_REGION)
    except phones.PhoneError as exc:
        raise DirectoryError(str(exc)) from None


def normalise_roles(roles: Iterable[str] | None) -> str:
    """Roles as stored (comma-separated, known, no duplicates); default ``official``."""
    chosen: list[str] = []
    for role in roles or ():
        role = role.strip().lower()
        if role and role not in ROLES:
            raise DirectoryError(f"unknown role {role!r} (known: {', '.join(ROLES)})")
        if role and role not in chosen:
            chosen.append(role)
    return ",".join(chosen or ["official"])


def check_name(text: str, what: str = "name") -> str:
    """A display name: NFC (Excel on a Mac writes NFD Vietnamese), trimmed, 1-255 characters."""
    name = unicodedata.normalize("NFC", text or "").strip()
    if not name:
        raise DirectoryError(f"{what}: must not be empty")
    if len(name) > 255 or any(unicodedata.category(c) == "Cc" for c in name):
        raise DirectoryError(f"{what}: too long or contains control characters")
    return name


def check_unit_code(code: str) -> str:
    code = (code or "").strip()
    if not _UNIT_CODE.fullmatch(code):
        raise DirectoryError(f"invalid unit code {code!r}: letters, digits, '.', '_', '-' (max 64)")
    return code


def check_kind(kind: str) -> str:
    try:
        return UnitKind(kind.strip().lower()).value
    except ValueError:
        known = ", ".join(k.value for k in UnitKind)
        raise DirectoryError(f"unknown unit kind {kind!r} (known: {known})") from None


# ---- sessions ---------------------------------------------------------------

@contextlib.contextmanager
def using(bind: Bind) -> Iterator[Session]:
    """A session on ``bind``: committed here for an Engine, only flushed for a Session."""
    if isinstance(bind, Session):
        yield bind
        bind.flush()
        return
    with Session(bind, expire_on_commit=False) as session:
        yield session
        session.commit()


def _unit(session: Session, code: str) -> Unit:
    unit = session.get(Unit, code)
    if unit is None:
        raise DirectoryError(f"unknown unit {code!r}")
    return unit


def _official(session: Session, email: str) -> Official:
    found = session.exec(select(Official).where(Official.email == normalise_email(email))).first()
    if found is None:
        raise DirectoryError(f"unknown official {email!r}")
    return found


def _address_free(session: Session, address: str) -> None:
    if session.exec(select(Official.id).where(Official.email == address)).first() is not None:
        raise DirectoryError(f"{address} is already an official's address")
    if session.get(Mailbox, address) is not None:
        raise DirectoryError(f"{address} is already an alias or a shared mailbox")


def check_parent(session: Session, code: str, parent: str | None) -> None:
    """``parent`` exists and is not ``code`` or one of its descendants (units form a tree)."""
    seen = {code}
    while parent is not None:
        if parent in seen:
            raise DirectoryError(f"unit {code!r}: parent {parent!r} would make a cycle")
        seen.add(parent)
        parent = _unit(session, parent).parent_code


# ---- units ------------------------------------------------------------------

def add_unit(bind: Bind, code: str, name: str, parent: str | None = None,
             kind: str = UnitKind.OTHER.value) -> Unit:
    code, name, kind = check_unit_code(code), check_name(name, "unit name"), check_kind(kind)
    with using(bind) as session:
        if session.get(Unit, code) is not None:
            raise DirectoryError(f"unit {code!r} already exists")
        parent = check_unit_code(parent) if parent else None
        check_parent(session, code, parent)
        unit = Unit(code=code, name=name, parent_code=parent, kind=kind)
        session.add(unit)
        return unit


def list_units(bind: Bind) -> list[tuple[Unit, int]]:
    """Every unit with its number of officials, ordered by code."""
    with using(bind) as session:
        counts = dict(session.exec(select(Official.unit_code, func.count()).group_by(Official.unit_code)).all())
        return [(u, counts.get(u.code, 0)) for u in session.exec(select(Unit).order_by(Unit.code))]


# ---- officials --------------------------------------------------------------

def add_official(bind: Bind, domains: DomainsConfig, email: str, full_name: str, unit_code: str,
                 roles: Iterable[str] | None = None, phone: str | None = None,
                 password: str | None = None) -> Official:
    """Create an official. Without ``password`` the account cannot log in yet."""
    email = official_email(email, domains)
    official = Official(email=email, full_name=check_name(full_name, "full name"),
                        unit_code=check_unit_code(unit_code), roles=normalise_roles(roles),
                        phone=normalise_phone(phone))
    if password is not None:
        official.password_hash = passwords.hash_password(_checked_password(password))
    with using(bind) as session:
        _unit(session, official.unit_code)
        _address_free(session, email)
        session.add(official)
        return official


def _checked_password(password: str) -> str:
    try:
        return passwords.check_new_password(password)
    except InputError as exc:
        raise DirectoryError(str(exc)) from None


def set_password(bind: Bind, email: str, password: str) -> None:
    """A new password; the official's console sessions end with the old one."""
    new_hash = passwords.hash_password(_checked_password(password))
    with using(bind) as session:
        official = _official(session, email)
        official.password_hash = new_hash
        session.exec(delete(WebSession).where(WebSession.official_id == official.id))


def set_active(bind: Bind, email: str, active: bool) -> bool:
    """Let an official sign in and send again, or stop them (someone who left); their console
    sessions end at once. Returns whether anything changed. Their history stays for the scores."""
    with using(bind) as session:
        official = _official(session, email)
        changed = official.active != active
        official.active = active
        if not active:
            session.exec(delete(WebSession).where(WebSession.official_id == official.id))
        return changed


def find_official(bind: Bind, email: str) -> Official | None:
    try:
        email = normalise_email(email)
    except DirectoryError:
        return None
    with using(bind) as session:
        return session.exec(select(Official).where(Official.email == email)).first()


def list_officials(bind: Bind, unit_code: str | None = None) -> list[Official]:
    with using(bind) as session:
        query = select(Official).order_by(Official.unit_code, Official.email)
        if unit_code:
            _unit(session, unit_code)
            query = query.where(Official.unit_code == unit_code)
        return list(session.exec(query))


# ---- aliases and shared mailboxes -------------------------------------------

def add_alias(bind: Bind, domains: DomainsConfig, address: str, official_email_: str) -> Mailbox:
    """``address`` becomes another address of one official, who may send as it."""
    address = official_email(address, domains)
    with using(bind) as session:
        owner = _official(session, official_email_)
        _address_free(session, address)
        mailbox = Mailbox(address=address, kind=MailboxKind.ALIAS.value,
                          display_name=owner.full_name, unit_code=owner.unit_code)
        session.add(mailbox)
        session.flush()
        session.add(MailboxGrant(address=address, official_id=owner.id))
        return mailbox


def add_shared_mailbox(bind: Bind, domains: DomainsConfig, address: str, unit_code: str,
                       display_name: str, grant_to: Iterable[str] = ()) -> Mailbox:
    """A unit mailbox (e.g. ``vanthu@...``) that the officials in ``grant_to`` may send as."""
    address = official_email(address, domains)
    mailbox = Mailbox(address=address, kind=MailboxKind.SHARED.value,
                      display_name=check_name(display_name, "mailbox name"),
                      unit_code=check_unit_code(unit_code))
    with using(bind) as session:
        _unit(session, mailbox.unit_code)
        _address_free(session, address)
        session.add(mailbox)
        session.flush()
        for email in grant_to:
            grant(session, address, email)
        return mailbox


def grant(bind: Bind, address: str, official_email_: str) -> bool:
    """Let an official send as a shared mailbox. False if they already could."""
    with using(bind) as session:
        mailbox = session.get(Mailbox, normalise_email(address))
        if mailbox is None:
            raise DirectoryError(f"unknown shared mailbox {address!r}")
        if mailbox.kind != MailboxKind.SHARED.value:
            raise DirectoryError(f"{mailbox.address} is an alias of one official, not a shared mailbox")
        official = _official(session, official_email_)
        exists = select(MailboxGrant).where(MailboxGrant.address == mailbox.address,
                                            MailboxGrant.official_id == official.id)
        if session.exec(exists).first() is not None:
            return False
        session.add(MailboxGrant(address=mailbox.address, official_id=official.id))
        return True


# ---- what the SMTP front end and the policies read --------------------------

def load_sender(bind: Bind, email: str) -> Sender | None:
    """The active official ``email`` with every address they may send as; None if unknown."""
    official = find_official(bind, email)
    if official is None or not official.active:
        return None
    with using(bind) as session:
        granted = session.exec(select(MailboxGrant.address)
                               .where(MailboxGrant.official_id == official.id))
        may_send_as = frozenset({official.email, *(a.lower() for a in granted)})
    return Sender(login=official.email, full_name=official.full_name,
                  unit=official.unit_code, may_send_as=may_send_as)


def directory_names(bind: Bind) -> dict[str, str]:
    """Address → full name of every active official (for impersonation checks)."""
    with using(bind) as session:
        rows = session.exec(select(Official.email, Official.full_name).where(Official.active.is_(True)))
        return {email: name for email, name in rows}
