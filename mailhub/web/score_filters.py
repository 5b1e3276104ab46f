"""What the score pages' GET forms ask for, read and checked: the period (a choice of recent
periods or typed text), the view (units or officials), the group, the unit, a name search and
the page.

Pure: "today" (a Vietnam date) is passed in. A wrong value is not an exception but an error
naming the field, in both languages, which the page shows above its form (never a traceback).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from mailhub.errors import InputError
from mailhub.scoring.results import GROUP_LABELS_VI
from policies.scoring.periods import Period, parse_period

VIEWS = ("unit", "official")
GROUPS = tuple(GROUP_LABELS_VI)  # city, department, district, ward, other
PAGE_SIZE = 100  # officials per page: a city has tens of thousands
MAX_PERIOD = 40
MAX_UNIT = 64
MAX_SEARCH = 100
MAX_PAGE = 100_000
_UNIT_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

# What a person may type, in both languages (the forms of policies.scoring.periods).
FORMS_VI = "2026, 2026-H1, 2026-Q3, 2026-07 hoặc 2026-01-15..2026-03-31"
FORMS_EN = "2026, 2026-H1, 2026-Q3, 2026-07 or 2026-01-15..2026-03-31"

Message = tuple[str, str]  # (Vietnamese, English)


@dataclass(frozen=True)
class Filters:
    """The checked filters. ``period`` is None only when ``errors`` says why; ``typed`` is the
    free text as given (shown back in its field)."""

    period: Period | None
    typed: str
    view: str
    group: str  # "" = every group
    unit: str  # "" = every unit the visitor may see
    search: str
    page: int
    errors: tuple[Message, ...]


def current_quarter(today: date) -> Period:
    return parse_period(f"{today.year}-Q{(today.month - 1) // 3 + 1}")


def period_choices(today: date) -> list[tuple[Message, list[Period]]]:
    """The periods offered in the form, in groups: the current quarter and the four before it,
    the current and last year, their halves and the last six months — only those begun."""
    quarter = (today.month - 1) // 3  # 0-based
    quarters = [parse_period(f"{(quarter - n) // 4 + today.year}-Q{(quarter - n) % 4 + 1}")
                for n in range(5)]
    years = [parse_period(str(today.year - n)) for n in range(2)]
    halves = [parse_period(f"{today.year - y}-H{h}") for y in range(2) for h in (2, 1)]
    months = [parse_period(f"{(today.month - 1 - n) // 12 + today.year}-{(today.month - 1 - n) % 12 + 1:02d}")
              for n in range(6)]
    groups = [(("Quý", "Quarters"), quarters), (("Năm", "Years"), years),
              (("6 tháng", "Half-years"), halves), (("Tháng", "Months"), months)]
    return [(label, [p for p in periods if p.start <= today]) for label, periods in groups]


def read_period(text: str, today: date) -> tuple[Period | None, Message | None]:
    """The period ``text`` names, or the error to show for the field "Kỳ"."""
    text = text.strip()
    if len(text) > MAX_PERIOD:
        return None, (f"Kỳ: quá dài (tối đa {MAX_PERIOD} ký tự).",
                      f"Period: too long (at most {MAX_PERIOD} characters).")
    try:
        period = parse_period(text)
    except InputError:
        return None, (f"Kỳ: “{text}” không hợp lệ; nhập theo dạng {FORMS_VI}.",
                      f"Period: “{text}” is not valid; type it as {FORMS_EN}.")
    if period.start > today:
        return None, (f"Kỳ: {period.label_vi} chưa bắt đầu (bắt đầu {period.start:%d/%m/%Y}).",
                      f"Period: {period.label_en} has not begun (it starts {period.start:%d/%m/%Y}).")
    return period, None


def read_filters(params: Mapping[str, str], today: date) -> Filters:
    """Read the query of a score page. ``other`` (typed text) wins over ``period`` (the select);
    neither gives the current quarter."""
    errors: list[Message] = []
    typed = params.get("other", "").strip()[:MAX_PERIOD + 1]
    wanted = typed or params.get("period", "").strip()
    period, problem = read_period(wanted, today) if wanted else (current_quarter(today), None)
    if problem:
        errors.append(problem)

    view = params.get("view", "unit") or "unit"
    if view not in VIEWS:
        errors.append(("Xem theo: chọn “đơn vị” hoặc “cán bộ”.", "View by: choose “unit” or “official”."))
        view = "unit"
    group = params.get("group", "")
    if group and group not in GROUPS:
        errors.append(("Nhóm: không có nhóm này.", "Group: no such group."))
        group = ""
    unit = params.get("unit", "").strip()
    if unit and (len(unit) > MAX_UNIT or not _UNIT_CODE.fullmatch(unit)):
        errors.append(("Đơn vị: mã đơn vị không hợp lệ.", "Unit: not a valid unit code."))
        unit = ""
    search = " ".join(params.get("q", "").split())
    if len(search) > MAX_SEARCH:
        errors.append((f"Tìm theo tên: tối đa {MAX_SEARCH} ký tự.", f"Search by name: at most {MAX_SEARCH} characters."))
        search = search[:MAX_SEARCH]
    page_text = params.get("page", "1").strip() or "1"
    page = int(page_text) if page_text.isdigit() and len(page_text) <= 6 else 0
    if not 1 <= page <= MAX_PAGE:
        errors.append(("Trang: phải là số nguyên dương.", "Page: must be a positive whole number."))
        page = 1
    return Filters(period, typed, view, group, unit, search, page, tuple(errors))


def read_year(text: str, today: date) -> tuple[int | None, Message | None]:
    """The year of a trend chart (2000 up to this year)."""
    text = text.strip()
    if not (text.isdigit() and len(text) == 4 and 2000 <= int(text) <= today.year):
        return None, (f"Năm: nhập năm từ 2000 đến {today.year}.", f"Year: give a year from 2000 to {today.year}.")
    return int(text), None


def quarters_of(year: int, today: date) -> list[Period]:
    """The quarters of ``year`` that have begun by ``today``."""
    return [p for p in (parse_period(f"{year}-Q{q}") for q in range(1, 5)) if p.start <= today]
