"""Durable storage of accepted messages, with group commit.

:meth:`QueueWriter.store` returns only after the message, its recipients and its
usage-ledger event are committed in one transaction; the SMTP front end answers
``250`` after that and ``451`` if it raises :class:`QueueStoreError`.

When many messages arrive at once they are committed together (group commit):
one writer task takes everything waiting, up to ``group_commit_max``, and
commits it in a worker thread while new messages queue up behind it. Each
sender still gets its answer only after its own commit. Refusal events for the
ledger ride along with the next commit (they need no answer).
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine

from mailhub.db import write_transaction
from mailhub.errors import QueueStoreError
from mailhub.ledger import accepted_event
from mailhub.models import QueuedMessage, QueueRecipient, RecipientState, UsageEvent, utcnow

log = logging.getLogger("mailhub.queue")


def new_queue_id() -> str:
    """A 32-character hex id that sorts by time: 48 bits of milliseconds, then 80
    random bits. (Hex, not base32: the stdlib's b32encode cost 4% of a front end.)"""
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


@dataclass(frozen=True, slots=True)
class AcceptedMessage:
    """A signed message and its envelope, ready to be stored."""

    id: str
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    official_email: str | None
    unit_code: str | None
    message_id_header: str
    recipients_internal: int
    recipients_external: int
    client_ip: str | None = None
    kind: str = "email"
    signature: str | None = None  # a document submission's outcome (mailhub.signatures), else None
    signer: str | None = None
    to_self: bool = False    # every recipient is one of the sender's own addresses
    automatic: bool = False  # an auto-reply or a bounce (RFC 3834 Auto-Submitted, null sender)


def queue_rows(m: AcceptedMessage, now: datetime) -> tuple[dict, list[dict], dict]:
    """The rows that store ``m`` at ``now``: the message, one per recipient (queued, due
    now) and its ledger event. Every writer of the queue uses these (the relay's group
    commit, invites)."""
    message = dict(id=m.id, mail_from=m.mail_from, kind=m.kind, official_email=m.official_email,
                   message_id_header=m.message_id_header[:998], size=len(m.data), data=m.data, created_at=now)
    recipients = [dict(message_id=m.id, rcpt=r, state=RecipientState.QUEUED.value, attempts=0,
                       next_attempt_at=now, lease_until=None, last_reply="", updated_at=now) for r in m.rcpt_tos]
    return message, recipients, accepted_event(m, now)


@dataclass
class _Pending:
    message: AcceptedMessage
    done: asyncio.Future


class QueueWriter:
    def __init__(self, engine: Engine, group_commit_max: int = 64) -> None:
        self._engine = engine
        self._max = group_commit_max
        self._pending: list[_Pending] = []
        self._events: list[dict] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="queue-writer")

    async def stop(self) -> None:
        """Commit what is waiting, then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task:
            await self._task

    async def store(self, message: AcceptedMessage) -> None:
        if self._closing:
            raise QueueStoreError("queue writer is stopping")
        done = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(message, done))
        self._wakeup.set()
        await done

    def record(self, event: dict) -> None:
        """Add a ledger event (e.g. a refusal) to the next commit."""
        self._events.append(event)
        self._wakeup.set()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending or self._events:
                batch, self._pending = self._pending[: self._max], self._pending[self._max:]
                events, self._events = self._events, []
                try:
                    await asyncio.to_thread(self._commit, [p.message for p in batch], events)
                except Exception as exc:  # any storage failure: every sender gets 451
                    log.exception("could not store %d message(s)", len(batch))
                    for p in batch:
                        if not p.done.done():
                            p.done.set_exception(QueueStoreError(str(exc)))
                    continue
                for p in batch:
                    if not p.done.done():
                        p.done.set_result(None)
            if self._closing:
                return

    def _commit(self, messages: list[AcceptedMessage], events: list[dict]) -> None:
        now = utcnow()
        rows, rcpts, usage = [], [], list(events)
        for m in messages:
            row, recipients, event = queue_rows(m, now)
            rows.append(row)
            rcpts.extend(recipients)
            usage.append(event)
        with write_transaction(self._engine) as conn:
            if rows:
                conn.execute(QueuedMessage.__table__.insert(), rows)
                conn.execute(QueueRecipient.__table__.insert(), rcpts)
            if usage:
                conn.execute(UsageEvent.__table__.insert(), usage)

