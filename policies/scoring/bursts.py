"""Unusual bursts of mail, which the directive's fairness rule sends to review instead of scoring.

The rule, for one official and one period:

- only the period's working days count, in order; mail on other days is not looked at;
- a *window* is ``window`` consecutive working days; its *baseline* is the official's mean mail
  per working day over the working days before the window (the window itself left out), or the
  mean over the whole period when fewer than 10 working days come before it;
- a window is a burst when it holds at least ``min_sent`` mail **and** at least
  ``factor × baseline × window``; with a zero baseline the first condition alone decides;
- bursting windows that overlap are merged into one range; the range reports its total, its
  expected mail (the baseline before the range × its working days) and their ratio
  (``float('inf')`` when the baseline is 0);
- a range that ends within the last ``tail_days`` working days of the period is said to be at
  the end of the period ("cuối kỳ"), the case the directive names (just before a quarter ends).

Pure: the counts come from the usage ledger, the working days from
:mod:`policies.scoring.calendar`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import pairwise

from policies.scoring.formula import vn_number

# Fewer earlier days than this make a poor "usual" level, so the period mean stands in.
MIN_BASELINE_DAYS = 10
_REVIEW = "cần xem xét trước khi tính điểm"


@dataclass(frozen=True)
class BurstFlag:
    """A range of working days, ``start`` to ``end`` inclusive, to review before scoring.

    ``expected`` is the usual mail for that many working days; ``ratio`` is ``sent / expected``,
    ``inf`` when nothing was sent before.
    """

    official: str
    start: date
    end: date
    sent: int
    expected: float
    ratio: float
    reason_vi: str


def find_bursts(daily: Mapping[date, int], working: Sequence[date], *, official: str,
                window: int = 5, min_sent: int = 30, factor: float = 4.0,
                tail_days: int = 10) -> list[BurstFlag]:
    """The official's bursts in the period, earliest first, by the rule in the module docstring.

    Trusts ``daily`` (counted mail per Vietnam day; a missing day is 0) and ``working``. Checks
    that ``working`` is strictly increasing, that counts are not negative and that ``window`` is
    at least 1: ``ValueError`` otherwise. A period shorter than one window has no burst.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1 working day, got {window}")
    if any(b <= a for a, b in pairwise(working)):
        raise ValueError("working days must be strictly increasing")
    counts = [daily.get(d, 0) for d in working]
    if any(c < 0 for c in counts):
        raise ValueError(f"negative mail count for {official}")
    n = len(counts)
    period_mean = sum(counts) / n if n else 0.0

    def baseline(start: int) -> float:
        return sum(counts[:start]) / start if start >= MIN_BASELINE_DAYS else period_mean

    ranges: list[list[int]] = []  # [first, last] indexes into working, inclusive
    for i in range(n - window + 1):
        sent = sum(counts[i:i + window])
        if sent >= min_sent and sent >= factor * baseline(i) * window:
            if ranges and i <= ranges[-1][1]:
                ranges[-1][1] = i + window - 1
            else:
                ranges.append([i, i + window - 1])
    return [_flag(official, working, counts, first, last, baseline(first),
                  at_end=last >= n - tail_days)
            for first, last in ranges]


def _flag(official: str, working: Sequence[date], counts: list[int], first: int, last: int,
          usual: float, *, at_end: bool) -> BurstFlag:
    days = last - first + 1
    sent = sum(counts[first:last + 1])
    expected = usual * days
    ratio = sent / expected if expected else float("inf")
    start, end = working[first], working[last]
    where = f"{days} ngày làm việc{' cuối kỳ' if at_end else ''} ({start:%d/%m}–{end:%d/%m})"
    if expected:
        # a ratio reads better with its ",0": "6,0 lần"
        compared = (f"gấp {vn_number(ratio, keep_zero=True)} lần mức thường ngày "
                    f"({vn_number(usual, keep_zero=True)} thư/ngày)")
    else:
        compared = "không có thư trước đó"
    reason = f"Gửi {sent} thư trong {where}, {compared} — {_REVIEW}"
    return BurstFlag(official, start, end, sent, expected, ratio, reason)

