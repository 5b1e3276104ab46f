"""The quarterly report's charts, drawn with matplotlib as SVG text, and the figures they show.

Each ``chart_*`` is a pure function of a :class:`~mailhub.scoring.results.PeriodScores`
returning one ``<svg>`` element (no XML prolog), ready to be put inline in HTML:

- :func:`chart_indicators`: the city-wide rate of every indicator against its target;
- :func:`chart_units`: the units of one comparable group by total score, best first, capped;
- :func:`chart_distribution`: how officials' scores are spread, with the insufficient-data count.

Figures are built from :class:`matplotlib.figure.Figure`, never through pyplot: no global figure
registry and no GUI backend, so report renders may run in threads side by side. Every text names
DejaVu Sans (it has the Vietnamese glyphs) and is drawn as paths (matplotlib's default
``svg.fonttype``), so neither the browser nor the PDF needs the font. Names from the directory
are drawn with ``parse_math=False``: a ``$`` in a unit name is text, never mathtext; matplotlib
escapes the text it copies into SVG comments.

Numbers are written for the locale: a decimal comma in Vietnamese (``95,2%``, thousands
``12.345``), a decimal point in English. :func:`city_rates` is the one place the city-wide rates
are summed, so the report's table and its chart cannot disagree.
"""
from __future__ import annotations

import io
import re
import textwrap
import uuid
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator

from mailhub.scoring.results import GROUP_LABELS_EN, GROUP_LABELS_VI, PeriodScores
from policies.scoring.formula import SCORED, shown

__all__ = ["LOCALES", "CityRate", "chart_distribution", "chart_indicators",
           "chart_units", "city_rates", "format_count", "format_number", "format_percent",
           "group_label"]

LOCALES = ("vi", "en")

FONT = "DejaVu Sans"
WIDTH_IN = 6.45  # the A4 text width between the report's 30 mm and 15 mm margins (165 mm)
BAR, TARGET, MUTED = "#2f6f9f", "#c0392b", "#666666"

_TEXT = {
    "vi": {"rate": "Tỷ lệ toàn thành phố", "target": "Mục tiêu", "no_data": "chưa có số liệu",
           "total": "Tổng điểm", "officials": "Số cán bộ", "points": "Điểm",
           "capped": "{shown} đơn vị điểm cao nhất trong {total} đơn vị có điểm của nhóm; "
                     "danh sách đầy đủ ở bảng bên dưới.",
           "none_scored": "Chưa có đơn vị nào trong nhóm có điểm.",
           "spread": "{scored} cán bộ có điểm, trung vị {median} điểm (đường đứt nét); "
                     "{insufficient} cán bộ không đủ dữ liệu (không thể hiện trong biểu đồ)."},
    "en": {"rate": "City-wide rate", "target": "Target", "no_data": "no data",
           "total": "Total score", "officials": "Officials", "points": "Points",
           "capped": "The {shown} best of the group's {total} scored units; "
                     "the full list is in the table below.",
           "none_scored": "No unit of this group has a score yet.",
           "spread": "{scored} officials scored, median {median} points (dashed line); "
                     "{insufficient} with insufficient data (not shown in the chart)."},
}


def format_number(value: float, locale: str = "vi") -> str:
    """One decimal, half up (:func:`~policies.scoring.formula.shown`), no ``,0`` on a whole
    number: ``33,3`` / ``33.3``, ``35``."""
    text = f"{shown(float(value)):f}".removesuffix(".0")  # float(): numpy scalars too
    return text.replace(".", ",") if _checked(locale) == "vi" else text


def format_percent(rate: float, locale: str = "vi") -> str:
    """A rate in [0, 1] as a percentage with one decimal: ``0.952 → "95,2%"`` (``"95.2%"``)."""
    text = f"{shown(float(rate) * 100):f}%"
    return text.replace(".", ",") if _checked(locale) == "vi" else text


def format_count(n: int, locale: str = "vi") -> str:
    """A count with thousands grouped: ``12.345`` in Vietnamese, ``12,345`` in English."""
    text = f"{n:,}"
    return text.replace(",", ".") if _checked(locale) == "vi" else text


def group_label(group: str, locale: str = "vi") -> str:
    """The name of a comparable group of units; an unknown group shows its code."""
    labels = GROUP_LABELS_VI if _checked(locale) == "vi" else GROUP_LABELS_EN
    return labels.get(group, group)


@dataclass(frozen=True)
class CityRate:
    """One indicator summed over the city: officials' counts for an official indicator, units'
    register counts for a unit indicator. ``rate`` is ``None`` when nothing was counted."""

    code: str
    name_vi: str
    name_en: str
    level: str
    weight: float
    target: float
    numerator: int
    denominator: int

    @property
    def rate(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None

    def name(self, locale: str) -> str:
        return self.name_vi if _checked(locale) == "vi" else self.name_en


def city_rates(scores: PeriodScores) -> tuple[CityRate, ...]:
    """Every indicator of ``scores.indicators``, in order, with its counts pooled over the
    city (:meth:`PeriodScores.pooled`)."""
    pooled = scores.pooled()
    return tuple(CityRate(i.code, i.name_vi, i.name_en, i.level, i.weight, i.target,
                          *pooled[i.level, i.code]) for i in scores.indicators)


def chart_indicators(scores: PeriodScores, locale: str = "vi") -> str:
    """Horizontal bars: each indicator's city-wide rate (labelled), a red mark at its target."""
    text = _TEXT[_checked(locale)]
    rates = city_rates(scores)
    fig = Figure(figsize=(WIDTH_IN, 0.55 * len(rates) + 1.1), layout="constrained")
    ax = fig.add_subplot()
    for y, r in enumerate(rates):
        if r.rate is None:
            ax.text(1, y, text["no_data"], va="center", color=MUTED, fontsize=8, fontfamily=FONT)
        else:
            value = r.rate * 100
            ax.barh(y, value, height=0.6, color=BAR)
            inside = value > 18
            ax.text(value - 1 if inside else value + 1, y, format_percent(r.rate, locale),
                    va="center", ha="right" if inside else "left", fontsize=8, fontfamily=FONT,
                    color="white" if inside else "black")
        ax.plot([r.target * 100] * 2, [y - 0.42, y + 0.42], color=TARGET, linewidth=2.5)
    labels = [textwrap.fill(f"{r.code} · {r.name(locale)}", 40) for r in rates]
    ax.set_yticks(range(len(rates)), labels=labels, parse_math=False)
    ax.set_ylim(len(rates) - 0.5, -0.5)  # first indicator on top
    _percent_axis(ax, locale)
    ax.legend(handles=[Patch(color=BAR, label=text["rate"]),
                       Line2D([], [], color=TARGET, linewidth=2.5, label=text["target"])],
              loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2, frameon=False,
              prop={"family": FONT, "size": 8})
    return _svg(fig)


def chart_units(scores: PeriodScores, group: str, locale: str = "vi", *, limit: int = 30) -> str:
    """Horizontal bars: the scored units of ``group`` by total, rank 1 on top, at most
    ``limit`` of them with a note saying how many were left out."""
    text = _TEXT[_checked(locale)]
    ranked = sorted((u for u in scores.units if u.kind == group and u.score.total is not None),
                    key=lambda u: (u.rank, u.code))
    shown_units = ranked[:limit]
    rows = max(len(shown_units), 2)  # one bar keeps the thickness it has among others
    fig = Figure(figsize=(WIDTH_IN, 0.28 * rows + 1.0), layout="constrained")
    ax = fig.add_subplot()
    for y, u in enumerate(shown_units):
        ax.barh(y, u.score.total, height=0.65, color=BAR)
        ax.text(u.score.total + 1, y, format_number(u.score.total, locale), va="center",
                fontsize=7.5, fontfamily=FONT)
    labels = [f"{u.rank}. {_clipped(u.score.name, 48)}" for u in shown_units]
    ax.set_yticks(range(len(shown_units)), labels=labels, parse_math=False)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_xlim(0, 108)
    ax.set_xticks(range(0, 101, 20))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: format_number(v, locale)))
    ax.set_xlabel(text["total"], fontfamily=FONT, fontsize=8)
    _style(ax, grid="x")
    if not ranked:
        _note(fig, text["none_scored"])
    elif len(ranked) > limit:
        _note(fig, text["capped"].format(shown=limit, total=len(ranked)))
    return _svg(fig)


def chart_distribution(scores: PeriodScores, locale: str = "vi") -> str:
    """A histogram of officials' totals in bands of 10 points (the last band includes 100),
    with the median marked and the insufficient-data count in the caption."""
    text = _TEXT[_checked(locale)]
    totals = np.fromiter((o.score.total for o in scores.officials if o.score.status == SCORED),
                         dtype=float)
    insufficient = len(scores.officials) - totals.size
    counts, edges = np.histogram(totals, bins=np.arange(0, 101, 10))
    fig = Figure(figsize=(WIDTH_IN, 2.9), layout="constrained")
    ax = fig.add_subplot()
    ax.bar(edges[:-1], counts, width=10, align="edge", color=BAR, edgecolor="white")
    for left, n in zip(edges[:-1], counts, strict=True):
        if n:
            ax.text(left + 5, n, format_count(int(n), locale), ha="center", va="bottom",
                    fontsize=7.5, fontfamily=FONT, zorder=3,  # above the median's line
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.6})
    median = float(np.median(totals)) if totals.size else None
    if median is not None:
        ax.axvline(median, color=TARGET, linestyle="--", linewidth=1.2)
    ax.set_xlim(0, 100)
    ax.set_xticks(edges)
    ax.set_ylim(0, max(int(counts.max(initial=0)), 1) * 1.15)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_count(int(v), locale)))
    ax.set_xlabel(text["points"], fontfamily=FONT, fontsize=8)
    ax.set_ylabel(text["officials"], fontfamily=FONT, fontsize=8)
    _style(ax, grid="y")
    _note(fig, text["spread"].format(scored=format_count(totals.size, locale),
                                     median="—" if median is None else format_number(median, locale),
                                     insufficient=format_count(insufficient, locale)))
    return _svg(fig)


def _checked(locale: str) -> str:
    if locale not in LOCALES:
        raise ValueError(f"locale must be one of {LOCALES}, got {locale!r}")
    return locale


def _percent_axis(ax: Axes, locale: str) -> None:
    ax.set_xlim(0, 105)
    ax.set_xticks(range(0, 101, 20))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: format_number(v, locale) + "%"))
    _style(ax, grid="x")


def _style(ax: Axes, *, grid: str) -> None:
    ax.tick_params(labelsize=8, labelfontfamily=FONT, length=3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_axisbelow(True)
    ax.grid(axis=grid, color="#dddddd", linewidth=0.6)


def _clipped(name: str, width: int) -> str:
    # The table below the chart has the full name; a bar label must stay one short line.
    return name if len(name) <= width else name[:width - 1].rstrip() + "…"


def _note(fig: Figure, text: str) -> None:
    fig.supxlabel(text, fontsize=7.5, fontfamily=FONT, color=MUTED, parse_math=False)


def _svg(fig: Figure) -> str:
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Date": None})
    svg = out.getvalue()
    return _own_ids(svg[svg.index("<svg"):], f"c{uuid.uuid4().hex[:8]}-")


def _own_ids(svg: str, prefix: str) -> str:
    # matplotlib names glyphs after the font ("DejaVuSans-41"), the same in every chart: inline
    # in one HTML document they would be duplicate ids. Prefixing every id and every reference
    # (href="#…", url(#…)) gives each chart its own.
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}\1"', svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}\1"', svg)
    return re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}\1)", svg)
