"""The score pages (``/console/scores``, ``/console/me``): HR's usage scores in the console.

- ``GET /console/scores`` (hr, leader, admin): a period's scores by unit (ranked within each
  group, with the ranking charts and the year's trend) or by official (a page of 100 at a
  time), filtered by group, unit and name, each row with the explanation of its score; the model
  version, when the data was last updated, whether the period is closed.
- ``GET /console/scores/chart/ranking.svg`` and ``…/trend.svg``: the charts, as SVG images.
- ``GET /console/scores/download.xlsx``, ``download.csv``, ``report.pdf``: the exporters'
  files for the period and unit chosen.
- ``GET /console/me`` (every official): their own usage and score.

What a visitor sees is what :func:`mailhub.scoring.access.visible` gives them, the rule the
JSON API applies: HR and administrators everything, a unit leader their unit and the units
under it. Figures come from :mod:`mailhub.scoring.periodstore` through a per-process cache
(:mod:`mailhub.web.score_cache`); this module reads the query, asks, and renders.
"""
from __future__ import annotations

import asyncio
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from mailhub.models import utcnow
from mailhub.scoring import access
from mailhub.scoring.charts import chart_units, group_label
from mailhub.scoring.results import PeriodScores, group_order
from mailhub.templating import VIETNAM
from mailhub.web import score_files, score_view
from mailhub.web.pages import Console, Visitor, language, secure_headers, translator
from mailhub.web.score_cache import PeriodCache
from mailhub.web.score_charts import chart_trend, trend_point
from mailhub.web.score_filters import (GROUPS, PAGE_SIZE, Filters, Message, period_choices, quarters_of,
                                       read_filters, read_year)

VIEWERS = ("hr", "leader", "admin")


def _today():
    return utcnow().astimezone(VIETNAM).date()


def _sees_all(who: Visitor) -> bool:
    return bool(who.roles & access.SEE_ALL)


def _period_form(f: Filters, request: Request, today) -> dict:
    """The period fields' values: the offered periods, the one selected (a period not offered,
    e.g. a date range from a link, is added as its own option) and the typed text."""
    choices = period_choices(today)
    offered = {p.label for _, periods in choices for p in periods}
    selected = f.period.label if f.period else request.query_params.get("period", "")[:40]
    return dict(choices=choices, selected=selected, typed=f.typed,
                custom=selected if selected and selected not in offered else "")


def _indicators(scores: PeriodScores, level: str, lang: str) -> list[tuple[str, str]]:
    return [(i.code, i.name_vi if lang == "vi" else i.name_en)
            for i in score_view.indicator_map(scores, level).values()]


def router(console: Console) -> APIRouter:
    router = APIRouter()
    cache = PeriodCache(console.engine, console.config)
    pdf_turn = asyncio.Semaphore(1)  # a city's PDF is seconds of CPU: one at a time per process

    def refused(request: Request, who: Visitor, message: Message | list[Message], status: int = 422) -> Response:
        messages = message if isinstance(message, list) else [message]
        return console.refusal(request, who, status, " ".join(m[0] for m in messages),
                               " ".join(m[1] for m in messages))

    def forbidden(request: Request, who: Visitor) -> Response:
        return console.refusal(request, who, 403, "Bạn không được xem điểm của đơn vị này.",
                               "You may not see this unit's scores.")

    def narrow(scores: PeriodScores, who: Visitor, unit: str) -> PeriodScores | Message:
        """The visitor's share of ``scores``, narrowed to ``unit``; an unknown unit is an error
        for the field; a unit they may not see raises NotAllowed."""
        if unit and not any(u.code == unit for u in scores.units):
            return (f"Đơn vị: không có đơn vị mã “{unit}” trong kỳ này.", f"Unit: no unit “{unit}” in this period.")
        return access.visible(scores, who.email, who.unit, who.roles, unit or None)

    async def load(request: Request, who: Visitor, f: Filters) -> PeriodScores | Response:
        """The visitor's share for a chart or a download: checked filters or the refusal."""
        if f.errors:
            return refused(request, who, list(f.errors))
        scores = await asyncio.to_thread(cache.scores, f.period)
        try:
            shown = narrow(scores, who, f.unit)
        except access.NotAllowed:
            return forbidden(request, who)
        return refused(request, who, shown) if isinstance(shown, tuple) else shown

    @router.get("/scores")
    async def scores_page(request: Request, who: Visitor = Depends(console.allow(*VIEWERS))) -> Response:
        lang, today = language(request), _today()
        t = translator(lang)
        f = read_filters(request.query_params, today)
        values = dict(f=f, period_form=_period_form(f, request, today), units=[], results=None,
                      views=[("unit", t("Đơn vị", "Units")), ("official", t("Cán bộ", "Officials"))],
                      groups=[(g, group_label(g, lang)) for g in GROUPS], errors=[t(*e) for e in f.errors])
        if f.errors:
            return console.render(request, who, "scores/index", 422, **values)
        scores = await asyncio.to_thread(cache.scores, f.period)
        mine = access.visible(scores, who.email, who.unit, who.roles)
        values["units"] = [(u.code, u.score.name) for u in sorted(
            mine.units, key=lambda u: (group_order(u.kind), u.kind, u.code))]
        try:
            shown = narrow(scores, who, f.unit)
        except access.NotAllowed:
            return forbidden(request, who)
        if isinstance(shown, tuple):
            values["errors"] = [t(*shown)]
            return console.render(request, who, "scores/index", 422, **values)

        query = {k: v for k, v in (("period", f.period.label), ("view", f.view), ("group", f.group),
                                   ("unit", f.unit), ("q", f.search)) if v}
        files = {k: v for k, v in (("period", f.period.label), ("unit", f.unit)) if v}
        values["results"] = results = dict(
            facts=score_view.facts(scores, lang),
            xlsx=urlencode(files), csv=urlencode(files | {"view": f.view}), pdf=urlencode(files),
            official_indicators=_indicators(scores, "official", lang),
            unit_indicators=_indicators(scores, "unit", lang))
        if f.view == "official":
            page = score_view.officials_page(shown, f.group, f.search, f.page, lang, PAGE_SIZE)
            results["page"] = page
            results["pager"] = [(n, urlencode(query | {"page": n})) for n in (page.page - 1, page.page + 1)
                                if 1 <= n <= page.pages]
        else:
            groups = score_view.unit_groups(shown, f.group, f.search, lang)
            for g in groups:
                g["chart"] = urlencode({k: v for k, v in (("period", f.period.label), ("group", g["kind"]),
                                                          ("unit", f.unit)) if v})
            results["groups"] = groups
            results.update(await _trend(who, f, lang, request.query_params.get("trend") == "1",
                                        urlencode(query | {"trend": "1"})))
        return console.render(request, who, "scores/index", **values)

    async def _trend(who: Visitor, f: Filters, lang: str, asked: bool, ask: str) -> dict:
        """The trend of the selected period's year: figures for the table, the chart's query.
        Quarters that would have to be computed (open and not cached: seconds each for a big
        city) are computed only when asked (``trend=1``); until then the page offers a link."""
        year = f.period.start.year
        unit = f.unit or (None if _sees_all(who) else who.unit)
        quarters = quarters_of(year, _today())
        missing = 0 if asked else await asyncio.to_thread(
            lambda: sum(not cache.ready(q, "trend") for q in quarters if q.label != f.period.label))
        if missing:
            return {"trend": None, "trend_missing": missing, "trend_ask": ask}
        points = await asyncio.to_thread(lambda: [cache.derived(q, "trend", trend_point) for q in quarters])
        return {"trend_chart": urlencode({"year": year, **({"unit": unit} if unit else {})}),
                "trend_city": _sees_all(who), "trend_unit": unit,
                "trend_unit_name": next((p.names[unit] for p in reversed(points) if unit in p.names), unit or ""),
                "trend": [{"label": p.label_in(lang), "city": score_view.number(p.city, lang),
                           "unit": score_view.number(p.units.get(unit) if unit else None, lang)}
                          for p in points]}

    @router.get("/scores/chart/ranking.svg")
    async def ranking_chart(request: Request, who: Visitor = Depends(console.allow(*VIEWERS))) -> Response:
        f = read_filters(request.query_params, _today())
        group = request.query_params.get("group", "")
        if group not in GROUPS:
            return refused(request, who, ("Nhóm: chọn một nhóm đơn vị.", "Group: choose a group of units."))
        shown = await load(request, who, f)
        if isinstance(shown, Response):
            return shown
        svg = await asyncio.to_thread(chart_units, shown, group, language(request))
        return secure_headers(Response(svg, media_type="image/svg+xml"))

    @router.get("/scores/chart/trend.svg")
    async def trend_chart(request: Request, who: Visitor = Depends(console.allow(*VIEWERS))) -> Response:
        today, lang = _today(), language(request)
        year, problem = read_year(request.query_params.get("year", str(today.year)), today)
        f = read_filters({"unit": request.query_params.get("unit", "")}, today)
        if problem or f.errors:
            return refused(request, who, [problem] if problem else list(f.errors))
        quarters = quarters_of(year, today)
        unit = f.unit or (None if _sees_all(who) else who.unit)
        if unit and not _sees_all(who):
            latest = await asyncio.to_thread(cache.scores, quarters[-1])
            try:
                access.visible(latest, who.email, who.unit, who.roles, unit)
            except access.NotAllowed:
                return forbidden(request, who)
        points = await asyncio.to_thread(lambda: [cache.derived(q, "trend", trend_point) for q in quarters])
        svg = await asyncio.to_thread(chart_trend, points, lang, city=_sees_all(who), unit=unit)
        return secure_headers(Response(svg, media_type="image/svg+xml"))

    async def download(request: Request, who: Visitor, kind: str) -> Response:
        f = read_filters(request.query_params, _today())
        shown = await load(request, who, f)
        if isinstance(shown, Response):
            return shown
        # The exporters' summary names the scope; a leader's is their own unit.
        scope = f.unit or (None if _sees_all(who) else who.unit)
        scope = scope if any(u.code == scope for u in shown.units) else None
        label = f.period.label
        if kind == "xlsx":
            data = await asyncio.to_thread(score_files.xlsx_bytes, shown, scope)
            name, media = score_files.filename("diem-thi-dua", label, f.unit, ".xlsx"), score_files.XLSX
        elif kind == "csv":
            data = await asyncio.to_thread(score_files.csv_bytes, shown, f.view, scope)
            stem = "diem-thi-dua-can-bo" if f.view == "official" else "diem-thi-dua-don-vi"
            name, media = score_files.filename(stem, label, f.unit, ".csv"), score_files.CSV
        else:
            async with pdf_turn:
                data = await asyncio.to_thread(score_files.pdf_bytes, shown, language(request))
            name, media = score_files.filename("bao-cao-thi-dua", label, f.unit, ".pdf"), score_files.PDF
        return secure_headers(Response(data, media_type=media,
                                       headers={"Content-Disposition": score_files.disposition(name)}))

    @router.get("/scores/download.xlsx")
    async def download_xlsx(request: Request, who: Visitor = Depends(console.allow(*VIEWERS))) -> Response:
        return await download(request, who, "xlsx")

    @router.get("/scores/download.csv")
    async def download_csv(request: Request, who: Visitor = Depends(console.allow(*VIEWERS))) -> Response:
        return await download(request, who, "csv")

    @router.get("/scores/report.pdf")  # the city's quarterly report: HR's document, not a unit's
    async def download_pdf(request: Request, who: Visitor = Depends(console.allow("hr", "admin"))) -> Response:
        return await download(request, who, "pdf")

    @router.get("/me")
    async def me(request: Request, who: Visitor = Depends(console.allow())) -> Response:
        lang, today = language(request), _today()
        t = translator(lang)
        f = read_filters({k: request.query_params.get(k, "") for k in ("period", "other")}, today)
        values = dict(f=f, period_form=_period_form(f, request, today), errors=[t(*e) for e in f.errors],
                      result=None)
        if f.errors:
            return console.render(request, who, "me", 422, **values)
        scores = await asyncio.to_thread(cache.scores, f.period)
        own = scores.for_official(who.email).officials
        try:  # the unit's score, if the visitor's roles show it (leaders, HR)
            unit = next((u for u in access.visible(scores, who.email, who.unit, who.roles, who.unit).units
                         if u.code == who.unit), None)
        except access.NotAllowed:
            unit = None
        o = own[0] if own else None
        values["result"] = dict(
            facts=score_view.facts(scores, lang), official=o,
            row=score_view.official_row(o, score_view.indicator_map(scores, "official"), lang) if o else None,
            usage=score_view.usage_rows(o, lang) if o else [],
            max_total=score_view.number(o.score.max_total, lang) if o else "",
            unit=score_view.unit_row(unit, score_view.indicator_map(scores, "unit"), lang) if unit else None)
        return console.render(request, who, "me", **values)

    return router
