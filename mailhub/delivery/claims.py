"""All SQL of delivery: claiming due recipients and recording what happened.

Works on SQLite and PostgreSQL with SQLAlchemy Core on the model tables.

A claim is a lease, not a lock held across the network: the claiming
transaction sets the rows ``sending`` with ``lease_until = now + lease`` and
commits at once. A process that dies while sending leaves its rows ``sending``;
when the lease runs out any worker claims them again (at-least-once delivery:
the next hop may get that message twice, it never loses it).

``lease_until`` is also the claim's fencing token: results are written only to
rows still ``sending`` under the same lease, so a worker whose lease ran out
and was taken over cannot overwrite the newer worker's result.

Concurrency between claimers:

- PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED``; two nodes never take the
  same row and never wait for each other.
- SQLite: ``BEGIN IMMEDIATE`` takes the one write lock before reading, so the
  read and the update are one step for every process on the file.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable, Iterator, NamedTuple

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Connection, Engine

from mailhub.delivery.transport import RecipientResult
from mailhub.models import QueuedMessage, QueueRecipient, RecipientState

log = logging.getLogger("mailhub.delivery")

_rcpt = QueueRecipient.__table__
_msg = QueuedMessage.__table__

REPLY_LIMIT = 1000  # QueueRecipient.last_reply is VARCHAR(1000)

_WAITING = (RecipientState.QUEUED.value, RecipientState.DEFERRED.value)
_SENDING = RecipientState.SENDING.value
_OUTCOME_STATE = {
    "delivered": RecipientState.DELIVERED.value,
    "bounced": RecipientState.BOUNCED.value,
    "deferred": RecipientState.DEFERRED.value,
}


class ClaimedRecipient(NamedTuple):
    id: int  # the queue_recipient row
    rcpt: str


@dataclass(frozen=True)
class Claim:
    """One message and the recipients this worker holds a lease on."""

    message_id: str
    mail_from: str
    data: bytes
    recipients: tuple[ClaimedRecipient, ...]
    lease_until: datetime

    def outcomes(self, results: dict[str, RecipientResult]) -> list["Outcome"]:
        """Pair each claimed row with the transport's result for its address."""
        missing = RecipientResult(ok=False, permanent=False, reply="451 4.3.0 the transport gave no result")
        return [Outcome(r.id, self.lease_until, results.get(r.rcpt, missing)) for r in self.recipients]


class Outcome(NamedTuple):
    recipient_id: int
    lease_until: datetime  # the claim's lease: the fencing token
    result: RecipientResult


def retry_delay(attempts: int) -> timedelta:
    """How long a recipient waits after its ``attempts``-th failed attempt.

    ``min(60 * 2 ** (attempts - 1), 3600)`` seconds: 1, 2, 4, 8, 16, 32 minutes,
    then every hour. ``attempts`` below 1 counts as 1.
    """
    attempts = max(attempts, 1)
    return timedelta(seconds=min(60 * 2 ** min(attempts - 1, 12), 3600))


def as_utc(moment: datetime) -> datetime:
    """Times are stored timezone-aware in UTC (``mailhub.models.utcnow``; sqlmodel's
    UTCDateTime refuses naive values). A naive ``moment`` is taken to be UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


@contextmanager
def _write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the write lock from its first statement on SQLite
    (the process-shared :class:`mailhub.db.WriteLock` first, so waiters queue
    instead of sleeping in SQLite's busy handler)."""
    lock = getattr(engine, "mailhub_write_lock", None)
    with lock.hold() if lock is not None else nullcontext(), engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            # pysqlite would open a deferred transaction at the first UPDATE, after
            # our SELECT: another process could claim the same rows in between.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        yield conn
        conn.commit()


def claim(engine: Engine, node_id: str, limit: int, lease_seconds: float, now: datetime) -> list[Claim]:
    """Lease the due recipients of up to ``limit`` messages; return them by message.

    Due: ``queued``/``deferred`` with ``next_attempt_at <= now``, or ``sending``
    with ``lease_until < now`` (its worker died). ``held``, ``delivered`` and
    ``bounced`` rows are never touched. Oldest ``next_attempt_at`` first.

    Two steps: the first ``limit`` due rows choose the messages, then every due
    row of those messages is taken, so a message goes out in one transaction to
    all its due recipients. Only rows that are claimed get locked: other nodes
    go on claiming other messages at the same time.
    """
    now = as_utc(now)
    lease_until = now + timedelta(seconds=lease_seconds)
    due = or_(
        and_(_rcpt.c.state.in_(_WAITING), _rcpt.c.next_attempt_at <= now),
        # a sending row without a lease cannot belong to a live worker
        and_(_rcpt.c.state == _SENDING, or_(_rcpt.c.lease_until < now, _rcpt.c.lease_until.is_(None))),
    )
    order = (_rcpt.c.next_attempt_at, _rcpt.c.message_id, _rcpt.c.id)
    first = select(_rcpt.c.message_id).where(due).order_by(*order).limit(max(limit, 0))
    with _write_transaction(engine) as conn:
        lock = conn.dialect.name == "postgresql"
        if lock:
            first = first.with_for_update(skip_locked=True)
        wanted = list(dict.fromkeys(conn.execute(first).scalars()))
        if not wanted:
            return []
        every = (select(_rcpt.c.id, _rcpt.c.message_id, _rcpt.c.rcpt, _rcpt.c.state)
                 .where(due, _rcpt.c.message_id.in_(wanted)).order_by(*order))
        if lock:
            every = every.with_for_update(skip_locked=True)
        by_message: dict[str, list[ClaimedRecipient]] = {mid: [] for mid in wanted}
        stolen = 0
        for row in conn.execute(every):
            by_message[row.message_id].append(ClaimedRecipient(row.id, row.rcpt))
            stolen += row.state == _SENDING
        ids = [r.id for rows in by_message.values() for r in rows]
        conn.execute(update(_rcpt).where(_rcpt.c.id.in_(ids))
                     .values(state=_SENDING, lease_until=lease_until, updated_at=now))
        messages = conn.execute(select(_msg.c.id, _msg.c.mail_from, _msg.c.data)
                                .where(_msg.c.id.in_(wanted))).all()
    if stolen:
        log.warning("node %s took over %d recipient(s) whose lease had expired", node_id, stolen)
    found = {m.id: m for m in messages}
    return [Claim(mid, found[mid].mail_from, bytes(found[mid].data), tuple(rows), lease_until)
            for mid, rows in by_message.items() if rows and mid in found]


def mark_results(engine: Engine, results: Iterable[Outcome], now: datetime) -> int:
    """Record one attempt per recipient; return how many rows were updated.

    Every outcome counts an attempt (``attempts + 1``) and stores the reply.
    delivered → ``delivered``; permanent → ``bounced``; temporary → ``deferred``
    with ``next_attempt_at = now + retry_delay(attempts)``. A row no longer
    ``sending`` under the same lease (taken over by another worker) is left alone.
    """
    now = as_utc(now)
    outcomes = {o.recipient_id: o for o in results}
    if not outcomes:
        return 0
    updated = 0
    with _write_transaction(engine) as conn:
        current = select(_rcpt.c.id, _rcpt.c.attempts, _rcpt.c.lease_until).where(
            _rcpt.c.id.in_(list(outcomes)), _rcpt.c.state == _SENDING)
        if conn.dialect.name == "postgresql":
            current = current.with_for_update()
        for row in conn.execute(current).all():
            outcome = outcomes[row.id]
            if row.lease_until != as_utc(outcome.lease_until):
                continue
            attempts = row.attempts + 1
            values = dict(state=_OUTCOME_STATE[outcome.result.outcome], attempts=attempts,
                          last_reply=outcome.result.reply[:REPLY_LIMIT], lease_until=None, updated_at=now)
            if outcome.result.outcome == "deferred":
                values["next_attempt_at"] = now + retry_delay(attempts)
            conn.execute(update(_rcpt).where(_rcpt.c.id == row.id).values(**values))
            updated += 1
    return updated

