"""All SQL of queue control (``mailhub queue ...``), SQLite and PostgreSQL, SQLAlchemy Core.

Reads never load ``queued_message.data``, except the first :data:`HEADER_LIMIT`
bytes for :func:`message_detail`, which cuts the body off before returning.

Writes race the delivery worker and respect its leases (:mod:`mailhub.delivery.claims`).
Each is one transaction of :func:`~mailhub.db.write_transaction`
(SQLite: the write lock, then ``BEGIN IMMEDIATE``) that first reads the recipient
rows it may change, with ``SELECT ... FOR UPDATE`` on PostgreSQL, and decides on
what it read. A ``sending`` row whose lease is current belongs to a worker and is
never changed; only ``delete --force`` removes it (the worker's result then finds
no row under its lease and is dropped, as for a taken-over claim). A ``sending``
row whose lease ran out belongs to nobody: any worker would take it over.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterator, Sequence

from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.types import LargeBinary

from mailhub.db import write_transaction
from mailhub.delivery.records import WAITING_STATE
from mailhub.errors import MailhubError
from mailhub.models import DeliveryAttempt, NoticeState, QueuedMessage, QueueRecipient, RecipientState, as_utc

_rcpt, _msg, _att = QueueRecipient.__table__, QueuedMessage.__table__, DeliveryAttempt.__table__

STATES = tuple(s.value for s in RecipientState)
FINAL = (RecipientState.DELIVERED.value, RecipientState.BOUNCED.value)
NOT_FINAL = tuple(s for s in STATES if s not in FINAL)  # what `queue list` shows by default
WAITING = (RecipientState.QUEUED.value, RecipientState.DEFERRED.value)
_SENDING, _HELD = RecipientState.SENDING.value, RecipientState.HELD.value
HEADER_LIMIT = 64 * 1024  # bytes of a message read to find its header block
_CHUNK = 500  # ids per IN (...): far below SQLite's and PostgreSQL's parameter limits
_MIN_PREFIX = 8


class QueueLookupError(MailhubError):
    """A message id names no message, or a prefix names several."""


class InFlightError(MailhubError):
    """``delete`` refused: a delivery worker holds a current lease on some recipients."""

    def __init__(self, message_ids: Sequence[str]) -> None:
        self.message_ids = tuple(message_ids)
        super().__init__(f"{', '.join(self.message_ids)}: a delivery worker is sending it now (a current lease); "
                         f"the next hop may get it anyway")


@dataclass(frozen=True)
class Filters:
    """Which recipients a listing or a bulk action is about (all conditions at once)."""

    states: tuple[str, ...] = NOT_FINAL
    sender: str | None = None  # exact, any case; "" is the null sender
    domains: tuple[str, ...] = ()  # spellings of one recipient domain (U-label, A-label), lower-case
    older_than: timedelta | None = None  # message age
    newer_than: timedelta | None = None


# Recipients, attempts and action targets are the database rows themselves (read-only
# named tuples) with the columns named here.
_RECIPIENT = (_rcpt.c.message_id, _rcpt.c.rcpt.label("address"), _rcpt.c.state, _rcpt.c.attempts,
              _rcpt.c.next_attempt_at, _rcpt.c.lease_until, _rcpt.c.last_reply, _rcpt.c.notified)
_ATTEMPT = (_att.c.at, _rcpt.c.rcpt.label("recipient"), _att.c.outcome, _att.c.remote, _att.c.reply, _att.c.node)
_TARGET = (_rcpt.c.id, _rcpt.c.message_id, _rcpt.c.rcpt.label("recipient"), _rcpt.c.state, _rcpt.c.attempts,
           _rcpt.c.lease_until)  # state: before the action
_MESSAGE = (_msg.c.id, _msg.c.mail_from, _msg.c.kind, _msg.c.size, _msg.c.created_at)


@dataclass(frozen=True)
class Message:
    id: str
    sender: str
    kind: str
    size: int
    created_at: datetime
    recipients: tuple[Row, ...]  # columns of _RECIPIENT


@dataclass(frozen=True)
class MessageDetail:
    message: Message  # with every recipient
    header_block: bytes  # up to the blank line; never the body
    header_truncated: bool  # longer than HEADER_LIMIT: the rest was not read
    attempts: tuple[Row, ...]  # columns of _ATTEMPT


@dataclass(frozen=True)
class ActionReport:
    """What an action changed, or would change when ``applied`` is false."""

    action: str
    applied: bool
    messages: tuple[str, ...]  # ids of the messages concerned
    targets: tuple[Row, ...]  # columns of _TARGET: recipients changed (delete: all of the deleted messages')
    in_flight: int  # recipients under a current lease: left alone (delete: removed only with force)
    attempts_deleted: int = 0


@dataclass(frozen=True)
class Stats:
    by_state: dict[str, int]
    messages_waiting: int  # with at least one recipient not yet delivered or bounced
    oldest_waiting: datetime | None  # when the oldest such message was accepted
    deferred_domains: list[tuple[str, int]]  # top 10
    outcomes: dict[str, dict[str, int]]  # {"1h"|"24h": {"delivered": n, "bounced": n}}
    notices_pending: int  # bounced recipients whose sender has not had the failure notice yet


def _recipient_conditions(f: Filters) -> list:
    conds = [_rcpt.c.state.in_(f.states)]
    if f.domains:
        conds.append(or_(*(func.lower(_rcpt.c.rcpt).endswith("@" + d, autoescape=True) for d in f.domains)))
    return conds


def _message_conditions(f: Filters, now: datetime) -> list:
    conds = []
    if f.sender is not None:
        conds.append(func.lower(_msg.c.mail_from) == func.lower(f.sender))  # one lower() for both sides
    if f.older_than is not None:
        conds.append(_msg.c.created_at <= now - f.older_than)
    if f.newer_than is not None:
        conds.append(_msg.c.created_at >= now - f.newer_than)
    return conds


def _chunks(items: Sequence, size: int = _CHUNK) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _messages(conn: Connection, heads: list, recipient_conds: list) -> list[Message]:
    by_message: dict[str, list[Row]] = {m.id: [] for m in heads}
    for ids in _chunks(list(by_message)):
        for r in conn.execute(select(*_RECIPIENT).where(_rcpt.c.message_id.in_(ids), *recipient_conds)
                              .order_by(_rcpt.c.id)):
            by_message[r.message_id].append(r)
    return [Message(m.id, m.mail_from, m.kind, m.size, m.created_at, tuple(by_message[m.id])) for m in heads]


def list_messages(engine: Engine, filters: Filters, limit: int, now: datetime) -> tuple[list[Message], int]:
    """The oldest ``limit`` messages with a recipient matching ``filters``, each with
    its matching recipients only, and how many messages match in all."""
    now, rconds = as_utc(now), _recipient_conditions(filters)
    where = [_msg.c.id.in_(select(_rcpt.c.message_id).where(*rconds)), *_message_conditions(filters, now)]
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(_msg).where(*where)).scalar_one()
        heads = conn.execute(select(*_MESSAGE).where(*where)
                             .order_by(_msg.c.created_at, _msg.c.id).limit(max(limit, 0))).all()
        return _messages(conn, heads, rconds), total


def _resolve(conn: Connection, given: Sequence[str]) -> list[str]:
    """Full message ids for ``given``: each an id, or a unique prefix of at least
    8 hex digits. Raises QueueLookupError naming every id that fails."""
    found, problems = [], []
    for raw in given:
        key = raw.strip()
        rows = conn.execute(select(_msg.c.id).where(_msg.c.id == key)).scalars().all()
        prefix = key.lower()
        if not rows and len(prefix) >= _MIN_PREFIX and all(c in "0123456789abcdef" for c in prefix):
            rows = conn.execute(select(_msg.c.id).where(_msg.c.id.startswith(prefix)).order_by(_msg.c.id)
                                .limit(4)).scalars().all()
        if len(rows) > 1:
            shown = ", ".join(rows[:3]) + (", ..." if len(rows) > 3 else "")
            problems.append(f"{key}: several messages start with it ({shown}); give more of the id")
        elif not rows:
            short = " (a prefix needs at least 8 hex digits)" if len(key) < _MIN_PREFIX else ""
            problems.append(f"{key}: no such message in the queue{short}")
        elif rows[0] not in found:
            found.append(rows[0])
    if problems:
        raise QueueLookupError("\n".join(problems))
    return found


def message_detail(engine: Engine, given_id: str) -> MessageDetail:
    """One message, all its recipients and attempts, and its header block (not the body)."""
    with engine.connect() as conn:
        message_id = _resolve(conn, [given_id])[0]
        start = func.substr(_msg.c.data, 1, HEADER_LIMIT, type_=LargeBinary).label("start")
        head = conn.execute(select(*_MESSAGE, start).where(_msg.c.id == message_id)).one()
        message = _messages(conn, [head], [])[0]
        attempts = conn.execute(select(*_ATTEMPT)
                                .join_from(_att, _rcpt, _rcpt.c.id == _att.c.recipient_id, isouter=True)
                                .where(_att.c.message_id == message_id).order_by(_att.c.at, _att.c.id)).all()
    start = bytes(head.start or b"")
    ends = [i for i in (start.find(b"\r\n\r\n"), start.find(b"\n\n")) if i >= 0]
    truncated = not ends and len(start) >= HEADER_LIMIT
    block = start[:min(ends)] if ends else start[:start.rfind(b"\n") + 1] if truncated else start
    return MessageDetail(message, block, truncated, tuple(attempts))


def _locked(conn: Connection, where: list) -> list:
    """Recipient rows, locked on PostgreSQL in id order, as the worker's result writer
    locks them (on SQLite, BEGIN IMMEDIATE already holds the one write lock and
    SQLAlchemy leaves the clause out)."""
    return conn.execute(select(*_TARGET).where(*where).order_by(_rcpt.c.id).with_for_update(of=_rcpt)).all()


def _rows_of(conn: Connection, message_ids: Sequence[str]) -> list:
    return [row for chunk in _chunks(message_ids) for row in _locked(conn, [_rcpt.c.message_id.in_(chunk)])]


def _rows_matching(conn: Connection, filters: Filters, now: datetime) -> list:
    where, mconds = _recipient_conditions(filters), _message_conditions(filters, now)
    if mconds:
        where.append(_rcpt.c.message_id.in_(select(_msg.c.id).where(*mconds)))
    return _locked(conn, where)


def _live(row, now: datetime) -> bool:
    """In flight: ``sending`` under a lease that has not run out (claims.py's rule)."""
    return row.state == _SENDING and row.lease_until is not None and as_utc(row.lease_until) >= now




def change_recipients(engine: Engine, action: str, ids: Sequence[str] | None, filters: Filters,
                      now: datetime, apply: bool = True) -> ActionReport:
    """Change recipients of the messages ``ids`` (ids or unique prefixes), or else
    those matching ``filters``.

    ``retry``: queued/deferred rows are due now. ``hold``: queued/deferred rows, and
    ``sending`` rows whose lease ran out, become ``held``. ``release``: ``held`` rows
    become ``queued`` (never attempted) or ``deferred``, due now. Other rows are left
    alone. With ``apply`` false the same rows are read and nothing is written."""
    now = as_utc(now)
    expired = and_(_rcpt.c.state == _SENDING, or_(_rcpt.c.lease_until.is_(None), _rcpt.c.lease_until < now))
    with write_transaction(engine) as conn:
        rows = _rows_of(conn, _resolve(conn, ids)) if ids is not None else _rows_matching(conn, filters, now)
        if action == "retry":
            chosen = [r for r in rows if r.state in WAITING]
            guard, values = _rcpt.c.state.in_(WAITING), dict(next_attempt_at=now)
        elif action == "hold":
            chosen = [r for r in rows if r.state in WAITING or (r.state == _SENDING and not _live(r, now))]
            guard, values = or_(_rcpt.c.state.in_(WAITING), expired), dict(state=_HELD, lease_until=None)
        elif action == "release":
            chosen = [r for r in rows if r.state == _HELD]
            guard, values = _rcpt.c.state == _HELD, dict(state=WAITING_STATE, next_attempt_at=now)
        else:
            raise ValueError(f"unknown action {action!r}")
        if apply:  # the guard repeats the choice: rows read above cannot have changed since
            for chunk in _chunks([r.id for r in chosen]):
                conn.execute(update(_rcpt).where(_rcpt.c.id.in_(chunk), guard).values(**values, updated_at=now))
    return ActionReport(action, apply, tuple(dict.fromkeys(r.message_id for r in chosen)), tuple(chosen),
                        sum(_live(r, now) for r in rows))


def delete_messages(engine: Engine, ids: Sequence[str] | None, filters: Filters, now: datetime,
                    apply: bool = True, force: bool = False) -> ActionReport:
    """Remove whole messages, ``ids`` (ids or unique prefixes) or else those with a
    recipient matching ``filters``, with all their recipient and attempt rows.

    All or nothing: when a recipient of one of them is in flight, raises
    InFlightError and deletes nothing, unless ``force``."""
    now = as_utc(now)
    with write_transaction(engine) as conn:
        if ids is not None:
            chosen = _resolve(conn, ids)
        else:
            chosen = list(dict.fromkeys(r.message_id for r in _rows_matching(conn, filters, now)))
        rows = _rows_of(conn, chosen)
        busy = list(dict.fromkeys(r.message_id for r in rows if _live(r, now)))
        if busy and apply and not force:
            raise InFlightError(busy)
        removed = 0
        if apply:
            for chunk in _chunks(chosen):
                removed += conn.execute(delete(_att).where(or_(
                    _att.c.message_id.in_(chunk),
                    _att.c.recipient_id.in_(select(_rcpt.c.id).where(_rcpt.c.message_id.in_(chunk)))))).rowcount
                conn.execute(delete(_rcpt).where(_rcpt.c.message_id.in_(chunk)))
                conn.execute(delete(_msg).where(_msg.c.id.in_(chunk)))
    return ActionReport("delete", apply, tuple(chosen), tuple(rows), sum(_live(r, now) for r in rows), removed)


def stats(engine: Engine, now: datetime) -> Stats:
    """Counts for ``mailhub queue stats``. The attempt counts read ``delivery_attempt``
    of the last 24 hours."""
    now = as_utc(now)
    waiting = _rcpt.c.state.in_(NOT_FINAL)
    with engine.connect() as conn:
        by_state = dict.fromkeys(STATES, 0) | dict(
            conn.execute(select(_rcpt.c.state, func.count()).group_by(_rcpt.c.state)).all())
        messages = conn.execute(select(func.count(func.distinct(_rcpt.c.message_id))).where(waiting)).scalar_one()
        oldest = conn.execute(select(func.min(_msg.c.created_at))
                              .where(_msg.c.id.in_(select(_rcpt.c.message_id).where(waiting)))).scalar_one()
        domains = Counter(rcpt.rpartition("@")[2].lower().rstrip(".") for rcpt in conn.execute(
            select(_rcpt.c.rcpt).where(_rcpt.c.state == RecipientState.DEFERRED.value)).scalars())
        hour = now - timedelta(hours=1)
        counted = conn.execute(select(_att.c.outcome, func.count(), func.sum(case((_att.c.at >= hour, 1), else_=0)))
                               .where(_att.c.at >= now - timedelta(days=1), _att.c.outcome.in_(FINAL))
                               .group_by(_att.c.outcome)).all()
        notices = conn.execute(select(func.count()).where(
            _rcpt.c.state == RecipientState.BOUNCED.value, _rcpt.c.notified != NoticeState.FINAL.value)).scalar_one()
    outcomes = {"1h": dict.fromkeys(FINAL, 0), "24h": dict.fromkeys(FINAL, 0)}
    for outcome, day, last_hour in counted:
        outcomes["24h"][outcome], outcomes["1h"][outcome] = day, int(last_hour or 0)
    return Stats(by_state, messages, oldest, domains.most_common(10), outcomes, notices)
