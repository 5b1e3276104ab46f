"""Finding officials for the directory page: a checked filter from the query string, and
one page of matching officials counted and read in SQL (a city has tens of thousands).

:func:`mailhub.directory.list_officials` reads every official of a unit; this adds what a
page needs on top of it (text search, active or not, sub-units, offset and limit).
"""
from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import func, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from mailhub import directory
from mailhub.errors import DirectoryError
from mailhub.models import Official, Unit

PAGE_SIZE = 50
MAX_TEXT = 100
MAX_PAGE = 100_000
ACTIVE_CHOICES = ("", "yes", "no")  # any, active only, inactive only


@dataclass(frozen=True)
class OfficialFilter:
    unit: str = ""
    subunits: bool = False  # the unit's sub-units too (a district and its wards)
    text: str = ""  # part of the email, the name or the phone
    active: str = ""
    page: int = 1

    def query(self, page: int | None = None) -> dict[str, str]:
        """The filter as query parameters (empty ones left out), for links to other pages."""
        values = {"unit": self.unit, "subunits": "1" if self.subunits else "", "q": self.text,
                  "active": self.active, "page": str(page or self.page) if (page or self.page) > 1 else ""}
        return {k: v for k, v in values.items() if v}


@dataclass(frozen=True)
class FilterProblem:
    field: str  # the query parameter
    vi: str
    en: str


def parse_filter(params: Mapping[str, str], unit_codes: set[str]) -> tuple[OfficialFilter, list[FilterProblem]]:
    """The filter from a query string; a bad value is left out and named in the problems."""
    problems: list[FilterProblem] = []
    unit = params.get("unit", "").strip()
    if unit:
        try:
            unit = directory.check_unit_code(unit)
        except DirectoryError:
            unit = ""
            problems.append(FilterProblem("unit", "Mã đơn vị không hợp lệ.", "Not a valid unit code."))
        if unit and unit not in unit_codes:
            problems.append(FilterProblem("unit", f"Không có đơn vị mã {unit}.", f"There is no unit {unit}."))
            unit = ""
    text = unicodedata.normalize("NFC", params.get("q", "")).strip()
    if len(text) > MAX_TEXT or any(unicodedata.category(c) == "Cc" for c in text):
        problems.append(FilterProblem("q", f"Từ khóa tìm kiếm tối đa {MAX_TEXT} ký tự, không có ký tự điều khiển.",
                                      f"The search text takes at most {MAX_TEXT} characters, no control characters."))
        text = ""
    active = params.get("active", "")
    if active not in ACTIVE_CHOICES:
        problems.append(FilterProblem("active", "Trạng thái không hợp lệ.", "Not a valid status."))
        active = ""
    raw_page = params.get("page", "") or "1"
    page = int(raw_page) if raw_page.isascii() and raw_page.isdigit() and len(raw_page) <= 6 else 0
    if not 1 <= page <= MAX_PAGE:
        problems.append(FilterProblem("page", "Số trang không hợp lệ.", "Not a valid page number."))
        page = 1
    return OfficialFilter(unit, params.get("subunits") == "1" and bool(unit), text, active, page), problems


def descendants(units: list[Unit], code: str) -> list[str]:
    """``code`` and every unit below it in the tree."""
    children: dict[str | None, list[str]] = {}
    for unit in units:
        children.setdefault(unit.parent_code, []).append(unit.code)
    found, todo = [], [code]
    while todo:
        current = todo.pop()
        if current not in found:
            found.append(current)
            todo.extend(children.get(current, []))
    return found


@dataclass(frozen=True)
class OfficialsPage:
    officials: list[Official]
    total: int
    page: int
    pages: int


def find_officials(engine: Engine, chosen: OfficialFilter, unit_codes: list[str] | None) -> OfficialsPage:
    """One page of the officials matching ``chosen``, ordered by unit and email.

    ``unit_codes``: the units to look in (None: all). The text matches part of the email
    or the phone, or of the name as typed or in lower case (SQLite lower-cases ASCII only,
    so "đỗ" does not find "Đỗ" there; PostgreSQL does)."""
    query = select(Official)
    if unit_codes is not None:
        query = query.where(Official.unit_code.in_(unit_codes))
    if chosen.text:
        lower = chosen.text.lower()
        query = query.where(or_(Official.email.contains(lower, autoescape=True),
                                Official.full_name.contains(chosen.text, autoescape=True),
                                func.lower(Official.full_name).contains(lower, autoescape=True),
                                Official.phone.contains(chosen.text, autoescape=True)))
    if chosen.active:
        query = query.where(Official.active.is_(chosen.active == "yes"))
    with Session(engine) as session:
        total = session.exec(select(func.count()).select_from(query.subquery())).one()
        pages = max(1, -(-total // PAGE_SIZE))
        page = min(chosen.page, pages)
        officials = list(session.exec(query.order_by(Official.unit_code, Official.email)
                                      .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)))
    return OfficialsPage(officials, total, page, pages)
