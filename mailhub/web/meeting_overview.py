"""What the meetings pages list: a visitor's meetings with their answers, and one
meeting's attendees with their unit, both channels' states and their answer.

The meetings themselves come from :mod:`invites.api` (the same visibility rule as the
JSON API, :mod:`invites.access`), the attendees' states from :func:`invites.tracking.meeting_status`; this
module adds only what a page shows besides: answers counted per meeting, and each
official's unit.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from invites.api import MeetingOut, meeting_list
from invites.tracking import AttendeeStatus, meeting_status
from mailhub.models import MeetingAttendee, Official, PartStat, Unit
from mailhub.web.sessions import Visitor

PAGE = 50
ANSWERS = (PartStat.ACCEPTED.value, PartStat.DECLINED.value, PartStat.TENTATIVE.value, PartStat.NEEDS_ACTION.value)


@dataclass(frozen=True)
class MeetingRow:
    meeting: MeetingOut
    answers: dict[str, int]  # PARTSTAT → attendees (not withdrawn)


def meeting_rows(engine: Engine, who: Visitor, page: int) -> tuple[list[MeetingRow], int]:
    """The visitor's meetings (an admin's: all), newest first, one page; and the total."""
    listed = meeting_list(engine, who, PAGE, (page - 1) * PAGE)
    ids = [m.id for m in listed.meetings]
    answers: dict[int, dict[str, int]] = {i: dict.fromkeys(ANSWERS, 0) for i in ids}
    with Session(engine) as session:
        for meeting_id, partstat, count in session.exec(
                select(MeetingAttendee.meeting_id, MeetingAttendee.partstat, func.count())
                .where(MeetingAttendee.meeting_id.in_(ids), MeetingAttendee.removed == False)  # noqa: E712
                .group_by(MeetingAttendee.meeting_id, MeetingAttendee.partstat)):
            answers[meeting_id][partstat] = count
    return [MeetingRow(m, answers[m.id]) for m in listed.meetings], listed.total


@dataclass(frozen=True)
class AttendeeRow:
    status: AttendeeStatus
    unit: str | None  # the official's unit name; None for a guest


def attendee_rows(engine: Engine, meeting_id: int) -> list[AttendeeRow]:
    """Every attendee of the meeting, in invitation order, with their unit."""
    rows = meeting_status(engine, meeting_id)
    with Session(engine) as session:
        units = dict(session.exec(
            select(MeetingAttendee.email, Unit.name)
            .join(Official, Official.id == MeetingAttendee.official_id)
            .join(Unit, Unit.code == Official.unit_code)
            .where(MeetingAttendee.meeting_id == meeting_id)).all())
    return [AttendeeRow(r, units.get(r.email) if r.email else None) for r in rows]


def counts(rows: list[AttendeeRow]) -> dict[str, Counter]:
    """Attendees still invited, counted by answer, email state and SMS state."""
    present = [r.status for r in rows if not r.status.removed]
    return {"answer": Counter(s.answer for s in present), "email": Counter(s.email_state for s in present),
            "sms": Counter(s.sms_state for s in present), "invited": Counter(all=len(present))}
