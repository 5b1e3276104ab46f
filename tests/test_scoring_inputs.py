"""What HR and the IT department hand to scoring: the model file, the holiday calendar, unit
registers and employment dates. Each bad input is one line naming the file, line or key, and
nothing is stored from a file with a problem."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from mailhub import directory
from mailhub.config import config_from_mapping
from mailhub.db import make_engine
from mailhub.errors import ConfigError, InputError
from mailhub.models import OfficialAssignment, UnitRegister
from mailhub.schema import upgrade
from mailhub.scoring import employment, inputs
from mailhub.scoring.modelfile import (SHIPPED_HOLIDAYS, SHIPPED_MODEL, load_holidays, load_model,
                                       parse_holidays, parse_model)
from policies.scoring.model import DEFAULT_MODEL

DOMAINS = config_from_mapping({"domains": {"official": ["hcm.gov.vn"]}}).domains


@pytest.fixture
def engine(tmp_path):
    url = f"sqlite:///{tmp_path / 'mailhub.db'}"
    upgrade(url)
    engine = make_engine(url)
    directory.add_unit(engine, "Q1", "UBND Quận 1", kind="district")
    directory.add_unit(engine, "Q3", "UBND Quận 3", kind="district")
    directory.add_official(engine, DOMAINS, "an@hcm.gov.vn", "Nguyễn Văn An", "Q1")
    yield engine
    engine.dispose()


def test_the_shipped_model_is_the_directives_default():
    models = load_model(SHIPPED_MODEL)
    assert models.officials == DEFAULT_MODEL
    assert [(i.code, i.weight, i.target) for i in models.units.indicators] == [("U1", 100.0, 0.6)]
    assert models.officials_weight == 0.7 and "version = \"2026.1\"" in models.text
    assert date(2026, 9, 2) in load_holidays(SHIPPED_HOLIDAYS).dates


MODEL = SHIPPED_MODEL.read_text(encoding="utf-8")


@pytest.mark.parametrize(("change", "message"), [
    (("weight = 35", "weight = 30"), "indicators: weights must add up to 100, got 95"),
    (("target = 0.8", "target = 80"), "indicators[1].target: expected a number in (0, 1], got 80"),
    (('code = "I4"', 'code = "I9"'), "indicators[3].code: 'I9' is not measured by mailhub"),
    (("officials_weight = 0.7", "officials_weight = 1.5"), "unit.officials_weight: expected a number from 0 to 1"),
    (('code = "U1"', 'code = "I1"'), "unit.indicators[0].code: 'I1' is not measured by mailhub"),
    (("min_days = 20", "min_days = -1"), "min_days: expected a whole number of days"),
    (("[unit]", "[unit]\nextra = 1"), "unit.extra: unknown key"),
])
def test_a_bad_model_names_the_key(change, message):
    with pytest.raises(ConfigError) as raised:
        parse_model(MODEL.replace(*change, 1), "model.toml")
    assert str(raised.value).startswith("model.toml") and message in str(raised.value)


@pytest.mark.parametrize(("data", "message"), [
    ({"holidays": [{"date": date(2026, 1, 1)}, {"date": date(2026, 1, 1)}]}, "holidays[1].date: 2026-01-01 is listed twice"),
    ({"holidays": [{"date": "2026-01-01"}]}, "holidays[0].date: expected a date"),
    ({"holidays": [{"date": date(2026, 1, 1), "ten": "x"}]}, "holidays[0].ten: unknown key"),
    ({"holiday": []}, "holiday: unknown key"),
])
def test_a_bad_holiday_calendar_names_the_entry(data, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_holidays(data, "holidays.toml")


def test_a_config_pointing_at_a_bad_model_does_not_load(tmp_path):
    bad = tmp_path / "model.toml"
    bad.write_text(MODEL.replace("weight = 35", "weight = 36", 1), encoding="utf-8")
    with pytest.raises(ConfigError, match=f"{bad}: indicators: weights must add up to 100"):
        config_from_mapping({"domains": {"official": ["hcm.gov.vn"]}, "scoring": {"model_file": str(bad)}})


def registers(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(UnitRegister.unit_code, UnitRegister.month, UnitRegister.issued,
                                                      UnitRegister.issued_electronic).order_by(UnitRegister.month))]


def test_register_import_reads_excel_files_and_replaces_a_month(engine, tmp_path):
    path = tmp_path / "so.csv"
    path.write_text("Mã đơn vị;Tháng;Văn bản ban hành;Văn bản điện tử\nQ1;7/2026;1.234;1 000\nQ1;2026-08;10;0\n\n",
                    encoding="utf-8-sig")
    assert inputs.import_register(engine, path) == 2
    path.write_text("unit,month,issued,electronic\nQ1,08/2026,20,12\n", encoding="utf-8")
    assert inputs.import_register(engine, path) == 1
    assert registers(engine) == [("Q1", "2026-07", 1234, 1000), ("Q1", "2026-08", 20, 12)]
    assert inputs.register_totals(engine, date(2026, 7, 1), date(2026, 9, 30)) == {"Q1": (1254, 1012)}
    assert inputs.register_totals(engine, date(2026, 7, 15), date(2026, 8, 31)) == {"Q1": (20, 12)}


@pytest.mark.parametrize(("text", "message"), [
    ("Mã đơn vị,Tháng,Văn bản ban hành\nQ1,07/2026,1\n", "line 1: missing column(s) electronic"),
    ("unit,month,issued,electronic\nQ1,07/2026,10,5\nQ9,07/2026,1,1\n", "line 3: unit: 'Q9' is not a unit"),
    ("unit,month,issued,electronic\nQ1,13/2026,10,5\n", "line 2: month: '13/2026' is not a month"),
    ("unit,month,issued,electronic\nQ1,07/2026,mười,5\n", "line 2: issued: 'mười' is not a whole number"),
    ("unit,month,issued,electronic\nQ1,07/2026,10,5\nQ1,2026-07,10,5\n", "line 3: unit Q1 month 2026-07 is listed twice"),
])
def test_a_bad_register_names_the_line_and_stores_nothing(engine, tmp_path, text, message):
    path = tmp_path / "so.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as raised:
        inputs.import_register(engine, path)
    assert str(raised.value).startswith(f"{path}: ") and message in str(raised.value)
    assert registers(engine) == []


def test_a_register_that_is_not_utf8_says_how_to_save_it(engine, tmp_path):
    path = tmp_path / "so.csv"
    path.write_bytes("Mã đơn vị,Tháng\n".encode("utf-16"))  # what "Unicode Text" saves
    with pytest.raises(InputError, match='save it as "CSV UTF-8"'):
        inputs.import_register(engine, path)


def test_employment_rows_replace_an_officials_and_are_read_for_scoring(engine, tmp_path):
    path = tmp_path / "cong-tac.csv"
    path.write_text("Email,Mã đơn vị,Từ ngày,Đến ngày\nAn@HCM.gov.vn,Q1,01/01/2020,14/08/2026\n"
                    "an@hcm.gov.vn,Q3,2026-08-17,\n", encoding="utf-8")
    assert employment.import_employment(engine, path) == 2
    assert employment.import_employment(engine, path) == 2  # again: replaced, not added
    with engine.connect() as conn:
        assert len(conn.execute(select(OfficialAssignment)).all()) == 2
    [an] = employment.load_staff(engine, date(2026, 7, 1), date(2026, 9, 30))
    assert [(a.unit, a.start, a.end) for a in an.employment] == [
        ("Q1", date(2020, 1, 1), date(2026, 8, 14)), ("Q3", date(2026, 8, 17), None)]
    assert employment.load_staff(engine, date(2019, 1, 1), date(2019, 12, 31)) == []  # not yet employed


def test_bad_employment_dates_name_the_line(engine, tmp_path):
    path = tmp_path / "cong-tac.csv"
    path.write_text("Email,Mã đơn vị,Từ ngày,Đến ngày\nan@hcm.gov.vn,Q1,01/09/2026,31/08/2026\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 2: assignment to Q1: ends 2026-08-31 before it starts 2026-09-01"):
        employment.import_employment(engine, path)
    path.write_text("Email,Mã đơn vị,Từ ngày\nan@hcm.gov.vn,Q1,31/02/2026\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 2: start: '31/02/2026' is not a date"):
        employment.import_employment(engine, path)
