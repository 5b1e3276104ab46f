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
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None
    return spec_from_mapping(data, str(path))


def spec_from_mapping(data: Mapping[str, Any], source: str) -> MeetingSpec:
    """Check every field; raise one InputError listing every problem, one per line."""
    problems: list[str] = []

    def text(key: str, required: bool = False, limit: int = MAX_TITLE) -> str:
        value = data.get(key, "")
        if not isinstance(value, str):
            problems.append(f"{key}: expected text, got {value!r}")
            return ""
        value = value.strip()
        if required and not value:
            problems.append(f"{key}: required")
        elif len(value) > limit:
            problems.append(f"{key}: at most {limit} characters, got {len(value)}")
        elif any(ord(c) < 32 and c not in "\n\t" for c in value):
            problems.append(f"{key}: control characters are not allowed")
        return value

    def strings(key: str) -> tuple[str, ...]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            problems.append(f"{key}: expected a list of non-empty texts")
            return ()
        return tuple(v.strip() for v in value)

    for key in data:
        if key not in _KNOWN:
            problems.append(f"{key}: unknown field (known: {', '.join(sorted(_KNOWN))})")
    title = text("title", required=True)
    agenda = text("agenda", limit=MAX_AGENDA)
    location, chair = text("location"), text("chair", limit=255)
    unit, secretary = text("unit", required=True, limit=64), text("secretary", required=True, limit=320)
    start = end = None
    for key in ("start", "end"):
        if key in data:
            try:
                moment = parse_time(data[key]) if isinstance(data[key], str) else None
                if moment is None:
                    raise ValueError(f"expected a time as text, got {data[key]!r}")
            except ValueError as exc:
                problems.append(f"{key}: {exc}")
                continue
            start, end = (moment, end) if key == "start" else (start, moment)
    if "start" not in data:
        problems.append("start: required")
    minutes = data.get("duration_minutes")
    if minutes is not None:
        if "end" in data:
            problems.append("duration_minutes: give end or duration_minutes, not both")
        elif isinstance(minutes, bool) or not isinstance(minutes, int) or minutes <= 0:
            problems.append(f"duration_minutes: expected a positive whole number, got {minutes!r}")
        elif start is not None:
            end = start + timedelta(minutes=minutes)
    elif "end" not in data:
        problems.append("end: required (or duration_minutes)")
    if start is not None and end is not None:
        if end <= start:
            problems.append("end: must be after start")
        elif end - start > MAX_DURATION:
            problems.append("end: a meeting lasts at most 7 days")
    attendees, units = strings("attendees"), strings("units")
    guests = _guests(data.get("guests", []), problems)
    if not (attendees or units or guests):
        problems.append("attendees: nobody is invited (give attendees, units or guests)")
    if problems:
        raise InputError("\n".join(f"{source}: {p}" for p in problems))
    assert start is not None and end is not None
    return MeetingSpec(title, start, end, unit, secretary, agenda, location, chair, attendees, units, guests)


def _guests(value: Any, problems: list[str]) -> tuple[Guest, ...]:
    if not isinstance(value, list):
        problems.append("guests: expected [[guests]] tables")
        return ()
    guests = []
    for i, item in enumerate(value):
        key = f"guests[{i}]"
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
