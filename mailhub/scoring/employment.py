"""Who is scored for a period, in which units, from the directory and its employment dates.

An official with rows in ``official_assignment`` counts for the units and days those rows
give (a joiner from their start, a leaver until their end, a transfer split between units).
An official without any row counts for their directory unit on every day of the period if
active, and is not scored if not (someone who left without an end date being recorded).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Engine

from mailhub.db import write_transaction
from mailhub.errors import InputError
from mailhub.models import Official, OfficialAssignment, Unit
from mailhub.scoring.csvinput import parse_day, read_rows
from policies.scoring.calendar import Assignment, days_in_units


@dataclass(frozen=True)
class Staff:
    """An official as scoring sees them: current directory unit and employment."""

    email: str
    name: str
    unit: str
    employment: tuple[Assignment, ...]


@dataclass(frozen=True)
class UnitInfo:
    code: str
    name: str
    kind: str
    parent: str | None


_of = Official.__table__.c
_as = OfficialAssignment.__table__.c
_un = Unit.__table__.c


def load_units(engine: Engine) -> dict[str, UnitInfo]:
    with engine.connect() as conn:
        return {code: UnitInfo(code, name, kind, parent)
                for code, name, kind, parent in conn.execute(
                    select(_un.code, _un.name, _un.kind, _un.parent_code).order_by(_un.code))}


def load_staff(engine: Engine, start: date, end: date) -> list[Staff]:
    """The officials to score for ``[start, end]``, by address, with their employment."""
    with engine.connect() as conn:
        # The driver's rows: a city's 50,000 officials through SQLAlchemy's row processing
        # would take longer than scoring them.
        # Sorted here: ORDER BY would walk the email index and fetch each row apart.
        officials = sorted(conn.exec_driver_sql(
            "SELECT id, email, full_name, unit_code, active FROM official").fetchall(), key=lambda r: r[1])
        rows: dict[int, list[Assignment]] = defaultdict(list)
        for official_id, unit, first, last in conn.exec_driver_sql(
                'SELECT official_id, unit_code, start, "end" FROM official_assignment').fetchall():
            rows[official_id].append(Assignment(unit, _as_date(first), _as_date(last)))
    staff = []
    for official_id, email, name, unit, active in officials:
        employment = rows.get(official_id)
        if employment is None:
            if active:  # counts for their directory unit throughout
                staff.append(Staff(email, name, unit, (Assignment(unit, start),)))
            continue
        if any(a.start <= end and (a.end is None or a.end >= start) for a in employment):
            staff.append(Staff(email, name, unit, tuple(employment) if len(employment) == 1
                               else tuple(sorted(employment, key=lambda a: a.start))))
    return staff


def _as_date(value: date | str | None) -> date | None:
    # SQLite gives the stored text ('2026-08-17'), PostgreSQL a date.
    return date.fromisoformat(value) if isinstance(value, str) else value


# ---- import -----------------------------------------------------------------

HEADERS = {"email": "email", "thư điện tử": "email", "mã đơn vị": "unit", "ma_don_vi": "unit",
           "unit": "unit", "từ ngày": "start", "tu_ngay": "start", "start": "start",
           "đến ngày": "end", "den_ngay": "end", "end": "end"}


def import_employment(engine: Engine, path: Path) -> int:
    """Replace the employment dates of the officials named in the CSV ``path``.

    Columns (Vietnamese or English headers): Email, Mã đơn vị (unit), Từ ngày (start), Đến ngày
    (end, empty while it lasts). An official's rows in the file replace all of theirs; officials
    not in the file keep theirs. Everything is checked before anything is written: the first
    problem is an ``InputError`` naming the file, line and field, and nothing changes. Returns
    the number of rows stored.
    """
    with engine.connect() as conn:
        ids = dict(conn.execute(select(_of.email, _of.id)).all())
        units = {code for (code,) in conn.execute(select(_un.code))}
    found: dict[str, list[Assignment]] = defaultdict(list)
    for where, row in read_rows(path, HEADERS, ("email", "unit", "start")):
        email = row["email"].lower()
        if email not in ids:
            raise InputError(f"{where}: email: {row['email']!r} is not in the directory")
        if row["unit"] not in units:
            raise InputError(f"{where}: unit: {row['unit']!r} is not a unit of the directory")
        first = parse_day(row["start"], f"{where}: start")
        last = parse_day(row["end"], f"{where}: end") if row.get("end") else None
        try:
            found[email].append(Assignment(row["unit"], first, last))
        except ValueError as exc:
            raise InputError(f"{where}: {exc}") from None
    for email, employment in found.items():
        try:
            days_in_units([], employment)  # checks that no two assignments overlap
        except ValueError as exc:
            raise InputError(f"{path}: {email}: {exc}") from None
    with write_transaction(engine) as conn:
        conn.execute(delete(OfficialAssignment).where(_as.official_id.in_([ids[e] for e in found])))
        stored = [{"official_id": ids[email], "unit_code": a.unit, "start": a.start, "end": a.end}
                  for email, employment in found.items() for a in employment]
        if stored:
            conn.execute(insert(OfficialAssignment), stored)
    return len(stored)
