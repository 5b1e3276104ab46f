"""A period's scores for every official and unit, computed from the database.

The counting is done in bulk: the period's daily counts for every official come as one NumPy
array (:func:`mailhub.scoring.rollup.period_grid`), sums and active working days are array
operations, bursts are looked for only where a vectorised test says one may be, and the pure
rules of :mod:`policies.scoring` (``score``, ``unit_score``, ``rank_within_groups``,
``find_bursts``) decide every figure shown. A period still running counts its days up to today.
"""
from __future__ import annotations

import contextlib
import gc
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from mailhub.models import UsageEvent, utcnow
from mailhub.scoring import employment, inputs, rollup
from mailhub.scoring.counts import indicator_counts, meetings_by_secretary
from mailhub.scoring.modelfile import Holidays, ModelSet
from mailhub.scoring.results import (Activity, IndicatorInfo, OfficialResult, PeriodScores, UnitResult,
                                     group_order)
from mailhub.templating import VIETNAM
from policies.scoring.bursts import find_bursts
from policies.scoring.calendar import days_in_units, working_days
from policies.scoring.formula import Counts, score
from policies.scoring.periods import Period
from policies.scoring.units import MemberScore, rank_within_groups, unit_score



@dataclass(frozen=True)
class BurstRule:
    """The parameters of :func:`policies.scoring.bursts.find_bursts`."""

    window: int = 5
    min_sent: int = 30
    factor: float = 4.0
    tail_days: int = 10


def compute(engine: Engine, period: Period, models: ModelSet, holidays: Holidays, *,
            now: datetime | None = None, grace: timedelta = timedelta(minutes=15),
            bursts: BurstRule = BurstRule()) -> PeriodScores:
    """Every official's and unit's score for ``period`` (up to today if it is still running)."""
    with _no_cycle_collection():
        return _compute(engine, period, models, holidays, now or utcnow(), grace, bursts)


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Pause Python's cycle collector while a city's results are built: hundreds of thousands
    of new objects would trigger full collections that walk every live object again and again
    (a third of the time for 50,000 officials). The results hold no cycles; collection
    resumes when they are built."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _compute(engine: Engine, period: Period, models: ModelSet, holidays: Holidays, now: datetime,
             grace: timedelta, bursts: BurstRule) -> PeriodScores:
    start, end = period.start, min(period.end, now.astimezone(VIETNAM).date())
    if end < start:
        raise ValueError(f"period {period} has not started")
    working = working_days(start, end, holidays.dates)
    # The ledger's rows are read in a thread while this one reads the directory: the drivers
    # let go of the GIL while the database works.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="scoring-read") as pool:
        reading = pool.submit(rollup.read_period, engine, start, end, now=now, grace=grace)
        staff = employment.load_staff(engine, start, end)
        units = employment.load_units(engine)
        index = {s.email: n for n, s in enumerate(staff)}
        grid = reading.result().grid(index)
    with engine.connect() as conn:
        meetings = meetings_by_secretary(conn, start, end)
        data_until = conn.execute(select(func.max(UsageEvent.__table__.c.at))).scalar()
    cases = inputs.deductions(engine, start, end)

    columns = np.array([(d - start).days for d in working], dtype=np.int64)
    sent_on_working = grid[:, columns, rollup.SENT] if len(columns) else np.zeros((len(staff), 0), np.int32)
    employed, days_by_unit = _employment(staff, working)
    active = ((sent_on_working > 0) & employed).sum(axis=1)
    totals = grid.sum(axis=1)
    maybe_burst = _burst_candidates(sent_on_working, bursts)

    model = models.officials
    measured = frozenset(i.code for i in model.indicators)
    officials: list[OfficialResult] = []
    members: dict[str, list[MemberScore]] = defaultdict(list)
    # Python ints, row by row: indexing a NumPy array element by element costs more than this.
    for n, (s, (sent, refused, documents, valid), active_days) in enumerate(
            zip(staff, totals.tolist(), active.tolist(), strict=True)):
        held, electronic = meetings.get(s.email, (0, 0))
        activity = Activity(sent, refused, active_days, documents, valid, held, electronic, cases.get(s.email, 0))
        split = days_by_unit[n]
        counted = sum(split.values())
        result = score(model, indicator_counts(activity, active_days, counted, measured), counted,
                       activity.deduction_cases)
        flags = ()
        if maybe_burst[n]:
            daily = dict(zip(working, sent_on_working[n].tolist(), strict=True))
            flags = tuple(find_bursts(daily, working, official=s.email, window=bursts.window,
                                      min_sent=bursts.min_sent, factor=bursts.factor,
                                      tail_days=bursts.tail_days))
        last_unit = next((u for u, days in reversed(split.items()) if days), s.unit)
        officials.append(OfficialResult(s.email, s.name, last_unit, _unit_name(units, last_unit),
                                        tuple(split.items()), activity, result, flags))
        for unit, days in split.items():
            members[unit].append(MemberScore(s.email, s.name, days, result))

    unit_results = _units(officials, members, units, models, inputs.register_totals(engine, start, end))
    return PeriodScores(period=period, model_version=models.version, indicators=_indicators(models),
                        working_days=len(working), computed_at=now, data_until=data_until,
                        officials=tuple(officials), units=unit_results)


def _employment(staff, working: list[date]) -> tuple[np.ndarray, list[dict[str, int]]]:
    """Which working days each official was employed (rows of a bool array) and how many of
    them fell in each unit."""
    employed = np.ones((len(staff), len(working)), dtype=bool)
    split: list[dict[str, int]] = []
    first, last = (working[0], working[-1]) if working else (None, None)
    for n, s in enumerate(staff):
        only = s.employment[0] if len(s.employment) == 1 else None
        if only is not None and (first is None or (only.start <= first and (only.end is None or only.end >= last))):
            split.append({only.unit: len(working)})
            continue
        by_unit = days_in_units(working, s.employment)
        counted = {d for days in by_unit.values() for d in days}
        employed[n] = [d in counted for d in working]
        split.append({unit: len(days) for unit, days in by_unit.items()})
    return employed, split


def _burst_candidates(sent: np.ndarray, rule: BurstRule) -> np.ndarray:
    """True for officials in whose counts :func:`find_bursts` could find a burst: its test
    (window sum ≥ min_sent and ≥ factor × baseline × window) done on arrays, with a little
    slack so rounding can only add candidates; find_bursts then decides."""
    n, days = sent.shape
    if days < rule.window:
        return np.zeros(n, dtype=bool)
    cumulative = np.concatenate([np.zeros((n, 1), np.int64), np.cumsum(sent, axis=1)], axis=1)
    starts = np.arange(days - rule.window + 1)
    window_sums = cumulative[:, starts + rule.window] - cumulative[:, starts]
    period_mean = cumulative[:, -1:] / days
    before = np.maximum(starts, 1)
    baseline = np.where(starts >= 10, cumulative[:, starts] / before, period_mean)
    bursting = (window_sums >= rule.min_sent) & (
        window_sums >= rule.factor * baseline * rule.window * (1 - 1e-9))
    return bursting.any(axis=1)


def _unit_name(units: dict[str, employment.UnitInfo], code: str) -> str:
    info = units.get(code)
    return info.name if info else code


def _units(officials: list[OfficialResult], members: dict[str, list[MemberScore]],
           units: dict[str, employment.UnitInfo], models: ModelSet,
           registers: dict[str, tuple[int, int]]) -> tuple[UnitResult, ...]:
    by_unit: dict[str, list[Activity]] = defaultdict(list)
    for o in officials:
        by_unit[o.unit].append(o.activity)
    scores = []
    for code in sorted(set(members) | set(registers)):
        info = units.get(code) or employment.UnitInfo(code, code, "other", None)
        register = registers.get(code)
        indicators = ({"U1": Counts(register[1], register[0]) if register[0] else Counts(0, 0)}
                      if register and models.units else None)
        scores.append(unit_score(code, info.name, info.kind, members.get(code, []), indicators,
                                 unit_model=models.units if indicators else None,
                                 officials_weight=models.officials_weight if indicators else 1.0))
    results = []
    for kind, ranked in sorted(rank_within_groups(scores).items(), key=lambda kv: group_order(kv[0])):
        for rank, s in ranked:
            register = registers.get(s.unit)
            summed = Activity.total(by_unit.get(s.unit, ()))
            results.append(UnitResult(s, kind, units[s.unit].parent if s.unit in units else None, rank,
                                      len(ranked), register[0] if register else None,
                                      register[1] if register else None, summed))
    return tuple(results)


def _indicators(models: ModelSet) -> tuple[IndicatorInfo, ...]:
    levels = [("official", models.officials)] + ([("unit", models.units)] if models.units else [])
    return tuple(IndicatorInfo(i.code, i.name_vi, i.name_en, i.weight, i.target, level)
                 for level, model in levels for i in model.indicators)
