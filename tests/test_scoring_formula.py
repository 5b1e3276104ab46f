"""HR usage scores: the pure core (calendar, model, formula), hand-worked cases."""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from mailhub.errors import ConfigError
from policies.scoring.calendar import Assignment, days_in_units, working_days
from policies.scoring.formula import Counts, score, vn_number
from policies.scoring.model import DEFAULT_MODEL, Indicator, ScoringModel

# Vietnamese 2026 holidays used here (the real list is configuration): New Year 1 Jan,
# Tết Bính Ngọ 16–20 Feb (Mon–Fri; the weekends around it are off anyway), National Day 2 Sep.
TET_2026 = frozenset(date(2026, 2, 16) + timedelta(days=n) for n in range(5))
HOLIDAYS_2026 = TET_2026 | {date(2026, 1, 1), date(2026, 9, 2)}

# The same counts in several cases:
#   I1 95/100 = 95% of target 100%   I2 52/65 = 80% of target 80%
#   I3 9/10  = 90% of target 100%    I4 19/20 = 95% of target 100%
ALL = {"I1": Counts(95, 100), "I2": Counts(52, 65), "I3": Counts(9, 10), "I4": Counts(19, 20)}


# ---- formula ---------------------------------------------------------------------------------

def test_all_indicators_apply():
    # I1 0.95/1.0 × 35 = 33.25; I2 0.8/0.8 × 25 = 25; I3 0.9 × 20 = 18; I4 0.95 × 20 = 19
    # total 33.25 + 25 + 18 + 19 = 95.25
    s = score(DEFAULT_MODEL, ALL, days_counted=65)
    assert s.status == "scored"
    assert [p.points for p in s.parts] == pytest.approx([33.25, 25.0, 18.0, 19.0])
    assert [p.effective_weight for p in s.parts] == [35.0, 25.0, 20.0, 20.0]
    assert s.total == pytest.approx(95.25)
    assert s.notes == ()
    assert s.explain_vi() == [
        "I1: 95% (mục tiêu 100%) → 33,3/35 điểm",
        "I2: 80% (mục tiêu 80%) → 25/25 điểm",
        "I3: 90% (mục tiêu 100%) → 18/20 điểm",
        "I4: 95% (mục tiêu 100%) → 19/20 điểm",
        "Tổng: 95,3/100 điểm",
    ]
    i1 = s.parts[0]
    assert (i1.code, i1.numerator, i1.denominator, i1.rate, i1.target, i1.weight, i1.applies) == \
        ("I1", 95, 100, 0.95, 1.0, 35.0, True)


def test_explanation_line_format_exactly():
    model = ScoringModel("t", (Indicator("I1", "a", "a", 35, 1.0), Indicator("I2", "b", "b", 65, 1.0)))
    s = score(model, {"I1": Counts(95, 100), "I2": Counts(1, 1)}, days_counted=20)
    assert s.explain_vi()[0] == "I1: 95% (mục tiêu 100%) → 33,3/35 điểm"


def test_rate_above_target_gets_full_points_only():
    # I2 60/65 = 92.3% against target 80%: min(1, 0.923/0.8) × 25 = 25, not 28.8
    counts = dict(ALL, I2=Counts(60, 65))
    s = score(DEFAULT_MODEL, counts, days_counted=65)
    assert s.parts[1].rate == pytest.approx(60 / 65)
    assert s.parts[1].points == 25.0
    assert s.explain_vi()[1] == "I2: 92,3% (mục tiêu 80%) → 25/25 điểm"


def test_not_applicable_indicator_spreads_its_weight():
    # I3 0/0: left out. Applicable weight 35 + 25 + 20 = 80, scale 100/80 = 1.25:
    #   I1 35 × 1.25 = 43.75 → 0.95 × 43.75 = 41.5625
    #   I2 25 × 1.25 = 31.25 → 1.0  × 31.25 = 31.25
    #   I4 20 × 1.25 = 25    → 0.95 × 25    = 23.75
    # total 41.5625 + 31.25 + 23.75 = 96.5625
    s = score(DEFAULT_MODEL, dict(ALL, I3=Counts(0, 0)), days_counted=65)
    assert s.status == "scored"
    assert [p.effective_weight for p in s.parts] == [43.75, 31.25, 0.0, 25.0]
    assert [p.points for p in s.parts] == pytest.approx([41.5625, 31.25, 0.0, 23.75])
    assert s.total == pytest.approx(96.5625)
    i3 = s.parts[2]
    assert (i3.applies, i3.rate, i3.weight) == (False, None, 20.0)
    assert len(s.notes) == 1 and s.notes[0].startswith("I3 (") and "20 điểm" in s.notes[0]
    assert s.explain_vi() == [
        "I1: 95% (mục tiêu 100%) → 41,6/43,8 điểm",
        "I2: 80% (mục tiêu 80%) → 31,3/31,3 điểm",
        "I3: không áp dụng (0/0, mục tiêu 100%) → 20 điểm phân bổ cho các chỉ số khác",
        "I4: 95% (mục tiêu 100%) → 23,8/25 điểm",
        "Tổng: 96,6/100 điểm",
    ]


def test_missing_counts_mean_not_applicable():
    counts = {k: v for k, v in ALL.items() if k != "I3"}
    assert score(DEFAULT_MODEL, counts, 65) == score(DEFAULT_MODEL, dict(ALL, I3=Counts(0, 0)), 65)


def test_no_indicator_applies_is_insufficient_data():
    s = score(DEFAULT_MODEL, {code: Counts(0, 0) for code in ALL}, days_counted=65)
    assert (s.status, s.total) == ("insufficient_data", None)
    assert s.explain_vi() == ["Kết quả: không đủ dữ liệu (không có chỉ số nào áp dụng)"]


@pytest.mark.parametrize("days,status", [(12, "insufficient_data"), (19, "insufficient_data"),
                                         (20, "scored"), (0, "insufficient_data")])
def test_too_few_days_is_insufficient_data(days, status):
    s = score(DEFAULT_MODEL, ALL, days_counted=days)
    assert s.status == status
    if status == "insufficient_data":
        assert s.total is None
        assert s.explain_vi() == [f"Kết quả: không đủ dữ liệu ({days}/20 ngày làm việc)"]


@pytest.mark.parametrize("cases,deduction,total", [
    (0, 0.0, 95.25),
    (3, 15.0, 80.25),   # 3 × 5 = 15
    (4, 20.0, 75.25),   # 4 × 5 = 20, exactly the cap
    (6, 20.0, 75.25),   # 6 × 5 = 30, capped at 20
])
def test_deductions_are_capped(cases, deduction, total):
    s = score(DEFAULT_MODEL, ALL, days_counted=65, deductions=cases)
    assert s.deduction == deduction
    assert s.total == pytest.approx(total)
    if cases:
        assert f"Trừ điểm: {cases} trường hợp dùng hệ thống ngoài → −{deduction:g} điểm" in s.explain_vi()
    assert any("tối đa 20" in n for n in s.notes) == (cases == 6)


def test_total_never_below_zero():
    # I1 1/10 × 35 = 3.5, I2 0, I3 0, I4 0 → 3.5; minus the capped 20 → 0, not −16.5
    counts = {"I1": Counts(1, 10), "I2": Counts(0, 65), "I3": Counts(0, 4), "I4": Counts(0, 3)}
    s = score(DEFAULT_MODEL, counts, days_counted=65, deductions=10)
    assert (s.deduction, s.total) == (20.0, 0.0)
    assert s.explain_vi()[-1] == "Tổng: 0/100 điểm"


@pytest.mark.parametrize("bad", [
    lambda: Counts(3, 2), lambda: Counts(-1, 2), lambda: Counts(1, 0),
    lambda: score(DEFAULT_MODEL, {"I9": Counts(1, 1)}, 30),
    lambda: score(DEFAULT_MODEL, ALL, -1),
    lambda: score(DEFAULT_MODEL, ALL, 30, deductions=-1),
])
def test_impossible_inputs_are_bugs(bad):
    with pytest.raises(ValueError):
        bad()


@pytest.mark.parametrize("value,text", [(33.25, "33,3"), (35.0, "35"), (0.1 + 0.2, "0,3"),
                                        (43.75, "43,8"), (0.0, "0"), (96.5625, "96,6")])
def test_vn_number(value, text):
    assert vn_number(value) == text


# ---- calendar --------------------------------------------------------------------------------

def test_working_days_skip_weekends_and_tet():
    # February 2026 starts on a Sunday and has exactly 4 weeks: 20 weekdays; Tết takes 5 → 15
    days = working_days(date(2026, 2, 1), date(2026, 2, 28), HOLIDAYS_2026)
    assert len(days) == 15
    assert not TET_2026 & set(days)
    assert all(d.weekday() < 5 for d in days)
    assert days[0] == date(2026, 2, 2) and days[-1] == date(2026, 2, 27)


def test_working_days_q3_with_national_day():
    # Q3 2026: July 23 weekdays (1 Jul is a Wednesday), August 21 (1 Aug is a Saturday),
    # September 22 (1 Sep is a Tuesday) = 66; National Day 2 Sep (a Wednesday) → 65
    days = working_days(date(2026, 7, 1), date(2026, 9, 30), HOLIDAYS_2026)
    assert len(days) == 65 and date(2026, 9, 2) not in days
    assert working_days(date(2026, 9, 2), date(2026, 9, 2), HOLIDAYS_2026) == []


def test_working_days_other_weekend_and_inclusive_ends():
    # a six-day week (only Sunday off): Mon 6 Jul .. Sun 12 Jul 2026 → 6 days, both ends counted
    days = working_days(date(2026, 7, 6), date(2026, 7, 12), frozenset(), weekend=frozenset({6}))
    assert days == [date(2026, 7, 6) + timedelta(days=n) for n in range(6)]
    with pytest.raises(ValueError, match="before it starts"):
        working_days(date(2026, 7, 2), date(2026, 7, 1), frozenset())


Q3 = working_days(date(2026, 7, 1), date(2026, 9, 30), HOLIDAYS_2026)


def test_mid_period_joiner_counts_from_joining_date():
    # Joined Sat 15 Aug 2026: Aug 17–21, 24–28, 31 = 11 days; September 22 − 2 Sep = 21 → 32.
    # Active on 24 of them: I2 = 24/32 = 75% of target 80% → 0.9375 × 25 = 23.4375.
    # With I1 95/100 (33.25), I3 not applicable (organised no meeting), I4 19/20:
    #   scale 100/80: I1 43.75 × 0.95 = 41.5625; I2 31.25 × 0.9375 = 29.296875; I4 25 × 0.95 = 23.75
    #   total 94.609375
    split = days_in_units(Q3, [Assignment("STTTT", date(2026, 8, 15), None)])
    days = len(split["STTTT"])
    assert days == 32 and split["STTTT"][0] == date(2026, 8, 17)
    counts = {"I1": Counts(95, 100), "I2": Counts(24, days), "I4": Counts(19, 20)}
    s = score(DEFAULT_MODEL, counts, days_counted=days)
    assert s.status == "scored"
    assert s.parts[1].points == pytest.approx(29.296875)
    assert s.total == pytest.approx(94.609375)
    assert s.explain_vi()[1] == "I2: 75% (mục tiêu 80%) → 29,3/31,3 điểm"


def test_late_joiner_below_minimum_is_insufficient_data():
    # Joined Tue 15 Sep: Sep 15–18, 21–25, 28–30 = 12 working days < 20
    split = days_in_units(Q3, [Assignment("STTTT", date(2026, 9, 15), None)])
    s = score(DEFAULT_MODEL, ALL | {"I2": Counts(10, 12)}, days_counted=len(split["STTTT"]))
    assert s.explain_vi() == ["Kết quả: không đủ dữ liệu (12/20 ngày làm việc)"]


def test_transfer_splits_days_between_units():
    # In Quận 1 until Fri 14 Aug, in STTTT from Sat 15 Aug:
    #   Quận 1: July 23 + Aug 3–7, 10–14 = 33; STTTT: 32 (as above); 33 + 32 = 65 = all of Q3
    employment = [Assignment("STTTT", date(2026, 8, 15), None),
                  Assignment("Q1", date(2025, 3, 1), date(2026, 8, 14))]
    split = days_in_units(Q3, employment)
    assert list(split) == ["STTTT", "Q1"]
    assert (len(split["Q1"]), len(split["STTTT"])) == (33, 32)
    assert split["Q1"][-1] == date(2026, 8, 14) and split["STTTT"][0] == date(2026, 8, 17)


def test_days_outside_every_assignment_count_for_nobody():
    # left Q1 on Fri 31 Jul, joined STTTT on Tue 1 Sep: August counts for nobody;
    # STTTT gets September's 21 days, Q1 July's 23
    employment = [Assignment("Q1", date(2024, 1, 1), date(2026, 7, 31)),
                  Assignment("STTTT", date(2026, 9, 1), None),
                  Assignment("Sở Y tế", date(2027, 1, 1), None)]
    with pytest.raises(ValueError):  # the open STTTT assignment overlaps the 2027 one
        days_in_units(Q3, employment)
    split = days_in_units(Q3, employment[:2] + [Assignment("Sở Y tế", date(2020, 1, 1), date(2020, 12, 31))])
    assert (len(split["Q1"]), len(split["STTTT"]), split["Sở Y tế"]) == (23, 21, [])


@pytest.mark.parametrize("first,second", [
    (Assignment("Q1", date(2026, 1, 1), date(2026, 8, 15)), Assignment("STTTT", date(2026, 8, 15))),
    (Assignment("Q1", date(2026, 1, 1)), Assignment("STTTT", date(2026, 8, 15))),
    (Assignment("Q1", date(2026, 1, 1), date(2026, 12, 31)),
     Assignment("STTTT", date(2026, 3, 1), date(2026, 3, 31))),
])
def test_overlapping_assignments_are_an_error_naming_both(first, second):
    with pytest.raises(ValueError, match="overlapping") as caught:
        days_in_units(Q3, [second, first])
    assert "Q1" in str(caught.value) and "STTTT" in str(caught.value)


def test_assignment_ending_before_it_starts():
    with pytest.raises(ValueError, match="Q1"):
        Assignment("Q1", date(2026, 8, 15), date(2026, 8, 14))


# ---- model -----------------------------------------------------------------------------------

def default_mapping() -> dict:
    return {
        "version": "2026.1",
        "indicators": [
            {"code": i.code, "name_vi": i.name_vi, "name_en": i.name_en,
             "weight": i.weight, "target": i.target}
            for i in DEFAULT_MODEL.indicators
        ],
    }


def test_default_model():
    assert DEFAULT_MODEL.version == "2026.1"
    assert [(i.code, i.weight, i.target) for i in DEFAULT_MODEL.indicators] == [
        ("I1", 35, 1.0), ("I2", 25, 0.8), ("I3", 20, 1.0), ("I4", 20, 1.0)]
    assert (DEFAULT_MODEL.min_days, DEFAULT_MODEL.deduction_per_case, DEFAULT_MODEL.deduction_cap) == \
        (20, 5.0, 20.0)


def test_from_mapping_round_trip_and_options():
    assert ScoringModel.from_mapping(default_mapping(), "scoring.toml") == DEFAULT_MODEL
    data = default_mapping() | {"min_days": 10, "deduction_per_case": 2, "deduction_cap": 8}
    model = ScoringModel.from_mapping(data, "scoring.toml")
    assert (model.min_days, model.deduction_per_case, model.deduction_cap) == (10, 2.0, 8.0)


def _with_indicator(n: int, **changes) -> dict:
    data = default_mapping()
    data["indicators"][n].update(changes)
    return data


@pytest.mark.parametrize("data,message", [
    (_with_indicator(1, target=1.5),
     "scoring.toml: indicators[1].target: expected a number in (0, 1], got 1.5"),
    (_with_indicator(2, target=0),
     "scoring.toml: indicators[2].target: expected a number in (0, 1], got 0"),
    (_with_indicator(0, weight=0),
     "scoring.toml: indicators[0].weight: expected a number above 0, got 0"),
    (_with_indicator(0, weight=-35),
     "scoring.toml: indicators[0].weight: expected a number above 0, got -35"),
    (_with_indicator(0, weight=True),
     "scoring.toml: indicators[0].weight: expected a number above 0, got True"),
    (_with_indicator(3, code="I1"),
     "scoring.toml: indicators[3].code: duplicate code 'I1' (also indicators[0])"),
    (_with_indicator(1, colour="blue"), "scoring.toml: indicators[1].colour: unknown key"),
    (default_mapping() | {"max_score": 100}, "scoring.toml: max_score: unknown key"),
    (_with_indicator(0, weight=30), "scoring.toml: indicators: weights must add up to 100, got 95"),
    ({"indicators": default_mapping()["indicators"]}, "scoring.toml: version: required"),
    ({"version": "x", "indicators": []},
     "scoring.toml: indicators: expected a non-empty list of tables"),
    ({"version": "x", "indicators": ["I1"]}, "scoring.toml: indicators[0]: expected a table, got str"),
    (default_mapping() | {"min_days": -1},
     "scoring.toml: min_days: expected a whole number of days, 0 or more, got -1"),
    (default_mapping() | {"deduction_cap": "20"},
     "scoring.toml: deduction_cap: expected a number, 0 or more, got '20'"),
])
def test_from_mapping_names_the_key(data, message):
    with pytest.raises(ConfigError) as caught:
        ScoringModel.from_mapping(data, "scoring.toml")
    assert str(caught.value) == message


def test_from_mapping_missing_indicator_key():
    data = default_mapping()
    del data["indicators"][2]["name_en"]
    with pytest.raises(ConfigError, match=r"^scoring\.toml: indicators\[2\]\.name_en: required$"):
        ScoringModel.from_mapping(data, "scoring.toml")
