"""Updates and cancellations of a meeting (RFC 5546 §2.1.4, §3.2.2, §3.2.5).

- :func:`update_meeting`: changes fields and/or adds people. Once invitations
  are out, any change to the meeting raises SEQUENCE by one and every attendee
  reached so far gets the updated REQUEST by email; a change of time or place
  also resets every answer to "no answer" (people must say again whether they
  come), sends an SMS, and moves the pending reminders. People added get the
  invitation like the first ones.
- :func:`cancel_meeting`: METHOD:CANCEL with STATUS:CANCELLED (SEQUENCE + 1) by
  email and SMS to everyone reached; pending reminders and SMS not sent yet are
  dropped; nothing more is sent for the meeting.
- :func:`cancel_attendees`: withdraws some people's invitations (METHOD:CANCEL
  without STATUS, to them only); the others' invitations are unchanged, so
  SEQUENCE stays and their answers keep counting.

A draft meeting (nothing sent yet) is simply changed, with nothing sent.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Sequence

from sqlalchemy import delete, update
from sqlalchemy import select as select_
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from invites.letters import CANCEL, REQUEST
from invites.issue import issue
from invites.outbound import Outbound, SendReport, SmsWording
from invites.reminders import schedule
from invites.spec import MeetingChanges
from invites.store import person_key, resolve_people
from mailhub.config import Config
from mailhub.db import write_transaction
from mailhub.directory import DirectoryError, normalise_email, normalise_phone
from mailhub.errors import InputError
from mailhub.models import (ChannelState, Meeting, MeetingAttendee, MeetingStatus, PartStat, Reminder, SmsMessage,
                            as_utc, utcnow)
from mailhub.signing import DkimSigner

UPDATE_SMS = SmsWording("Thay đổi lịch họp: {title}. Lúc {when}, tại {where}. Xác nhận: {link}")
CANCEL_SMS = SmsWording("Hủy cuộc họp: {title}, lúc {when}, tại {where}.", with_link=False)
UNINVITE_SMS = SmsWording("Hủy giấy mời họp: {title}, lúc {when}. Anh/chị không cần dự.", with_link=False)
FIELDS = ("title", "agenda", "location", "chair_name", "start_at", "end_at")
_sms = SmsMessage.__table__
_att = MeetingAttendee.__table__
Progress = Callable[[int, int], None]


@dataclass
class Updated:
    sequence: int
    changed: list[str]  # the fields that changed
    answers_reset: bool  # time or place changed: everyone must answer again
    added: int
    report: SendReport = field(default_factory=SendReport)


def update_meeting(engine: Engine, config: Config, signer: DkimSigner, rsvp_key: bytes, meeting_id: int,
                   changes: MeetingChanges, *, now: datetime | None = None,
                   progress: Progress = lambda done, total: None) -> Updated:
    now = now or utcnow()
    with Session(engine) as session:
        meeting = _open_meeting(session, meeting_id)
        new = _new_values(meeting, changes)
        changed = [name for name in FIELDS if new[name] != getattr(meeting, name)]
        problems: list[str] = []
        people, _ = resolve_people(session, changes.attendees, changes.units, changes.guests, problems, "add_")
        if problems:
            raise InputError("\n".join(problems))
        known = {person_key(a): a for a in session.exec(select(MeetingAttendee)
                                                        .where(MeetingAttendee.meeting_id == meeting_id))}
        added = [p for key, p in people.items() if key not in known or known[key].removed]
        if not changed and not added:
            raise InputError(f"meeting {meeting_id}: nothing changes")
    sent = meeting.status == MeetingStatus.SENT.value
    moved = bool({"start_at", "end_at", "location"} & set(changed))
    with write_transaction(engine) as conn:
        values = {name: new[name] for name in changed} | {"updated_at": now}
        if sent and changed:
            values["sequence"] = meeting.sequence + 1
        conn.execute(update(Meeting.__table__).where(Meeting.__table__.c.id == meeting_id).values(**values))
        if sent and moved:
            conn.execute(update(_att).where(_att.c.meeting_id == meeting_id)
                         .values(partstat=PartStat.NEEDS_ACTION.value, answered_at=None))
        if sent and "start_at" in changed:
            schedule(conn, config, meeting_id, new["start_at"], now)
        for person in added:
            old = known.get(person_key(person))
            if old is not None:  # withdrawn earlier, invited again: a fresh start on both channels
                conn.execute(update(_att).where(_att.c.id == old.id).values(
                    removed=False, partstat=PartStat.NEEDS_ACTION.value, answered_at=None,
                    email_state=ChannelState.NONE.value, sms_state=ChannelState.NONE.value))
            else:
                conn.execute(_att.insert().values(
                    meeting_id=meeting_id, official_id=person.official_id, name=person.name, email=person.email,
                    phone=person.phone, removed=False, partstat=PartStat.NEEDS_ACTION.value, answered_sequence=0,
                    email_state="", email_reason="", sms_state="", sms_reason="", created_at=now))
    result = Updated(values.get("sequence", meeting.sequence), [n.removesuffix("_at").removesuffix("_name")
                                                                  for n in changed], sent and moved, len(added))
    if sent:
        with Session(engine) as session:
            meeting = session.get(Meeting, meeting_id)
            reached = _reached(session, meeting_id)
        if changed:
            outbound = Outbound(engine, config, signer, rsvp_key, meeting, now)
            result.report = outbound.send(reached, email=REQUEST,
                                          sms=UPDATE_SMS if moved else None, progress=progress)
        if added:
            result.report.add(issue(engine, config, signer, rsvp_key, meeting_id, now=now, progress=progress))
    return result


def cancel_meeting(engine: Engine, config: Config, signer: DkimSigner, rsvp_key: bytes, meeting_id: int, *,
                   now: datetime | None = None, progress: Progress = lambda done, total: None) -> SendReport:
    """Cancel the whole meeting; returns what was queued to tell the attendees."""
    now = now or utcnow()
    with Session(engine) as session:
        meeting = _open_meeting(session, meeting_id)
        reached = _reached(session, meeting_id) if meeting.status == MeetingStatus.SENT.value else []
    sequence = meeting.sequence + 1 if reached else meeting.sequence
    with write_transaction(engine) as conn:
        conn.execute(update(Meeting.__table__).where(Meeting.__table__.c.id == meeting_id).values(
            status=MeetingStatus.CANCELLED.value, sequence=sequence, updated_at=now))
        conn.execute(delete(Reminder.__table__).where(Reminder.__table__.c.meeting_id == meeting_id,
                                                      Reminder.__table__.c.done_at.is_(None)))
        _drop_queued_sms(conn, [a.id for a in reached], now)
    with Session(engine) as session:
        meeting = session.get(Meeting, meeting_id)
    return _send_cancel(engine, config, signer, rsvp_key, meeting, reached, CANCEL_SMS, now, progress)


def cancel_attendees(engine: Engine, config: Config, signer: DkimSigner, rsvp_key: bytes, meeting_id: int,
                     who: Sequence[str], *, now: datetime | None = None) -> SendReport:
    """Withdraw the invitations of the people named by address or phone number."""
    now = now or utcnow()
    with Session(engine) as session:
        meeting = _open_meeting(session, meeting_id)
        attendees = session.exec(select(MeetingAttendee).where(MeetingAttendee.meeting_id == meeting_id,
                                                               MeetingAttendee.removed == False)).all()  # noqa: E712
    by_key = {key: a for a in attendees for key in (a.email, a.phone) if key}
    chosen, problems = {}, []
    for text in who:
        try:
            key = normalise_email(text) if "@" in text else normalise_phone(text)
        except DirectoryError as exc:
            problems.append(f"{text}: {exc}")
            continue
        if key not in by_key:
            problems.append(f"{text}: not invited to meeting {meeting_id}")
        else:
            chosen[by_key[key].id] = by_key[key]
    if problems or not chosen:
        raise InputError("\n".join(problems) or "nobody named")
    people = list(chosen.values())
    reached = [a for a in people if _was_reached(a)] if meeting.status == MeetingStatus.SENT.value else []
    with write_transaction(engine) as conn:
        conn.execute(update(_att).where(_att.c.id.in_(list(chosen))).values(removed=True))
        _drop_queued_sms(conn, list(chosen), now)
    return _send_cancel(engine, config, signer, rsvp_key, meeting, reached, UNINVITE_SMS, now,
                        lambda done, total: None)


def _send_cancel(engine: Engine, config: Config, signer: DkimSigner, rsvp_key: bytes, meeting: Meeting,
                 people: list[MeetingAttendee], wording: SmsWording, now: datetime, progress: Progress) -> SendReport:
    """CANCEL emails to those whose invitation email went out, SMS to those whose SMS
    did (read again: SMS still waiting were dropped, and those people get none)."""
    if not people:
        return SendReport()
    with Session(engine) as session:
        people = session.exec(select(MeetingAttendee).where(MeetingAttendee.id.in_([p.id for p in people]))
                              .order_by(MeetingAttendee.id)).all()
    outbound = Outbound(engine, config, signer, rsvp_key, meeting, now)
    report = outbound.send([p for p in people if _went_out(p.email_state)], email=CANCEL, sms=None, progress=progress)
    report.add(outbound.send([p for p in people if _went_out(p.sms_state)], email=None, sms=wording))
    return report


def _open_meeting(session: Session, meeting_id: int) -> Meeting:
    meeting = session.get(Meeting, meeting_id)
    if meeting is None:
        raise InputError(f"no meeting {meeting_id}")
    if meeting.status == MeetingStatus.CANCELLED.value:
        raise InputError(f"meeting {meeting_id} is cancelled: it cannot change any more")
    return meeting


def _new_values(meeting: Meeting, changes: MeetingChanges) -> dict:
    start = changes.start or meeting.start_at
    if changes.end is not None:
        end = changes.end
    elif changes.duration_minutes is not None:
        end = start + timedelta(minutes=changes.duration_minutes)
    else:  # moving the start keeps the length
        end = meeting.end_at + (start - meeting.start_at)
    if end <= start:
        raise InputError("end: must be after start")
    pick = lambda new, old: old if new is None else new  # noqa: E731
    return {"title": pick(changes.title, meeting.title), "agenda": pick(changes.agenda, meeting.agenda),
            "location": pick(changes.location, meeting.location), "chair_name": pick(changes.chair, meeting.chair_name),
            "start_at": start, "end_at": end}


def _was_reached(attendee: MeetingAttendee) -> bool:
    return _went_out(attendee.email_state) or _went_out(attendee.sms_state)


def _went_out(state: str) -> bool:
    return state not in (ChannelState.NONE.value, ChannelState.FAILED.value)


def _reached(session: Session, meeting_id: int) -> list[MeetingAttendee]:
    """Attendees still invited who were sent something (in invitation order)."""
    people = session.exec(select(MeetingAttendee).where(MeetingAttendee.meeting_id == meeting_id,
                                                        MeetingAttendee.removed == False)  # noqa: E712
                           .order_by(MeetingAttendee.id)).all()
    return [p for p in people if _was_reached(p)]


def _drop_queued_sms(conn, attendee_ids: list[int], now: datetime) -> None:
    """SMS of these attendees not handed to the gateway yet (and not in a worker's
    hands) are not sent any more."""
    now = as_utc(now)
    reason = "not sent: the invitation was cancelled first"
    for start in range(0, len(attendee_ids), 500):
        waiting = (_sms.c.attendee_id.in_(attendee_ids[start:start + 500]), _sms.c.state == ChannelState.QUEUED.value,
                   _sms.c.lease_until.is_(None) | (_sms.c.lease_until < now))
        dropped = [r.attendee_id for r in conn.execute(select_(_sms.c.attendee_id).where(*waiting))]
        if dropped:
            conn.execute(update(_sms).where(*waiting).values(state=ChannelState.FAILED.value, reason=reason,
                                                             updated_at=now))
            conn.execute(update(_att).where(_att.c.id.in_(dropped)).values(sms_state=ChannelState.FAILED.value,
                                                                           sms_reason=reason))
