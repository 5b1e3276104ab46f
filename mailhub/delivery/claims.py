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

Every function here is one write transaction however many rows it touches: the
worker claims many messages at a time and records many results at a time,
because on SQLite each transaction is an fsync.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Iterable, NamedTuple

from sqlalchemy import and_, bindparam, case, func, or_, select, union_all, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.operators import custom_op

from mailhub.db import write_transaction
from mailhub.delivery.transport import RecipientResult
from mailhub.models import QueuedMessage, QueueRecipient, RecipientState, as_utc

log = logging.getLogger("mailhub.delivery")

_rcpt = QueueRecipient.__table__
_msg = QueuedMessage.__table__

REPLY_LIMIT = 1000  # QueueRecipient.last_reply is VARCHAR(1000)

_WAITING = (RecipientState.QUEUED.value, RecipientState.DEFERRED.value)
_SENDING = RecipientState.SENDING.value
_ORDER = (_rcpt.c.next_attempt_at, _rcpt.c.id)  # oldest first; the id keeps arrival order in a tie

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
    queued_at: datetime  # when the message was accepted: retries stop max_age after it

    def outcomes(self, results: dict[str, RecipientResult]) -> list["Outcome"]:
        """Pair each claimed row with the transport's result for its address."""
        missing = RecipientResult(ok=False, permanent=False, reply="451 4.3.0 the transport gave no result")
        return [Outcome(r.id, self.lease_until, results.get(r.rcpt, missing), self.message_id, self.queued_at)
                for r in self.recipients]

    def part(self, recipients: Iterable[ClaimedRecipient]) -> "Claim":
        """The same claim for some of its recipients (one destination's share)."""
        return replace(self, recipients=tuple(recipients))


class Outcome(NamedTuple):
    recipient_id: int
    lease_until: datetime  # the claim's lease: the fencing token
    result: RecipientResult
    message_id: str
    queued_at: datetime


def _due_rows(lock: bool) -> Select:
    """The due rows of the messages that own the first ``:limit`` due rows at ``:now``.

    Due: ``queued``/``deferred`` with ``next_attempt_at <= now``, or ``sending``
    whose lease ran out (its worker died; a ``sending`` row without a lease
    cannot belong to a live worker either).

    Both databases find the due rows one state at a time, each walk of the
    ``(state, next_attempt_at)`` index stopping after ``limit`` rows. A plain
    ``OR`` of the states makes the planner read and sort every due row on each
    claim: on SQLite 2 ms with 3,000 queued and 95 ms with 50,000; on PostgreSQL
    a sequential scan and a sort of 20,000 rows, 8 ms, 41 ms with 100,000 (the
    sort spills to disk), against 0.1 ms for the walks (bench/delivery.py,
    docs/benchmarks.md). Then the chosen messages' rows come through the
    ``message_id`` index.

    PostgreSQL (``lock``): each walk is a CTE that locks what it reads and skips
    rows another claimer holds (``FOR UPDATE SKIP LOCKED``; a locking clause is
    not allowed in the arms of a ``UNION``), and so does the second step, so two
    nodes never take the same row. Rows a walk locked but the claim did not
    choose are free again at the commit, a few milliseconds later.

    SQLite: unary ``+`` on ``state`` keeps the planner from walking every due
    row again in the second step.
    """
    now, limit = bindparam("now", type_=_rcpt.c.next_attempt_at.type), bindparam("limit")
    expired = and_(_rcpt.c.state == _SENDING, or_(_rcpt.c.lease_until < now, _rcpt.c.lease_until.is_(None)))
    every = select(_rcpt.c.id, _rcpt.c.message_id, _rcpt.c.rcpt, _rcpt.c.state, _rcpt.c.next_attempt_at)
    walks = []
    for i, one in enumerate((*(and_(_rcpt.c.state == state, _rcpt.c.next_attempt_at <= now) for state in _WAITING),
                             expired)):
        walk = select(_rcpt.c.message_id, _rcpt.c.next_attempt_at, _rcpt.c.id).where(one).order_by(*_ORDER).limit(limit)
        walks.append(walk.with_for_update(skip_locked=True).cte(f"walk{i}") if lock else walk.subquery())
    merged = union_all(*(select(walk) for walk in walks)).subquery()
    first = select(merged.c.message_id).order_by(merged.c.next_attempt_at, merged.c.id).limit(limit)
    if lock:
        due = or_(and_(_rcpt.c.state.in_(_WAITING), _rcpt.c.next_attempt_at <= now), expired)
        return every.where(due, _rcpt.c.message_id.in_(first)).with_for_update(skip_locked=True)
    state = UnaryExpression(_rcpt.c.state, operator=custom_op("+"), type_=_rcpt.c.state.type)
    due = or_(and_(state.in_(_WAITING), _rcpt.c.next_attempt_at <= now),
              and_(state == _SENDING, or_(_rcpt.c.lease_until < now, _rcpt.c.lease_until.is_(None))))
    return every.where(due, _rcpt.c.message_id.in_(first)).order_by(*_ORDER)


def _claim_returning() -> Select:
    """PostgreSQL: pick, lock, lease and read in one statement."""
    picked = _due_rows(lock=True).cte("picked")
    claimed = (update(_rcpt).where(_rcpt.c.id == picked.c.id)
               .values(state=_SENDING, lease_until=bindparam("lease_until"), updated_at=bindparam("now"))
               .returning(_rcpt.c.id, _rcpt.c.message_id, _rcpt.c.rcpt, picked.c.next_attempt_at,
                          picked.c.state.label("was"))
               .cte("claimed"))
    # The message body once per message, not once per recipient.
    first = claimed.c.id == func.min(claimed.c.id).over(partition_by=claimed.c.message_id)
    return (select(claimed.c.id, claimed.c.message_id, claimed.c.rcpt, claimed.c.was, _msg.c.mail_from,
                   _msg.c.created_at, case((first, _msg.c.data)).label("data"))
            .join_from(claimed, _msg, _msg.c.id == claimed.c.message_id)
            .order_by(claimed.c.next_attempt_at, claimed.c.id))


# Built once: the statements only differ in their parameters, and building the
# SQLAlchemy objects cost more CPU than running them.
_CLAIM_POSTGRESQL = _claim_returning()
_DUE_SQLITE = _due_rows(lock=False)
_LEASE = (update(_rcpt).where(_rcpt.c.id.in_(bindparam("ids", expanding=True)))
          .values(state=_SENDING, lease_until=bindparam("lease_until"), updated_at=bindparam("now")))
_BODIES = select(_msg.c.id, _msg.c.mail_from, _msg.c.created_at, _msg.c.data).where(_msg.c.id.in_(bindparam("ids", expanding=True)))


def claim(engine: Engine, node_id: str, limit: int, lease_seconds: float, now: datetime) -> list[Claim]:
    """Lease the due recipients of up to ``limit`` messages; return them by message.

    Due: ``queued``/``deferred`` with ``next_attempt_at <= now``, or ``sending``
    with ``lease_until < now`` (its worker died). ``held``, ``delivered`` and
    ``bounced`` rows are never touched. Oldest ``next_attempt_at`` first.

    The first ``limit`` due rows choose the messages, then every due row of those
    messages is taken, so a message goes out in one transaction to all its due
    recipients. Only rows that are claimed get locked: other nodes go on claiming
    other messages at the same time.

    PostgreSQL: one statement picks, locks, updates and returns the rows with
    their messages (one round trip, then the commit). SQLite: three statements
    inside ``BEGIN IMMEDIATE`` (in-process calls, no round trips).
    """
    now = as_utc(now)
    lease_until = now + timedelta(seconds=lease_seconds)
    params = {"now": now, "limit": max(limit, 0), "lease_until": lease_until}
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            found = list(conn.execute(_CLAIM_POSTGRESQL, params))
        else:
            found = _claim_in_steps(conn, params)
    by_message: dict[str, list[ClaimedRecipient]] = {}
    messages: dict[str, tuple[str, bytes]] = {}
    queued_at: dict[str, datetime] = {}
    stolen = 0
    for row in found:
        by_message.setdefault(row.message_id, []).append(ClaimedRecipient(row.id, row.rcpt))
        if row.data is not None:
            messages[row.message_id] = (row.mail_from, bytes(row.data))
            queued_at[row.message_id] = as_utc(row.created_at)
        stolen += row.was == _SENDING
    if stolen:
        log.warning("node %s took over %d recipient(s) whose lease had expired", node_id, stolen)
    return [Claim(mid, *messages[mid], tuple(rows), lease_until, queued_at[mid])
            for mid, rows in by_message.items() if mid in messages]


class _Found(NamedTuple):
    id: int
    message_id: str
    rcpt: str
    was: str  # the state before this claim
    mail_from: str | None
    created_at: datetime | None
    data: bytes | None  # on the first row of each message only


def _claim_in_steps(conn: Connection, params: dict) -> list[_Found]:
    rows = conn.execute(_DUE_SQLITE, params).all()
    if not rows:
        return []
    conn.execute(_LEASE, {**params, "ids": [r.id for r in rows]})
    bodies = {m.id: m for m in conn.execute(_BODIES, {"ids": list({r.message_id for r in rows})})}
    found = []
    for r in rows:
        m = bodies.pop(r.message_id, None)
        found.append(_Found(r.id, r.message_id, r.rcpt, r.state, m.mail_from if m else None,
                            m.created_at if m else None, m.data if m else None))
    return found
