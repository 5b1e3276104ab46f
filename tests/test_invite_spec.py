"""A meeting described in TOML: a valid file, and every problem named with file and field."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from invites.spec import Guest, load_spec, parse_time, spec_from_mapping
from mailhub.errors import InputError

VALID = '''
title = "Họp giao ban chuyển đổi số quý IV"
agenda = """1. Kết quả quý III
2. Kế hoạch quý IV"""
location = "Phòng họp số 2"
start = "2026-12-03 08:00"
duration_minutes = 150
unit = "STTTT"
chair = "Đồng chí Nguyễn Văn An"
secretary = "vanthu@hcm.gov.vn"
attendees = ["binh@hcm.gov.vn"]
units = ["Q1"]

[[guests]]
name = "Ông Trần Văn Bảo"
email = "bao@doitac.vn"
phone = "0912 345 678"

[[guests]]
name = "Bà Lê Thị Cúc"
phone = "0987654321"
'''


def test_a_valid_file(tmp_path):
    path = tmp_path / "hop.toml"
    path.write_text(VALID, encoding="utf-8")
    spec = load_spec(path)
    assert spec.title == "Họp giao ban chuyển đổi số quý IV"
    assert spec.start.astimezone(timezone.utc) == datetime(2026, 12, 3, 1, 0, tzinfo=timezone.utc)  # 08:00 GMT+7
    assert spec.end - spec.start == timedelta(minutes=150)
    assert spec.agenda.splitlines() == ["1. Kết quả quý III", "2. Kế hoạch quý IV"]
    assert (spec.attendees, spec.units) == (("binh@hcm.gov.vn",), ("Q1",))
    assert spec.guests == (Guest("Ông Trần Văn Bảo", "bao@doitac.vn", "0912 345 678"),
                           Guest("Bà Lê Thị Cúc", None, "0987654321"))


@pytest.mark.parametrize("text, moment", [
    ("2026-12-03 08:00", (2026, 12, 3, 8, 0)),
    ("2026-12-03T08:00", (2026, 12, 3, 8, 0)),
    ("03/12/2026 14:30", (2026, 12, 3, 14, 30)),  # day first, as written in Vietnam
])
def test_times_are_vietnam_time(text, moment):
    got = parse_time(text)
    assert got.utcoffset() == timedelta(hours=7) and got.replace(tzinfo=None) == datetime(*moment)


BASE = {"title": "Họp", "start": "2026-12-03 08:00", "end": "2026-12-03 09:00", "unit": "STTTT",
        "secretary": "vanthu@hcm.gov.vn", "attendees": ["binh@hcm.gov.vn"]}


@pytest.mark.parametrize("change, problem", [
    ({"title": ""}, "title: required"),
    ({"title": "x" * 501}, "title: at most 500 characters"),
    ({"title": "Họp\x1b[31m"}, "title: control characters are not allowed"),
    ({"start": "3 tháng 12"}, "start: expected a time like 2026-12-03 08:00"),
    ({"start": 20261203}, "start: expected a time as text"),
    ({"end": "2026-12-03 07:00"}, "end: must be after start"),
    ({"end": "2026-12-20 07:00"}, "end: a meeting lasts at most 7 days"),
    ({"end": None, "duration_minutes": 0}, "duration_minutes: expected a positive whole number"),
    ({"duration_minutes": 30}, "duration_minutes: give end or duration_minutes, not both"),
    ({"attendees": "binh@hcm.gov.vn"}, "attendees: expected a list of non-empty texts"),
    ({"attendees": []}, "attendees: nobody is invited"),
    ({"guests": [{"name": "Ông Bảo"}], "attendees": []}, "guests[0]: give an email or a phone number for Ông Bảo"),
    ({"guests": [{"email": "b@x.vn"}]}, "guests[0].name: required"),
    ({"guests": [{"name": "A", "fax": "1"}]}, "guests[0]: unknown field fax"),
    ({"colour": "red"}, "colour: unknown field"),
    ({"unit": None}, "unit: required"),
])
def test_problems_name_the_field(change, problem):
    data = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    with pytest.raises(InputError) as caught:
        spec_from_mapping(data, "hop.toml")
    assert f"hop.toml: {problem}" in str(caught.value)


def test_every_problem_at_once():
    with pytest.raises(InputError) as caught:
        spec_from_mapping({"title": "", "start": "x", "unit": "STTTT"}, "hop.toml")
    lines = str(caught.value).splitlines()
    assert {line.split(": ")[1] for line in lines} >= {"title", "start", "secretary", "end", "attendees"}


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        load_spec(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text('title = "unterminated', encoding="utf-8")
    with pytest.raises(InputError, match="bad.toml: not valid TOML"):
        load_spec(bad)
