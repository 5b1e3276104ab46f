"""All SQL of recording what happened to claimed recipients.

:func:`mark_results` records attempts (state, reply, next attempt, one
``delivery_attempt`` row each); :func:`release` gives back recipients that were
claimed but not attempted. Both are fenced by the claim's lease, as described
in :mod:`.claims`, and each is one write transaction however many rows it
touches.
"""
from __future__ import annotations

import random
from datetime import datetime
from typing import Callable, Iterable

from sqlalchemy import bindparam, case, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.sql import ColumnElement

from mailhub.db import write_transaction
from mailhub.delivery.claims import REPLY_LIMIT, Claim, Outcome
from mailhub.delivery.schedule import RetrySchedule
from mailhub.metrics import DELIVERIES, DELIVERY_LATENCY, delivery_reason
from mailhub.models import DeliveryAttempt, QueueRecipient, RecipientState, as_utc

_rcpt = QueueRecipient.__table__
_attempt = DeliveryAttempt.__table__

_SENDING = RecipientState.SENDING.value
_STATE = {
    "delivered": RecipientState.DELIVERED.value,
    "bounced": RecipientState.BOUNCED.value,
    "deferred": RecipientState.DEFERRED.value,
}
REMOTE_LIMIT = 255  # DeliveryAttempt.remote is VARCHAR(255)
NODE_LIMIT = 128

# The state a recipient waits in when it goes back to waiting: never attempted, or not.
WAITING_STATE: ColumnElement[str] = case((_rcpt.c.attempts == 0, RecipientState.QUEUED.value),
                                         else_=RecipientState.DEFERRED.value)

# One statement for a whole batch of results (executemany): the values differ per row.
_MARK = (update(_rcpt).where(_rcpt.c.id == bindparam("b_id"))
         .values(state=bindparam("b_state"), attempts=bindparam("b_attempts"),
                 last_reply=bindparam("b_reply"), next_attempt_at=bindparam("b_next"),
                 lease_until=None, updated_at=bindparam("b_now")))
_LOG = insert(_attempt)


def mark_results(engine: Engine, results: Iterable[Outcome], now: datetime, *,
                 schedule: RetrySchedule = RetrySchedule(), node: str = "",
                 rand: Callable[[], float] = random.random) -> int:
    """Record one attempt per recipient; return how many rows were updated.

    Every outcome counts an attempt (``attempts + 1``), stores the reply and adds
    a ``delivery_attempt`` row. delivered → ``delivered``; permanent →
    ``bounced``; temporary → ``deferred`` until ``schedule.next_attempt(...)``, or
    ``bounced`` with a "delivery time expired" reply once the message is older
    than the schedule's maximum age. A row no longer ``sending`` under the same
    lease (taken over by another worker) is left alone, and no attempt is logged
    for it. Three statements whatever the number of outcomes.
    """
    now = as_utc(now)
    outcomes = {o.recipient_id: o for o in results}
    if not outcomes:
        return 0
    with write_transaction(engine) as conn:
        current = select(_rcpt.c.id, _rcpt.c.attempts, _rcpt.c.lease_until, _rcpt.c.next_attempt_at).where(
            _rcpt.c.id.in_(list(outcomes)), _rcpt.c.state == _SENDING)
        if conn.dialect.name == "postgresql":
            current = current.with_for_update()
        changes, log, counted = [], [], []
        for row in conn.execute(current).all():
            outcome = outcomes[row.id]
            if row.lease_until != as_utc(outcome.lease_until):
                continue
            attempts = row.attempts + 1
            result = outcome.result
            state, reply, next_at = _STATE[result.outcome], result.reply, row.next_attempt_at
            reason = delivery_reason(result)
            if state == RecipientState.DEFERRED.value:
                next_at = schedule.next_attempt(attempts, as_utc(outcome.queued_at), now, rand())
                if next_at is None:
                    state, reason = RecipientState.BOUNCED.value, "expired"
                    reply = f"{schedule.give_up_text()}; last answer: {reply}"
                    next_at = row.next_attempt_at
            counted.append((state, reason, outcome.queued_at))
            reply = reply[:REPLY_LIMIT]
            changes.append(dict(b_id=row.id, b_state=state, b_attempts=attempts, b_reply=reply,
                                b_now=now, b_next=next_at))
            log.append(dict(recipient_id=row.id, message_id=outcome.message_id, at=now, node=node[:NODE_LIMIT],
                            outcome=state, reply=reply, remote=result.remote[:REMOTE_LIMIT]))
        if changes:
            conn.execute(_MARK, changes)
            conn.execute(_LOG, log)
    for state, reason, queued_at in counted:  # after the commit: only what was recorded
        DELIVERIES.labels(outcome=state, reason=reason).inc()
        if state == RecipientState.DELIVERED.value:
            DELIVERY_LATENCY.observe((now - as_utc(queued_at)).total_seconds())
    return len(changes)


def release(engine: Engine, claims: Iterable[Claim], now: datetime, *,
            postpone_until: datetime | None = None) -> int:
    """Give back recipients that were claimed but not attempted; return how many.

    They become ``queued`` (never attempted) or ``deferred`` (attempted before),
    no attempt is counted, and they are due again at their old
    ``next_attempt_at`` (at once, for any worker) or, with ``postpone_until``,
    not before then (their destination is saturated: taking them again at once
    would only fill this worker with mail it cannot start). Rows no longer held
    under the claim's lease are left alone, as in :func:`mark_results`.
    """
    by_lease: dict[datetime, list[int]] = {}
    for job in claims:
        by_lease.setdefault(as_utc(job.lease_until), []).extend(r.id for r in job.recipients)
    if not by_lease:
        return 0
    released = 0
    values: dict = dict(state=WAITING_STATE, lease_until=None, updated_at=as_utc(now))
    if postpone_until is not None:
        values["next_attempt_at"] = as_utc(postpone_until)
    with write_transaction(engine) as conn:
        for lease_until, ids in by_lease.items():
            done = conn.execute(update(_rcpt)
                                .where(_rcpt.c.id.in_(ids), _rcpt.c.state == _SENDING,
                                       _rcpt.c.lease_until == lease_until)
                                .values(**values))
            released += done.rowcount
    return released
