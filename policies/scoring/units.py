"""The score of a unit (department, district, ward...) from its officials' scores, and ranks.

A unit's officials' points are the mean of its members' totals weighted by the working days
each counted *in this unit*: ``Σ total × days / Σ days`` over members whose score is "scored".
A transferred official is a member of two units, each with its own share of the days (see
:func:`policies.scoring.calendar.days_in_units`); members with insufficient data are left out
of the mean and counted. With unit-level indicators (e.g. U1, documents issued electronically ÷
documents issued, from an imported register) the total is
``officials_weight × officials' points + (1 − officials_weight) × unit points``;
without them, the officials' points. No scored member means no score ("không đủ dữ liệu").
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from policies.scoring.formula import SCORED, Counts, Part, Score, score, shown, vn_number
from policies.scoring.model import ScoringModel


@dataclass(frozen=True)
class MemberScore:
    """One official's result as a member of one unit: ``score`` (their score for the period)
    and ``days_counted``, the working days they counted in this unit, which weigh the score."""

    official: str
    name: str
    days_counted: int
    score: Score

    def __post_init__(self) -> None:
        if self.days_counted < 0:
            raise ValueError(f"{self.official}: days_counted must not be negative, "
                             f"got {self.days_counted}")


@dataclass(frozen=True)
class UnitScore:
    """A unit's score with everything needed to explain it.

    ``headcount`` counts distinct officials; ``scored`` those with at least one scored
    membership, ``insufficient`` the rest (``scored + insufficient == headcount``).
    ``officials_points`` is ``None`` when no member is scored. ``unit_parts`` are the unit
    model's parts for the unit-level indicators (empty without them). ``total`` is ``None``
    when there is no score.
    """

    unit: str
    name: str
    group: str
    headcount: int
    scored: int
    insufficient: int
    officials_points: float | None
    unit_parts: tuple[Part, ...]
    total: float | None
    explanation_vi: tuple[str, ...]

    @property
    def unit_points(self) -> float | None:
        """The unit model's score of the unit indicators (no deductions apply to units), or
        ``None`` when there are none or none applies."""
        applying = [p for p in self.unit_parts if p.applies]
        return sum(p.points for p in applying) if applying else None


def unit_score(unit: str, name: str, group: str, members: Sequence[MemberScore],
               unit_indicators: Mapping[str, Counts] | None = None, *,
               unit_model: ScoringModel | None = None,
               officials_weight: float = 0.7) -> UnitScore:
    """Score one unit for one period from its members' scores.

    Trusts the members' scores and days (computed by :func:`~policies.scoring.formula.score`
    and :mod:`policies.scoring.calendar`). Checks: ``officials_weight`` in [0, 1]; unit
    indicators come with a ``unit_model``; all members were scored with the same model version
    (a mean across models means nothing). A problem is a ``ValueError``.

    The unit indicators are scored with :func:`~policies.scoring.formula.score` at
    ``days_counted = unit_model.min_days``: the minimum-days rule is about an official's
    attendance and does not apply to a unit as a whole. If none of them applies (every
    denominator 0), the total is the officials' points alone, as for a unit without them.
    """
    if not (math.isfinite(officials_weight) and 0 <= officials_weight <= 1):
        raise ValueError(f"officials_weight must be in [0, 1], got {officials_weight}")
    if unit_indicators and unit_model is None:
        raise ValueError(f"unit {unit}: unit indicators given without a unit_model")
    versions = {m.score.model_version for m in members}
    if len(versions) > 1:
        raise ValueError(f"unit {unit}: members scored with different models {sorted(versions)}")

    officials = {m.official for m in members}
    scored_members = [m for m in members if m.score.status == SCORED]
    scored_officials = {m.official for m in scored_members}
    headcount, scored = len(officials), len(scored_officials)
    insufficient = headcount - scored
    days = sum(m.days_counted for m in scored_members)
    officials_points = (sum(m.score.total * m.days_counted for m in scored_members) / days
                        if days else None)
    lines = [_officials_line(officials_points, scored, headcount, insufficient, days)]

    unit_parts: tuple[Part, ...] = ()
    unit_points: float | None = None
    if unit_indicators:
        assert unit_model is not None
        s = score(unit_model, unit_indicators, days_counted=unit_model.min_days)
        unit_parts = s.parts
        if s.status == SCORED:
            unit_points = s.total
            # explain_vi ends with its own "Tổng: x/100" line; ours says "Điểm đơn vị".
            lines.extend(s.explain_vi()[:-1])
            lines.append(f"Điểm đơn vị: {vn_number(s.total)}/{vn_number(s.max_total)} điểm")
        else:
            lines.append("Chỉ số đơn vị: không áp dụng (mọi mẫu số bằng 0); "
                         "tổng chỉ tính điểm cán bộ")

    if officials_points is None:
        total = None
        lines.append("Tổng: không đủ dữ liệu")
    elif unit_points is None:
        total = officials_points
        lines.append(f"Tổng: {vn_number(total)}")
    else:
        unit_weight = 1 - officials_weight
        total = officials_weight * officials_points + unit_weight * unit_points
        lines.append(f"Tổng: {_weight_vn(officials_weight)} × {vn_number(officials_points)} + "
                     f"{_weight_vn(unit_weight)} × {vn_number(unit_points)} = {vn_number(total)}")
    return UnitScore(unit, name, group, headcount, scored, insufficient, officials_points,
                     unit_parts, total, tuple(lines))


def rank_within_groups(units: Sequence[UnitScore]) -> dict[str, list[tuple[int, UnitScore]]]:
    """Rank units within each group, never across groups.

    Per group (keys in order of first appearance): units with a total, highest first, ranked
    1.. with ties sharing a rank and the next rank skipped (1, 2, 2, 4); then units without a
    total at rank 0. Totals are compared as shown, to one decimal half up (85.26 and 85.34
    both read "85,3" and tie), so a reader never sees two equal scores with different ranks.
    Within a tie, and among unranked units, the order is by unit code. A unit listed twice is a
    ``ValueError``.
    """
    seen: set[str] = set()
    groups: dict[str, list[UnitScore]] = {}
    for u in units:
        if u.unit in seen:
            raise ValueError(f"unit {u.unit} listed twice")
        seen.add(u.unit)
        groups.setdefault(u.group, []).append(u)
    result: dict[str, list[tuple[int, UnitScore]]] = {}
    for group, members in groups.items():
        with_total = sorted((u for u in members if u.total is not None),
                            key=lambda u: (-shown(u.total), u.unit))
        ranked: list[tuple[int, UnitScore]] = []
        for position, u in enumerate(with_total, start=1):
            tied = ranked and shown(ranked[-1][1].total) == shown(u.total)
            ranked.append((ranked[-1][0] if tied else position, u))
        ranked.extend((0, u) for u in sorted(members, key=lambda u: u.unit) if u.total is None)
        result[group] = ranked
    return result


def _weight_vn(weight: float) -> str:
    # Weights such as 0.75 need two decimals (vn_number would show 0,8); 1 − 0.7 is 0.3000…04.
    return f"{round(weight, 4):g}".replace(".", ",")


def _officials_line(points: float | None, scored: int, headcount: int, insufficient: int,
                    days: int) -> str:
    missing = f"; {insufficient} không đủ dữ liệu" if insufficient else ""
    if points is None:
        # Scored members whose days all fell in other units weigh nothing here.
        no_days = "; 0 ngày công trong đơn vị" if scored else ""
        return (f"Điểm cán bộ: không đủ dữ liệu ({scored}/{headcount} cán bộ có điểm"
                f"{missing}{no_days})")
    return (f"Điểm cán bộ: {vn_number(points)} (bình quân theo ngày công của "
            f"{scored}/{headcount} cán bộ{missing})")
