"""The quarterly report on the use of the city email system: one HTML document, or its PDF.

Why it exists: letter 2033/UBND-CNN has every agency report quarterly to the Department of
Information and Communications (Sở TTTT) on its use of the city email, and 1616/UBND-THCB sets
the targets for documents sent electronically. This module puts one period's
:class:`~mailhub.scoring.results.PeriodScores` into that form.

What the report holds (``templates/reports/quarterly.html.j2``): the reporting facts, the city's
rates against the targets of ``scores.indicators``, the charts of :mod:`mailhub.scoring.charts`,
per comparable group a chart and a table of its units, the units without a score and why, the
officials flagged for review (bursts) and how points are computed. It lists units, never every
official — 50,000 officials would be a thousand pages: only flagged officials are named, at most
:data:`MAX_FLAGGED`, with a count of the rest.

The document is self-contained: CSS inline, charts inline SVG, nothing to fetch, so WeasyPrint
loads no resource and a browser shows the file offline. The template is autoescaped: names from
the directory CSV arrive as text and stay text. The one piece of markup handed to it is the
charts' SVG, which matplotlib writes (text drawn as paths, comments escaped).

Numbers are formatted here for the locale (decimal comma in Vietnamese); every fixed text, both
languages, lives in the template (``templates/reports/_text.html.j2``).
"""
from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

from markupsafe import Markup

from mailhub.atomicfile import write_atomic
from mailhub.errors import InputError
from mailhub.scoring.charts import (LOCALES, CityRate, chart_distribution, chart_indicators, chart_units,
                                    city_rates, format_count, format_number, format_percent, group_label)
from mailhub.scoring.results import OfficialResult, PeriodScores, UnitResult, group_order
from mailhub.templating import environment
from policies.scoring.formula import SCORED, shown
from policies.scoring.periods import Period

__all__ = ["MAX_FLAGGED", "SUFFIXES", "period_label", "render_html", "write_report"]

TEMPLATE = "reports/quarterly.html.j2"
SUFFIXES = (".html", ".pdf")
# Flagged officials named in the report; the rest are counted (the CSV/XLSX have every one).
MAX_FLAGGED = 50
# Units drawn per group chart; the group's table lists them all.
CHART_UNITS = 30


def render_html(scores: PeriodScores, locale: str = "vi") -> str:
    """The report as one HTML document, fixed text in ``locale`` (``"vi"`` or ``"en"``).

    Trusts ``scores`` (built by the scoring engine or read back from a closed period). Checks
    the locale (``ValueError``). Every value is escaped by the template.
    """
    if locale not in LOCALES:
        raise ValueError(f"locale must be one of {LOCALES}, got {locale!r}")
    return environment().get_template(TEMPLATE).render(_context(scores, locale))


def write_report(scores: PeriodScores, path: str | os.PathLike[str], locale: str = "vi") -> str:
    """Write the report to ``path`` as HTML (``.html``) or PDF (``.pdf``, by WeasyPrint) and
    return the path written, as text.

    Checks the suffix first, before any work: another one is an
    :class:`~mailhub.errors.InputError` naming the path and the accepted suffixes. The file is
    written atomically (a reader never sees half a report); a new file is created ``0600``
    because it names flagged officials, a replaced file keeps its mode.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(f"{target}: cannot write a report with suffix {suffix or '(none)'!r}; "
                         f"use {' or '.join(SUFFIXES)}")
    html = render_html(scores, locale)
    if suffix == ".pdf":
        # Imported here: WeasyPrint loads Pango when imported, which the HTML report and the
        # rest of mailhub do not need.
        from weasyprint import HTML
        data = HTML(string=html).write_pdf()
    else:
        data = html.encode("utf-8")
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o600
    write_atomic(target, data, mode)
    return str(target)


def period_label(period: Period, locale: str = "vi") -> str:
    """The period as a report title writes it: ``Quý III/2026`` (``Period.label_vi``) or, in
    English (``Period.label_en``), ``Q3 2026``."""
    if locale not in LOCALES:
        raise ValueError(f"locale must be one of {LOCALES}, got {locale!r}")
    return period.label_vi if locale == "vi" else period.label_en


def _context(scores: PeriodScores, locale: str) -> dict[str, Any]:
    officials_scored = sum(1 for o in scores.officials if o.score.status == SCORED)
    unit_codes = tuple(i.code for i in scores.indicators if i.level == "unit")
    flagged = sorted((o for o in scores.officials if o.bursts), key=_suspicion)
    groups = _groups(scores.units)
    return {
        "locale": locale,
        "period": period_label(scores.period, locale),
        "facts": {
            "start": _day(scores.period.start), "end": _day(scores.period.end),
            "working_days": format_count(scores.working_days, locale),
            "model_version": scores.model_version, "data_until": scores.data_until,
            "computed_at": scores.computed_at, "closed_at": scores.closed_at,
            "closed_by": scores.closed_by,
        },
        "summary": {
            "officials": format_count(len(scores.officials), locale),
            "officials_scored": format_count(officials_scored, locale),
            "officials_insufficient": format_count(len(scores.officials) - officials_scored, locale),
            "units": format_count(len(scores.units), locale),
            "units_scored": format_count(sum(1 for u in scores.units if u.score.total is not None),
                                         locale),
            "registers": format_count(sum(1 for u in scores.units if u.issued is not None), locale),
        },
        "city": [_city_row(r, locale) for r in city_rates(scores)],
        "chart_indicators": Markup(chart_indicators(scores, locale)),
        "chart_distribution": Markup(chart_distribution(scores, locale)),
        "unit_indicators": [{"code": i.code, "name": i.name_vi if locale == "vi" else i.name_en}
                            for i in scores.indicators if i.level == "unit"],
        "groups": [_group(scores, kind, unit_codes, locale) for kind in groups],
        "unscored": [_unscored_row(u, locale)
                     for u in sorted(scores.units, key=lambda u: (groups.index(u.kind), u.code))
                     if u.score.total is None],
        "flagged": [_flagged_row(o, locale) for o in flagged[:MAX_FLAGGED]],
        "flagged_more": (format_count(len(flagged) - MAX_FLAGGED, locale)
                         if len(flagged) > MAX_FLAGGED else None),
        "min_days": max((o.score.min_days for o in scores.officials), default=None),
        "model": [{"code": i.code, "name": i.name_vi if locale == "vi" else i.name_en,
                   "level": i.level, "weight": format_number(i.weight, locale),
                   "target": format_number(i.target * 100, locale) + "%"}
                  for i in scores.indicators],
    }


def _city_row(r: CityRate, locale: str) -> dict[str, Any]:
    # Compared as shown: a reader who sees "60,0%" against a 60% target must read "met".
    met = None if r.rate is None else shown(r.rate * 100) >= shown(r.target * 100)
    return {"code": r.code, "name": r.name(locale), "level": r.level,
            "numerator": format_count(r.numerator, locale),
            "denominator": format_count(r.denominator, locale),
            "rate": None if r.rate is None else format_percent(r.rate, locale),
            "target": format_number(r.target * 100, locale) + "%", "met": met}


def _group(scores: PeriodScores, kind: str, unit_codes: tuple[str, ...],
           locale: str) -> dict[str, Any]:
    units = sorted((u for u in scores.units if u.kind == kind), key=_unit_order)
    scored = sum(1 for u in units if u.score.total is not None)
    return {
        "label": group_label(kind, locale),
        "count": format_count(len(units), locale),
        "scored": format_count(scored, locale),
        "chart": Markup(chart_units(scores, kind, locale, limit=CHART_UNITS)) if scored else None,
        "rows": [_unit_row(u, unit_codes, locale) for u in units],
    }


def _unit_row(u: UnitResult, unit_codes: tuple[str, ...], locale: str) -> dict[str, Any]:
    s = u.score
    parts = {p.code: p for p in s.unit_parts}
    return {
        "rank": format_count(u.rank, locale) if u.rank else "—",
        "name": s.name, "code": u.code,
        "headcount": format_count(s.headcount, locale),
        "scored": format_count(s.scored, locale),
        "insufficient": format_count(s.insufficient, locale),
        "officials_points": (None if s.officials_points is None
                             else format_number(s.officials_points, locale)),
        # A unit without a register has no part; one whose register lists nothing issued has
        # a part that does not apply (no rate).
        "unit_rates": [{"counted": c in parts,
                        "rate": format_percent(parts[c].rate, locale) if c in parts and parts[c].applies
                        else None} for c in unit_codes],
        "total": None if s.total is None else format_number(s.total, locale),
    }


def _unscored_row(u: UnitResult, locale: str) -> dict[str, Any]:
    s = u.score
    if s.headcount == 0:
        reason = "no_members"
    elif s.scored == 0:
        reason = "insufficient"
    else:  # scored members whose working days all fell in other units weigh nothing here
        reason = "no_days"
    return {"name": s.name, "code": u.code, "group": group_label(u.kind, locale),
            "headcount": format_count(s.headcount, locale), "reason": reason}


def _flagged_row(o: OfficialResult, locale: str) -> dict[str, Any]:
    bursts = [{"when": f"{b.start:%d/%m}–{_day(b.end)}" if b.start.year == b.end.year
               else f"{_day(b.start)}–{_day(b.end)}", "reason_vi": b.reason_vi,
               "sent": format_count(b.sent, locale),
               "expected": format_number(b.expected, locale),
               "ratio": None if b.ratio == float("inf") else format_number(b.ratio, locale)}
              for b in o.bursts]
    return {"name": o.name, "email": o.email, "unit_name": o.unit_name, "bursts": bursts}


def _suspicion(o: OfficialResult) -> tuple[float, str]:
    # Highest ratio first (no earlier mail at all, ``inf``, leads), so a capped list keeps
    # the cases most worth a look.
    return (-max(b.ratio for b in o.bursts), o.email)


def _groups(units: tuple[UnitResult, ...]) -> list[str]:
    return sorted({u.kind for u in units}, key=lambda kind: (group_order(kind), kind))


def _unit_order(u: UnitResult) -> tuple[bool, int, str]:
    # Ranked units first by rank (ties by code, as rank_within_groups orders them), then the
    # units without a score.
    return (u.rank == 0, u.rank, u.code)


def _day(d: date) -> str:
    return f"{d:%d/%m/%Y}"
