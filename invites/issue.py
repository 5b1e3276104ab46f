"""Issuing a meeting's invitations: one personal iMIP REQUEST email and one SMS per
attendee not reached yet, through :class:`invites.outbound.Outbound` (the relay's
rules, DKIM, the mail queue and the SMS queue, the secretary's usage).

An invitation a rule refuses is not queued; the attendee's ``email_state`` says
``failed`` with the rule's reply, and the refusal is in the ledger. SMS go to
attendees with a mobile number, as GSM-7 without diacritics unless
``[invites] sms_unicode``; the title is shortened so the text stays in one SMS.
Running ``issue`` again only sends to attendees not yet queued on any channel
(so a crash mid-way, or attendees added by an update, are simply issued again).
"""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from invites.letters import REQUEST
from invites.reminders import schedule
from invites.outbound import Outbound, SendReport, SmsWording, meeting_info
from mailhub.config import Config
from mailhub.db import write_transaction
from mailhub.errors import InputError
from mailhub.models import ChannelState, Meeting, MeetingAttendee, MeetingStatus, utcnow
from mailhub.signing import DkimSigner

__all__ = ["INVITATION_SMS", "IssueReport", "issue", "meeting_info"]

IssueReport = SendReport
INVITATION_SMS = SmsWording("Giấy mời họp: {title}. Lúc {when}, tại {where}. Xác nhận: {link}")




def issue(engine: Engine, config: Config, signer: DkimSigner, rsvp_key: bytes, meeting_id: int, *,
          now: datetime | None = None, progress: Callable[[int, int], None] = lambda done, total: None
          ) -> IssueReport:
    """Queue the REQUEST email and the SMS of every attendee not reached yet."""
    now = now or utcnow()
    with Session(engine) as session:
        meeting = session.get(Meeting, meeting_id)
        if meeting is None:
            raise InputError(f"no meeting {meeting_id}")
        if meeting.status == MeetingStatus.CANCELLED.value:
            raise InputError(f"meeting {meeting_id} is cancelled: nothing more is sent")
        people = session.exec(select(MeetingAttendee).where(
            MeetingAttendee.meeting_id == meeting_id, MeetingAttendee.removed == False,  # noqa: E712
            MeetingAttendee.email_state == ChannelState.NONE.value,
            MeetingAttendee.sms_state == ChannelState.NONE.value).order_by(MeetingAttendee.id)).all()
    outbound = Outbound(engine, config, signer, rsvp_key, meeting, now)
    report = outbound.send(people, email=REQUEST, sms=INVITATION_SMS, progress=progress)
    _mark_sent(engine, config, meeting, now)
    return report


def _mark_sent(engine: Engine, config: Config, meeting: Meeting, now: datetime) -> None:
    """The meeting is ``sent``; the first time, its reminders are scheduled."""
    with write_transaction(engine) as conn:
        conn.execute(update(Meeting.__table__).where(Meeting.__table__.c.id == meeting.id)
                     .values(status=MeetingStatus.SENT.value, updated_at=now))
        if meeting.status == MeetingStatus.DRAFT.value:
            schedule(conn, config, meeting.id, meeting.start_at, now)
