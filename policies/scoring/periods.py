"""Scoring periods: the span of days a score covers, parsed from what a person types.

Accepted forms (case-insensitive, blanks around the text ignored): typed → canonical label →
Vietnamese label (``Period.label_vi``):

- ``2026`` → ``2026`` → Năm 2026
- ``2026-H1`` (or ``2026-h1``) → ``2026-H1`` → 6 tháng đầu năm 2026; ``H2``: 6 tháng cuối năm
- ``2026-Q3`` (or ``2026-q3``) → ``2026-Q3`` → Quý III/2026
- ``2026-03`` → ``2026-03`` → Tháng 3/2026
- ``2026-01-15..2026-03-31`` → the same → Từ 15/01/2026 đến 31/03/2026 (both ends inclusive)

Weeks are deliberately not a form.

Pure: nothing here reads the clock; whoever needs "today" passes it in.
"""
from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date

from mailhub.errors import InputError

FORMS = "YYYY, YYYY-H1/H2, YYYY-Q1..Q4, YYYY-MM or YYYY-MM-DD..YYYY-MM-DD"
MIN_YEAR, MAX_YEAR = 2000, 2100
# A range may cover at most a leap year, counting both ends: 2028-01-01..2028-12-31 is 366 days.
MAX_RANGE_DAYS = 366

_YEAR = re.compile(r"([0-9]{4})")
_HALF = re.compile(r"([0-9]{4})-H([12])", re.IGNORECASE)
_QUARTER = re.compile(r"([0-9]{4})-Q([1-4])", re.IGNORECASE)
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
_DAY = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_RANGE = re.compile(rf"({_DAY})\s*\.\.\s*({_DAY})")

_ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV"}


@dataclass(frozen=True)
class Period:
    """The days from ``start`` to ``end``, both inclusive, known by a canonical ``label``.

    Build one with :func:`parse_period` or :func:`previous_quarter`; the constructor only
    checks that the period does not end before it starts (anything else is the caller's word).
    """

    label: str
    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"period {self.label}: ends {self.end} before it starts {self.start}")

    def contains(self, d: date) -> bool:
        return self.start <= d <= self.end

    def is_over(self, today: date) -> bool:
        """Whether the whole period lies before ``today`` (so its score can be final)."""
        return self.end < today

    @property
    def days(self) -> int:
        """Calendar days covered, both ends counted."""
        return (self.end - self.start).days + 1

    @property
    def label_vi(self) -> str:
        """The period as Vietnamese official documents write it, e.g. ``Quý III/2026``.

        Derived from the canonical label; a label of no known form reads as a date range.
        """
        if m := _QUARTER.fullmatch(self.label):
            return f"Quý {_ROMAN[int(m[2])]}/{m[1]}"
        if m := _HALF.fullmatch(self.label):
            return f"6 tháng {'đầu' if m[2] == '1' else 'cuối'} năm {m[1]}"
        if m := _MONTH.fullmatch(self.label):
            return f"Tháng {int(m[2])}/{m[1]}"
        if m := _YEAR.fullmatch(self.label):
            return f"Năm {m[1]}"
        return f"Từ {self.start:%d/%m/%Y} đến {self.end:%d/%m/%Y}"

    @property
    def label_en(self) -> str:
        """The period in English, e.g. ``Q3 2026``, ``First half of 2026``, ``March 2026``."""
        if m := _QUARTER.fullmatch(self.label):
            return f"Q{m[2]} {m[1]}"
        if m := _HALF.fullmatch(self.label):
            return f"{'First' if m[2] == '1' else 'Second'} half of {m[1]}"
        if m := _MONTH.fullmatch(self.label):
            return f"{calendar.month_name[int(m[2])]} {m[1]}"
        if m := _YEAR.fullmatch(self.label):
            return f"Year {m[1]}"
        return f"{self.start:%d/%m/%Y} to {self.end:%d/%m/%Y}"

    def __str__(self) -> str:
        return self.label


def parse_period(text: str, *, today: date | None = None) -> Period:
    """The period ``text`` names, in one of the forms listed in this module's docstring.

    Checks the form, that every year is within 2000..2100, that a range does not end before it
    starts and covers at most 366 days, and — only when ``today`` is given — that the period
    has already begun (a score of days still to come means nothing). Any failure is an
    :class:`~mailhub.errors.InputError` whose one line quotes ``text``.
    """
    period = _parse(text.strip(), text)
    if today is not None and period.start > today:
        raise InputError(f"period {text!r}: starts {period.start}, after today {today}")
    return period


def previous_quarter(today: date) -> Period:
    """The last whole quarter that ended before ``today`` (1 January gives Q4 of last year)."""
    quarter = (today.month - 1) // 3 + 1
    if quarter == 1:
        return _quarter(today.year - 1, 4)
    return _quarter(today.year, quarter - 1)


def _parse(s: str, text: str) -> Period:
    if m := _YEAR.fullmatch(s):
        year = _year(m[1], text)
        return Period(f"{year}", date(year, 1, 1), date(year, 12, 31))
    if m := _HALF.fullmatch(s):
        year, half = _year(m[1], text), int(m[2])
        first = 1 if half == 1 else 7
        return Period(f"{year}-H{half}", date(year, first, 1), _month_end(year, first + 5))
    if m := _QUARTER.fullmatch(s):
        return _quarter(_year(m[1], text), int(m[2]))
    if m := _MONTH.fullmatch(s):
        year, month = _year(m[1], text), int(m[2])
        if not 1 <= month <= 12:
            raise InputError(f"period {text!r}: month {m[2]} is not 01..12")
        return Period(f"{year}-{month:02d}", date(year, month, 1), _month_end(year, month))
    if m := _RANGE.fullmatch(s):
        start, end = _day(m[1], text), _day(m[2], text)
        if end < start:
            raise InputError(f"period {text!r}: ends {end} before it starts {start}")
        days = (end - start).days + 1
        if days > MAX_RANGE_DAYS:
            raise InputError(f"period {text!r}: covers {days} days, at most {MAX_RANGE_DAYS}")
        return Period(f"{start}..{end}", start, end)
    raise InputError(f"period {text!r}: expected {FORMS}")


def _quarter(year: int, quarter: int) -> Period:
    first = 3 * (quarter - 1) + 1
    return Period(f"{year}-Q{quarter}", date(year, first, 1), _month_end(year, first + 2))


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _year(digits: str, text: str) -> int:
    year = int(digits)
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise InputError(f"period {text!r}: year {year} is outside {MIN_YEAR}..{MAX_YEAR}")
    return year


def _day(iso: str, text: str) -> date:
    _year(iso[:4], text)
    try:
        return date.fromisoformat(iso)
    except ValueError:
        raise InputError(f"period {text!r}: {iso} is not a date") from None
