"""A period's scores as HR receives them: every official and unit with what explains them.

Plain frozen records, built by :mod:`mailhub.scoring.engine` (or read back from a closed
period's snapshot) and read by every output: the terminal table, CSV, XLSX, JSON, the HTTP API
and the quarterly report. ``to_dict`` / ``from_dict`` give the JSON form; a closed period keeps
that form so it reads back exactly as it was when closed, whatever the configuration says later.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from typing import Any

from policies.scoring.bursts import BurstFlag
from policies.scoring.formula import Part, Score
from policies.scoring.periods import Period
from policies.scoring.units import UnitScore

# Comparable groups for rankings (the directive ranks departments, districts and wards apart),
# in the order every output lists them.
GROUP_LABELS_VI = {
    "city": "Thành phố",
    "department": "Sở, ban, ngành",
    "district": "Quận, huyện, thành phố thuộc thành phố",
    "ward": "Phường, xã, thị trấn",
    "other": "Đơn vị khác",
}
GROUP_LABELS_EN = {
    "city": "City",
    "department": "Departments and agencies",
    "district": "Districts and towns",
    "ward": "Wards, communes and townships",
    "other": "Other units",
}


def group_order(kind: str) -> int:
    """Where a group comes in every listing: the order of :data:`GROUP_LABELS_VI`, unknown
    kinds last."""
    return _GROUP_POSITION.get(kind, len(_GROUP_POSITION))


_GROUP_POSITION = {kind: n for n, kind in enumerate(GROUP_LABELS_VI)}


@dataclass(frozen=True)
class Activity:
    """The counts behind one official's rates in the period (see :mod:`mailhub.scoring.counts`).

    ``active_days`` are working days with counted mail; ``deduction_cases`` confirmed uses of an
    outside system recorded by HR.
    """

    sent: int = 0
    refused_outside: int = 0
    active_days: int = 0
    documents: int = 0
    documents_valid: int = 0
    meetings: int = 0
    meetings_electronic: int = 0
    deduction_cases: int = 0

    @classmethod
    def total(cls, activities: Iterable[Activity]) -> Activity:
        """Every count summed over ``activities`` (e.g. a unit's or the city's officials)."""
        sums = [0] * len(_ACTIVITY_FIELDS)
        for a in activities:
            for n, name in enumerate(_ACTIVITY_FIELDS):
                sums[n] += getattr(a, name)
        return cls(*sums)


_ACTIVITY_FIELDS = tuple(Activity.__dataclass_fields__)


@dataclass(frozen=True)
class OfficialResult:
    """One official's score. ``unit`` is the unit of their last counted day in the period
    (their current unit if none); ``days_by_unit`` the working days counted in each unit."""

    email: str
    name: str
    unit: str
    unit_name: str
    days_by_unit: tuple[tuple[str, int], ...]
    activity: Activity
    score: Score
    bursts: tuple[BurstFlag, ...] = ()

    @property
    def days_counted(self) -> int:
        return sum(days for _, days in self.days_by_unit)


@dataclass(frozen=True)
class UnitResult:
    """One unit's score with its rank among the units of its group (0: not ranked) and, from
    the unit's register, documents issued and those issued electronically (``None``: no
    register imported for the period)."""

    score: UnitScore
    kind: str
    parent: str | None
    rank: int
    group_size: int
    issued: int | None = None
    issued_electronic: int | None = None
    activity: Activity = field(default_factory=Activity)

    @property
    def code(self) -> str:
        return self.score.unit


@dataclass(frozen=True)
class IndicatorInfo:
    """An indicator as the model defines it, for headers and the report's target column."""

    code: str
    name_vi: str
    name_en: str
    weight: float
    target: float
    level: str  # "official" or "unit"


@dataclass(frozen=True)
class PeriodScores:
    """Every score of one period.

    ``data_until`` is the time of the newest ledger event counted (when the data was last
    updated); ``closed_at``/``closed_by`` are set once HR has closed the period, after which
    these results are frozen.
    """

    period: Period
    model_version: str
    indicators: tuple[IndicatorInfo, ...]
    working_days: int
    computed_at: datetime
    data_until: datetime | None
    officials: tuple[OfficialResult, ...]
    units: tuple[UnitResult, ...]
    closed_at: datetime | None = None
    closed_by: str | None = None

    @property
    def closed(self) -> bool:
        return self.closed_at is not None

    def totals(self) -> Activity:
        """The city's totals over every official (each counted once)."""
        return Activity.total(o.activity for o in self.officials)

    def pooled(self) -> dict[tuple[str, str], tuple[int, int]]:
        """Each indicator's counts summed over the city, keyed by (level, code): Σ numerators
        and Σ denominators over every official (scored or not: it measures use, not scores)
        for an official indicator, over the units' registers for a unit indicator. For I1 that
        is Σ sent / Σ (sent + refused outside)."""
        sums = {(i.level, i.code): [0, 0] for i in self.indicators}
        parts = [("official", p) for o in self.officials for p in o.score.parts]
        parts += [("unit", p) for u in self.units for p in u.score.unit_parts]
        for level, part in parts:
            if (pair := sums.get((level, part.code))) is not None:
                pair[0] += part.numerator
                pair[1] += part.denominator
        return {key: (n, d) for key, (n, d) in sums.items()}

    def register_totals(self) -> tuple[int, int] | None:
        """Documents issued and issued electronically over the units with a register, or None."""
        rows = [(u.issued, u.issued_electronic) for u in self.units if u.issued is not None]
        if not rows:
            return None
        return sum(r[0] for r in rows), sum(r[1] or 0 for r in rows)

    def for_unit(self, code: str) -> PeriodScores:
        """Only the unit ``code`` and the units directly under it, and the officials who counted
        days in any of them (a transferred official shows in both units)."""
        units = tuple(u for u in self.units if code in (u.code, u.parent))
        codes = {u.code for u in units} | {code}
        officials = tuple(o for o in self.officials
                          if o.unit in codes or any(unit in codes for unit, _ in o.days_by_unit))
        return replace(self, units=units, officials=officials)

    def for_official(self, email: str) -> PeriodScores:
        """Only the official ``email`` (no unit)."""
        return replace(self, units=(), officials=tuple(o for o in self.officials if o.email == email))

    def to_dict(self, by: str | None = None) -> dict[str, Any]:
        """A JSON-ready form (dates as ISO text, ``inf`` ratios as ``None``); ``by`` =
        ``"official"`` or ``"unit"`` keeps only that list."""
        body = _jsonable(asdict(self))
        if by is not None:
            body.pop("units" if by == "official" else "officials")
        return body

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PeriodScores:
        """The inverse of :meth:`to_dict`."""
        p = data["period"]
        return cls(
            period=Period(p["label"], date.fromisoformat(p["start"]), date.fromisoformat(p["end"])),
            model_version=data["model_version"],
            indicators=tuple(IndicatorInfo(**i) for i in data["indicators"]),
            working_days=data["working_days"],
            computed_at=datetime.fromisoformat(data["computed_at"]),
            data_until=_when(data["data_until"]),
            officials=tuple(_official(o) for o in data["officials"]),
            units=tuple(_unit(u) for u in data["units"]),
            closed_at=_when(data.get("closed_at")),
            closed_by=data.get("closed_by"),
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, date):  # datetime is a date too
        return value.isoformat()
    if isinstance(value, float) and value == float("inf"):
        return None
    return value


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _score(d: dict[str, Any]) -> Score:
    return Score(**{**d, "parts": tuple(Part(**p) for p in d["parts"]), "notes": tuple(d["notes"])})


def _burst(d: dict[str, Any]) -> BurstFlag:
    return BurstFlag(**{**d, "start": date.fromisoformat(d["start"]), "end": date.fromisoformat(d["end"]),
                        "ratio": float("inf") if d["ratio"] is None else d["ratio"]})


def _official(d: dict[str, Any]) -> OfficialResult:
    return OfficialResult(
        email=d["email"], name=d["name"], unit=d["unit"], unit_name=d["unit_name"],
        days_by_unit=tuple((u, n) for u, n in d["days_by_unit"]),
        activity=Activity(**d["activity"]), score=_score(d["score"]),
        bursts=tuple(_burst(b) for b in d["bursts"]))


def _unit(d: dict[str, Any]) -> UnitResult:
    s = d["score"]
    unit_score = UnitScore(**{**s, "unit_parts": tuple(Part(**p) for p in s["unit_parts"]),
                              "explanation_vi": tuple(s["explanation_vi"])})
    return UnitResult(**{**d, "score": unit_score, "activity": Activity(**d["activity"])})
