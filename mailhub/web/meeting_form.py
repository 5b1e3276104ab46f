"""The meeting form of the console, read into what :mod:`invites.spec` checks.

The form's fields are plain text (title, times, textareas of people and guests);
:func:`meeting_mapping` and :func:`changes_mapping` turn them into the mapping
``spec_from_mapping`` / ``changes_from_mapping`` read, exactly as the meeting file
and the JSON API give it, so the rules stay in one place. What the form adds:

- officials named one per line by address or by exact full name, a name resolved
  here against the directory (unknown or ambiguous: a problem naming the line);
- guests one per line, ``Name; email; phone``;
- the problems of ``invites`` (``field: problem``, English) put back next to the
  form field they are about, with the field's Vietnamese label, the common problem
  texts translated, and the textarea line a problem came from.

Pure functions: the directory is passed in as (email, full name) pairs.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

from invites.spec import VIETNAM
from mailhub.directory import check_name
from mailhub.errors import DirectoryError

MAX_LINES = 2000  # per textarea: a district's officials, well under the form's size limit
MAX_LINE = 500

# Form field → (Vietnamese label, English label), in the order the form shows them.
LABELS: dict[str, tuple[str, str]] = {
    "title": ("Tiêu đề cuộc họp", "Title"),
    "agenda": ("Nội dung, chương trình", "Agenda"),
    "location": ("Địa điểm", "Location"),
    "start": ("Thời gian bắt đầu", "Start"),
    "end": ("Thời gian kết thúc", "End"),
    "duration": ("Thời lượng (phút)", "Duration (minutes)"),
    "unit": ("Đơn vị chủ trì", "Organizing unit"),
    "chair": ("Người chủ trì", "Chair"),
    "units": ("Đơn vị được mời", "Units invited"),
    "attendees": ("Cán bộ được mời", "Officials invited"),
    "people": ("Cán bộ (email hoặc họ tên)", "Officials (email or full name)"),
    "guests": ("Khách mời", "Guests"),
    "invitees": ("Người được mời", "Invitees"),
    "": ("Cuộc họp", "Meeting"),
}
TEXT_FIELDS = ("title", "agenda", "location", "chair", "start", "end", "duration", "unit", "people", "guests", "q")


@dataclass(frozen=True)
class FieldError:
    """One problem, shown next to ``field`` (a key of :data:`LABELS`)."""

    field: str
    vi: str
    en: str

    def text(self, lang: str) -> str:
        vi_label, en_label = LABELS.get(self.field, LABELS[""])
        return f"{vi_label}: {self.vi}" if lang == "vi" else f"{en_label}: {self.en}"


@dataclass
class MeetingForm:
    """What the secretary typed and ticked, kept to show the form again."""

    values: dict[str, str] = field(default_factory=dict)
    units: list[str] = field(default_factory=list)  # unit codes ticked
    attendees: list[str] = field(default_factory=list)  # officials' addresses ticked

    @classmethod
    def read(cls, posted: Mapping[str, list[str]]) -> MeetingForm:
        # Browsers send a textarea's line breaks as CRLF; the meeting's checks refuse CR.
        values = {key: posted.get(key, [""])[-1].replace("\r\n", "\n").replace("\r", "\n") for key in TEXT_FIELDS}
        return cls(values, _distinct(posted.get("units", [])), _distinct(posted.get("attendees", [])))

    def value(self, key: str) -> str:
        return self.values.get(key, "")


@dataclass
class Sources:
    """Where each entry of the mapping's lists came from: ``attendees[i]`` is a ticked
    box (``None``) or a line of the people textarea; ``guests[i]`` a guests line."""

    attendees: list[int | None] = field(default_factory=list)
    guests: list[int] = field(default_factory=list)


def _distinct(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        item = item.strip()
        if item and len(item) <= 320:
            seen.setdefault(item, None)
    return list(seen)


def _lines(text: str) -> list[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers in the textarea."""
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def name_key(name: str) -> str:
    """How full names are compared: NFC, case-folded, spaces collapsed."""
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


def too_many_lines(key: str, text: str) -> list[FieldError]:
    lines = _lines(text)
    if len(lines) > MAX_LINES:
        return [FieldError(key, f"tối đa {MAX_LINES} dòng (đã nhập {len(lines)})",
                           f"at most {MAX_LINES} lines, got {len(lines)}")]
    long = next((n for n, line in lines if len(line) > MAX_LINE), None)
    if long is not None:
        return [FieldError(key, f"dòng {long}: quá dài (tối đa {MAX_LINE} ký tự)",
                           f"line {long}: too long (at most {MAX_LINE} characters)")]
    return []


def people_lines(text: str, directory: Sequence[tuple[str, str]]) -> tuple[list[tuple[int, str]], list[FieldError]]:
    """The officials named one per line: an address as written (the meeting's own
    checks say whether it is an official), or an exact full name looked up in
    ``directory`` (active officials' (email, full name)). Returns (line, address)
    pairs and the problems, each naming its line."""
    by_name: dict[str, list[str]] = {}
    for email, name in directory:
        by_name.setdefault(name_key(name), []).append(email)
    found, problems = [], []
    for number, line in _lines(text):
        if "@" in line:
            found.append((number, line))
            continue
        matches = by_name.get(name_key(line), [])
        if len(matches) == 1:
            found.append((number, matches[0]))
        elif not matches:
            problems.append(FieldError("people", f"dòng {number}: không có cán bộ nào tên “{line}” trong danh bạ",
                                       f"line {number}: no official named “{line}” in the directory"))
        else:
            listed = ", ".join(sorted(matches))
            problems.append(FieldError("people", f"dòng {number}: có {len(matches)} cán bộ tên “{line}” "
                                                 f"({listed}); hãy ghi địa chỉ email",
                                       f"line {number}: {len(matches)} officials are named “{line}” "
                                       f"({listed}); write the address instead"))
    return found, problems


def guest_lines(text: str) -> tuple[list[tuple[int, dict[str, str]]], list[FieldError]]:
    """Guests one per line, ``Name; email; phone`` (email or phone may be empty; with
    two parts the second is an email if it has an ``@``, else a phone number)."""
    found, problems = [], []
    for number, line in _lines(text):
        parts = [p.strip() for p in line.split(";")]
        if len(parts) > 3:
            problems.append(FieldError("guests", f"dòng {number}: hãy ghi “Họ tên; email; số điện thoại”",
                                       f"line {number}: write “Name; email; phone”"))
            continue
        try:
            name = check_name(parts[0])
        except DirectoryError:
            problems.append(FieldError("guests", f"dòng {number}: thiếu họ tên, hoặc họ tên quá dài",
                                       f"line {number}: the name is missing or too long"))
            continue
        guest = {"name": name}
        if len(parts) == 2 and parts[1]:
            guest["email" if "@" in parts[1] else "phone"] = parts[1]
        elif len(parts) == 3:
            guest.update({k: v for k, v in (("email", parts[1]), ("phone", parts[2])) if v})
        found.append((number, guest))
    return found, problems


def _people(form: MeetingForm, directory: Sequence[tuple[str, str]]
            ) -> tuple[list[str], list[dict[str, str]], Sources, list[FieldError]]:
    problems = too_many_lines("people", form.value("people")) + too_many_lines("guests", form.value("guests"))
    if problems:
        return [], [], Sources(), problems
    named, problems = people_lines(form.value("people"), directory)
    guests, guest_problems = guest_lines(form.value("guests"))
    sources = Sources([None] * len(form.attendees) + [n for n, _ in named], [n for n, _ in guests])
    return ([*form.attendees, *(a for _, a in named)], [g for _, g in guests], sources,
            problems + guest_problems)


def _minutes(form: MeetingForm) -> tuple[int | None, list[FieldError]]:
    text = form.value("duration").strip()
    if not text:
        return None, []
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= 7 * 24 * 60:
        return None, [FieldError("duration", "phải là số phút, từ 1 đến 10080 (7 ngày)",
                                 "must be a number of minutes from 1 to 10080 (7 days)")]
    return int(text), []


def meeting_mapping(form: MeetingForm, secretary: str, directory: Sequence[tuple[str, str]]
                    ) -> tuple[dict[str, Any], Sources, list[FieldError]]:
    """The new meeting as :func:`invites.spec.spec_from_mapping` reads it, where each
    list entry came from, and the problems only the form can see."""
    data: dict[str, Any] = {key: form.value(key) for key in ("title", "agenda", "location", "chair", "unit")}
    data["secretary"] = secretary
    for key in ("start", "end"):
        if form.value(key).strip():
            data[key] = form.value(key).strip()
    minutes, problems = _minutes(form)
    if minutes is not None:
        data["duration_minutes"] = minutes
    attendees, guests, sources, more = _people(form, directory)
    data.update(attendees=attendees, units=list(form.units), guests=guests)
    return data, sources, problems + more


def changes_mapping(form: MeetingForm, current: Mapping[str, str], directory: Sequence[tuple[str, str]]
                    ) -> tuple[dict[str, Any], Sources, list[FieldError]]:
    """An update as :func:`invites.spec.changes_from_mapping` reads it: the fields whose
    text differs from ``current`` (the meeting as :func:`form_values` writes it), and
    the people to add."""
    data: dict[str, Any] = {}
    for key in ("title", "agenda", "location", "chair", "start", "end"):
        if form.value(key).strip() != current.get(key, "").strip():
            data[key] = form.value(key).strip() if key in ("start", "end") else form.value(key)
    minutes, problems = _minutes(form)
    if minutes is not None:
        data["duration_minutes"] = minutes
    attendees, guests, sources, more = _people(form, directory)
    for key, value in (("add_attendees", attendees), ("add_units", list(form.units)), ("add_guests", guests)):
        if value:
            data[key] = value
    return data, sources, problems + more


def time_text(moment: datetime) -> str:
    """A time as a ``datetime-local`` input holds it, in Vietnam time."""
    return moment.astimezone(VIETNAM).strftime("%Y-%m-%dT%H:%M")


def form_values(title: str, agenda: str, location: str, chair: str, start: datetime, end: datetime) -> dict[str, str]:
    """A meeting's fields as the edit form shows them."""
    return {"title": title, "agenda": agenda, "location": location, "chair": chair, "start": time_text(start),
            "end": time_text(end)}


# ---- the problems of invites, put back next to their fields ------------------------------

_FIELD = re.compile(r"(?:add_)?(attendees|units|guests)(?:\[(\d+)\])?(?:\.name)?(?: \(.*\))?")
_SIMPLE = {"title": "title", "agenda": "agenda", "location": "location", "chair": "chair", "unit": "unit",
           "start": "start", "end": "end", "duration_minutes": "duration"}

# English problem texts of invites.spec, invites.store and mailhub.phones → Vietnamese.
_PHRASES: list[tuple[re.Pattern[str], str]] = [(re.compile(p), vi) for p, vi in (
    (r"required \(or duration_minutes\)", "bắt buộc (hoặc nhập thời lượng)"),
    (r"required", "bắt buộc phải nhập"),
    (r"at most (\d+) characters, got (\d+)", r"tối đa \1 ký tự (đã nhập \2)"),
    (r"control characters are not allowed", "không được chứa ký tự điều khiển"),
    (r"expected a time like .*", "thời gian không hợp lệ; hãy nhập theo dạng 03/12/2026 08:00"),
    (r"must be after start", "phải sau thời gian bắt đầu"),
    (r"a meeting lasts at most 7 days", "một cuộc họp kéo dài tối đa 7 ngày"),
    (r"give end or duration_minutes, not both", "chỉ nhập thời gian kết thúc hoặc thời lượng, không nhập cả hai"),
    (r"expected a positive whole number.*", "phải là số nguyên dương"),
    (r"nobody is invited.*", "chưa mời ai: hãy chọn đơn vị, cán bộ hoặc ghi khách mời"),
    (r"nothing to change.*|nothing changes", "không có gì thay đổi"),
    (r"no unit '(.*)' in the directory", r"không có đơn vị “\1” trong danh bạ"),
    (r"unit (\S+) has no active official", r"đơn vị \1 không có cán bộ nào đang hoạt động"),
    (r"(\S+) is not an official in the directory", r"\1 không phải là cán bộ trong danh bạ"),
    (r"(\S+) is not active", r"\1 đã ngừng hoạt động"),
    (r"give an email or a phone number for (.*)", r"cần email hoặc số điện thoại của \1"),
    (r"phone number '(.*)' has an unexpected character (.*)", r"số điện thoại “\1” có ký tự không hợp lệ \2"),
    (r"phone number '(.*)' is .*", r"số điện thoại “\1” không hợp lệ"),
    (r"phone number '(.*)' does not read as a phone number", r"“\1” không phải là số điện thoại"),
    (r"'(.*)': .*", r"địa chỉ email “\1” không hợp lệ"),
)]


def vietnamese(problem: str) -> str:
    """A problem text of invites in Vietnamese where it is a common one; else as it is."""
    for pattern, vi in _PHRASES:
        if pattern.fullmatch(problem):
            return pattern.sub(vi, problem)
    return problem


def field_errors(lines: str, sources: Sources, source: str = "form") -> list[FieldError]:
    """The lines of an :class:`~mailhub.errors.InputError` from invites (``[source: ]
    field: problem``) as problems next to the form's fields, naming the textarea line
    a name or guest came from."""
    found = []
    for line in lines.splitlines():
        line = line.removeprefix(f"{source}: ")
        name, sep, problem = line.partition(": ")
        if not sep:
            name, problem = "", line
        key, where_vi, where_en = _SIMPLE.get(name, ""), "", ""
        if match := _FIELD.fullmatch(name):
            kind, index = match[1], int(match[2]) if match[2] is not None else None
            key = {"attendees": "attendees", "units": "units", "guests": "guests"}[kind]
            if kind == "attendees" and index is None:
                key = "invitees"
            origin = None
            if kind == "attendees" and index is not None and index < len(sources.attendees):
                origin = sources.attendees[index]
                key = "people" if origin is not None else "attendees"
            elif kind == "guests" and index is not None and index < len(sources.guests):
                origin = sources.guests[index]
            if origin is not None:
                where_vi, where_en = f"dòng {origin}: ", f"line {origin}: "
        found.append(FieldError(key, where_vi + vietnamese(problem), where_en + problem))
    return found


def by_field(errors: Iterable[FieldError]) -> dict[str, list[FieldError]]:
    grouped: dict[str, list[FieldError]] = {}
    for error in errors:
        grouped.setdefault(error.field, []).append(error)
    return grouped
