"""The score of one official or unit for one period, from counts.

For each indicator, ``points = min(1, rate / target) × effective weight`` with
``rate = numerator / denominator``. An indicator whose denominator is 0 does not apply (a person
who organises no meetings has no I3); it is left out and its weight is spread over the
indicators that do apply in proportion to their weights:
``effective weight = weight × total weight / weight of the applicable indicators``.
Deductions are ``deduction_per_case`` per confirmed case, at most ``deduction_cap``; the total
never goes below 0. Too few counted working days, or no applicable indicator, is
"insufficient data", never a score.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from policies.scoring.model import Indicator, ScoringModel

SCORED = "scored"
INSUFFICIENT_DATA = "insufficient_data"


@dataclass(frozen=True)
class Counts:
    """The numerator and denominator behind one rate, e.g. mail sent through mailhub and
    that plus refused attempts (I1). A share: ``0 <= numerator <= denominator``."""

    numerator: int
    denominator: int

    def __post_init__(self) -> None:
        if not 0 <= self.numerator <= self.denominator:
            raise ValueError(f"counts must satisfy 0 <= numerator <= denominator, "
                             f"got {self.numerator}/{self.denominator}")


_NOTHING = Counts(0, 0)  # an indicator with nothing counted: it does not apply


@dataclass(frozen=True)
class Part:
    """One indicator's share of a score. ``rate`` is ``None`` and ``points`` 0 when the
    indicator does not apply; ``effective_weight`` is its weight after redistribution."""

    code: str
    numerator: int
    denominator: int
    rate: float | None
    target: float
    weight: float
    effective_weight: float
    points: float
    applies: bool


@dataclass(frozen=True)
class Score:
    """A score with everything needed to explain it.

    ``total`` is ``None`` unless ``status`` is ``"scored"``; it is the sum of the parts' points
    minus ``deduction``, never below 0.
    """

    status: Literal["scored", "insufficient_data"]
    total: float | None
    parts: tuple[Part, ...]
    deduction: float
    notes: tuple[str, ...]
    days_counted: int
    min_days: int
    deduction_cases: int
    max_total: float
    model_version: str

    def explain_vi(self) -> list[str]:
        """One Vietnamese line per indicator, e.g. ``"I1: 95% (mục tiêu 100%) → 33,3/35 điểm"``,
        then the deduction (if any) and the total; or a single line when there is no score."""
        if self.status == INSUFFICIENT_DATA:
            if self.days_counted < self.min_days:
                why = f"{self.days_counted}/{self.min_days} ngày làm việc"
            else:
                why = "không có chỉ số nào áp dụng"
            return [f"Kết quả: không đủ dữ liệu ({why})"]
        lines = [_part_line(p) for p in self.parts]
        if self.deduction_cases:
            lines.append(_deduction_line(self))
        lines.append(f"Tổng: {vn_number(self.total)}/{vn_number(self.max_total)} điểm")
        return lines


def score(model: ScoringModel, counts: Mapping[str, Counts], days_counted: int,
          deductions: int = 0) -> Score:
    """Score one official or unit for one period.

    Trusts the counts (gathered from the usage ledger) and ``days_counted`` (from
    :mod:`policies.scoring.calendar`). An indicator of ``model`` missing from ``counts`` does not
    apply; a code in ``counts`` that the model does not know, or negative days or deductions,
    is a ``ValueError``.
    """
    unknown = counts.keys() - model.codes
    if unknown:
        raise ValueError(f"counts for indicators not in model {model.version}: {sorted(unknown)}")
    if days_counted < 0 or deductions < 0:
        raise ValueError(f"days_counted and deductions must not be negative, "
                         f"got {days_counted} and {deductions}")
    total_weight = model.total_weight
    found = [(indicator, counts.get(indicator.code, _NOTHING)) for indicator in model.indicators]
    applicable_weight = sum(indicator.weight for indicator, c in found if c.denominator)
    applicable = applicable_weight > 0  # weights are above 0, so: some indicator applies
    scale = total_weight / applicable_weight if applicable else 0.0
    parts: list[Part] = []
    notes: list[str] = []
    for indicator, c in found:
        if not c.denominator:
            part, note = _not_applicable(indicator)
            parts.append(part)
            if applicable:
                notes.append(note)
            continue
        rate = c.numerator / c.denominator
        effective = indicator.weight * scale
        points = min(1.0, rate / indicator.target) * effective
        parts.append(Part(indicator.code, c.numerator, c.denominator, rate, indicator.target,
                          indicator.weight, effective, points, True))

    common = {"parts": tuple(parts), "days_counted": days_counted, "min_days": model.min_days,
              "deduction_cases": deductions, "max_total": total_weight,
              "model_version": model.version}
    if days_counted < model.min_days:
        note = f"Không đủ dữ liệu: {days_counted}/{model.min_days} ngày làm việc được tính."
        return Score(INSUFFICIENT_DATA, None, deduction=0.0, notes=(note,), **common)
    if not applicable:
        note = "Không đủ dữ liệu: không có chỉ số nào áp dụng (mọi mẫu số bằng 0)."
        return Score(INSUFFICIENT_DATA, None, deduction=0.0, notes=(note,), **common)
    uncapped = deductions * model.deduction_per_case
    deduction = min(uncapped, model.deduction_cap)
    if uncapped > deduction:
        notes.append(f"Trừ điểm tối đa {vn_number(model.deduction_cap)} điểm "
                     f"({deductions} trường hợp × {vn_number(model.deduction_per_case)} = "
                     f"{vn_number(uncapped)}).")
    total = max(0.0, sum(p.points for p in parts) - deduction)
    return Score(SCORED, total, deduction=deduction, notes=tuple(notes), **common)


def shown(value: float) -> Decimal:
    """``value`` as it is shown: one decimal, half up as people expect (33.25 → 33.3), after
    rounding away float noise (0.1 + 0.2). Equal shown values are equal to a reader."""
    return Decimal(repr(round(value, 9))).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def vn_number(value: float, *, keep_zero: bool = False) -> str:
    """``value`` to one decimal (:func:`shown`) with a decimal comma; a whole number shows no
    decimals unless ``keep_zero``: ``33.25 → "33,3"``, ``35.0 → "35"`` (or ``"35,0"``).
    (Scores stay below 1000, so no thousands separator is needed.)"""
    text = f"{shown(value):f}"
    return (text if keep_zero else text.removesuffix(".0")).replace(".", ",")


_NOT_APPLICABLE: dict[Indicator, tuple[Part, str]] = {}


def _not_applicable(indicator: Indicator) -> tuple[Part, str]:
    """The part and the note for an indicator that does not apply: the same for everyone it
    does not apply to, so made once (both immutable) and shared."""
    found = _NOT_APPLICABLE.get(indicator)
    if found is None:
        part = Part(indicator.code, 0, 0, None, indicator.target, indicator.weight, 0.0, 0.0, False)
        note = (f"{indicator.code} ({indicator.name_vi}) không áp dụng (mẫu số bằng 0); "
                f"{vn_number(indicator.weight)} điểm của chỉ số này được phân bổ theo "
                f"tỷ lệ cho các chỉ số còn lại.")
        found = _NOT_APPLICABLE[indicator] = (part, note)
    return found


def _part_line(part: Part) -> str:
    target = f"mục tiêu {vn_number(part.target * 100)}%"
    if not part.applies:
        return (f"{part.code}: không áp dụng ({part.numerator}/{part.denominator}, {target}) → "
                f"{vn_number(part.weight)} điểm phân bổ cho các chỉ số khác")
    return (f"{part.code}: {vn_number(part.rate * 100)}% ({target}) → "
            f"{vn_number(part.points)}/{vn_number(part.effective_weight)} điểm")


def _deduction_line(s: Score) -> str:
    return f"Trừ điểm: {s.deduction_cases} trường hợp dùng hệ thống ngoài → −{vn_number(s.deduction)} điểm"
