"""Removing finished mail from the queue after ``[queue] retention_days``.

A message is finished when every recipient is ``delivered``, or ``bounced`` with
the sender's notice queued (``notified = final``). Until then it stays, however
old (a held message waits for its operator). Its rows and attempt history are
kept ``retention_days`` after acceptance for ``mailhub queue show`` and for
explaining a bounce; then the message, its copy of the mail and its attempts go.
The usage ledger, which scoring reads, is another table and is not touched.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import and_, delete, exists, not_, or_, select
from sqlalchemy.engine import Engine

from mailhub.db import write_transaction
from mailhub.models import (DeliveryAttempt, NoticeState, QueuedMessage, QueueRecipient, RecipientState, as_utc,
                            utcnow)

log = logging.getLogger("mailhub.delivery")

_msg = QueuedMessage.__table__
_rcpt = QueueRecipient.__table__
_attempt = DeliveryAttempt.__table__

BATCH = 500  # messages removed per transaction


def purge_finished(engine: Engine, before: datetime, limit: int = BATCH) -> int:
    """Remove up to ``limit`` finished messages accepted before ``before``; return how many."""
    unfinished = and_(
        _rcpt.c.message_id == _msg.c.id,
        not_(or_(_rcpt.c.state == RecipientState.DELIVERED.value,
                 and_(_rcpt.c.state == RecipientState.BOUNCED.value,
                      _rcpt.c.notified == NoticeState.FINAL.value))))
    chosen = (select(_msg.c.id).where(_msg.c.created_at < as_utc(before), not_(exists().where(unfinished)))
              .order_by(_msg.c.created_at).limit(limit))
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            chosen = chosen.with_for_update(skip_locked=True)
        ids = list(conn.execute(chosen).scalars())
        if ids:
            conn.execute(delete(_attempt).where(_attempt.c.message_id.in_(ids)))
            conn.execute(delete(_rcpt).where(_rcpt.c.message_id.in_(ids)))
            conn.execute(delete(_msg).where(_msg.c.id.in_(ids)))
    return len(ids)


async def run_retention(engine: Engine, days: int, stop_event: asyncio.Event, *, interval: float = 3600.0,
                        clock: Callable[[], datetime] = utcnow) -> None:
    """Purge every ``interval`` seconds (and at start) until ``stop_event``; ``days`` 0 keeps everything."""
    if days <= 0:
        return
    while not stop_event.is_set():
        removed = 0
        try:
            while True:
                count = await asyncio.to_thread(purge_finished, engine, clock() - timedelta(days=days))
                removed += count
                if count < BATCH or stop_event.is_set():
                    break
        except Exception:
            log.exception("removing finished mail older than %d days failed; trying again later", days)
        if removed:
            log.info("removed %d finished message(s) older than %d days from the queue", removed, days)
        try:
            await asyncio.wait_for(stop_event.wait(), interval)
        except TimeoutError:
            pass
