"""Where each attendee's invitation stands, per channel.

Email is read from the mail queue itself (the attendee row keeps the queue id of
its last email), so the state a secretary sees is the delivery engine's own:
``queued`` (waiting, sending, or deferred — with the last answer as the reason),
``delivered`` (the next hop accepted it), ``failed`` (bounced, with the answer).
A refusal by the relay's rules at issue time stays ``failed`` on the attendee.
SMS states are the SMS queue's, moved forward by the gateway's delivery reports.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import and_, select
from sqlalchemy.engine import Engine

from mailhub.models import ChannelState, MeetingAttendee, MeetingReply, QueueRecipient, RecipientState, as_utc

_att = MeetingAttendee.__table__
_rcpt = QueueRecipient.__table__
_reply = MeetingReply.__table__

_EMAIL = {RecipientState.QUEUED.value: ChannelState.QUEUED.value,
          RecipientState.SENDING.value: ChannelState.QUEUED.value,
          RecipientState.DEFERRED.value: ChannelState.QUEUED.value,
          RecipientState.HELD.value: ChannelState.QUEUED.value,
          RecipientState.DELIVERED.value: ChannelState.DELIVERED.value,
          RecipientState.BOUNCED.value: ChannelState.FAILED.value}


@dataclass(frozen=True)
class AttendeeStatus:
    name: str
    email: str | None
    phone: str | None
    removed: bool
    answer: str
    email_state: str  # "" when no email was sent
    email_reason: str
    sms_state: str
    sms_reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def meeting_status(engine: Engine, meeting_id: int) -> list[AttendeeStatus]:
    """Every attendee of the meeting, in invitation order, with both channels' states."""
    query = (select(_att.c.name, _att.c.email, _att.c.phone, _att.c.removed, _att.c.partstat,
                    _att.c.email_state, _att.c.email_reason, _att.c.sms_state, _att.c.sms_reason,
                    _rcpt.c.state.label("queue_state"), _rcpt.c.last_reply)
             .select_from(_att.outerjoin(_rcpt, and_(_rcpt.c.message_id == _att.c.email_queue_id,
                                                     _rcpt.c.rcpt == _att.c.email)))
             .where(_att.c.meeting_id == meeting_id).order_by(_att.c.id))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    found = []
    for r in rows:
        email_state, email_reason = r.email_state, r.email_reason
        if r.queue_state is not None:
            email_state = _EMAIL.get(r.queue_state, email_state)
            waiting = r.queue_state == RecipientState.DEFERRED.value
            email_reason = r.last_reply if waiting or email_state == ChannelState.FAILED.value else ""
        found.append(AttendeeStatus(r.name, r.email, r.phone, r.removed, r.partstat, email_state, email_reason,
                                    r.sms_state, r.sms_reason))
    return found


@dataclass(frozen=True)
class Proposal:
    """A COUNTER: an attendee proposes another time (shown, never applied)."""

    name: str
    email: str | None
    start: datetime | None
    end: datetime | None
    comment: str
    sequence: int
    received_at: datetime

    def as_dict(self) -> dict:
        found = asdict(self)
        for key in ("start", "end", "received_at"):
            found[key] = found[key].isoformat() if found[key] else None
        return found


def meeting_proposals(engine: Engine, meeting_id: int) -> list[Proposal]:
    """The meeting's COUNTER proposals, oldest first."""
    query = (select(_att.c.name, _att.c.email, _reply.c.proposed_start, _reply.c.proposed_end, _reply.c.comment,
                    _reply.c.sequence, _reply.c.received_at)
             .select_from(_reply.join(_att, _att.c.id == _reply.c.attendee_id))
             .where(_att.c.meeting_id == meeting_id, _reply.c.method == "COUNTER").order_by(_reply.c.id))
    with engine.connect() as conn:
        return [Proposal(r.name, r.email, as_utc(r.proposed_start) if r.proposed_start else None,
                         as_utc(r.proposed_end) if r.proposed_end else None, r.comment, r.sequence,
                         as_utc(r.received_at)) for r in conn.execute(query)]
