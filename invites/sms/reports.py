"""SMS delivery reports (Twilio status callbacks; SMPP receipts later) applied to the
SMS queue and the attendee.

Reports can arrive out of order (Twilio says so): a state never moves backwards.
``queued`` < ``sent`` < the final ``delivered`` / ``failed``; a report for a
lower or equal rank, or for a message already final, changes nothing.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from mailhub.db import write_transaction
from mailhub.models import ChannelState, MeetingAttendee, SmsMessage, as_utc

_sms = SmsMessage.__table__
_att = MeetingAttendee.__table__
RANK = {ChannelState.QUEUED.value: 0, ChannelState.SENT.value: 1,
        ChannelState.DELIVERED.value: 2, ChannelState.FAILED.value: 2}

# Twilio's message statuses (docs: "Message resource, status values") → our channel states.
TWILIO_STATES = {"accepted": "sent", "scheduled": "sent", "queued": "sent", "sending": "sent", "sent": "sent",
                 "delivered": "delivered", "read": "delivered",
                 "undelivered": "failed", "failed": "failed", "canceled": "failed"}


def apply_report(engine: Engine, gateway_id: str, state: str, reason: str, now: datetime) -> bool:
    """Move the SMS with ``gateway_id`` (and its attendee) to ``state`` if that is
    forward; return whether anything changed. An unknown id changes nothing."""
    if state not in RANK:
        raise ValueError(f"unknown SMS state {state!r}")
    with write_transaction(engine) as conn:
        query = select(_sms.c.id, _sms.c.state, _sms.c.attendee_id).where(_sms.c.gateway_id == gateway_id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None or RANK.get(row.state, 0) >= RANK[state] or RANK.get(row.state, 0) == 2:
            return False
        conn.execute(update(_sms).where(_sms.c.id == row.id)
                     .values(state=state, reason=reason[:1000], updated_at=as_utc(now)))
        if row.attendee_id is not None:
            conn.execute(update(_att).where(_att.c.id == row.attendee_id)
                         .values(sms_state=state, sms_reason=reason[:1000]))
    return True
