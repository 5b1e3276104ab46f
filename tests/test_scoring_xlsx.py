"""The HR workbook, read back with openpyxl (and, for the charts, as the zip it is)."""
from __future__ import annotations

import os
import re
import stat
import zipfile
from dataclasses import replace
from datetime import datetime

import openpyxl
import pytest
from openpyxl.utils import get_column_letter

from mailhub.errors import InputError
from mailhub.scoring.tables import official_table, unit_table
from mailhub.scoring.xlsxexport import write_xlsx
from policies.scoring.formula import shown
from tests.scoring_sample import sample_scores


@pytest.fixture
def workbook_path(tmp_path):
    path = tmp_path / "diem.xlsx"
    write_xlsx(sample_scores(closed=True), path)
    return path


@pytest.fixture
def workbook(workbook_path):
    return openpyxl.load_workbook(workbook_path)


def header(ws):
    return tuple(c.value for c in ws[1])


def find_row(ws, col, value):
    """The cells of the first row whose column ``col`` (1-based) holds ``value``, by header."""
    names = header(ws)
    for row in ws.iter_rows(min_row=2):
        if row[col - 1].value == value:
            return dict(zip(names, row, strict=True))
    raise AssertionError(f"no row with {value!r}")


def label_cell(ws, label):
    """The value cell next to ``label`` in column A of the overview."""
    for a, b, *_ in ws.iter_rows(max_col=2):
        if a.value == label:
            return b
    raise AssertionError(f"no label {label!r}")


def test_sheets_and_headers(workbook):
    scores = sample_scores()
    assert workbook.sheetnames == ["Tổng quan", "Đơn vị", "Cán bộ"]
    assert header(workbook["Đơn vị"]) == unit_table(scores).headers
    assert header(workbook["Cán bộ"]) == official_table(scores).headers
    assert all(c.font.b for c in workbook["Cán bộ"][1])
    assert workbook.active.title == "Tổng quan"


def test_one_data_row_per_official_and_unit(workbook):
    scores = sample_scores()
    assert workbook["Cán bộ"].max_row - 1 == len(scores.officials) == 6
    assert workbook["Đơn vị"].max_row - 1 == len(scores.units) == 4


def test_scores_are_numbers_rounded_as_shown(workbook):
    scores = sample_scores()
    an = next(o for o in scores.officials if o.email == "an.nguyen@hcm.gov.vn")
    row = find_row(workbook["Cán bộ"], 1, an.email)
    total = row["Tổng điểm"]
    assert total.data_type == "n" and total.number_format == "0.0"
    assert total.value == float(shown(an.score.total)) == 95.4
    assert row["I1 tỷ lệ (%)"].value == 95.2
    assert row["Ngày công được tính"].value == 64
    unit = find_row(workbook["Đơn vị"], 4, "Q1")
    assert unit["Tổng điểm"].value == 77.4 and unit["Hạng trong nhóm"].value == 2


def test_none_is_an_empty_cell(workbook):
    row = find_row(workbook["Cán bộ"], 1, "em.vo@hcm.gov.vn")
    assert row["Tổng điểm"].value is None
    assert row["I1 điểm"].value is None
    assert row["Cần xem xét"].value is None  # "" is left empty too
    assert row["Kết quả"].value == "Không đủ dữ liệu"
    ward = find_row(workbook["Đơn vị"], 4, "P-BN")
    assert ward["Hạng trong nhóm"].value is None


def test_dates_are_real_excel_dates(workbook):
    ws = workbook["Tổng quan"]
    start = label_cell(ws, "Từ ngày")
    assert start.is_date and start.number_format == "dd/mm/yyyy"
    assert start.value == datetime(2026, 7, 1)
    until = label_cell(ws, "Dữ liệu cập nhật đến")
    assert until.is_date and until.number_format.startswith("dd/mm/yyyy hh:mm")
    assert until.value == datetime(2026, 10, 2, 9, 29, 58)  # 02:29:58 UTC on Vietnam's clock
    assert label_cell(ws, "Trạng thái").value.startswith("Đã chốt bởi hr@hcm.gov.vn lúc 05/10/2026")


def test_formula_looking_text_stays_text(workbook, workbook_path):
    row = find_row(workbook["Cán bộ"], 1, "=cmd@hcm.gov.vn")
    name = row["Họ và tên"]
    assert name.data_type == "s" and name.value == '=HYPERLINK("x")'
    assert row["Email"].data_type == "s"
    with zipfile.ZipFile(workbook_path) as z:
        sheets = [n for n in z.namelist() if n.startswith("xl/worksheets/sheet")]
        assert sheets
        assert not any("<f>" in z.read(n).decode() for n in sheets)  # no formula anywhere


def test_layout_frozen_filtered_and_wide_enough(workbook):
    officials, units = workbook["Cán bộ"], workbook["Đơn vị"]
    assert officials.freeze_panes == "C2"  # header row and the official's email and name
    assert units.freeze_panes == "A2"
    assert officials.auto_filter.ref == f"A1:{get_column_letter(len(header(officials)))}7"
    assert units.auto_filter.ref == f"A1:{get_column_letter(len(header(units)))}5"
    name_col = get_column_letter(header(units).index("Đơn vị") + 1)
    assert units.column_dimensions[name_col].width >= len("Sở Thông tin và Truyền thông")
    group_col = get_column_letter(header(units).index("Nhóm") + 1)
    assert units.column_dimensions[group_col].width >= len("Quận, huyện, thành phố thuộc thành phố")
    explain_col = get_column_letter(header(units).index("Giải thích") + 1)
    assert units.column_dimensions[explain_col].width <= 62  # long text does not take the screen


def chart_refs(path):
    """Each chart part's cell references, by part name."""
    with zipfile.ZipFile(path) as z:
        return {n: re.findall(r"<c:f>([^<]*)</c:f>", z.read(n).decode())
                for n in sorted(z.namelist()) if re.fullmatch(r"xl/charts/chart\d+\.xml", n)}


def cell_values(ws, ref):
    """The values of the cells a chart's ``'Sheet'!$A$1:$A$3`` (or one cell) refers to."""
    got = ws[ref.split("!")[-1].replace("$", "")]
    return [c.value for (c,) in got] if isinstance(got, tuple) else [got.value]


def test_unit_charts_plot_each_group_s_ranked_totals(workbook, workbook_path):
    units = workbook["Đơn vị"]
    assert len(units._charts) == 2  # department and districts; the ward has no ranked unit
    names = header(units)
    total = f"'Đơn vị'!${get_column_letter(names.index('Tổng điểm') + 1)}$"
    unit_name = f"'Đơn vị'!${get_column_letter(names.index('Đơn vị') + 1)}$"
    charts = [refs for refs in chart_refs(workbook_path).values()
              if all(r.startswith("'Đơn vị'!") for r in refs)]
    plotted = sorted((cell_values(units, r) for refs in charts for r in refs
                      if r.startswith(total) and r != f"{total}1"), key=len)
    assert plotted == [[96.4], [96.4, 77.4]]  # STTTT; then Q3 and Q1 in rank order
    labels = sorted((cell_values(units, r) for refs in charts for r in refs
                     if r.startswith(unit_name)), key=len)
    assert labels == [["Sở Thông tin và Truyền thông"], ["UBND Quận 3", "UBND Quận 1"]]


def test_overview_chart_plots_city_rates_against_targets(workbook, workbook_path):
    ws = workbook["Tổng quan"]
    assert len(ws._charts) == 1
    [refs] = [refs for refs in chart_refs(workbook_path).values()
              if all(r.startswith("'Tổng quan'!") for r in refs)]
    plotted = {tuple(cell_values(ws, r)) for r in refs if ":" in r}
    assert ("I1", "I2", "I3", "I4", "U1") in plotted            # categories
    assert (100.0, 80.0, 100.0, 100.0, 60.0) in plotted          # targets
    assert (95.6, 65.1, 100.0, 78.6, 65.6) in plotted            # city-wide rates
    names = {cell_values(ws, r)[0] for r in refs if ":" not in r}
    assert names == {"Tỷ lệ toàn thành phố (%)", "Mục tiêu (%)"}


def test_new_file_is_private(workbook_path):
    assert stat.S_IMODE(workbook_path.stat().st_mode) == 0o600


def test_overwrite_replaces_the_file_whole(tmp_path):
    target = tmp_path / "diem.xlsx"
    target.write_bytes(b"old contents, not a zip" * 10_000)
    target.chmod(0o640)
    write_xlsx(sample_scores(), target)
    assert zipfile.is_zipfile(target)
    write_xlsx(sample_scores(), target, unit="Q1")  # smaller than the first
    wb = openpyxl.load_workbook(target)
    assert [c.value for (c,) in wb["Cán bộ"].iter_rows(min_row=2, max_col=1)] == [
        "em.vo@hcm.gov.vn", "dung.pham@hcm.gov.vn", "cuong.le@hcm.gov.vn"]
    assert [c.value for (c,) in wb["Đơn vị"].iter_rows(min_row=2, min_col=4, max_col=4)] == ["Q1", "P-BN"]
    assert os.listdir(tmp_path) == ["diem.xlsx"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # a replaced file keeps its mode


@pytest.mark.parametrize(("change", "unit", "error"), [
    ({}, "Q99", InputError),
    ({"computed_at": datetime(2026, 10, 2, 9, 30)}, None, ValueError),  # naive: zone unknown
])
def test_failure_keeps_the_old_file(tmp_path, change, unit, error):
    target = tmp_path / "diem.xlsx"
    target.write_bytes(b"old")
    with pytest.raises(error):
        write_xlsx(replace(sample_scores(), **change), target, unit=unit)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["diem.xlsx"]
