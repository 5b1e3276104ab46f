"""The SMS queue: ``sms_message`` rows claimed with leases, sent through a gateway,
retried by the meaning of the gateway's answer.

A row waits in state ``queued`` until ``next_attempt_at``. Claiming sets
``lease_until`` (state stays ``queued``): a row with a live lease belongs to one
worker; if that worker dies, the lease runs out and any worker takes it again
(at least once, as with mail: Twilio has no idempotency key). The result is
written only under the same lease (the fencing token):

- accepted by the gateway → ``sent`` with the gateway's id (delivery reports
  move it to ``delivered`` or ``failed`` later);
- refused for good (invalid number, opted out, not a mobile) → ``failed``;
- refused for now (rate limit, carrier trouble, no answer) → ``queued`` again
  at ``now + retry_delay(attempts)``, or ``failed`` once the message is older
  than ``max_age``: an invitation SMS that arrives after the meeting is noise.

The attendee's ``sms_state`` follows its latest SMS.
"""
from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.engine import Engine

from invites.sms.gateway import SmsGateway, SmsReceipt
from mailhub.db import write_transaction
from mailhub.delivery.schedule import RetrySchedule
from mailhub.models import ChannelState, MeetingAttendee, SmsMessage, as_utc, utcnow

log = logging.getLogger("mailhub.sms")

_sms = SmsMessage.__table__
_att = MeetingAttendee.__table__
QUEUED, SENT, FAILED = ChannelState.QUEUED.value, ChannelState.SENT.value, ChannelState.FAILED.value


@dataclass(frozen=True)
class SmsJob:
    id: int
    to: str
    text: str
    unicode: bool
    lease_until: datetime


# Retries of an invitation SMS: 1 minute doubling to 30 (±20 %), given up after 24 hours.
SMS_RETRY = RetrySchedule(min_seconds=60.0, max_seconds=1800.0, jitter=0.2, max_age=timedelta(hours=24),
                          delay_warning=None)


def claim_sms(engine: Engine, limit: int, lease_seconds: float, now: datetime) -> list[SmsJob]:
    now = as_utc(now)
    lease_until = now + timedelta(seconds=lease_seconds)
    due = (select(_sms.c.id, _sms.c.to, _sms.c.text, _sms.c.encoding)
           .where(_sms.c.state == QUEUED, _sms.c.next_attempt_at <= now,
                  or_(_sms.c.lease_until.is_(None), _sms.c.lease_until < now))
           .order_by(_sms.c.next_attempt_at, _sms.c.id).limit(limit))
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        rows = conn.execute(due).all()
        if rows:
            conn.execute(update(_sms).where(_sms.c.id.in_([r.id for r in rows]))
                         .values(lease_until=lease_until, updated_at=now))
    return [SmsJob(r.id, r.to, r.text, r.encoding == "UCS-2", lease_until) for r in rows]


def record_sms(engine: Engine, results: list[tuple[SmsJob, SmsReceipt]], now: datetime, *,
               retry: RetrySchedule = SMS_RETRY, gateway_name: str = "",
               rand: Callable[[], float] = random.random) -> int:
    """Write each receipt under its job's lease; return how many rows changed."""
    now = as_utc(now)
    changed = 0
    with write_transaction(engine) as conn:
        for job, receipt in results:
            row = conn.execute(select(_sms.c.attempts, _sms.c.created_at, _sms.c.attendee_id)
                               .where(_sms.c.id == job.id, _sms.c.state == QUEUED,
                                      _sms.c.lease_until == as_utc(job.lease_until))).first()
            if row is None:
                continue  # the lease ran out and another worker took the row
            attempts = row.attempts + 1
            reason = f"{receipt.reason} (code {receipt.code})" if receipt.code else receipt.reason
            values: dict = dict(attempts=attempts, lease_until=None, updated_at=now, gateway=gateway_name,
                                reason=reason[:1000])
            next_at = None if receipt.ok or receipt.permanent else retry.next_attempt(
                attempts, as_utc(row.created_at), now, rand())
            if receipt.ok:
                values.update(state=SENT, gateway_id=receipt.gateway_id[:64])
            elif next_at is None:
                values.update(state=FAILED)
                if not receipt.permanent:
                    values["reason"] = f"gave up after {attempts} attempts: {reason}"[:1000]
            else:
                values["next_attempt_at"] = next_at
            conn.execute(update(_sms).where(_sms.c.id == job.id).values(**values))
            if row.attendee_id is not None and "state" in values:
                conn.execute(update(_att).where(_att.c.id == bindparam("a_id"))
                             .values(sms_state=values["state"], sms_reason=values["reason"]),
                             {"a_id": row.attendee_id})
            changed += 1
    return changed


class SmsWorker:
    """Send due SMS, at most ``concurrency`` at once; look again every ``poll_seconds``."""

    def __init__(self, engine: Engine, gateway: SmsGateway, *, gateway_name: str, concurrency: int = 10,
                 poll_seconds: float = 1.0, lease_seconds: float = 120.0, retry: RetrySchedule = SMS_RETRY,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.engine, self.gateway, self.gateway_name = engine, gateway, gateway_name
        self.concurrency, self.poll_seconds, self.lease_seconds = concurrency, poll_seconds, lease_seconds
        self.retry, self.clock = retry, clock
        self._woken = asyncio.Event()

    def wake(self) -> None:
        self._woken.set()

    async def drain_once(self) -> int:
        """Claim up to ``concurrency`` due SMS, send them, record the receipts."""
        jobs = await asyncio.to_thread(claim_sms, self.engine, self.concurrency, self.lease_seconds, self.clock())
        if not jobs:
            return 0
        receipts = await asyncio.gather(*(self._send(job) for job in jobs))
        await asyncio.to_thread(record_sms, self.engine, list(zip(jobs, receipts)), self.clock(),
                                retry=self.retry, gateway_name=self.gateway_name)
        return len(jobs)

    async def run(self, stop_event: asyncio.Event) -> None:
        try:
            while not stop_event.is_set():
                self._woken.clear()
                try:
                    if await self.drain_once() >= self.concurrency:
                        continue  # more may be due
                except Exception:
                    log.exception("the SMS queue failed; trying again in %g s", self.poll_seconds)
                waits = {asyncio.ensure_future(self._woken.wait()), asyncio.ensure_future(stop_event.wait())}
                _, pending = await asyncio.wait(waits, timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED)
                for task in waits:
                    task.cancel()
        finally:  # also when cancelled: an SMPP bind is closed, not left to the SMSC's timeout
            close = getattr(self.gateway, "close", None)
            if close is not None:
                await close()

    async def _send(self, job: SmsJob) -> SmsReceipt:
        try:
            receipt = await self.gateway.send(job.to, job.text, reference=str(job.id), unicode=job.unicode)
        except Exception:  # a bug in a gateway: retried, never lost
            log.exception("SMS %d: the gateway failed unexpectedly", job.id)
            return SmsReceipt(ok=False, permanent=False, gateway_id="", status="error",
                              reason="internal error in the SMS gateway, see the log")
        log.log(logging.INFO if receipt.ok else logging.WARNING, "sms id=%d to=%s outcome=%s status=%s %s",
                job.id, job.to[:-4] + "****", receipt.outcome, receipt.status, receipt.reason)
        return receipt
