"""Who may see and act on a meeting, and one change at a time per meeting: the rules the JSON
API (:mod:`invites.api`) and the console (:mod:`mailhub.web.meetings`) share.

An admin sees every meeting; a secretary the meetings they are the secretary of. Anyone
else's meeting is treated exactly as one that does not exist, so ids reveal nothing.
"""
from __future__ import annotations

import asyncio
from typing import Collection, Protocol
from weakref import WeakValueDictionary

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from mailhub.directory import normalise_email
from mailhub.errors import DirectoryError
from mailhub.models import Meeting, MeetingAttendee


class Actor(Protocol):
    """Whoever asks: an API token's official or a console visitor."""

    email: str
    roles: Collection[str]


def may_see(actor: Actor, meeting: Meeting) -> bool:
    """An admin sees every meeting, a secretary the meetings they are the secretary of."""
    return "admin" in actor.roles or meeting.secretary_email == actor.email


def may_act_as(actor: Actor, secretary: str) -> bool:
    """Only an admin creates a meeting in someone else's name."""
    try:
        same = normalise_email(secretary) == actor.email
    except DirectoryError:
        same = False  # not an address: the meeting's own checks will say so, if allowed this far
    return same or "admin" in actor.roles


def load_meeting(engine: Engine, actor: Actor, meeting_id: int) -> Meeting | None:
    """The meeting if the actor may see it; None for one that does not exist alike."""
    with Session(engine, expire_on_commit=False) as session:
        meeting = session.get(Meeting, meeting_id)
    return meeting if meeting is not None and may_see(actor, meeting) else None


def meetings_page(engine: Engine, actor: Actor, limit: int, offset: int) -> tuple[list[Meeting], dict[int, int], int]:
    """The actor's meetings (an admin's: all), newest first: one page, the attendees still
    invited per meeting, and how many meetings there are in all."""
    conditions = [] if "admin" in actor.roles else [Meeting.secretary_email == actor.email]
    with Session(engine, expire_on_commit=False) as session:
        total = session.exec(select(func.count()).select_from(Meeting).where(*conditions)).one()
        meetings = list(session.exec(select(Meeting).where(*conditions).order_by(Meeting.id.desc())
                                     .offset(offset).limit(limit)).all())
        invited = dict(session.exec(
            select(MeetingAttendee.meeting_id, func.count())
            .where(MeetingAttendee.meeting_id.in_([m.id for m in meetings]),
                   MeetingAttendee.removed == False)  # noqa: E712
            .group_by(MeetingAttendee.meeting_id)).all())
    return meetings, invited, total


_locks: WeakValueDictionary[tuple[int, int], asyncio.Lock] = WeakValueDictionary()


def meeting_lock(meeting_id: int) -> asyncio.Lock:
    """This process's lock for changing ``meeting_id`` (send, update, cancel), shared by the API
    and the console: a double click, or the same meeting sent from both at once, waits and
    then finds the work done (everyone reached, nothing changed, already cancelled). Called
    inside the event loop; a lock lives while someone holds or waits for it."""
    key = (id(asyncio.get_running_loop()), meeting_id)  # an asyncio lock belongs to one loop
    lock = _locks.get(key)
    if lock is None:
        lock = _locks[key] = asyncio.Lock()
    return lock
