"""SMS delivery reports (Twilio status callbacks; SMPP receipts later) applied to the
SMS queue and the attendee.

Reports can arrive out of order (Twilio says so): a state never moves backwards.
``queued`` < ``sent`` < the final ``delivered`` / ``failed``; a report for a
lower or equal rank, or for a message already final, changes nothing.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from mailhub.db import write_transaction
from mailhub.models import ChannelState, MeetingAttendee, SmsMessage, as_utc, utcnow

log = logging.getLogger("mailhub.sms")

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


class ReportsFromThread:
    """Delivery reports that arrive on a gateway's own thread (SMPP ``deliver_sm``),
    applied on the event loop's side.

    A receipt can overtake the SMS worker's write of the gateway id (the worker
    records a whole batch after sending it): when nothing changed, the report is
    tried again after 1, 5 and 30 seconds. Reports only move forward, so a repeat
    is harmless; ``sent`` is what the worker writes anyway, so it is tried once.
    """

    RETRIES = (0.0, 1.0, 5.0, 30.0)

    def __init__(self, engine: Engine, loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
        self.engine, self.loop, self.stop = engine, loop, stop
        self._tasks: set[asyncio.Task] = set()

    def on_report(self, gateway_id: str, state: str, reason: str) -> None:
        """Called on the gateway's thread."""
        self.loop.call_soon_threadsafe(self._spawn, gateway_id, state, reason)

    def _spawn(self, gateway_id: str, state: str, reason: str) -> None:
        task = self.loop.create_task(self._apply(gateway_id, state, reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _apply(self, gateway_id: str, state: str, reason: str) -> None:
        for delay in (0.0,) if state == ChannelState.SENT.value else self.RETRIES:
            try:
                await asyncio.wait_for(self.stop.wait(), delay)
                return  # stopping
            except TimeoutError:
                pass
            try:
                if await asyncio.to_thread(apply_report, self.engine, gateway_id, state, reason, utcnow()):
                    return
            except Exception:  # noqa: BLE001 - one bad report must not stop the others
                log.exception("the SMS delivery report for %s was not applied", gateway_id)
                return
