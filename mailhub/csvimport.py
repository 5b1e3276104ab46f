"""Import the directory from a CSV file exported by HR or the IT department.

Format (UTF-8, with or without BOM, one header row)::

    email,full_name,unit_code,unit_name,parent_unit_code,roles,phone

``email``, ``full_name`` and ``unit_code`` are required; ``unit_name``,
``parent_unit_code``, ``roles`` (separated by ``;``, ``,`` or spaces), ``phone`` and
``unit_kind`` are optional. A row with ``unit_name`` creates or renames its unit.

All or nothing: every row is checked first; if any is bad, :class:`InputError`
lists every problem as ``FILE:LINE: field: problem`` and nothing is written.
Otherwise the whole file is applied in one transaction. Existing officials are
updated (name, unit, roles, phone); their passwords are never touched, and new
officials have no password until ``mailhub user passwd``.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from mailhub import directory as d
from mailhub.config import DomainsConfig
from mailhub.errors import DirectoryError, InputError
from mailhub.models import Mailbox, Official, Unit, UnitKind

REQUIRED = ("email", "full_name", "unit_code")
OPTIONAL = ("unit_name", "parent_unit_code", "roles", "phone", "unit_kind")
_ROLE_SPLIT = re.compile(r"[;,\s]+")


@dataclass
class ImportReport:
    units_created: list[str] = field(default_factory=list)
    units_updated: list[str] = field(default_factory=list)
    officials_created: list[str] = field(default_factory=list)
    officials_updated: list[str] = field(default_factory=list)
    officials_unchanged: int = 0


@dataclass
class _Row:
    """A checked row; a field that failed its check is None (and a problem was recorded)."""

    line: int
    email: str | None
    full_name: str | None
    unit_code: str | None
    roles: str | None
    phone: str | None


@dataclass
class _UnitSpec:
    line: int
    name: str
    parent: str | None
    kind: str | None


class _Problems:
    """Problems found so far, each as (line, "FILE:LINE: field: problem")."""

    def __init__(self, path: Path) -> None:
        self.path, self.items = path, []

    def add(self, line: int, field_: str, problem: str) -> None:
        self.items.append((line, f"{self.path}:{line}: {field_}: {problem}"))

    def __bool__(self) -> bool:
        return bool(self.items)

    def error(self) -> InputError:
        lines = [text for _line, text in sorted(self.items, key=lambda item: item[0])]
        return InputError("\n".join(lines + [f"{self.path}: {len(lines)} problem(s); nothing imported"]))


def _read_rows(path: Path, problems: _Problems) -> list[tuple[int, dict[str, str]]]:
    """(first line number, {column: stripped value}) for every non-blank row."""
    try:
        text = path.read_bytes().decode("utf-8-sig")  # Excel writes a BOM
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 (byte {exc.start}): save the file as 'CSV UTF-8'") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [h.strip().lower() for h in next(reader, [])]
        missing = [c for c in REQUIRED if c not in header]
        unknown = [h for h in header if h not in REQUIRED + OPTIONAL]
        if missing or unknown or len(set(header)) != len(header):
            problem = (f"missing column(s) {', '.join(missing)}" if missing else
                       f"unknown column(s) {', '.join(unknown)}" if unknown else "repeated column")
            raise InputError(f"{path}:1: header: {problem} "
                             f"(expected {','.join(REQUIRED + OPTIONAL[:4])})")
        rows, line = [], reader.line_num + 1
        for values in reader:
            if any(v.strip() for v in values):
                if len(values) > len(header):
                    problems.add(line, "row", f"{len(values)} fields, the header has {len(header)}")
                else:
                    rows.append((line, {h: v.strip() for h, v in zip(header, values)}))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise InputError(f"{path}:{reader.line_num}: row: {exc}") from None
    return rows


def _check_row(line: int, raw: dict[str, str], domains: DomainsConfig, problems: _Problems,
               seen: dict[str, int], units: dict[str, _UnitSpec]) -> _Row:
    def check(field_: str, fn, *args):
        try:
            return fn(*args)
        except DirectoryError as exc:
            problems.add(line, field_, str(exc))
            return None

    email = check("email", d.official_email, raw.get("email", ""), domains)
    if email and email in seen:
        problems.add(line, "email", f"{email} is repeated (first on line {seen[email]})")
    elif email:
        seen[email] = line
    full_name = check("full_name", d.check_name, raw.get("full_name", ""), "full name")
    unit_code = check("unit_code", d.check_unit_code, raw.get("unit_code", ""))
    roles = check("roles", d.normalise_roles, _ROLE_SPLIT.split(raw.get("roles", "")))
    phone = check("phone", d.normalise_phone, raw.get("phone"))
    if unit_code and raw.get("unit_name"):
        name = check("unit_name", d.check_name, raw["unit_name"], "unit name")
        parent = raw.get("parent_unit_code") or None
        parent = parent and check("parent_unit_code", d.check_unit_code, parent)
        kind = raw.get("unit_kind") or None
        kind = kind and check("unit_kind", d.check_kind, kind)
        if name and (parent or not raw.get("parent_unit_code")) and (kind or not raw.get("unit_kind")):
            spec = _UnitSpec(line, name, parent, kind)
            first = units.setdefault(unit_code, spec)
            if (first.name, first.parent, first.kind) != (spec.name, spec.parent, spec.kind):
                problems.add(line, "unit_name", f"unit {unit_code} is described differently on line {first.line}")
    elif raw.get("parent_unit_code") or raw.get("unit_kind"):
        problems.add(line, "unit_name", "required when parent_unit_code or unit_kind is given")
    return _Row(line, email, full_name, unit_code, roles, phone)


def _check_units(session: Session, rows: list[_Row], units: dict[str, _UnitSpec],
                 problems: _Problems) -> None:
    known = {code: parent for code, parent in session.exec(select(Unit.code, Unit.parent_code))}
    tree = known | {code: spec.parent for code, spec in units.items()}
    for code, spec in units.items():
        if spec.parent and spec.parent not in tree:
            problems.add(spec.line, "parent_unit_code", f"unknown unit {spec.parent}")
            continue
        seen, parent = {code}, spec.parent
        while parent in tree and parent is not None:
            if parent in seen:
                problems.add(spec.line, "parent_unit_code", f"unit {code} would be its own ancestor")
                break
            seen.add(parent)
            parent = tree[parent]
    for row in rows:
        if row.unit_code is not None and row.unit_code not in tree:
            problems.add(row.line, "unit_code", f"unknown unit {row.unit_code} (give unit_name to create it)")


def _apply_units(session: Session, units: dict[str, _UnitSpec], report: ImportReport) -> None:
    pending = dict(units)
    while pending:  # parents before children; _check_units ruled out cycles
        ready = [c for c, s in pending.items() if s.parent is None or s.parent not in pending]
        for code in ready:
            spec = pending.pop(code)
            unit = session.get(Unit, code)
            if unit is None:
                session.add(Unit(code=code, name=spec.name, parent_code=spec.parent,
                                 kind=spec.kind or UnitKind.OTHER.value))
                report.units_created.append(code)
            elif (unit.name, unit.parent_code, unit.kind) != (spec.name, spec.parent, spec.kind or unit.kind):
                unit.name, unit.parent_code, unit.kind = spec.name, spec.parent, spec.kind or unit.kind
                report.units_updated.append(code)
        session.flush()


def import_directory(engine: Engine, path: str | Path, domains: DomainsConfig) -> ImportReport:
    """Check every row of ``path``, then apply them all in one transaction (or none)."""
    path = Path(path)
    problems, seen, units = _Problems(path), {}, {}
    rows = [_check_row(line, raw, domains, problems, seen, units)
            for line, raw in _read_rows(path, problems)]
    report = ImportReport()
    with Session(engine, expire_on_commit=False) as session:
        _check_units(session, rows, units, problems)
        existing = {o.email: o for o in session.exec(select(Official))}
        mailboxes = set(session.exec(select(Mailbox.address)))
        for row in rows:
            if row.email is not None and row.email in mailboxes:
                problems.add(row.line, "email", f"{row.email} is already an alias or a shared mailbox")
        if problems:
            raise problems.error()
        _apply_units(session, units, report)
        for row in rows:
            values = dict(full_name=row.full_name, unit_code=row.unit_code, roles=row.roles, phone=row.phone)
            official = existing.get(row.email)
            if official is None:
                session.add(Official(email=row.email, **values))
                report.officials_created.append(row.email)
            elif any(getattr(official, k) != v for k, v in values.items()):
                for k, v in values.items():
                    setattr(official, k, v)
                report.officials_updated.append(row.email)
            else:
                report.officials_unchanged += 1
        session.commit()
    return report
