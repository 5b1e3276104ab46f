"""A period's scores as the console's tables show them: rows of text already written for the
page's language (a decimal comma in Vietnamese), filtered by group and name, officials a page
at a time.

Reads :class:`~mailhub.scoring.results.PeriodScores` as the scoring engine made it (the
visitor's share, cut by :func:`mailhub.scoring.access.visible` before it gets here) and decides
no figure: points, ranks and explanations are the engine's. Vietnamese explanations are the
engine's own lines (those HR's files carry); the per-indicator figures beside them are written
in the page's language.
"""
from __future__ import annotations

import functools
import math
import unicodedata
from dataclasses import dataclass
from typing import Any

from mailhub.scoring.charts import format_count, format_number, format_percent, group_label
from mailhub.scoring.results import IndicatorInfo, OfficialResult, PeriodScores, UnitResult, group_order
from mailhub.templating import vn_time
from mailhub.web.pages import translator
from policies.scoring.formula import SCORED, Part, shown

DASH = "—"


@functools.lru_cache(maxsize=200_000)
def fold(text: str) -> str:
    """``text`` for a search that ignores case and Vietnamese diacritics: "Nguyễn Đức" and
    "nguyen duc" fold alike."""
    text = text.replace("đ", "d").replace("Đ", "D")
    bare = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return bare.casefold()


def number(value: float | None, lang: str) -> str:
    return DASH if value is None else format_number(value, lang)


@dataclass(frozen=True)
class PartView:
    """One indicator of a score: its counts, rate against target and points."""

    code: str
    name: str
    counts: str
    rate: str
    target: str
    points: str
    weight: str
    applies: bool


def parts_view(parts: tuple[Part, ...], indicators: dict[str, IndicatorInfo], lang: str,
               counted: bool = True) -> list[PartView]:
    """``counted``: False when the score has no total (its parts' points count towards nothing)."""
    views = []
    for p in parts:
        info = indicators.get(p.code)
        name = (info.name_vi if lang == "vi" else info.name_en) if info else p.code
        rate = format_percent(p.rate, lang) if p.applies and p.rate is not None else DASH
        views.append(PartView(p.code, name, f"{format_count(p.numerator, lang)}/{format_count(p.denominator, lang)}",
                              rate, format_number(p.target * 100, lang) + "%",
                              format_number(p.points, lang) if p.applies and counted else DASH,
                              format_number(p.effective_weight if p.applies else p.weight, lang), p.applies))
    return views


def indicator_map(scores: PeriodScores, level: str) -> dict[str, IndicatorInfo]:
    return {i.code: i for i in scores.indicators if i.level == level}


def official_row(o: OfficialResult, indicators: dict[str, IndicatorInfo], lang: str) -> dict[str, Any]:
    t = translator(lang)
    s = o.score
    scored = s.status == SCORED
    parts = parts_view(s.parts, indicators, lang, counted=scored)
    by_code = {p.code: p for p in parts}
    flags: list[tuple[str, str]] = []  # (text, badge class)
    if not scored:
        flags.append((t("Không đủ dữ liệu", "Insufficient data"), "bad"))
    if o.bursts:
        flags.append((t("Cần xem xét", "To review"), "wait"))
    if s.deduction_cases:
        flags.append((t(f"Trừ điểm: {s.deduction_cases} trường hợp", f"Deduction: {s.deduction_cases} case(s)"), ""))
    return {
        "email": o.email, "name": o.name, "unit": o.unit, "unit_name": o.unit_name,
        "days": format_count(o.days_counted, lang), "scored": scored,
        "total": number(s.total, lang) if scored else DASH,
        "deduction": number(s.deduction, lang) if s.deduction else DASH,
        "points": [by_code[c].points if c in by_code else DASH for c in indicators],
        "parts": parts, "flags": flags,
        "explanation": list(s.explain_vi()) + list(s.notes) + [b.reason_vi for b in o.bursts],
    }


def unit_row(u: UnitResult, indicators: dict[str, IndicatorInfo], lang: str) -> dict[str, Any]:
    t = translator(lang)
    s = u.score
    parts = parts_view(s.unit_parts, indicators, lang)
    by_code = {p.code: p for p in parts}
    return {
        "code": u.code, "name": s.name, "kind": u.kind, "group": group_label(u.kind, lang),
        "rank": format_count(u.rank, lang) if u.rank else DASH,
        "group_size": format_count(u.group_size, lang),
        "headcount": format_count(s.headcount, lang), "scored_count": format_count(s.scored, lang),
        "insufficient": format_count(s.insufficient, lang),
        "officials_points": number(s.officials_points, lang),
        "points": [by_code[c].points if c in by_code else DASH for c in indicators],
        "total": number(s.total, lang), "parts": parts,
        "flags": [(t("Không đủ dữ liệu", "Insufficient data"), "bad")] if s.total is None else [],
        "explanation": list(s.explanation_vi),
    }


def unit_groups(scores: PeriodScores, group: str, search: str, lang: str) -> list[dict[str, Any]]:
    """The units, one table per comparable group (ranks are within a group), ranked first."""
    indicators = indicator_map(scores, "unit")
    needle = fold(search)
    chosen = [u for u in scores.units if (not group or u.kind == group)
              and (not needle or needle in fold(f"{u.code} {u.score.name}"))]
    chosen.sort(key=lambda u: (group_order(u.kind), u.kind, u.rank == 0, u.rank, u.code))
    groups: list[dict[str, Any]] = []
    for u in chosen:
        if not groups or groups[-1]["kind"] != u.kind:
            groups.append({"kind": u.kind, "label": group_label(u.kind, lang), "rows": []})
        groups[-1]["rows"].append(unit_row(u, indicators, lang))
    return groups


@dataclass(frozen=True)
class OfficialsPage:
    rows: list[dict[str, Any]]
    found: int
    page: int
    pages: int
    first: int  # 1-based position of the first row shown (0 when none)
    last: int


def officials_page(scores: PeriodScores, group: str, search: str, page: int, lang: str,
                   size: int) -> OfficialsPage:
    """Officials by total, highest first (those with insufficient data last), then name; only
    page ``page`` (of ``size`` rows) is turned into rows. A page past the end shows the last."""
    kinds = {u.code: u.kind for u in scores.units}
    needle = fold(search)
    chosen = [o for o in scores.officials if (not group or kinds.get(o.unit, "other") == group)
              and (not needle or needle in fold(f"{o.name} {o.email} {o.unit} {o.unit_name}"))]
    chosen.sort(key=lambda o: (o.score.status != SCORED,
                               -shown(o.score.total) if o.score.status == SCORED else 0, fold(o.name), o.email))
    pages = max(1, math.ceil(len(chosen) / size))
    page = min(page, pages)
    start = (page - 1) * size
    shown_rows = chosen[start:start + size]
    indicators = indicator_map(scores, "official")
    return OfficialsPage([official_row(o, indicators, lang) for o in shown_rows], len(chosen), page, pages,
                         start + 1 if shown_rows else 0, start + len(shown_rows))


def facts(scores: PeriodScores, lang: str) -> dict[str, Any]:
    """What heads the results: the period, model version, when the data was last updated and
    the scores computed, whether the period is closed (by whom, when)."""
    t = translator(lang)
    return {
        "period": scores.period.label_vi if lang == "vi" else scores.period.label_en,
        "label": scores.period.label,
        "start": f"{scores.period.start:%d/%m/%Y}", "end": f"{scores.period.end:%d/%m/%Y}",
        "working_days": format_count(scores.working_days, lang),
        "model_version": scores.model_version,
        "data_until": vn_time(scores.data_until) if scores.data_until else t("chưa có dữ liệu", "no data yet"),
        "computed_at": vn_time(scores.computed_at),
        "closed": scores.closed, "closed_by": scores.closed_by or "",
        "closed_at": vn_time(scores.closed_at) if scores.closed_at else "",
    }


def usage_rows(o: OfficialResult, lang: str) -> list[tuple[str, str]]:
    """The counts behind an official's score, as (label, value) in the page's language."""
    t = translator(lang)
    a = o.activity

    def n(value: int) -> str:
        return format_count(value, lang)

    return [
        (t("Thư gửi qua hệ thống thư công vụ", "Mail sent through the city mail system"), n(a.sent)),
        (t("Lần gửi bị từ chối vì gửi bằng địa chỉ ngoài hệ thống hoặc của người khác",
           "Attempts refused for sending as an outside or someone else's address"), n(a.refused_outside)),
        (t("Ngày làm việc có gửi thư / ngày làm việc được tính", "Working days with mail sent / working days counted"),
         f"{n(a.active_days)}/{n(o.days_counted)}"),
        (t("Văn bản gửi UBND / có chữ ký số hợp lệ", "Documents submitted / with a valid digital signature"),
         f"{n(a.documents)}/{n(a.documents_valid)}"),
        (t("Cuộc họp tổ chức / có giấy mời điện tử", "Meetings organised / with electronic invitations"),
         f"{n(a.meetings)}/{n(a.meetings_electronic)}"),
        (t("Trường hợp dùng hệ thống thư ngoài đã được xác nhận", "Confirmed uses of an outside mail system"),
         n(a.deduction_cases)),
    ]
