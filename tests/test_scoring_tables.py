"""The HR tables (officials, units, summary, indicators) built from the sample period, and the
CSV written from them."""
from __future__ import annotations

import csv
import os
import re
from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest

from mailhub.errors import InputError
from mailhub.scoring.tables import (
    indicator_table,
    official_table,
    summary_rows,
    unit_table,
    write_scores_csv,
)
from mailhub.templating import VIETNAM
from tests.scoring_sample import sample_scores

AN, BINH, CUONG, DUNG, CMD, EM = (
    "an.nguyen@hcm.gov.vn", "binh.tran@hcm.gov.vn", "cuong.le@hcm.gov.vn",
    "dung.pham@hcm.gov.vn", "=cmd@hcm.gov.vn", "em.vo@hcm.gov.vn")

OFFICIAL_HEADERS = (
    "Email", "Họ và tên", "Mã đơn vị", "Đơn vị", "Ngày công được tính",
    "I1 tỷ lệ (%)", "I1 điểm", "I2 tỷ lệ (%)", "I2 điểm", "I3 tỷ lệ (%)", "I3 điểm",
    "I4 tỷ lệ (%)", "I4 điểm", "Trừ điểm", "Tổng điểm", "Kết quả", "Thư gửi qua hệ thống",
    "Thư bị từ chối (ngoài hệ thống)", "Ngày hoạt động", "Văn bản gửi UBND",
    "Văn bản có chữ ký số hợp lệ", "Cuộc họp tổ chức", "Cuộc họp có giấy mời điện tử",
    "Cần xem xét", "Giải thích")
UNIT_HEADERS = (
    "Nhóm", "Hạng trong nhóm", "Số đơn vị trong nhóm", "Mã đơn vị", "Đơn vị", "Đơn vị cấp trên",
    "Số cán bộ", "Có điểm", "Không đủ dữ liệu", "Điểm cán bộ", "U1 tỷ lệ (%)", "U1 điểm",
    "Văn bản ban hành", "Văn bản phát hành điện tử", "Tổng điểm", "Giải thích")


def rows_by(table, key):
    """The table's rows as dicts keyed by header, indexed by the ``key`` column."""
    return {row[table.headers.index(key)]: dict(zip(table.headers, row, strict=True))
            for row in table.rows}


def column(table, header):
    return [row[table.headers.index(header)] for row in table.rows]


def official(email):
    return next(o for o in sample_scores().officials if o.email == email)


def test_headers_per_level():
    scores = sample_scores()
    assert official_table(scores).headers == OFFICIAL_HEADERS
    assert unit_table(scores).headers == UNIT_HEADERS


def test_every_row_is_as_long_as_the_headers_and_holds_raw_values():
    scores = sample_scores()
    for table in (official_table(scores), unit_table(scores), summary_rows(scores),
                  indicator_table(scores)):
        assert table.rows
        for row in table.rows:
            assert len(row) == len(table.headers)
            for value in row:
                assert value is None or isinstance(value, str | int | float | date)
    # numbers are never pre-formatted text (the writers format them)
    for table in (official_table(scores), unit_table(scores)):
        for row in table.rows:
            assert not any(isinstance(v, str) and re.fullmatch(r"-?[0-9]+([.,][0-9]+)?", v)
                           for v in row)


def test_officials_sorted_by_unit_then_email():
    table = official_table(sample_scores())
    assert column(table, "Email") == [EM, DUNG, CMD, CUONG, AN, BINH]
    assert column(table, "Mã đơn vị") == ["P-BN", "Q1", "Q3", "Q3", "STTTT", "STTTT"]


def test_scored_official_values():
    row = rows_by(official_table(sample_scores()), "Email")[AN]
    assert row["Họ và tên"] == "Nguyễn Văn An"
    assert row["Đơn vị"] == "Sở Thông tin và Truyền thông"
    assert row["Ngày công được tính"] == 64
    assert row["I1 tỷ lệ (%)"] == pytest.approx(400 / 420 * 100)
    assert row["I1 điểm"] == pytest.approx(41.666666666666664)
    assert row["I2 tỷ lệ (%)"] == pytest.approx(60 / 64 * 100)
    assert row["I3 tỷ lệ (%)"] is None and row["I3 điểm"] is None  # no meetings: not applicable
    assert row["I4 tỷ lệ (%)"] == pytest.approx(90.0) and row["I4 điểm"] == pytest.approx(22.5)
    assert row["Trừ điểm"] == 0.0
    assert row["Tổng điểm"] == pytest.approx(official(AN).score.total)
    assert row["Kết quả"] == "Có điểm"
    assert (row["Thư gửi qua hệ thống"], row["Thư bị từ chối (ngoài hệ thống)"], row["Ngày hoạt động"],
            row["Văn bản gửi UBND"], row["Văn bản có chữ ký số hợp lệ"], row["Cuộc họp tổ chức"],
            row["Cuộc họp có giấy mời điện tử"]) == (400, 20, 60, 10, 9, 0, 0)
    assert row["Cần xem xét"] == ""
    assert row["Giải thích"] == " | ".join(official(AN).score.explain_vi())
    assert row["Giải thích"].startswith("I1: 95,2% (mục tiêu 100%) → 41,7/43,8 điểm | ")


def test_deduction_and_burst():
    rows = rows_by(official_table(sample_scores()), "Email")
    assert rows[BINH]["Trừ điểm"] == 5.0
    assert rows[BINH]["Tổng điểm"] == pytest.approx(94.267578125)
    assert rows[BINH]["I3 tỷ lệ (%)"] == 100.0
    assert rows[DUNG]["Cần xem xét"] == official(DUNG).bursts[0].reason_vi
    assert rows[DUNG]["Cần xem xét"].endswith("cần xem xét trước khi tính điểm")


def test_several_bursts_are_joined():
    scores = sample_scores()
    dung = official(DUNG)
    second = replace(dung.bursts[0], reason_vi="Gửi 40 thư trong 5 ngày làm việc (01/07–07/07)")
    officials = tuple(replace(o, bursts=(second, *o.bursts)) if o.email == DUNG else o
                      for o in scores.officials)
    row = rows_by(official_table(replace(scores, officials=officials)), "Email")[DUNG]
    assert row["Cần xem xét"] == f"{second.reason_vi}; {dung.bursts[0].reason_vi}"


def test_insufficient_data_official_has_no_total_and_no_points():
    row = rows_by(official_table(sample_scores()), "Email")[EM]
    assert row["Tổng điểm"] is None
    assert row["Kết quả"] == "Không đủ dữ liệu"
    assert row["Ngày công được tính"] == 12
    # the rate is a fact; points that count towards nothing are not shown
    assert row["I1 tỷ lệ (%)"] == 100.0 and row["I1 điểm"] is None
    assert row["I2 tỷ lệ (%)"] == pytest.approx(10 / 64 * 100) and row["I2 điểm"] is None
    assert row["Giải thích"] == "Kết quả: không đủ dữ liệu (12/20 ngày làm việc)"


@pytest.mark.parametrize(("unit", "emails"), [
    ("Q1", [EM, DUNG, CUONG]),  # Em works in a ward of Q1; Cường counted 30 days in Q1
    ("Q3", [CMD, CUONG]),       # ... before moving to Q3
    ("P-BN", [EM]),
    ("STTTT", [AN, BINH]),
])
def test_official_filter_by_unit_keeps_transferred_officials_and_child_units(unit, emails):
    table = official_table(sample_scores(), unit)
    assert column(table, "Email") == emails
    assert unit in table.title_vi


def test_transferred_official_row_is_the_same_under_both_units():
    scores = sample_scores()
    q1 = rows_by(official_table(scores, "Q1"), "Email")[CUONG]
    q3 = rows_by(official_table(scores, "Q3"), "Email")[CUONG]
    assert q1 == q3
    assert q1["Mã đơn vị"] == "Q3" and q1["Ngày công được tính"] == 64


def test_units_by_group_then_rank():
    table = unit_table(sample_scores())
    assert column(table, "Mã đơn vị") == ["STTTT", "Q3", "Q1", "P-BN"]
    assert column(table, "Hạng trong nhóm") == [1, 1, 2, None]  # 0 (not ranked) reads as empty
    assert column(table, "Số đơn vị trong nhóm") == [1, 2, 2, 1]
    assert column(table, "Nhóm") == ["Sở, ban, ngành", "Quận, huyện, thành phố thuộc thành phố",
                                     "Quận, huyện, thành phố thuộc thành phố", "Phường, xã, thị trấn"]


def test_unit_order_ignores_input_order_and_puts_unranked_last():
    scores = sample_scores()
    ward = next(u for u in scores.units if u.code == "P-BN")
    # an unranked district whose code sorts before the ranked ones
    unranked = replace(ward, kind="district", parent=None, score=replace(ward.score, unit="A0"))
    city = replace(ward, kind="city", parent=None, score=replace(ward.score, unit="ZZ"))
    shuffled = replace(scores, units=(unranked, *reversed(scores.units), city))
    assert column(unit_table(shuffled), "Mã đơn vị") == ["ZZ", "STTTT", "Q3", "Q1", "A0", "P-BN"]


def test_unit_values():
    rows = rows_by(unit_table(sample_scores()), "Mã đơn vị")
    q1, q3, ward = rows["Q1"], rows["Q3"], rows["P-BN"]
    assert q1["U1 tỷ lệ (%)"] == 50.0 and q1["U1 điểm"] == pytest.approx(250 / 3)
    assert (q1["Văn bản ban hành"], q1["Văn bản phát hành điện tử"]) == (120, 60)
    assert q1["Điểm cán bộ"] == pytest.approx(74.92751569584932)
    assert q1["Tổng điểm"] == pytest.approx(0.7 * 74.92751569584932 + 0.3 * 250 / 3)
    assert (q1["Số cán bộ"], q1["Có điểm"], q1["Không đủ dữ liệu"]) == (2, 2, 0)
    assert q1["Giải thích"].endswith("Tổng: 0,7 × 74,9 + 0,3 × 83,3 = 77,4")
    assert q3["U1 tỷ lệ (%)"] is None and q3["Văn bản ban hành"] is None  # no register
    assert ward["Tổng điểm"] is None and ward["Điểm cán bộ"] is None
    assert ward["Đơn vị cấp trên"] == "Q1"
    assert (ward["Có điểm"], ward["Không đủ dữ liệu"]) == (0, 1)


@pytest.mark.parametrize(("unit", "codes"), [
    ("Q1", ["Q1", "P-BN"]),  # a district brings its wards
    ("P-BN", ["P-BN"]),
    ("Q3", ["Q3"]),
])
def test_unit_filter_includes_child_units(unit, codes):
    assert column(unit_table(sample_scores(), unit), "Mã đơn vị") == codes


@pytest.mark.parametrize("build", [official_table, unit_table, summary_rows])
def test_unknown_unit_is_refused(build):
    with pytest.raises(InputError, match="'Q99'"):
        build(sample_scores(), "Q99")


def test_summary_of_an_open_period():
    facts = dict(summary_rows(sample_scores()).rows)
    assert facts["Kỳ"] == "Quý III/2026"
    assert (facts["Từ ngày"], facts["Đến ngày"]) == (date(2026, 7, 1), date(2026, 9, 30))
    assert facts["Số ngày làm việc"] == 64
    assert facts["Phiên bản mô hình điểm"] == "2026.1"
    until = facts["Dữ liệu cập nhật đến"]
    assert until == datetime(2026, 10, 2, 9, 29, 58, tzinfo=VIETNAM)
    assert until.utcoffset() == timedelta(hours=7)  # shown in Vietnam time, not UTC
    assert facts["Tính lúc"].utcoffset() == timedelta(hours=7)
    assert facts["Trạng thái"] == "Chưa chốt — có thể tính lại"
    assert facts["Phạm vi"] == "Toàn thành phố"


def test_summary_of_a_closed_period_and_missing_data():
    scores = replace(sample_scores(closed=True), data_until=None)
    facts = dict(summary_rows(scores, "Q1").rows)
    assert facts["Trạng thái"] == "Đã chốt bởi hr@hcm.gov.vn lúc 05/10/2026 10:00 (GMT+7)"
    assert facts["Dữ liệu cập nhật đến"] == "Chưa có dữ liệu"
    assert facts["Phạm vi"] == "Đơn vị Q1 — UBND Quận 1 và các đơn vị trực thuộc"


def test_indicator_table_with_city_wide_rates():
    rows = rows_by(indicator_table(sample_scores()), "Mã chỉ số")
    assert list(rows) == ["I1", "I2", "I3", "I4", "U1"]
    i1, i2, u1 = rows["I1"], rows["I2"], rows["U1"]
    assert i1["Tên chỉ số"] == "Tỷ lệ dùng hệ thống thư công vụ"
    assert (i1["Áp dụng cho"], i1["Trọng số (điểm)"], i1["Mục tiêu (%)"]) == ("Cán bộ", 35.0, 100.0)
    assert i2["Mục tiêu (%)"] == pytest.approx(80.0)
    # pooled over every official: sent / (sent + refused outside)
    assert i1["Tỷ lệ toàn thành phố (%)"] == pytest.approx(1200 / 1255 * 100)
    assert i2["Tỷ lệ toàn thành phố (%)"] == pytest.approx(250 / (6 * 64) * 100)
    assert rows["I3"]["Tỷ lệ toàn thành phố (%)"] == 100.0
    assert rows["I4"]["Tỷ lệ toàn thành phố (%)"] == pytest.approx(11 / 14 * 100)
    # pooled over the units' registers
    assert (u1["Áp dụng cho"], u1["Mục tiêu (%)"]) == ("Đơn vị", 60.0)
    assert u1["Tỷ lệ toàn thành phố (%)"] == pytest.approx(210 / 320 * 100)


def read_csv(path):
    raw = path.read_bytes()
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return raw, list(csv.reader(fh))


def test_officials_csv_reads_back(tmp_path):
    target = tmp_path / "can_bo.csv"
    assert write_scores_csv(sample_scores(), "official", target) == 6
    raw, rows = read_csv(target)
    assert raw.startswith(b"\xef\xbb\xbf")
    assert rows[0] == list(OFFICIAL_HEADERS)
    by_email = {r[0]: dict(zip(OFFICIAL_HEADERS, r, strict=True)) for r in rows[1:]}
    an = by_email[AN]
    assert an["Tổng điểm"] == "95,42" and an["I1 tỷ lệ (%)"] == "95,24"  # decimal comma
    assert an["I3 tỷ lệ (%)"] == "" and an["Trừ điểm"] == "0"
    # text a person typed is neutralised; numbers are not
    neutralised = by_email["'=cmd@hcm.gov.vn"]
    assert neutralised["Họ và tên"] == "'=HYPERLINK(\"x\")"
    assert by_email[BINH]["Trừ điểm"] == "5"
    assert by_email[EM]["Tổng điểm"] == "" and by_email[EM]["Kết quả"] == "Không đủ dữ liệu"
    assert os.stat(target).st_mode & 0o777 == 0o600


def test_units_csv_with_filter(tmp_path):
    target = tmp_path / "don_vi.csv"
    assert write_scores_csv(sample_scores(), "unit", target, unit="Q1") == 2
    _, rows = read_csv(target)
    assert rows[0] == list(UNIT_HEADERS)
    assert [r[3] for r in rows[1:]] == ["Q1", "P-BN"]
    assert rows[1][UNIT_HEADERS.index("Tổng điểm")] == "77,45"
    assert rows[2][UNIT_HEADERS.index("Hạng trong nhóm")] == ""


def test_csv_refuses_an_unknown_table(tmp_path):
    with pytest.raises(ValueError, match="'person'"):
        write_scores_csv(sample_scores(), "person", tmp_path / "x.csv")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("field", ["computed_at", "data_until"])
def test_summary_refuses_naive_times(field):
    scores = replace(sample_scores(), **{field: datetime(2026, 10, 2, 9, 30)})
    with pytest.raises(ValueError, match="naive"):
        summary_rows(scores)
