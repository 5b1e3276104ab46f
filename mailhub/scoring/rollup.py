"""The usage ledger rolled up per official and Vietnam month, and a period's daily counts.

A year of the ledger holds tens of millions of events; a quarter's scores for 50,000 officials
must come in seconds. So each Vietnam day, once it is over (plus ``grace``, since a refusal's
ledger line is committed just after its time), is rolled up into ``usage_month``: one row per
official and month holding, for each day, the four counts scoring needs (:data:`DAY_FIELDS`).
A period is then read as those rows for its rolled-up days plus a ``GROUP BY`` over the events
of the days not rolled up yet (today), so the figures never wait for the rollup.

A month is rebuilt whole from the events (idempotent, no read-modify-write): the daily query
runs outside any transaction, then the month's rows are replaced in one write transaction that
first checks no other node got there first (PostgreSQL: an advisory lock; SQLite: the write
lock). Events written for days already rolled up (a backfill) need ``rebuild`` to be seen.
"""
from __future__ import annotations

import asyncio
import calendar
import logging
import zlib
from dataclasses import dataclass
from collections.abc import Iterable
from datetime import date, datetime, timedelta

import numpy as np
from sqlalchemy import delete, insert, select, text
from sqlalchemy.engine import Connection, Engine

from mailhub.db import write_transaction
from mailhub.models import UsageMonth, UsageRollup, utcnow
from mailhub.scoring.counts import daily_counts
from mailhub.templating import VIETNAM

# What each day of a rollup row holds, in order: counted mail (not to oneself, not automatic),
# refusals for sending as an outside or someone else's address, document submissions, and
# those with a valid signature.
DAY_FIELDS = ("sent", "refused_outside", "documents", "documents_valid")
SENT, REFUSED, DOCUMENTS, VALID = range(len(DAY_FIELDS))
_CELL = np.dtype("<u2")  # a day's count saturates at 65,535 (far above any rate limit)
_CELL_MAX = np.iinfo(_CELL).max
_SHAPE = (31, len(DAY_FIELDS))

_um = UsageMonth.__table__.c
_ur = UsageRollup.__table__.c
log = logging.getLogger("mailhub.scoring")


def month_key(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def months(start: date, end: date) -> list[date]:
    """The first day of every month that ``[start, end]`` touches."""
    first, result = start.replace(day=1), []
    while first <= end:
        result.append(first)
        first = (first + timedelta(days=32)).replace(day=1)
    return result


def month_end(first: date) -> date:
    return first.replace(day=calendar.monthrange(first.year, first.month)[1])


def last_complete_day(now: datetime, grace: timedelta) -> date:
    """The last Vietnam day that ended at least ``grace`` before ``now``."""
    return (now.astimezone(VIETNAM) - grace).date() - timedelta(days=1)


def _month_blobs(rows: Iterable[tuple[str, date, int, int, int, int]]) -> dict[str, bytes]:
    grids: dict[str, np.ndarray] = {}
    for official, day, *counts in rows:
        grid = grids.get(official)
        if grid is None:
            grid = grids[official] = np.zeros(_SHAPE, dtype=np.int64)
        grid[day.day - 1] = counts
    return {official: np.minimum(grid, _CELL_MAX).astype(_CELL).tobytes()
            for official, grid in grids.items()}


def rolled_through(conn: Connection, first_days: Iterable[date]) -> dict[date, date]:
    """How far each of these months is rolled up (months never rolled are left out)."""
    keys = {month_key(d): d for d in first_days}
    rows = conn.execute(select(_ur.month, _ur.through).where(_ur.month.in_(list(keys))))
    return {keys[month]: through for month, through in rows}


def roll_up(engine: Engine, start: date, end: date, *, now: datetime | None = None,
            grace: timedelta = timedelta(minutes=15), rebuild: bool = False) -> list[str]:
    """Bring the rollup of the months ``[start, end]`` touches up to the last complete day
    (or rebuild them all with ``rebuild``); the months rebuilt, as ``YYYY-MM``."""
    complete = last_complete_day(now or utcnow(), grace)
    wanted = [m for m in months(start, end) if m <= complete]
    with engine.connect() as conn:
        done = rolled_through(conn, wanted)
    rebuilt = []
    for first in wanted:
        through = min(month_end(first), complete)
        if rebuild or done.get(first, date.min) < through:
            _rebuild_month(engine, first, through, force=rebuild)
            rebuilt.append(month_key(first))
    return rebuilt


def _rebuild_month(engine: Engine, first: date, through: date, *, force: bool) -> None:
    with engine.connect() as conn:
        rows = daily_counts(conn, first, through)
    blobs = _month_blobs(rows)
    key = month_key(first)
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                         {"k": zlib.crc32(f"usage_rollup {key}".encode())})
        current = conn.execute(select(_ur.through).where(_ur.month == key)).scalar()
        if current is not None and current >= through and not force:
            return  # another node rolled it up meanwhile
        conn.execute(delete(UsageMonth).where(_um.month == key))
        if blobs:
            conn.execute(insert(UsageMonth), [{"month": key, "official_email": official, "days": blob}
                                              for official, blob in blobs.items()])
        conn.execute(delete(UsageRollup).where(_ur.month == key))
        conn.execute(insert(UsageRollup), [{"month": key, "through": through, "rolled_at": utcnow(),
                                            "events": int(sum(sum(r[2:]) for r in rows))}])


@dataclass(frozen=True)
class PeriodRows:
    """What the database holds for a period's days, as read, before it is laid out for a set of
    officials: per rolled-up month its rows and the days of it that are in the period, plus the
    per-day rows of the days not rolled up yet."""

    start: date
    end: date
    months: tuple[tuple[date, date, date, list], ...]  # (first day, lo, hi, [(official, blob)])
    live: list[tuple[str, date, int, int, int, int]]

    def grid(self, index: dict[str, int]) -> np.ndarray:
        """The counts of the officials of ``index`` (address → row): an ``int32`` array of
        shape ``(len(index), days, 4)`` in :data:`DAY_FIELDS` order; others are left out."""
        grid = np.zeros((len(index), (self.end - self.start).days + 1, len(DAY_FIELDS)), dtype=np.int32)
        for first, lo, hi, rows in self.months:
            keep = [(index[official], bytes(blob)) for official, blob in rows if official in index]
            if keep:
                cells = np.frombuffer(b"".join(blob for _, blob in keep), dtype=_CELL).reshape(-1, *_SHAPE)
                targets = np.fromiter((row for row, _ in keep), dtype=np.int64, count=len(keep))
                grid[targets, (lo - self.start).days:(hi - self.start).days + 1] = cells[:, lo.day - 1:hi.day]
        for official, day, *counts in self.live:
            row = index.get(official)
            if row is not None:
                grid[row, (day - self.start).days] = counts
        return grid


def read_period(engine: Engine, start: date, end: date, *, now: datetime | None = None,
                grace: timedelta = timedelta(minutes=15)) -> PeriodRows:
    """The period's rows: rolls up the complete months' days first (:func:`roll_up`), reads
    them from ``usage_month`` and the rest from the events. Needs no directory, so it can run
    while the directory is read."""
    roll_up(engine, start, end, now=now, grace=grace)
    found = []
    with engine.connect() as conn:
        done = rolled_through(conn, months(start, end))
        live_from = start
        for first in months(start, end):
            through = done.get(first)
            if through is None:
                continue
            lo, hi = max(start, first), min(end, through)
            if lo <= hi:
                # The driver's rows as they come: SQLAlchemy's row processing would double the time.
                rows = conn.exec_driver_sql("SELECT official_email, days FROM usage_month WHERE month = "
                                            + ("?" if conn.dialect.name == "sqlite" else "%s"),
                                            (month_key(first),)).fetchall()
                found.append((first, lo, hi, rows))
            live_from = max(live_from, through + timedelta(days=1))
        # Only the last rolled month can stop short of its end, so what is not rolled up is
        # one tail of the period.
        live = daily_counts(conn, live_from, end) if live_from <= end else []
    return PeriodRows(start, end, tuple(found), live)


def period_grid(engine: Engine, start: date, end: date, index: dict[str, int], *,
                now: datetime | None = None, grace: timedelta = timedelta(minutes=15)) -> np.ndarray:
    """:func:`read_period` laid out for the officials of ``index`` (:meth:`PeriodRows.grid`)."""
    return read_period(engine, start, end, now=now, grace=grace).grid(index)


async def run_rollup(engine: Engine, grace: timedelta, stop_event: asyncio.Event, *,
                     interval: float = 1800.0) -> None:
    """Keep this month's and last month's rollup up to date, every ``interval`` seconds (and
    at start) until ``stop_event``: each day is rolled up soon after it ends, so HR's first
    request does not pay for it. A failure is logged and tried again next time."""
    while not stop_event.is_set():
        today = utcnow().astimezone(VIETNAM).date()
        try:
            done = await asyncio.to_thread(roll_up, engine, (today.replace(day=1) - timedelta(days=1)).replace(day=1),
                                           today, grace=grace)
            if done:
                log.info("usage ledger rolled up for scoring: %s", ", ".join(done))
        except Exception:
            log.exception("rolling up the usage ledger for scoring failed; trying again later")
        try:
            await asyncio.wait_for(stop_event.wait(), interval)
        except TimeoutError:
            pass
