"""A period's scores as one Excel workbook for HR: "Tổng quan" (the facts of the period, the
indicators and a chart of the city-wide rates against the targets), "Đơn vị" (the units, with a
bar chart of the totals per group) and "Cán bộ" (the officials).

The columns are those of :mod:`mailhub.scoring.tables`, shared with the CSV. Cells are typed:
numbers are numbers, dates real Excel dates, text is always written with ``write_string`` —
xlsxwriter's ``write()`` would turn a name such as ``=HYPERLINK("x")`` into a live formula
(OWASP "CSV Injection" applies to XLSX writers too).

Scores and rates are stored as shown, to one decimal half up
(:func:`policies.scoring.formula.shown`): ranks compare shown totals, so two units that read
the same must be equal to Excel's sort and filter as well.
"""
from __future__ import annotations

import io
import math
import os
import unicodedata
from datetime import date, datetime
from pathlib import Path

import xlsxwriter
from xlsxwriter.workbook import Workbook
from xlsxwriter.worksheet import Worksheet

from mailhub.atomicfile import write_atomic
from mailhub.scoring import tables
from mailhub.scoring.results import PeriodScores
from mailhub.scoring.tables import Table, Value
from mailhub.templating import VIETNAM
from policies.scoring.formula import shown

__all__ = ["OFFICIALS_SHEET", "OVERVIEW_SHEET", "UNITS_SHEET", "write_xlsx"]

OVERVIEW_SHEET = "Tổng quan"
UNITS_SHEET = "Đơn vị"
OFFICIALS_SHEET = "Cán bộ"

DECIMAL = "0.0"
DATE = "dd/mm/yyyy"
DATETIME = 'dd/mm/yyyy hh:mm "(GMT+7)"'  # datetimes are written in Vietnam time

# Column widths in characters: a header wraps beyond HEADER_WRAP; no column grows past MAX_WIDTH
# (the explanations are long; they stay on one line and can be read in the formula bar).
MIN_WIDTH, MAX_WIDTH, HEADER_WRAP = 6, 60, 16
_PX_PER_ROW = 20  # Excel's default row height (15 pt)


def write_xlsx(scores: PeriodScores, path: str | os.PathLike[str], unit: str | None = None) -> None:
    """Write the workbook of ``scores`` to ``path``, for the whole city or, with ``unit``, for
    that unit (see :func:`~mailhub.scoring.tables.official_table` and
    :func:`~mailhub.scoring.tables.unit_table` for what the filter keeps).

    Built in memory, then written atomically (:func:`mailhub.atomicfile.write_atomic`): a new
    file is created ``0600`` (it names officials and their scores), a replaced one keeps its
    mode. Checks: an unknown ``unit`` is an ``InputError``; a naive datetime or a NaN/infinite
    number in the tables a ``ValueError`` — nothing is written then.
    """
    summary = tables.summary_rows(scores, unit)
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {
        "in_memory": True,
        # write_string is used for all text; these keep write() harmless should it ever be used.
        "strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False,
    })
    workbook.set_properties({"title": summary.title_vi, "comments": "mailhub"})
    styles = _Styles(workbook)
    # A failure below leaves the workbook unclosed: it lives in memory only, nothing to clean.
    _overview(workbook.add_worksheet(OVERVIEW_SHEET), workbook, styles, summary,
              tables.indicator_table(scores))
    _units(workbook.add_worksheet(UNITS_SHEET), workbook, styles, tables.unit_table(scores, unit))
    _data_sheet(workbook.add_worksheet(OFFICIALS_SHEET), styles,
                tables.official_table(scores, unit), frozen_columns=2)
    workbook.close()
    target = Path(path)
    write_atomic(target, buffer.getvalue(), _mode_for(target))


class _Styles:
    """The workbook's few cell formats."""

    def __init__(self, workbook: Workbook) -> None:
        self.header = workbook.add_format({"bold": True, "text_wrap": True, "valign": "top",
                                           "bg_color": "#DDEBF7", "border": 1})
        self.label = workbook.add_format({"bold": True})
        self.title = workbook.add_format({"bold": True, "font_size": 14})
        self.decimal = workbook.add_format({"num_format": DECIMAL})
        self.integer = workbook.add_format({"num_format": "0"})
        self.date = workbook.add_format({"num_format": DATE, "align": "left"})
        self.datetime = workbook.add_format({"num_format": DATETIME, "align": "left"})


def _overview(ws: Worksheet, workbook: Workbook, styles: _Styles, summary: Table,
              indicators: Table) -> None:
    ws.write_string(0, 0, summary.title_vi, styles.title)
    widths: dict[int, int] = {}
    row = 2
    for label, value in summary.rows:
        ws.write_string(row, 0, str(label), styles.label)
        _write_cell(ws, row, 1, value, styles)
        _widen(widths, 0, label)
        _widen(widths, 1, value)
        row += 1
    top = row + 1
    _write_table(ws, styles, indicators, top, widths)
    _set_widths(ws, widths)
    last = top + len(indicators.rows)
    if indicators.rows:
        code = indicators.headers.index(tables.INDICATOR_CODE)
        chart = workbook.add_chart({"type": "column"})
        for header in (tables.CITY_RATE, tables.TARGET):
            col = indicators.headers.index(header)
            chart.add_series({
                "name": [ws.name, top, col],
                "categories": [ws.name, top + 1, code, last, code],
                "values": [ws.name, top + 1, col, last, col],
                "data_labels": {"value": True, "num_format": DECIMAL},
            })
        chart.set_title({"name": "Tỷ lệ toàn thành phố so với mục tiêu (%)"})
        chart.set_y_axis({"min": 0, "max": 100, "num_format": "0", "name": "%"})
        chart.set_legend({"position": "bottom"})
        chart.set_size({"width": 720, "height": 360})
        ws.insert_chart(last + 2, 0, chart)
    ws.activate()


def _units(ws: Worksheet, workbook: Workbook, styles: _Styles, table: Table) -> None:
    _data_sheet(ws, styles, table, frozen_columns=0)
    h = table.headers
    group_col, rank_col = h.index(tables.GROUP), h.index(tables.RANK)
    name_col, total_col = h.index(tables.UNIT_NAME), h.index(tables.TOTAL)
    # Rows are ordered by group, ranked units first, so each group's ranked units are one block.
    blocks: dict[str, list[int]] = {}
    for i, row in enumerate(table.rows, start=1):
        if row[rank_col] is not None and row[total_col] is not None:
            blocks.setdefault(str(row[group_col]), []).append(i)
    at = len(table.rows) + 3
    for group, rows in blocks.items():
        first, last = rows[0], rows[-1]
        chart = workbook.add_chart({"type": "bar"})
        chart.add_series({
            "name": [ws.name, 0, total_col],
            "categories": [ws.name, first, name_col, last, name_col],
            "values": [ws.name, first, total_col, last, total_col],
            "data_labels": {"value": True, "num_format": DECIMAL},
        })
        chart.set_title({"name": f"Tổng điểm — {group}"})
        chart.set_x_axis({"min": 0, "max": 100, "name": "Điểm"})
        chart.set_y_axis({"reverse": True})  # rank 1 on top
        chart.set_legend({"none": True})
        height = max(220, 28 * len(rows) + 110)
        chart.set_size({"width": 720, "height": height})
        ws.insert_chart(at, 0, chart)
        at += math.ceil(height / _PX_PER_ROW) + 2


def _data_sheet(ws: Worksheet, styles: _Styles, table: Table, *, frozen_columns: int) -> None:
    """A table from A1: bold wrapped header, frozen, filtered, printable on A4 landscape."""
    widths: dict[int, int] = {}
    _write_table(ws, styles, table, 0, widths)
    _set_widths(ws, widths)
    lines = max((_header_lines(h, widths.get(c, MIN_WIDTH)) for c, h in enumerate(table.headers)),
                default=1)
    ws.set_row(0, 15 * lines + 3)
    ws.freeze_panes(1, frozen_columns)
    ws.autofilter(0, 0, len(table.rows), len(table.headers) - 1)
    ws.set_header("&C" + table.title_vi.replace("&", "&&"))
    ws.set_landscape()
    ws.set_paper(9)  # A4
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(0)


def _write_table(ws: Worksheet, styles: _Styles, table: Table, top: int,
                 widths: dict[int, int]) -> None:
    for col, header in enumerate(table.headers):
        ws.write_string(top, col, header, styles.header)
        widths[col] = max(widths.get(col, 0), _header_width(header))
    for r, row in enumerate(table.rows, start=top + 1):
        if len(row) != len(table.headers):
            raise ValueError(f"{table.title_vi}: row {r - top} has {len(row)} cells, "
                             f"expected {len(table.headers)}")
        for col, value in enumerate(row):
            _write_cell(ws, r, col, value, styles)
            _widen(widths, col, value)


def _write_cell(ws: Worksheet, row: int, col: int, value: Value, styles: _Styles) -> None:
    """One typed cell; ``None`` and ``""`` stay empty."""
    if value is None or value == "":
        return
    if isinstance(value, bool):  # before int: bool is an int
        ws.write_string(row, col, "có" if value else "không")
    elif isinstance(value, int):
        ws.write_number(row, col, value, styles.integer)
    elif isinstance(value, float):
        ws.write_number(row, col, _stored(value), styles.decimal)
    elif isinstance(value, datetime):  # before date: datetime is a date
        ws.write_datetime(row, col, _vietnam_wall_clock(value), styles.datetime)
    elif isinstance(value, date):
        ws.write_datetime(row, col, value, styles.date)
    elif isinstance(value, str):
        ws.write_string(row, col, value)
    else:
        raise TypeError(f"write_xlsx: cannot write a {type(value).__name__}")


def _stored(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"write_xlsx: cannot write the number {value!r}")
    return float(shown(value))


def _vietnam_wall_clock(value: datetime) -> datetime:
    # Excel has no time zones: the cell holds Vietnam's wall-clock time, as DATETIME says.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"write_xlsx: naive datetime {value.isoformat()} (time zone unknown)")
    return value.astimezone(VIETNAM).replace(tzinfo=None)


def _text_width(value: Value) -> int:
    """Characters ``value`` takes on screen; Vietnamese combining marks take none."""
    if value is None:
        return 0
    if isinstance(value, datetime):
        return len("dd/mm/yyyy hh:mm (GMT+7)")
    if isinstance(value, date):
        return len("dd/mm/yyyy")
    if isinstance(value, float) and math.isfinite(value):
        return len(str(shown(value)))
    text = str(value)
    return sum(1 for ch in text if not unicodedata.combining(ch))


def _widen(widths: dict[int, int], col: int, value: Value) -> None:
    widths[col] = max(widths.get(col, 0), _text_width(value))


def _header_width(header: str) -> int:
    # A header wraps, so it needs its longest word, and at most HEADER_WRAP characters.
    longest_word = max((_text_width(w) for w in header.split()), default=0)
    return max(longest_word, min(_text_width(header), HEADER_WRAP))


def _header_lines(header: str, width: int) -> int:
    return max(1, math.ceil(_text_width(header) / max(1, width)))


def _set_widths(ws: Worksheet, widths: dict[int, int]) -> None:
    for col, width in widths.items():
        ws.set_column(col, col, min(MAX_WIDTH, max(MIN_WIDTH, width + 2)))


def _mode_for(path: Path) -> int:
    # As mailhub.scoring.csvexport.write_csv: a replaced file keeps its mode, a new one is private.
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o600
