"""Attendees' answers: iMIP REPLY and COUNTER mails, and the RSVP page, recorded the
same way (:func:`record_answer`).

A reply by mail is taken in when an official's mail client sends it through the
relay to the meeting's organizer (the secretary): after the message is stored
(the mail itself still goes to the secretary), :class:`ReplyIntake` looks for a
``text/calendar`` part with ``method=REPLY`` or ``COUNTER`` and reads it with
:func:`invites.ical.parse_reply`. What it trusts is the calendar data, checked:

- the meeting is found by UID and is not cancelled, and the mail went to its
  organizer address;
- the ATTENDEE (matched case-insensitively) was invited and not withdrawn, and is
  the envelope sender, which the relay's rules have already tied to the signed-in
  official: nobody answers for someone else;
- the SEQUENCE is the meeting's current one: an answer to an older version
  (before a change of time or place, say) is stale and ignored (RFC 5546 §2.1.5).

A REPLY sets the attendee's answer; a COUNTER (a proposal of another time) is
stored and shown to the secretary, never applied. Everything taken in is kept in
``meeting_reply`` as evidence. Intake is best effort after the 250: a crash at
that moment loses the answer, not the mail; the RSVP link is the sure path.

Replies from outside (guests answering from Gmail or a partner's server) reach
the city's mail server, not the relay; it can forward a copy to the reply
listener (:mod:`invites.reply_listener`), where the same checks apply with the
From and To/Cc headers in place of the envelope.
"""
from __future__ import annotations

import email
import email.policy
import logging
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from invites.ical import ReplyInfo, parse_reply
from mailhub.models import Meeting, MeetingAttendee, MeetingReply, MeetingStatus, utcnow

log = logging.getLogger("mailhub.invites")

ANSWERS = ("ACCEPTED", "DECLINED", "TENTATIVE")
# The MIME parameter of the calendar part is never encoded, so a reply shows itself
# in the raw bytes; other mail costs one scan.
_HINT = re.compile(rb'(?i)method\s*=\s*"?(?:reply|counter)\b')
_MAX_PARTS = 8


@dataclass(frozen=True)
class Intake:
    outcome: str  # recorded, proposal, ignored
    why: str  # for the log: what was recorded, or why it was ignored


def record_answer(session: Session, meeting: Meeting, attendee: MeetingAttendee, method: str, partstat: str,
                  now: datetime, *, comment: str = "", proposed: tuple[datetime | None, datetime | None] = (None, None),
                  sequence: int | None = None) -> None:
    """Keep the answer as evidence; a REPLY or an RSVP sets the attendee's answer, a
    COUNTER only proposes. The caller commits."""
    sequence = meeting.sequence if sequence is None else sequence
    session.add(MeetingReply(attendee_id=attendee.id, method=method, partstat=partstat, sequence=sequence,
                             proposed_start=proposed[0], proposed_end=proposed[1], comment=comment[:1000],
                             received_at=now))
    if method != "COUNTER":
        attendee.partstat, attendee.answered_at, attendee.answered_sequence = partstat, now, sequence
        session.add(attendee)


def take_in(engine: Engine, answerer: str, rcpts: list[str], reply: ReplyInfo, now: datetime) -> Intake:
    """Check one parsed reply against the meeting and record it. ``answerer`` is the
    address the reply is known to come from (the relay: the envelope sender, tied to
    the signed-in official; the reply listener: the From the city's server checked)."""
    with Session(engine) as session:
        meeting = session.exec(select(Meeting).where(Meeting.uid == reply.uid)).first()
        if meeting is None:
            return Intake("ignored", f"no meeting with UID {reply.uid}")
        if meeting.status == MeetingStatus.CANCELLED.value:
            return Intake("ignored", f"meeting {meeting.id} is cancelled")
        if meeting.secretary_email.lower() not in {r.lower() for r in rcpts}:
            return Intake("ignored", f"not sent to the organizer of meeting {meeting.id}")
        if reply.attendee_email != answerer.lower():
            return Intake("ignored", f"{answerer} answered for {reply.attendee_email}")
        attendee = session.exec(select(MeetingAttendee).where(
            MeetingAttendee.meeting_id == meeting.id, func.lower(MeetingAttendee.email) == reply.attendee_email,
            MeetingAttendee.removed == False)).first()  # noqa: E712
        if attendee is None:
            return Intake("ignored", f"{reply.attendee_email} is not invited to meeting {meeting.id}")
        if reply.sequence < meeting.sequence:
            return Intake("ignored", f"stale: an answer to SEQUENCE {reply.sequence}, meeting {meeting.id} is at "
                                     f"{meeting.sequence}")
        if reply.method == "REPLY" and reply.partstat not in ANSWERS:
            return Intake("ignored", f"no answer in it (PARTSTAT {reply.partstat})")
        partstat = reply.partstat if reply.partstat in ANSWERS else ""
        record_answer(session, meeting, attendee, reply.method, partstat, now, comment=reply.comment,
                      proposed=(reply.proposed_start, reply.proposed_end), sequence=reply.sequence)
        session.commit()
        what = "proposal" if reply.method == "COUNTER" else "recorded"
        return Intake(what, f"{reply.attendee_email}: {reply.method} {partstat} for meeting {meeting.id}")


def calendar_replies(data: bytes) -> list[ReplyInfo]:
    """The iMIP replies in a message: its ``text/calendar`` parts (and ``.ics``
    attachments) that :func:`parse_reply` reads, at most :data:`_MAX_PARTS`."""
    message = email.message_from_bytes(data, policy=email.policy.compat32)
    found, seen = [], 0
    for part in message.walk():
        if part.is_multipart():
            continue
        name = (part.get_filename() or "").lower()
        if part.get_content_type() not in ("text/calendar", "application/ics") and not name.endswith(".ics"):
            continue
        seen += 1
        if seen > _MAX_PARTS:
            break
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes) and (reply := parse_reply(payload)) is not None:
            if reply not in found:  # the inline part and the attachment say the same
                found.append(reply)
    return found


class ReplyIntake:
    """Given to the relay's pipeline, which calls :meth:`observe` (in a worker
    thread) for every message it stored."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def observe(self, answerer: str, rcpts: list[str], data: bytes) -> list[Intake]:
        if not _HINT.search(data):
            return []
        results = []
        try:
            for reply in calendar_replies(data):
                results.append(take_in(self.engine, answerer, rcpts, reply, utcnow()))
        except Exception:  # noqa: BLE001 - a bad reply must not disturb the relay
            log.exception("reply intake failed for a message from %s", answerer)
            return results
        for result in results:
            log.info("iMIP reply %s: %s", result.outcome, result.why)
        return results
