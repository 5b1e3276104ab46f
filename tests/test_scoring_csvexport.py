"""HR CSV export: cell conversions, formula-injection neutralising, the BOM, CRLF, the atomic
write."""
from __future__ import annotations

import csv
import io
import os
import stat
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from mailhub.scoring.csvexport import csv_cell, write_csv

HEADERS = ["Họ và tên", "Đơn vị", "Điểm", "Ngày", "Đạt"]
ROWS = [
    ["Nguyễn Văn An", "Sở Nội vụ", 33.25, date(2025, 1, 31), True],
    ["Đặng Thị Ánh", "UBND Phường Bến Nghé", 95.0, date(2025, 2, 1), False],
    ["=HYPERLINK(\"http://x\")", "-trừ điểm", -5, None, None],
]


@pytest.mark.parametrize(("value", "expected"), [
    (None, ""),
    (date(2025, 3, 7), "07/03/2025"),
    # aware datetimes are shown in Vietnam time (UTC+7), whatever zone they come in
    (datetime(2025, 3, 7, 1, 30, tzinfo=UTC), "07/03/2025 08:30"),
    (datetime(2025, 3, 7, 20, 5, tzinfo=UTC), "08/03/2025 03:05"),
    (datetime(2025, 3, 7, 9, 0, tzinfo=timezone(timedelta(hours=7))), "07/03/2025 09:00"),
    (datetime(2025, 3, 7, 9, 0, tzinfo=timezone(timedelta(hours=-5))), "07/03/2025 21:00"),
    (True, "có"),
    (False, "không"),
    (0, "0"),
    (42, "42"),
    (1234567, "1234567"),
    (-5, "-5"),
    (33.25, "33,25"),
    (95.0, "95"),
    (0.5, "0,5"),
    (0.1 + 0.2, "0,3"),
    (33.255, "33,26"),  # half up, as the decimal reads
    (2.675, "2,68"),    # not 2,67 as binary rounding would give
    (1 / 3, "0,33"),
    (-5.0, "-5"),
    (-2.5, "-2,5"),
    (-0.0, "0"),
    (-0.001, "0"),
    (1234567.891, "1234567,89"),  # no thousands separator
    (Decimal("12.345"), "12,35"),
    (Decimal("7.50"), "7,5"),
    ("Nguyễn Văn An", "Nguyễn Văn An"),
    ("", ""),
])
def test_conversions(value, expected):
    assert csv_cell(value) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("=1+1", "'=1+1"),
    ("+84 91 234 5678", "'+84 91 234 5678"),
    ("-x", "'-x"),
    ("-5", "'-5"),  # text that looks like a number is still text
    ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=cmd|' /C calc'!A0", "'\t=cmd|' /C calc'!A0"),
    ("\r=1+1", "'\r=1+1"),
    ("Đặng Thị Ánh", "Đặng Thị Ánh"),
    ("Ủy ban nhân dân", "Ủy ban nhân dân"),
    ("a=1+1", "a=1+1"),
    (" =1+1", " =1+1"),
    ("'=1", "'=1"),
])
def test_formula_injection_neutralised(text, expected):
    assert csv_cell(text) == expected


@pytest.mark.parametrize("value", [-5, -5.0, -0.5, Decimal("-12.5"), -1234567])
def test_numbers_never_neutralised(value):
    assert not csv_cell(value).startswith("'")


@pytest.mark.parametrize(("value", "error"), [
    (datetime(2025, 3, 7, 9, 0), ValueError),  # naive: time zone unknown
    (float("nan"), ValueError),
    (float("inf"), ValueError),
    (Decimal("NaN"), ValueError),
    (b"bytes", TypeError),
    ([1, 2], TypeError),
])
def test_refuses_what_it_cannot_export(value, error):
    with pytest.raises(error):
        csv_cell(value)


def read_back(path):
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.reader(fh))


def test_file_has_bom_crlf_and_reads_back(tmp_path):
    target = tmp_path / "diem.csv"
    assert write_csv(target, HEADERS, ROWS) == 3

    raw = target.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert raw.count(b"\r\n") == 4 and raw.count(b"\n") == 4
    assert b'"33,25"' in raw  # the decimal comma is quoted, not a column break

    assert read_back(target) == [
        ["Họ và tên", "Đơn vị", "Điểm", "Ngày", "Đạt"],
        ["Nguyễn Văn An", "Sở Nội vụ", "33,25", "31/01/2025", "có"],
        ["Đặng Thị Ánh", "UBND Phường Bến Nghé", "95", "01/02/2025", "không"],
        ["'=HYPERLINK(\"http://x\")", "'-trừ điểm", "-5", "", ""],
    ]


def test_rows_may_be_a_generator(tmp_path):
    target = tmp_path / "diem.csv"
    assert write_csv(target, ["Điểm"], ([n] for n in range(5))) == 5
    assert read_back(target)[1:] == [[str(n)] for n in range(5)]


def test_no_rows(tmp_path):
    target = tmp_path / "diem.csv"
    assert write_csv(target, HEADERS, []) == 0
    assert read_back(target) == [HEADERS]


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "diem.csv"
    target.write_text("old contents\n", encoding="utf-8")
    target.chmod(0o640)

    assert write_csv(target, HEADERS, ROWS[:1]) == 1

    assert os.listdir(tmp_path) == ["diem.csv"]
    assert read_back(target)[1][0] == "Nguyễn Văn An"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # a replaced file keeps its mode


def test_new_file_is_private(tmp_path):
    target = tmp_path / "diem.csv"
    write_csv(str(target), HEADERS, [])
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_failure_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "diem.csv"
    target.write_bytes(b"old")

    def rows():
        yield ROWS[0]
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError):
        write_csv(target, HEADERS, rows())
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["diem.csv"]


def test_row_of_wrong_length_names_the_row(tmp_path):
    target = tmp_path / "diem.csv"
    with pytest.raises(ValueError, match="row 2 has 2 cells, expected 5"):
        write_csv(target, HEADERS, [ROWS[0], ["a", "b"]])
    assert os.listdir(tmp_path) == []


def test_open_text_file(tmp_path):
    target = tmp_path / "diem.csv"
    with open(target, "w", encoding="utf-8-sig", newline="") as fh:
        assert write_csv(fh, HEADERS, ROWS[:2]) == 2
        assert not fh.closed  # the caller's file stays open
    assert target.read_bytes().startswith(b"\xef\xbb\xbf")
    assert read_back(target)[2] == ["Đặng Thị Ánh", "UBND Phường Bến Nghé", "95", "01/02/2025", "không"]


def test_string_buffer():
    buf = io.StringIO(newline="")
    assert write_csv(buf, ["Điểm"], [[-5], ["-5"]]) == 1 + 1
    assert buf.getvalue() == "Điểm\r\n-5\r\n'-5\r\n"
