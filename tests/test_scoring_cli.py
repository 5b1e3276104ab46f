"""``mailhub scores`` and ``mailhub report`` as HR runs them: subprocesses on a real home, the
quarter's ledger written as the relay writes it, the files read back."""
from __future__ import annotations

import csv
import json
from datetime import date, datetime, timezone

import openpyxl
import pytest

from mailhub import directory
from mailhub.config import config_from_mapping
from mailhub.models import UsageEvent
from mailhub.templating import VIETNAM
from tests.test_cli import _one_error_line, hub, ready, ready_home  # noqa: F401  (fixtures of the CLI test)

DOMAINS = config_from_mapping({"domains": {"official": ["hcm.gov.vn"]}}).domains
AN, BINH = "an@hcm.gov.vn", "binh@hcm.gov.vn"


def at_vn(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 9, tzinfo=VIETNAM).astimezone(timezone.utc)


@pytest.fixture
def quarter(request):
    """Two officials of STTTT; an@ mails every weekday of 2026-Q3, binh@ on 10 days."""
    home = request.getfixturevalue("ready")
    engine = home.engine()
    directory.add_official(engine, DOMAINS, AN, "Nguyễn Văn An", "STTTT")
    directory.add_official(engine, DOMAINS, BINH, "=Trần Thị Bình", "STTTT")
    rows, day = [], date(2026, 7, 1)
    while day <= date(2026, 9, 30):
        if day.weekday() < 5:
            rows.append({"at": at_vn(day), "kind": "email", "official_email": AN})
            if day.day <= 10 and day.month == 7:
                rows.append({"at": at_vn(day), "kind": "email", "official_email": BINH})
        day = date.fromordinal(day.toordinal() + 1)
    with engine.begin() as conn:
        conn.execute(UsageEvent.__table__.insert(), rows)
    engine.dispose()
    return home


def test_scores_table_csv_xlsx_and_json(quarter, tmp_path):
    shown = quarter("scores", "--period", "2026-Q3")
    assert shown.returncode == 0, shown.stderr
    assert "Nguyễn Văn An" in shown.stdout and "Quý III/2026" in shown.stdout and "Chưa chốt" in shown.stdout
    assert "2 officials" in shown.stderr

    units = quarter("scores", "--period", "2026-Q3", "--by", "unit")
    assert units.returncode == 0 and "Sở Thông tin và Truyền thông" in units.stdout

    out = tmp_path / "diem.csv"
    result = quarter("scores", "--period", "2026-Q3", "--format", "csv", "--out", str(out))
    assert result.returncode == 0, result.stderr
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    assert rows[0][:2] == ["Email", "Họ và tên"] and len(rows) == 3
    binh = next(r for r in rows if r[0] == BINH)
    assert binh[1] == "'=Trần Thị Bình"  # formula injection neutralised

    book = tmp_path / "diem.xlsx"
    assert quarter("scores", "--period", "2026-Q3", "--format", "xlsx", "--out", str(book)).returncode == 0
    workbook = openpyxl.load_workbook(book)
    assert workbook.sheetnames == ["Tổng quan", "Đơn vị", "Cán bộ"]

    as_json = quarter("scores", "--period", "2026-Q3", "--format", "json")
    body = json.loads(as_json.stdout)
    assert "units" not in body
    an = next(o for o in body["officials"] if o["email"] == AN)
    assert an["activity"]["active_days"] == 64 and an["score"]["status"] == "scored"


def test_bad_input_is_one_line_naming_what(quarter, tmp_path):
    assert "--out: required" in _one_error_line(quarter("scores", "--period", "2026-Q3", "--format", "csv"))
    assert "2026-Q5" in _one_error_line(quarter("scores", "--period", "2026-Q5"))
    assert "--unit: 'NOPE'" in _one_error_line(quarter("scores", "--period", "2026-Q3", "--unit", "NOPE"))
    register = tmp_path / "so-van-ban.csv"
    register.write_text("Mã đơn vị,Tháng,Văn bản ban hành,Văn bản điện tử\nSTTTT,07/2026,100,40\n"
                        "STTTT,08/2026,100,140\n", encoding="utf-8")
    line = _one_error_line(quarter("scores", "import-register", str(register)))
    assert f"{register}: line 3: electronic: 140 is more than the 100 issued" in line
    employment = tmp_path / "cong-tac.csv"
    employment.write_text("Email;Mã đơn vị;Từ ngày;Đến ngày\nan@hcm.gov.vn;STTTT;01/08/2026;\n"
                          "an@hcm.gov.vn;HCM;15/07/2026;31/08/2026\n", encoding="utf-8-sig")
    assert "overlapping assignments" in _one_error_line(quarter("scores", "import-employment", str(employment)))
    employment.write_text("Email;Mã đơn vị;Từ ngày\nai@hcm.gov.vn;STTTT;32/08/2026\n", encoding="utf-8")
    assert "line 2: email: 'ai@hcm.gov.vn' is not in the directory" in _one_error_line(
        quarter("scores", "import-employment", str(employment)))


def test_register_employment_deduction_close_and_report(quarter, tmp_path):
    register = tmp_path / "so-van-ban.csv"
    register.write_text("Mã đơn vị,Tháng,Văn bản ban hành,Văn bản điện tử\n"
                        "STTTT,07/2026,100,40\nSTTTT,08/2026,100,60\nSTTTT,09/2026,\"1.000\",800\n", encoding="utf-8")
    assert quarter("scores", "import-register", str(register)).returncode == 0
    employment = tmp_path / "cong-tac.csv"
    employment.write_text("Email,Mã đơn vị,Từ ngày,Đến ngày\nbinh@hcm.gov.vn,STTTT,01/09/2026,\n", encoding="utf-8")
    assert quarter("scores", "import-employment", str(employment)).returncode == 0
    deducted = quarter("scores", "deduct", AN, "--day", "15/08/2026", "--note", "Dùng Gmail gửi công văn",
                       "--by-name", "tccb@hcm.gov.vn")
    assert deducted.returncode == 0, deducted.stderr

    body = json.loads(quarter("scores", "--period", "2026-Q3", "--format", "json", "--by", "unit").stdout)
    sttt = next(u for u in body["units"] if u["score"]["unit"] == "STTTT")
    assert (sttt["issued"], sttt["issued_electronic"]) == (1200, 900)
    officials = json.loads(quarter("scores", "--period", "2026-Q3", "--format", "json").stdout)["officials"]
    an = next(o for o in officials if o["email"] == AN)
    binh = next(o for o in officials if o["email"] == BINH)
    assert an["activity"]["deduction_cases"] == 1 and an["score"]["deduction"] == 5.0
    assert binh["days_by_unit"] == [["STTTT", 20]] and binh["score"]["status"] == "scored"  # September only

    closed = quarter("scores", "close", "--period", "2026-Q3", "--by-name", "tccb@hcm.gov.vn")
    assert closed.returncode == 0, closed.stderr and "closed by tccb@hcm.gov.vn" in closed.stdout
    assert "2026-Q3" in quarter("scores", "periods").stdout
    assert "was closed by tccb@hcm.gov.vn" in _one_error_line(
        quarter("scores", "close", "--period", "2026-Q3", "--by-name", "x@hcm.gov.vn"))
    assert "Đã chốt" in quarter("scores", "--period", "2026-Q3").stdout

    pdf = tmp_path / "bao-cao.pdf"
    made = quarter("report", "--period", "2026-Q3", "--out", str(pdf))
    assert made.returncode == 0, made.stderr
    assert pdf.read_bytes().startswith(b"%PDF")
    html = tmp_path / "bao-cao.html"
    assert quarter("report", "--period", "2026-Q3", "--out", str(html), "--locale", "en").returncode == 0
    assert "<html" in html.read_text(encoding="utf-8")
    assert ".docx" in _one_error_line(quarter("report", "--period", "2026-Q3", "--out", str(tmp_path / "r.docx")))
