"""The trend of scores across a year's quarters, for the console: the figures and their chart.

The ranking chart of a period is :func:`mailhub.scoring.charts.chart_units`; what is missing
there is the trend, added here in the same style (matplotlib's object API, DejaVu Sans, text
drawn as paths, numbers written for the locale).

The city's score of a quarter is its officials' points the way a unit's are computed
(:func:`policies.scoring.units.unit_score`): the mean of every scored official's total weighted
by the working days they counted, officials with insufficient data left out.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from mailhub.scoring.charts import BAR, FONT, MUTED, TARGET, WIDTH_IN, format_number
from mailhub.scoring.results import PeriodScores
from policies.scoring.units import MemberScore, unit_score

_TEXT = {
    "vi": {"city": "Bình quân toàn thành phố", "points": "Điểm", "none": "Chưa có điểm trong các quý đã chọn."},
    "en": {"city": "City average", "points": "Points", "none": "No score yet in these quarters."},
}


@dataclass(frozen=True)
class TrendPoint:
    """One quarter: the city's score and every unit's total (``None``: no score) and name."""

    label: str
    label_vi: str
    label_en: str
    city: float | None
    units: dict[str, float | None]
    names: dict[str, str]

    def label_in(self, locale: str) -> str:
        return self.label_vi if locale == "vi" else self.label_en


def city_points(scores: PeriodScores) -> float | None:
    """The officials' points of the whole city (see the module docstring), or None."""
    if not scores.officials:
        return None
    members = [MemberScore(o.email, o.name, o.days_counted, o.score) for o in scores.officials]
    return unit_score("*", "city", "city", members).officials_points


def trend_point(scores: PeriodScores) -> TrendPoint:
    """The figures of one quarter a trend needs (small enough to keep for every quarter)."""
    return TrendPoint(scores.period.label, scores.period.label_vi, scores.period.label_en,
                      city_points(scores), {u.code: u.score.total for u in scores.units},
                      {u.code: u.score.name for u in scores.units})


def chart_trend(points: list[TrendPoint], locale: str, *, city: bool, unit: str | None) -> str:
    """A line per series across the quarters of ``points``: the city's score (``city``) and
    the unit ``unit``'s total (named as in the latest quarter that has it). A quarter without a
    score leaves a gap. Returns ``<svg>`` text."""
    text = _TEXT["vi" if locale == "vi" else "en"]
    fig = Figure(figsize=(WIDTH_IN, 3.0), layout="constrained")
    ax = fig.add_subplot()
    xs = list(range(len(points)))
    series = []
    if city:
        series.append((text["city"], [p.city for p in points], BAR, "-", 6))
    if unit:
        unit_name = next((p.names[unit] for p in reversed(points) if unit in p.names), unit)
        series.append((unit_name.replace("$", r"\$"), [p.units.get(unit) for p in points], TARGET, "--", -13))
    drawn = False
    for label, values, colour, style, offset in series:  # labels above the city's, below the unit's
        ys = [float("nan") if v is None else v for v in values]
        ax.plot(xs, ys, color=colour, linestyle=style, marker="o", linewidth=2, label=label)
        for x, v in zip(xs, values, strict=True):
            if v is not None:
                drawn = True
                ax.annotate(format_number(v, locale), (x, v), textcoords="offset points", xytext=(0, offset),
                            ha="center", fontsize=7.5, fontfamily=FONT)
    ax.set_xticks(xs, labels=[p.label_in(locale) for p in points], parse_math=False)
    ax.set_xlim(-0.5, max(len(points) - 0.5, 0.5))
    ax.set_ylim(0, 105)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_number(v, locale)))
    ax.set_ylabel(text["points"], fontfamily=FONT, fontsize=8)
    ax.tick_params(labelsize=8, labelfontfamily=FONT, length=3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    if series:
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=len(series), frameon=False,
                  prop={"family": FONT, "size": 8})
    if not drawn:
        fig.supxlabel(text["none"], fontsize=7.5, fontfamily=FONT, color=MUTED)
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()
