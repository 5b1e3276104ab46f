"""Meetings in the database: creating one from a :class:`~invites.spec.MeetingSpec`.

Attendees come from the directory (one by one, or every active official of a
unit) and from the guest list; each person is invited once, even if named
twice (by address, else by phone). Everything is checked before anything is
written, and the meeting and all its attendees are written in one transaction.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Sequence

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from invites.spec import Guest, MeetingSpec
from mailhub.config import DomainsConfig
from mailhub.directory import DirectoryError, normalise_email, normalise_phone
from mailhub.errors import InputError
from mailhub.models import Meeting, MeetingAttendee, Official, Unit, utcnow

ISSUING_ROLES = {"secretary", "admin"}


@dataclass(frozen=True)
class Created:
    meeting_id: int
    uid: str
    officials: int
    guests: int
    without_email: int  # reachable by SMS only
    without_phone: int  # reachable by email only


def create_meeting(engine: Engine, domains: DomainsConfig, spec: MeetingSpec) -> Created:
    """Check the spec against the directory and store the meeting (status ``draft``).

    Checks: the organizing unit exists; the secretary is an active official with
    the secretary (or admin) role; every named attendee is an active official;
    every unit exists; guests' addresses and phone numbers are valid. Raises one
    :class:`InputError` listing every problem.
    """
    problems: list[str] = []
    with Session(engine) as session:
        if session.get(Unit, spec.unit) is None:
            problems.append(f"unit: no unit {spec.unit!r} in the directory")
        secretary = _official(session, spec.secretary, "secretary", problems)
        if secretary is not None and not ISSUING_ROLES & set(secretary.role_list):
            problems.append(f"secretary: {secretary.email} does not have the secretary role "
                            "(mailhub user add ... --role secretary)")
        people, guests = resolve_people(session, spec.attendees, spec.units, spec.guests, problems)
        if problems:
            raise InputError("\n".join(problems))
        assert secretary is not None
        now = utcnow()
        meeting = Meeting(uid=f"{uuid.uuid4()}@{secretary.email.rpartition('@')[2]}", title=spec.title,
                          agenda=spec.agenda, location=spec.location, start_at=spec.start, end_at=spec.end,
                          unit_code=spec.unit, chair_name=spec.chair, secretary_email=secretary.email,
                          created_at=now, updated_at=now)
        session.add(meeting)
        session.flush()
        attendees = list(people.values())
        for attendee in attendees:
            attendee.meeting_id = meeting.id
            attendee.created_at = now
            session.add(attendee)
        session.commit()
        return Created(meeting.id, meeting.uid, len(attendees) - guests, guests,
                       sum(a.email is None for a in attendees), sum(a.phone is None for a in attendees))


def resolve_people(session: Session, attendees: Sequence[str], units: Sequence[str], guests: Sequence[Guest],
                   problems: list[str], prefix: str = "") -> tuple[dict[str, MeetingAttendee], int]:
    """The people named (officials one by one, whole units, guests), each once, keyed
    by address (else phone), as unsaved attendees; problems are appended, one line
    each, fields named with ``prefix`` (``add_`` for an update)."""
    people: dict[str, MeetingAttendee] = {}
    for i, address in enumerate(attendees):
        official = _official(session, address, f"{prefix}attendees[{i}]", problems)
        if official is not None:
            people.setdefault(official.email, _from_official(official))
    for code in units:
        if session.get(Unit, code) is None:
            problems.append(f"{prefix}units: no unit {code!r} in the directory")
            continue
        members = session.exec(select(Official).where(Official.unit_code == code, Official.active)
                               .order_by(Official.email)).all()
        if not members:
            problems.append(f"{prefix}units: unit {code} has no active official")
        for official in members:
            people.setdefault(official.email, _from_official(official))
    added = 0
    for i, guest in enumerate(guests):
        try:
            email = normalise_email(guest.email) if guest.email else None
            phone = normalise_phone(guest.phone)
        except DirectoryError as exc:
            problems.append(f"{prefix}guests[{i}] ({guest.name}): {exc}")
            continue
        key = email or phone or ""
        if key not in people:
            people[key] = MeetingAttendee(meeting_id=0, name=guest.name, email=email, phone=phone)
            added += 1
    return people, added


def person_key(attendee: MeetingAttendee) -> str:
    """How :func:`resolve_people` tells people apart: address, else phone."""
    return attendee.email or attendee.phone or ""


def _official(session: Session, address: str, field: str, problems: list[str]) -> Official | None:
    try:
        email = normalise_email(address)
    except DirectoryError as exc:
        problems.append(f"{field}: {exc}")
        return None
    official = session.exec(select(Official).where(Official.email == email)).first()
    if official is None:
        problems.append(f"{field}: {email} is not an official in the directory")
        return None
    if not official.active:
        problems.append(f"{field}: {email} is not active")
        return None
    return official


def _from_official(official: Official) -> MeetingAttendee:
    return MeetingAttendee(meeting_id=0, official_id=official.id, name=official.full_name, email=official.email,
                           phone=official.phone)
