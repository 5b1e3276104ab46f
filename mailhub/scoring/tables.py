"""The tables HR reads, as plain data: one definition of the columns for the CSV, the XLSX and
the terminal table.

A :class:`Table` holds raw values — ``str``, ``int``, ``float``, ``date``/``datetime`` or
``None`` — never numbers turned into text: each writer formats them its own way (a decimal
comma in the CSV, a number format in the XLSX). Rates are percentages (``rate × 100``) so a
reader compares them with the targets as the directive writes them (95%, not 0.95).

Headers are Vietnamese: HR reads them. The writers find the columns they need (a chart's
values, a date) by the header constants below, so renaming a header is one change here.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TextIO

from mailhub.errors import InputError
from mailhub.scoring.csvexport import write_csv
from mailhub.scoring.results import (
    GROUP_LABELS_VI,
    IndicatorInfo,
    OfficialResult,
    PeriodScores,
    UnitResult,
    group_order,
)
from mailhub.templating import VIETNAM, vn_time
from policies.scoring.formula import SCORED, Part

__all__ = ["Table", "Value", "indicator_table", "official_table", "summary_rows", "unit_table",
           "write_scores_csv"]

Value = str | int | float | date | datetime | None

# Headers the writers look up (charts, widths); the rest are only written.
UNIT_CODE = "Mã đơn vị"
UNIT_NAME = "Đơn vị"
GROUP = "Nhóm"
RANK = "Hạng trong nhóm"
TOTAL = "Tổng điểm"
INDICATOR_CODE = "Mã chỉ số"
TARGET = "Mục tiêu (%)"
CITY_RATE = "Tỷ lệ toàn thành phố (%)"

SCORED_VI = "Có điểm"
INSUFFICIENT_VI = "Không đủ dữ liệu"
LEVEL_VI = {"official": "Cán bộ", "unit": "Đơn vị"}



@dataclass(frozen=True)
class Table:
    """A titled table: ``headers`` and ``rows`` of raw values, each row as long as ``headers``."""

    title_vi: str
    headers: tuple[str, ...]
    rows: tuple[tuple[Value, ...], ...]


def official_table(scores: PeriodScores, unit: str | None = None) -> Table:
    """One row per official, sorted by unit code then email.

    With ``unit``, the officials of that unit and of the units directly under it, by their
    current unit or by days counted there (:meth:`PeriodScores.for_unit`, the filter the JSON
    output uses too): a transferred official appears under both units. An indicator's "điểm"
    is ``None`` when it does not apply or when the official has no score (too few days):
    points that count towards nothing would read as earned. Checks that ``unit`` is a unit of
    the period (``InputError``).
    """
    _check_unit(scores, unit)
    codes = _codes(scores, "official")
    headers = ("Email", "Họ và tên", UNIT_CODE, UNIT_NAME, "Ngày công được tính",
               *_indicator_headers(codes),
               "Trừ điểm", TOTAL, "Kết quả", "Thư gửi qua hệ thống", "Thư bị từ chối (ngoài hệ thống)",
               "Ngày hoạt động", "Văn bản gửi UBND", "Văn bản có chữ ký số hợp lệ", "Cuộc họp tổ chức",
               "Cuộc họp có giấy mời điện tử", "Cần xem xét", "Giải thích")
    chosen = list(_scope_of(scores, unit).officials)
    chosen.sort(key=lambda o: (o.unit, o.email))
    return Table(_title("Điểm cán bộ", scores, unit), headers,
                 tuple(_official_row(o, codes) for o in chosen))


def unit_table(scores: PeriodScores, unit: str | None = None) -> Table:
    """One row per unit, by group (city, department, district, ward, other), then rank with the
    unranked last, then code.

    With ``unit``, that unit and the units whose parent it is (:meth:`PeriodScores.for_unit`).
    Checks that ``unit`` is a unit of the period (``InputError``).
    """
    _check_unit(scores, unit)
    codes = _codes(scores, "unit")
    headers = (GROUP, RANK, "Số đơn vị trong nhóm", UNIT_CODE, UNIT_NAME, "Đơn vị cấp trên",
               "Số cán bộ", SCORED_VI, INSUFFICIENT_VI, "Điểm cán bộ", *_indicator_headers(codes),
               "Văn bản ban hành", "Văn bản phát hành điện tử", TOTAL, "Giải thích")
    chosen = list(_scope_of(scores, unit).units)
    chosen.sort(key=_unit_order)
    return Table(_title("Điểm đơn vị", scores, unit), headers,
                 tuple(_unit_row(u, codes) for u in chosen))


def summary_rows(scores: PeriodScores, unit: str | None = None) -> Table:
    """The facts that head the results, as label/value rows: the period, the model, when the
    data was last updated and computed (Vietnam time), whether HR has closed the period, and
    what the tables cover (``unit``, checked as in :func:`unit_table`).

    Checks that the times are aware (``ValueError``): a naive one has no defined instant.
    """
    _check_unit(scores, unit)
    if scores.closed:
        state = f"Đã chốt bởi {scores.closed_by or 'không rõ'} lúc {vn_time(scores.closed_at)}"
    else:
        state = "Chưa chốt — có thể tính lại"
    data_until = _vietnam(scores.data_until) if scores.data_until else "Chưa có dữ liệu"
    rows: tuple[tuple[Value, ...], ...] = (
        ("Kỳ", scores.period.label_vi),
        ("Từ ngày", scores.period.start),
        ("Đến ngày", scores.period.end),
        ("Số ngày làm việc", scores.working_days),
        ("Phiên bản mô hình điểm", scores.model_version),
        ("Dữ liệu cập nhật đến", data_until),
        ("Tính lúc", _vietnam(scores.computed_at)),
        ("Trạng thái", state),
        ("Phạm vi", _scope(scores, unit)),
    )
    return Table(_title("Tổng quan", scores, None), ("Mục", "Giá trị"), rows)


def indicator_table(scores: PeriodScores) -> Table:
    """One row per indicator of the model: its name, level, weight, target and the city-wide
    rate (``None`` when no denominator is above 0).

    The city-wide rate pools the counts: Σ numerators ÷ Σ denominators over every official
    (each once, scored or not — it measures use, not scores) for an official-level indicator,
    over the units' registers for a unit-level one. A chart of rates against targets reads
    these columns.
    """
    headers = (INDICATOR_CODE, "Tên chỉ số", "Áp dụng cho", "Trọng số (điểm)", TARGET, CITY_RATE)
    rows = tuple((i.code, i.name_vi, LEVEL_VI.get(i.level, i.level), i.weight, i.target * 100,
                  _percent(_city_rate(scores, i)))
                 for i in scores.indicators)
    return Table(_title("Chỉ số", scores, None), headers, rows)


def write_scores_csv(scores: PeriodScores, by: str,
                     target: str | os.PathLike[str] | TextIO, unit: str | None = None) -> int:
    """Write the officials' (``by="official"``) or the units' (``by="unit"``) table to
    ``target`` with :func:`~mailhub.scoring.csvexport.write_csv` (atomic for a path); return
    the number of data rows. Any other ``by`` is a ``ValueError``."""
    if by == "official":
        table = official_table(scores, unit)
    elif by == "unit":
        table = unit_table(scores, unit)
    else:
        raise ValueError(f"by must be 'official' or 'unit', got {by!r}")
    return write_csv(target, table.headers, table.rows)


def _official_row(o: OfficialResult, codes: tuple[str, ...]) -> tuple[Value, ...]:
    s, a = o.score, o.activity
    scored = s.status == SCORED
    return (o.email, o.name, o.unit, o.unit_name, o.days_counted,
            *_indicator_cells(s.parts, codes, points=scored),
            s.deduction, s.total if scored else None, SCORED_VI if scored else INSUFFICIENT_VI,
            a.sent, a.refused_outside, a.active_days, a.documents, a.documents_valid,
            a.meetings, a.meetings_electronic,
            "; ".join(b.reason_vi for b in o.bursts), " | ".join(s.explain_vi()))


def _unit_row(u: UnitResult, codes: tuple[str, ...]) -> tuple[Value, ...]:
    s = u.score
    return (GROUP_LABELS_VI.get(u.kind, u.kind), u.rank or None, u.group_size, u.code, s.name,
            u.parent, s.headcount, s.scored, s.insufficient, s.officials_points,
            *_indicator_cells(s.unit_parts, codes, points=True),
            u.issued, u.issued_electronic, s.total, " | ".join(s.explanation_vi))


def _indicator_headers(codes: Iterable[str]) -> tuple[str, ...]:
    return tuple(h for code in codes for h in (f"{code} tỷ lệ (%)", f"{code} điểm"))


def _indicator_cells(parts: Iterable[Part], codes: tuple[str, ...], *,
                     points: bool) -> tuple[Value, ...]:
    """Rate (%) and points per code, ``None`` for a code without an applying part."""
    by_code = {p.code: p for p in parts if p.applies}
    cells: list[Value] = []
    for code in codes:
        part = by_code.get(code)
        cells.append(_percent(part.rate) if part else None)
        cells.append(part.points if part and points else None)
    return tuple(cells)


def _percent(rate: float | None) -> float | None:
    return None if rate is None else rate * 100


def _codes(scores: PeriodScores, level: str) -> tuple[str, ...]:
    return tuple(i.code for i in scores.indicators if i.level == level)


def _city_rate(scores: PeriodScores, indicator: IndicatorInfo) -> float | None:
    numerator, denominator = scores.pooled()[indicator.level, indicator.code]
    return numerator / denominator if denominator else None


def _unit_order(u: UnitResult) -> tuple[int, int, int, str]:
    return (group_order(u.kind), u.rank == 0, u.rank, u.code)


def _scope_of(scores: PeriodScores, unit: str | None) -> PeriodScores:
    return scores.for_unit(unit) if unit is not None else scores


def _known_units(scores: PeriodScores) -> set[str]:
    known = {u.code for u in scores.units}
    for o in scores.officials:
        known.add(o.unit)
        known.update(code for code, _ in o.days_by_unit)
    return known


def _check_unit(scores: PeriodScores, unit: str | None) -> None:
    # An unknown code is most likely a typo: an empty export would pass for "no officials".
    if unit is not None and unit not in _known_units(scores):
        raise InputError(f"unit {unit!r}: not a unit of period {scores.period.label}")


def _scope(scores: PeriodScores, unit: str | None) -> str:
    if unit is None:
        return "Toàn thành phố"
    names = {u.code: u.score.name for u in scores.units}
    named = f"{unit} — {names[unit]}" if unit in names else unit
    return f"Đơn vị {named} và các đơn vị trực thuộc"


def _vietnam(moment: datetime) -> datetime:
    # astimezone() would read a naive datetime as the host's local time: refuse to guess.
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()} (time zone unknown)")
    return moment.astimezone(VIETNAM)


def _title(what: str, scores: PeriodScores, unit: str | None) -> str:
    title = f"{what} — {scores.period.label_vi}"
    return f"{title} — đơn vị {unit}" if unit else title
