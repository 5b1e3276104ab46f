"""A meeting as a secretary describes it: a TOML file or CLI flags, checked field by field.

Example file (times are Vietnam time, Asia/Ho_Chi_Minh)::

    title = "Họp giao ban chuyển đổi số quý IV"
    agenda = "1. Kết quả quý III\\n2. Kế hoạch quý IV"
    location = "Phòng họp số 2, 59 Lý Tự Trọng"
    start = "2026-12-03 08:00"
    end = "2026-12-03 10:30"          # or: duration_minutes = 150
    unit = "STTTT"                    # the organizing unit
    chair = "Đồng chí Nguyễn Văn An, Giám đốc Sở"
    secretary = "vanthu@hochiminhcity.gov.vn"
    attendees = ["binh@hochiminhcity.gov.vn"]   # officials, one by one
    units = ["Q1"]                              # every active official of these units

    [[guests]]                                  # people outside the directory
    name = "Ông Trần Văn Bảo"
    email = "bao@doitac.vn"
    phone = "0912 345 678"

Every problem is reported as ``FILE: field: problem``; all of them at once.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from mailhub.errors import InputError

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
TIME_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%d/%m/%Y %H:%M")  # ISO, and as Vietnamese write it
MAX_TITLE = 500
MAX_AGENDA = 20_000
MAX_DURATION = timedelta(days=7)
_KNOWN = {"title", "agenda", "location", "start", "end", "duration_minutes", "unit", "chair", "secretary",
          "attendees", "units", "guests"}


@dataclass(frozen=True)
class Guest:
    name: str
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class MeetingSpec:
    title: str
    start: datetime  # aware, Vietnam time
    end: datetime
    unit: str
    secretary: str
    agenda: str = ""
    location: str = ""
    chair: str = ""
    attendees: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    guests: tuple[Guest, ...] = field(default_factory=tuple)


def parse_time(text: str) -> datetime:
    """``2026-12-03 08:00`` (or ``03/12/2026 08:00``) in Vietnam time → aware datetime."""
    for fmt in TIME_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=VIETNAM)
        except ValueError:
            continue
    raise ValueError(f"expected a time like 2026-12-03 08:00 or 03/12/2026 08:00, got {text!r}")


def load_spec(path: str | Path) -> MeetingSpec:
    return spec_from_mapping(read_toml(Path(path)), str(path))


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None


class _Reader:
    """Reads the fields of one mapping, collecting problems instead of stopping at the first."""

    def __init__(self, data: Mapping[str, Any], known: set[str]) -> None:
        self.data = data
        self.problems: list[str] = [f"{key}: unknown field (known: {', '.join(sorted(known))})"
                                    for key in data if key not in known]

    def text(self, key: str, required: bool = False, limit: int = MAX_TITLE) -> str:
        value = self.data.get(key, "")
        if not isinstance(value, str):
            self.problems.append(f"{key}: expected text, got {value!r}")
            return ""
        value = value.strip()
        if required and not value:
            self.problems.append(f"{key}: required")
        elif len(value) > limit:
            self.problems.append(f"{key}: at most {limit} characters, got {len(value)}")
        elif any(ord(c) < 32 and c not in "\n\t" for c in value):
            self.problems.append(f"{key}: control characters are not allowed")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.problems.append(f"{key}: expected a list of non-empty texts")
            return ()
        return tuple(v.strip() for v in value)

    def time(self, key: str) -> datetime | None:
        if key not in self.data:
            return None
        value = self.data[key]
        try:
            if not isinstance(value, str):
                raise ValueError(f"expected a time as text, got {value!r}")
            return parse_time(value)
        except ValueError as exc:
            self.problems.append(f"{key}: {exc}")
            return None

    def minutes(self) -> int | None:
        minutes = self.data.get("duration_minutes")
        if minutes is None:
            return None
        if "end" in self.data:
            self.problems.append("duration_minutes: give end or duration_minutes, not both")
        elif isinstance(minutes, bool) or not isinstance(minutes, int) or minutes <= 0:
            self.problems.append(f"duration_minutes: expected a positive whole number, got {minutes!r}")
        else:
            return minutes
        return None

    def check_span(self, start: datetime | None, end: datetime | None) -> None:
        if start is not None and end is not None:
            if end <= start:
                self.problems.append("end: must be after start")
            elif end - start > MAX_DURATION:
                self.problems.append("end: a meeting lasts at most 7 days")

    def guests(self, key: str = "guests") -> tuple[Guest, ...]:
        return _guests(self.data.get(key, []), self.problems, key)

    def done(self, source: str) -> None:
        if self.problems:
            raise InputError("\n".join(f"{source}: {p}" for p in self.problems))


def spec_from_mapping(data: Mapping[str, Any], source: str) -> MeetingSpec:
    """Check every field; raise one InputError listing every problem, one per line."""
    read = _Reader(data, _KNOWN)
    title = read.text("title", required=True)
    agenda = read.text("agenda", limit=MAX_AGENDA)
    location, chair = read.text("location"), read.text("chair", limit=255)
    unit, secretary = read.text("unit", required=True, limit=64), read.text("secretary", required=True, limit=320)
    start, end, minutes = read.time("start"), read.time("end"), read.minutes()
    if "start" not in data:
        read.problems.append("start: required")
    if minutes is not None and start is not None:
        end = start + timedelta(minutes=minutes)
    elif "end" not in data and "duration_minutes" not in data:
        read.problems.append("end: required (or duration_minutes)")
    read.check_span(start, end)
    attendees, units, guests = read.strings("attendees"), read.strings("units"), read.guests()
    if not (attendees or units or guests):
        read.problems.append("attendees: nobody is invited (give attendees, units or guests)")
    read.done(source)
    assert start is not None and end is not None
    return MeetingSpec(title, start, end, unit, secretary, agenda, location, chair, attendees, units, guests)


@dataclass(frozen=True)
class MeetingChanges:
    """What an update changes (``None``: unchanged) and who it adds. Moving ``start``
    alone keeps the meeting's length."""

    title: str | None = None
    agenda: str | None = None
    location: str | None = None
    chair: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    duration_minutes: int | None = None
    attendees: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    guests: tuple[Guest, ...] = field(default_factory=tuple)

    @property
    def adds_people(self) -> bool:
        return bool(self.attendees or self.units or self.guests)


_CHANGE_KNOWN = {"title", "agenda", "location", "chair", "start", "end", "duration_minutes",
                 "add_attendees", "add_units", "add_guests"}


def load_changes(path: str | Path) -> MeetingChanges:
    return changes_from_mapping(read_toml(Path(path)), str(path))


def changes_from_mapping(data: Mapping[str, Any], source: str) -> MeetingChanges:
    """An update as a secretary writes it: only the fields that change, and
    ``add_attendees`` / ``add_units`` / ``[[add_guests]]`` for people to add."""
    read = _Reader(data, _CHANGE_KNOWN)
    values: dict[str, Any] = {}
    for key, required, limit in (("title", True, MAX_TITLE), ("agenda", False, MAX_AGENDA),
                                 ("location", False, MAX_TITLE), ("chair", False, 255)):
        if key in data:
            values[key] = read.text(key, required=required, limit=limit)
    values["start"], values["end"], values["duration_minutes"] = read.time("start"), read.time("end"), read.minutes()
    read.check_span(values["start"], values["end"])
    values["attendees"], values["units"] = read.strings("add_attendees"), read.strings("add_units")
    values["guests"] = read.guests("add_guests")
    if not data:
        read.problems.append("nothing to change (give title, start, location, ... or add_attendees)")
    read.done(source)
    return MeetingChanges(**values)


def _guests(value: Any, problems: list[str], field: str = "guests") -> tuple[Guest, ...]:
    if not isinstance(value, list):
        problems.append(f"{field}: expected [[{field}]] tables")
        return ()
    guests = []
    for i, item in enumerate(value):
        key = f"{field}[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{key}: expected a table with name, email and/or phone")
            continue
        unknown = set(item) - {"name", "email", "phone"}
        if unknown:
            problems.append(f"{key}: unknown field {sorted(unknown)[0]}")
        name, email, phone = (item.get(k) for k in ("name", "email", "phone"))
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{key}.name: required")
            continue
        if email is not None and not isinstance(email, str) or phone is not None and not isinstance(phone, str):
            problems.append(f"{key}: email and phone must be texts")
            continue
        if not (email or phone):
            problems.append(f"{key}: give an email or a phone number for {name.strip()}")
            continue
        guests.append(Guest(name.strip(), (email or "").strip() or None, (phone or "").strip() or None))
    return tuple(guests)
