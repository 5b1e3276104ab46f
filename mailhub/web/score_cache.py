"""A small per-process cache of computed periods for the score pages.

Computing a period reads the whole ledger of the period (seconds for a big city), and one page
view asks for the same period several times: the table, the ranking chart, the trend over the
year's quarters, a download. So:

- a closed period is kept until evicted: its snapshot never changes;
- an open period is kept :attr:`PeriodCache.ttl` seconds (5 minutes), and dropped at once when
  it is found closed meanwhile (one small query of the closed periods' labels per read, so a
  period closed from the command line shows as closed on the next page view);
- one computation per period at a time: a second request for a period being computed waits
  for the first instead of computing it again;
- whole :class:`~mailhub.scoring.results.PeriodScores` are big (tens of thousands of
  officials), so only :attr:`PeriodCache.size` of them are kept, least recently used out;
  small figures derived from them (a trend point per quarter) have their own, larger cache.

Blocking: call from a worker thread (``asyncio.to_thread``).
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import Engine

from mailhub.config import Config
from mailhub.scoring import periodstore
from mailhub.scoring.results import PeriodScores
from policies.scoring.periods import Period

T = TypeVar("T")


@dataclass
class _Entry(Generic[T]):
    value: T
    closed: bool
    stored: float


class PeriodCache:
    """Periods' scores, computed by :func:`mailhub.scoring.periodstore.scores_for`."""

    def __init__(self, engine: Engine, config: Config, *, ttl: float = 300.0, size: int = 4,
                 derived_size: int = 64, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine, self.config = engine, config
        self.ttl, self.size, self.derived_size, self.clock = ttl, size, derived_size, clock
        self._scores: OrderedDict[str, _Entry[PeriodScores]] = OrderedDict()
        self._derived: OrderedDict[tuple[str, str], _Entry[Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._flights: dict[str, threading.Lock] = {}

    def scores(self, period: Period) -> PeriodScores:
        """The period's scores, from the cache while fresh."""
        closed_now = self._closed_labels()
        key = period.label
        with self._lock:
            entry = self._fresh(self._scores, key, key, closed_now)
            if entry is not None:
                return entry.value
            flight = self._flights.setdefault(key, threading.Lock())
        with flight:  # one computation per period; the others wait for it
            with self._lock:
                entry = self._fresh(self._scores, key, key, closed_now)
                if entry is not None:
                    return entry.value
            value = periodstore.scores_for(self.engine, self.config, key)
            with self._lock:
                self._put(self._scores, key, value, value.closed, self.size)
                self._flights.pop(key, None)
        return value

    def ready(self, period: Period, name: str | None = None) -> bool:
        """Whether the period (or what ``name`` derives from it) can be had without computing:
        cached and fresh, or closed (read back from its snapshot)."""
        closed_now = self._closed_labels()
        if period.label in closed_now:
            return True
        with self._lock:
            if name is not None and self._fresh(self._derived, (period.label, name), period.label, closed_now):
                return True
            return self._fresh(self._scores, period.label, period.label, closed_now) is not None

    def derived(self, period: Period, name: str, build: Callable[[PeriodScores], T]) -> T:
        """``build(scores)`` for the period, kept like the scores themselves (``name`` tells
        apart what is derived from one period)."""
        closed_now = self._closed_labels()
        key = (period.label, name)
        with self._lock:
            entry = self._fresh(self._derived, key, period.label, closed_now)
            if entry is not None:
                return entry.value
        scores = self.scores(period)
        value = build(scores)
        with self._lock:
            self._put(self._derived, key, value, scores.closed, self.derived_size)
        return value

    def _closed_labels(self) -> frozenset[str]:
        return frozenset(row[0] for row in periodstore.closed_periods(self.engine))

    def _fresh(self, entries: OrderedDict, key: Any, label: str, closed_now: frozenset[str]) -> _Entry | None:
        entry = entries.get(key)
        if entry is None:
            return None
        stale = not entry.closed and (self.clock() - entry.stored > self.ttl or label in closed_now)
        if stale:
            del entries[key]
            return None
        entries.move_to_end(key)
        return entry

    def _put(self, entries: OrderedDict, key: Any, value: Any, closed: bool, size: int) -> None:
        entries[key] = _Entry(value, closed, self.clock())
        entries.move_to_end(key)
        while len(entries) > size:
            entries.popitem(last=False)
