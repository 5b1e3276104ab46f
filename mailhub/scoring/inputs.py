"""What HR and the units add to the ledger for scoring: units' document registers (U1) and
confirmed uses of outside mail systems (deductions).

A register CSV gives, per unit and month, the documents the unit issued and those issued
electronically; importing a month again replaces it. A period counts the months whose first
day lies in it (a quarter counts its three months; a date range the months it starts).
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date
from pathlib import Path

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Engine

from mailhub.db import write_transaction
from mailhub.errors import InputError
from mailhub.models import ScoreDeduction, Unit, UnitRegister
from mailhub.scoring.csvinput import parse_count, read_rows
from mailhub.scoring.rollup import month_key, months

REGISTER_HEADERS = {"mã đơn vị": "unit", "ma_don_vi": "unit", "unit": "unit",
                    "tháng": "month", "thang": "month", "month": "month",
                    "văn bản ban hành": "issued", "van_ban_ban_hanh": "issued", "issued": "issued",
                    "văn bản điện tử": "electronic", "van_ban_dien_tu": "electronic",
                    "issued_electronic": "electronic", "electronic": "electronic"}

_rg = UnitRegister.__table__.c
_dd = ScoreDeduction.__table__.c


def _month(text: str, where: str) -> str:
    """``07/2026``, ``7/2026`` or ``2026-07`` → ``2026-07``."""
    try:
        if "/" in text:
            month, year = (int(part) for part in text.split("/"))
        else:
            year, month = (int(part) for part in text.split("-"))
        return month_key(date(year, month, 1))
    except ValueError:
        raise InputError(f"{where}: month: {text!r} is not a month (mm/yyyy or yyyy-mm)") from None


def import_register(engine: Engine, path: Path) -> int:
    """Store the register rows of the CSV ``path`` (columns Mã đơn vị, Tháng, Văn bản ban hành,
    Văn bản điện tử; or unit, month, issued, electronic). All rows are checked before any is
    written; the first problem is an ``InputError`` naming file, line and field. Returns the
    number of unit-months stored."""
    with engine.connect() as conn:
        units = {code for (code,) in conn.execute(select(Unit.__table__.c.code))}
    found: dict[tuple[str, str], dict] = {}
    for where, row in read_rows(path, REGISTER_HEADERS, ("unit", "month", "issued", "electronic")):
        if row["unit"] not in units:
            raise InputError(f"{where}: unit: {row['unit']!r} is not a unit of the directory")
        month = _month(row["month"], where)
        issued = parse_count(row["issued"], f"{where}: issued")
        electronic = parse_count(row["electronic"], f"{where}: electronic")
        if electronic > issued:
            raise InputError(f"{where}: electronic: {electronic} is more than the {issued} issued")
        if (row["unit"], month) in found:
            raise InputError(f"{where}: unit {row['unit']} month {month} is listed twice")
        found[(row["unit"], month)] = {"unit_code": row["unit"], "month": month, "issued": issued,
                                       "issued_electronic": electronic, "source": path.name[:255]}
    with write_transaction(engine) as conn:
        for unit, month in found:
            conn.execute(delete(UnitRegister).where(_rg.unit_code == unit, _rg.month == month))
        if found:
            conn.execute(insert(UnitRegister), list(found.values()))
    return len(found)


def register_totals(engine: Engine, start: date, end: date) -> dict[str, tuple[int, int]]:
    """Per unit with a register in the period: (issued, issued electronically)."""
    keys = [month_key(m) for m in months(start, end) if m >= start]
    with engine.connect() as conn:
        rows = conn.execute(select(_rg.unit_code, func.sum(_rg.issued), func.sum(_rg.issued_electronic))
                            .where(_rg.month.in_(keys)).group_by(_rg.unit_code))
        return {unit: (int(issued), int(electronic)) for unit, issued, electronic in rows}


def record_deduction(engine: Engine, official: str, day: date, cases: int, note: str, by: str) -> None:
    if cases < 1:
        raise InputError(f"cases: must be at least 1, got {cases}")
    if not note.strip():
        raise InputError("note: say what was confirmed (which outside system, which case)")
    with write_transaction(engine) as conn:
        conn.execute(insert(ScoreDeduction), [{"official_email": official, "day": day, "cases": cases,
                                               "note": note.strip()[:1000], "recorded_by": by}])


def deductions(engine: Engine, start: date, end: date) -> dict[str, int]:
    """Confirmed cases per official with a day in ``[start, end]``."""
    cases: dict[str, int] = defaultdict(int)
    with engine.connect() as conn:
        for official, n in conn.execute(select(_dd.official_email, func.sum(_dd.cases))
                                        .where(_dd.day >= start, _dd.day <= end)
                                        .group_by(_dd.official_email)):
            cases[official] += int(n)
    return dict(cases)
