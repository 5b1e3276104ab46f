"""Which days count for a score: working days, and the unit each one belongs to.

Holidays are configuration (the government announces Tết and the days around National Day each
year), so they are passed in, never built in.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import pairwise

# date.weekday(): Monday is 0, so Saturday and Sunday are 5 and 6.
WEEKEND = frozenset({5, 6})


@dataclass(frozen=True)
class Assignment:
    """An official assigned to ``unit`` from ``start`` to ``end``, both inclusive.

    ``end`` is ``None`` while the assignment lasts. A transfer is two consecutive assignments:
    the first ends the day before the second starts.
    """

    unit: str
    start: date
    end: date | None = None

    def __post_init__(self) -> None:
        if self.end is not None and self.end < self.start:
            raise ValueError(f"assignment to {self.unit}: ends {self.end} before it starts {self.start}")

    def covers(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)

    def __str__(self) -> str:
        return f"{self.unit} {self.start}..{self.end or ''}"


def working_days(start: date, end: date, holidays: frozenset[date],
                 weekend: frozenset[int] = WEEKEND) -> list[date]:
    """The days from ``start`` to ``end`` (inclusive) that are neither a weekend day
    (``date.weekday()`` numbers) nor in ``holidays``, in order.

    A period that ends before it starts is a bug in the caller: ``ValueError``.
    """
    if end < start:
        raise ValueError(f"period ends {end} before it starts {start}")
    days = (start + timedelta(days=n) for n in range((end - start).days + 1))
    return [d for d in days if d.weekday() not in weekend and d not in holidays]


def days_in_units(working: Sequence[date], employment: Sequence[Assignment]) -> dict[str, list[date]]:
    """Split ``working`` days by the unit the official was assigned to on each day.

    Every unit of ``employment`` is a key, in the order first assigned, even with no day in
    the period; days outside every assignment (before joining, after leaving) count for nobody.
    Two assignments that share a day are a ``ValueError`` naming both: an official belongs to
    one unit at a time.
    """
    ordered = sorted(employment, key=lambda a: a.start)
    for earlier, later in pairwise(ordered):
        if earlier.end is None or earlier.end >= later.start:
            raise ValueError(f"overlapping assignments: {earlier} and {later}")
    result: dict[str, list[date]] = {a.unit: [] for a in employment}
    for day in sorted(working):
        for assignment in ordered:
            if assignment.covers(day):
                result[assignment.unit].append(day)
                break
    return result
