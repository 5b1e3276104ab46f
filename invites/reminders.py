"""Reminders: rows in ``reminder``, sent by the delivery side of ``mailhub serve``.

A meeting's reminders are written when its invitations are first issued, due
``[invites] reminder_hours_before`` (default 24 h and 1 h: to everyone invited)
and ``unanswered_reminder_hours_before`` (48 h: to those who have not answered)
before the start; an update that moves the start moves them; a cancellation
deletes them; a secretary can ask for one now (``mailhub invite remind``).
Being rows, not timers, they survive restarts: a reminder that fell due while
mailhub was stopped is sent when it starts again, unless the meeting has
started by then (a reminder after the start is noise).

:class:`ReminderRunner` claims due rows with a lease (``due_at`` moved
:data:`LEASE` ahead, with ``SKIP LOCKED`` between PostgreSQL nodes), sends, then
marks them done: a reminder is sent at least once; a node that dies mid-way
leaves it to be sent again when the lease runs out.

Each reminder is an email (text and HTML with the RSVP link, no calendar) to
attendees whose invitation email was not refused or bounced, and an SMS to
those whose invitation SMS was not refused; both as the secretary, through the
relay's rules and DKIM, not counted as the secretary's usage.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session
from sqlmodel import select as sm_select

from invites.letters import Letter
from invites.outbound import Outbound, SendReport, SmsWording
from mailhub.config import Config
from mailhub.db import write_transaction
from mailhub.errors import InputError
from mailhub.models import (ChannelState, Meeting, MeetingAttendee, MeetingStatus, PartStat, Reminder, as_utc,
                            utcnow)
from mailhub.signing import DkimSigner

log = logging.getLogger("mailhub.invites")

_rem = Reminder.__table__
KINDS = ("all", "unanswered")
LEASE = timedelta(minutes=10)
WORDING = {"all": SmsWording("Nhắc lịch họp: {title}. Lúc {when}, tại {where}. Xác nhận: {link}"),
           "unanswered": SmsWording("Đề nghị xác nhận dự họp: {title}. Lúc {when}, tại {where}. "
                                    "Xác nhận: {link}")}
_UNREACHED = (ChannelState.NONE.value, ChannelState.FAILED.value)


def schedule(conn: Connection, config: Config, meeting_id: int, start: datetime, now: datetime) -> int:
    """(Re)write the meeting's pending reminders for a start at ``start``: those not
    sent yet are replaced; offsets already past are left out. Returns how many."""
    conn.execute(delete(_rem).where(_rem.c.meeting_id == meeting_id, _rem.c.done_at.is_(None)))
    rows = [dict(meeting_id=meeting_id, kind="all", due_at=start - timedelta(hours=h), done_at=None)
            for h in config.invites.reminder_hours_before]
    if (hours := config.invites.unanswered_reminder_hours_before) > 0:
        rows.append(dict(meeting_id=meeting_id, kind="unanswered", due_at=start - timedelta(hours=hours),
                         done_at=None))
    rows = [r for r in rows if r["due_at"] > now]
    if rows:
        conn.execute(insert(_rem), rows)
    return len(rows)


def remind_now(engine: Engine, meeting_id: int, kind: str, now: datetime | None = None) -> None:
    """Ask for a reminder now (sent by ``mailhub serve`` within seconds)."""
    if kind not in KINDS:
        raise InputError(f"reminder kind must be one of {', '.join(KINDS)}, got {kind!r}")
    now = now or utcnow()
    with Session(engine) as session:
        meeting = session.get(Meeting, meeting_id)
    if meeting is None:
        raise InputError(f"no meeting {meeting_id}")
    if meeting.status != MeetingStatus.SENT.value:
        raise InputError(f"meeting {meeting_id} is {meeting.status}: only a sent meeting has reminders")
    if as_utc(meeting.start_at) <= now:
        raise InputError(f"meeting {meeting_id} has already started")
    with write_transaction(engine) as conn:
        conn.execute(insert(_rem).values(meeting_id=meeting_id, kind=kind, due_at=now, done_at=None))


@dataclass(frozen=True)
class DueReminder:
    id: int
    meeting_id: int
    kind: str


def claim_due(engine: Engine, now: datetime, limit: int = 10) -> list[DueReminder]:
    """Due reminders, leased for :data:`LEASE` (their ``due_at`` moved ahead)."""
    now = as_utc(now)
    query = (select(_rem.c.id, _rem.c.meeting_id, _rem.c.kind)
             .where(_rem.c.done_at.is_(None), _rem.c.due_at <= now).order_by(_rem.c.due_at).limit(limit))
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = conn.execute(query).all()
        if rows:
            conn.execute(update(_rem).where(_rem.c.id.in_([r.id for r in rows])).values(due_at=now + LEASE))
    return [DueReminder(r.id, r.meeting_id, r.kind) for r in rows]


def send_reminder(engine: Engine, config: Config, signer: DkimSigner, rsvp_key: bytes, due: DueReminder,
                  now: datetime) -> SendReport | None:
    """Send one reminder and mark it done; ``None`` when there was nothing to send
    (meeting cancelled, started, or gone)."""
    report = None
    with Session(engine) as session:
        meeting = session.get(Meeting, due.meeting_id)
        if meeting is not None and meeting.status == MeetingStatus.SENT.value and as_utc(meeting.start_at) > now:
            query = sm_select(MeetingAttendee).where(MeetingAttendee.meeting_id == meeting.id,
                                                     MeetingAttendee.removed == False)  # noqa: E712
            if due.kind == "unanswered":
                query = query.where(MeetingAttendee.partstat == PartStat.NEEDS_ACTION.value)
            people = session.exec(query.order_by(MeetingAttendee.id)).all()
        else:
            people = None
    if people is not None:
        try:
            outbound = Outbound(engine, config, signer, rsvp_key, meeting, now)
        except InputError as exc:  # the secretary left the directory: nobody can send it
            log.warning("reminder %d of meeting %d not sent: %s", due.id, due.meeting_id, exc)
            people = None
    if people is not None:
        email = Letter("reminder" if due.kind == "all" else "unanswered")
        report = outbound.send([p for p in people if p.email_state not in _UNREACHED], email=email, sms=None,
                               track=False, ledger=False)
        report.add(outbound.send([p for p in people if p.sms_state not in _UNREACHED], email=None,
                                  sms=WORDING[due.kind], track=False, ledger=False))
    with write_transaction(engine) as conn:
        conn.execute(update(_rem).where(_rem.c.id == due.id).values(done_at=now))
    return report


class ReminderRunner:
    """The loop in ``mailhub serve`` that sends due reminders."""

    def __init__(self, engine: Engine, config: Config, signer: DkimSigner, rsvp_key: bytes, *,
                 interval: float = 5.0, on_queued: Callable[[], None] = lambda: None) -> None:
        self.engine, self.config, self.signer, self.rsvp_key = engine, config, signer, rsvp_key
        self.interval, self.on_queued = interval, on_queued

    def run_once(self, now: datetime | None = None) -> int:
        """Send what is due; returns how many reminders were handled."""
        now = now or utcnow()
        handled = 0
        while due := claim_due(self.engine, now):
            for reminder in due:
                report = send_reminder(self.engine, self.config, self.signer, self.rsvp_key, reminder, now)
                handled += 1
                if report is None:
                    log.info("reminder %d of meeting %d skipped: the meeting is cancelled or has started",
                             reminder.id, reminder.meeting_id)
                else:
                    log.info("reminder %d (%s) of meeting %d: %d email(s), %d SMS queued", reminder.id,
                             reminder.kind, reminder.meeting_id, report.emails, report.sms)
        return handled

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if await asyncio.to_thread(self.run_once):
                    self.on_queued()
            except Exception:  # noqa: BLE001 - a failed round is retried; the loop must not die
                log.exception("reminders: round failed; trying again in %.0f s", self.interval)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
            except TimeoutError:
                pass
