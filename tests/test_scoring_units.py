"""Unit scores and ranks: hand-worked cases."""
from __future__ import annotations

from datetime import date

import pytest

from policies.scoring.calendar import Assignment, days_in_units, working_days
from policies.scoring.formula import Counts, score
from policies.scoring.model import Indicator, ScoringModel
from policies.scoring.units import (
    MemberScore,
    UnitScore,
    rank_within_groups,
    unit_score,
)

# One indicator worth 100 points at target 100%, so an official's total is simply their rate:
# Counts(60, 100) scores 60. Five days are enough to be scored.
OFFICIALS = ScoringModel("t1", (Indicator("I1", "a", "a", 100.0, 1.0),), min_days=5)

# The unit model of the examples: U1 (documents issued electronically ÷ documents issued,
# target 60%) is worth 30 points, U2 (target 100%) 70.
UNITS = ScoringModel("u1", (Indicator("U1", "Văn bản phát hành điện tử", "Electronic issue", 30.0, 0.6),
                            Indicator("U2", "b", "b", 70.0, 1.0)))


def member(official: str, days: int, points: int, score_days: int | None = None) -> MemberScore:
    """``official`` with ``points``/100 over ``score_days`` (default ``days``), ``days`` of
    them in the unit."""
    s = score(OFFICIALS, {"I1": Counts(points, 100)}, score_days if score_days is not None else days)
    return MemberScore(official, official.title(), days, s)


def unit(code: str, group: str, total: float | None) -> UnitScore:
    return UnitScore(code, code, group, 1, 1 if total is not None else 0,
                     0 if total is not None else 1, total, (), total, ())


# ---- officials' points -----------------------------------------------------------------------

def test_day_weighted_mean():
    # (10 × 100 + 30 × 60) / (10 + 30) = (1000 + 1800) / 40 = 70, not the plain mean 80
    u = unit_score("P1", "Phòng 1", "department", [member("a", 10, 100), member("b", 30, 60)])
    assert u.officials_points == pytest.approx(70.0)
    assert u.total == pytest.approx(70.0)
    assert (u.headcount, u.scored, u.insufficient) == (2, 2, 0)
    assert u.unit_parts == ()
    assert u.unit_points is None
    assert u.explanation_vi == ("Điểm cán bộ: 70 (bình quân theo ngày công của 2/2 cán bộ)",
                                "Tổng: 70")


def test_insufficient_member_left_out_and_counted():
    # c has 3 counted days < 5: insufficient data, so neither c's days nor points weigh;
    # (10 × 100 + 30 × 60) / 40 = 70 as before, 2 of 3 officials scored
    c = member("c", 3, 0)
    assert c.score.status == "insufficient_data"
    u = unit_score("P1", "Phòng 1", "department", [member("a", 10, 100), member("b", 30, 60), c])
    assert u.officials_points == pytest.approx(70.0)
    assert (u.headcount, u.scored, u.insufficient) == (3, 2, 1)
    assert u.explanation_vi[0] == \
        "Điểm cán bộ: 70 (bình quân theo ngày công của 2/3 cán bộ; 1 không đủ dữ liệu)"


def test_transferred_official_counts_in_both_units_with_split_days():
    # January 2026 without New Year's Day has 21 working days: 2 Jan, then 5–30 Jan (20).
    # x is in A until 9 Jan (2, 5–9 Jan: 6 days) and in B from 12 Jan (15 days); x scores 80
    # over all 21 days.
    jan = working_days(date(2026, 1, 1), date(2026, 1, 31), frozenset({date(2026, 1, 1)}))
    split = days_in_units(jan, [Assignment("A", date(2026, 1, 1), date(2026, 1, 9)),
                                Assignment("B", date(2026, 1, 12))])
    days_a, days_b = len(split["A"]), len(split["B"])
    assert (days_a, days_b) == (6, 15)
    x = score(OFFICIALS, {"I1": Counts(80, 100)}, days_counted=days_a + days_b)
    in_a = MemberScore("x", "X", days_a, x)
    in_b = MemberScore("x", "X", days_b, x)
    # A: x 6 days at 80, y 6 days at 40: (480 + 240) / 12 = 60
    a = unit_score("A", "A", "ward", [in_a, member("y", 6, 40)])
    # B: x 15 days at 80, z 5 days at 40: (1200 + 200) / 20 = 70
    b = unit_score("B", "B", "ward", [in_b, member("z", 5, 40)])
    assert a.officials_points == pytest.approx(60.0)
    assert b.officials_points == pytest.approx(70.0)
    assert a.headcount == b.headcount == 2


def test_same_official_twice_counts_once():
    # x left P1 and came back: two memberships, 10 days at 100 and 30 days at 60 (the same
    # person's score is the same in practice; different here to show each stint weighs by its
    # days): (1000 + 1800) / 40 = 70, one official of one
    u = unit_score("P1", "Phòng 1", "department", [member("x", 10, 100), member("x", 30, 60)])
    assert u.officials_points == pytest.approx(70.0)
    assert (u.headcount, u.scored, u.insufficient) == (1, 1, 0)


def test_scored_member_with_no_days_in_the_unit_weighs_nothing():
    # x's days all fell in another unit: 0 days here, so no points for this unit
    u = unit_score("P1", "Phòng 1", "department", [member("x", 0, 90, score_days=20)])
    assert u.officials_points is None and u.total is None
    assert u.explanation_vi[0] == \
        "Điểm cán bộ: không đủ dữ liệu (1/1 cán bộ có điểm; 0 ngày công trong đơn vị)"


# ---- unit indicators ---------------------------------------------------------------------------

def test_unit_indicators_blended_worked_example():
    # 12 officials scored 82.5 each (any days: the mean is 82.5), 2 with too few days.
    # U1 55/100 = 55% of target 60%: 0.55 / 0.6 × 30 = 27.5
    # U2 917/1000 = 91.7% of target 100%: 0.917 × 70 = 64.19
    # unit points 27.5 + 64.19 = 91.69
    # total 0.7 × 82.5 + 0.3 × 91.69 = 57.75 + 27.507 = 85.257
    members = [MemberScore(f"s{n}", f"S{n}", 20 + n,
                           score(OFFICIALS, {"I1": Counts(825, 1000)}, 20)) for n in range(12)]
    members += [member("late1", 3, 90), member("late2", 4, 90)]
    u = unit_score("Q1", "UBND Quận 1", "district", members,
                   {"U1": Counts(55, 100), "U2": Counts(917, 1000)}, unit_model=UNITS)
    assert u.officials_points == pytest.approx(82.5)
    assert [p.points for p in u.unit_parts] == pytest.approx([27.5, 64.19])
    assert u.unit_points == pytest.approx(91.69)
    assert u.total == pytest.approx(85.257)
    assert (u.headcount, u.scored, u.insufficient) == (14, 12, 2)
    assert u.explanation_vi == (
        "Điểm cán bộ: 82,5 (bình quân theo ngày công của 12/14 cán bộ; 2 không đủ dữ liệu)",
        "U1: 55% (mục tiêu 60%) → 27,5/30 điểm",
        "U2: 91,7% (mục tiêu 100%) → 64,2/70 điểm",
        "Điểm đơn vị: 91,7/100 điểm",
        "Tổng: 0,7 × 82,5 + 0,3 × 91,7 = 85,3",
    )


def test_unit_indicators_with_other_weight():
    # officials (10 × 100 + 30 × 60) / 40 = 70; U1 60/100 meets target: 30; U2 45/50 = 0.9 × 70
    # = 63; unit 93; total 0.75 × 70 + 0.25 × 93 = 52.5 + 23.25 = 75.75
    u = unit_score("P1", "Phòng 1", "department", [member("a", 10, 100), member("b", 30, 60)],
                   {"U1": Counts(60, 100), "U2": Counts(45, 50)}, unit_model=UNITS,
                   officials_weight=0.75)
    assert u.total == pytest.approx(75.75)
    assert u.explanation_vi[-1] == "Tổng: 0,75 × 70 + 0,25 × 93 = 75,8"


def test_unit_indicators_that_do_not_apply_leave_officials_points():
    # no document issued (0/0): the unit part has nothing to say, total = officials' 70
    u = unit_score("P1", "Phòng 1", "department", [member("a", 10, 100), member("b", 30, 60)],
                   {"U1": Counts(0, 0)}, unit_model=UNITS)
    assert u.total == pytest.approx(70.0)
    assert u.unit_points is None
    assert len(u.unit_parts) == 2 and not any(p.applies for p in u.unit_parts)
    assert u.explanation_vi[1:] == (
        "Chỉ số đơn vị: không áp dụng (mọi mẫu số bằng 0); tổng chỉ tính điểm cán bộ",
        "Tổng: 70")


def test_no_scored_member_is_no_score_even_with_unit_indicators():
    u = unit_score("P1", "Phòng 1", "department", [member("a", 3, 100), member("b", 2, 60)],
                   {"U1": Counts(60, 100), "U2": Counts(1, 1)}, unit_model=UNITS)
    assert u.officials_points is None
    assert u.total is None
    assert (u.headcount, u.scored, u.insufficient) == (2, 0, 2)
    assert u.explanation_vi[0] == \
        "Điểm cán bộ: không đủ dữ liệu (0/2 cán bộ có điểm; 2 không đủ dữ liệu)"
    assert u.explanation_vi[-1] == "Tổng: không đủ dữ liệu"


def test_empty_unit_is_no_score():
    u = unit_score("P9", "Phòng 9", "department", [])
    assert (u.headcount, u.scored, u.insufficient, u.total) == (0, 0, 0, None)


@pytest.mark.parametrize("kwargs,message", [
    ({"officials_weight": 1.5}, "officials_weight"),
    ({"officials_weight": -0.1}, "officials_weight"),
    ({"officials_weight": float("nan")}, "officials_weight"),
    ({"unit_indicators": {"U1": Counts(1, 1)}}, "without a unit_model"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        unit_score("P1", "Phòng 1", "department", [member("a", 10, 100)], **kwargs)


def test_members_scored_with_different_models_are_an_error():
    other = ScoringModel("t2", OFFICIALS.indicators, min_days=5)
    odd = MemberScore("b", "B", 10, score(other, {"I1": Counts(1, 1)}, 10))
    with pytest.raises(ValueError, match="different models"):
        unit_score("P1", "Phòng 1", "department", [member("a", 10, 100), odd])


def test_negative_days_in_unit_is_an_error():
    with pytest.raises(ValueError, match="days_counted"):
        member("a", -1, 100, score_days=20)


# ---- ranks -------------------------------------------------------------------------------------

def test_rank_with_ties_and_separate_groups():
    units = [unit("D1", "department", 80.0), unit("W1", "ward", 60.0), unit("D2", "department", 90.0),
             unit("D3", "department", None), unit("D4", "department", 80.0),
             unit("D5", "department", 70.0), unit("W2", "ward", 95.0), unit("W3", "ward", None)]
    ranks = rank_within_groups(units)
    assert list(ranks) == ["department", "ward"]
    # 90 → 1; 80, 80 → 2, 2 (by code); 70 → 4; no total → 0, last
    assert [(r, u.unit) for r, u in ranks["department"]] == \
        [(1, "D2"), (2, "D1"), (2, "D4"), (4, "D5"), (0, "D3")]
    # the ward at 95 ranks 1 in its own group although a department scores less
    assert [(r, u.unit) for r, u in ranks["ward"]] == [(1, "W2"), (2, "W1"), (0, "W3")]


@pytest.mark.parametrize("a,b,ranks", [
    (85.26, 85.34, [1, 1]),   # both shown as 85,3: a tie
    (85.24, 85.26, [1, 2]),   # 85,2 and 85,3
    (0.1 + 0.2, 0.3, [1, 1]),  # float noise is no difference
])
def test_ties_are_on_the_shown_value(a, b, ranks):
    got = rank_within_groups([unit("A", "g", a), unit("B", "g", b)])["g"]
    assert sorted(r for r, _ in got) == ranks


def test_rank_empty_and_all_unscored():
    assert rank_within_groups([]) == {}
    got = rank_within_groups([unit("B", "g", None), unit("A", "g", None)])
    assert [(r, u.unit) for r, u in got["g"]] == [(0, "A"), (0, "B")]


def test_same_unit_twice_is_an_error():
    with pytest.raises(ValueError, match="U1 listed twice"):
        rank_within_groups([unit("U1", "g", 1.0), unit("U1", "g", 2.0)])
