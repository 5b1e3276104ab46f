"""Scoring periods: every accepted form, canonical and Vietnamese labels, and the refusals."""
from __future__ import annotations

from datetime import date

import pytest

from mailhub.errors import InputError
from policies.scoring.periods import Period, parse_period, previous_quarter

FORMS = "expected YYYY, YYYY-H1/H2, YYYY-Q1..Q4, YYYY-MM or YYYY-MM-DD..YYYY-MM-DD"


@pytest.mark.parametrize(
    ("text", "label", "start", "end", "label_vi"),
    [
        # year
        ("2026", "2026", date(2026, 1, 1), date(2026, 12, 31), "Năm 2026"),
        ("2000", "2000", date(2000, 1, 1), date(2000, 12, 31), "Năm 2000"),
        ("2100", "2100", date(2100, 1, 1), date(2100, 12, 31), "Năm 2100"),
        # half-years
        ("2026-H1", "2026-H1", date(2026, 1, 1), date(2026, 6, 30), "6 tháng đầu năm 2026"),
        ("2026-H2", "2026-H2", date(2026, 7, 1), date(2026, 12, 31), "6 tháng cuối năm 2026"),
        ("2026-h2", "2026-H2", date(2026, 7, 1), date(2026, 12, 31), "6 tháng cuối năm 2026"),
        # quarters
        ("2026-Q1", "2026-Q1", date(2026, 1, 1), date(2026, 3, 31), "Quý I/2026"),
        ("2026-Q2", "2026-Q2", date(2026, 4, 1), date(2026, 6, 30), "Quý II/2026"),
        ("2026-Q3", "2026-Q3", date(2026, 7, 1), date(2026, 9, 30), "Quý III/2026"),
        ("2026-Q4", "2026-Q4", date(2026, 10, 1), date(2026, 12, 31), "Quý IV/2026"),
        ("2026-q3", "2026-Q3", date(2026, 7, 1), date(2026, 9, 30), "Quý III/2026"),
        # months, with their last days
        ("2026-03", "2026-03", date(2026, 3, 1), date(2026, 3, 31), "Tháng 3/2026"),
        ("2026-04", "2026-04", date(2026, 4, 1), date(2026, 4, 30), "Tháng 4/2026"),
        ("2026-12", "2026-12", date(2026, 12, 1), date(2026, 12, 31), "Tháng 12/2026"),
        ("2026-02", "2026-02", date(2026, 2, 1), date(2026, 2, 28), "Tháng 2/2026"),
        ("2028-02", "2028-02", date(2028, 2, 1), date(2028, 2, 29), "Tháng 2/2028"),  # leap
        ("2100-02", "2100-02", date(2100, 2, 1), date(2100, 2, 28), "Tháng 2/2100"),  # not leap
        # date ranges, both ends inclusive
        ("2026-01-15..2026-03-31", "2026-01-15..2026-03-31", date(2026, 1, 15), date(2026, 3, 31),
         "Từ 15/01/2026 đến 31/03/2026"),
        ("2026-05-04..2026-05-04", "2026-05-04..2026-05-04", date(2026, 5, 4), date(2026, 5, 4),
         "Từ 04/05/2026 đến 04/05/2026"),
        ("2028-02-29..2028-03-01", "2028-02-29..2028-03-01", date(2028, 2, 29), date(2028, 3, 1),
         "Từ 29/02/2028 đến 01/03/2028"),
        # the longest ranges: a leap year, and 366 days across a common year
        ("2028-01-01..2028-12-31", "2028-01-01..2028-12-31", date(2028, 1, 1), date(2028, 12, 31),
         "Từ 01/01/2028 đến 31/12/2028"),
        ("2026-01-01..2027-01-01", "2026-01-01..2027-01-01", date(2026, 1, 1), date(2027, 1, 1),
         "Từ 01/01/2026 đến 01/01/2027"),
        # blanks around the text and the dots are forgiven; the label is canonical
        ("  2026-Q3\n", "2026-Q3", date(2026, 7, 1), date(2026, 9, 30), "Quý III/2026"),
        ("2026-01-15 .. 2026-03-31", "2026-01-15..2026-03-31", date(2026, 1, 15),
         date(2026, 3, 31), "Từ 15/01/2026 đến 31/03/2026"),
    ],
)
def test_parse_period(text, label, start, end, label_vi):
    period = parse_period(text)
    assert period == Period(label, start, end)
    assert str(period) == label
    assert period.label_vi == label_vi
    # the canonical label reads back as the same period
    assert parse_period(label) == period


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-Q5", f"period '2026-Q5': {FORMS}"),
        ("2026-Q0", f"period '2026-Q0': {FORMS}"),
        ("2026-H3", f"period '2026-H3': {FORMS}"),
        ("2026-W05", f"period '2026-W05': {FORMS}"),
        ("", f"period '': {FORMS}"),
        ("Q3 2026", f"period 'Q3 2026': {FORMS}"),
        ("26-Q3", f"period '26-Q3': {FORMS}"),
        ("2026-3", f"period '2026-3': {FORMS}"),
        ("2026-01-15", f"period '2026-01-15': {FORMS}"),
        ("2026-01-15..", f"period '2026-01-15..': {FORMS}"),
        ("2026-01-15...2026-03-31", f"period '2026-01-15...2026-03-31': {FORMS}"),
        ("2026/03", f"period '2026/03': {FORMS}"),
        ("２０２６", f"period '２０２６': {FORMS}"),  # full-width digits are not digits here
        ("2026-13", "period '2026-13': month 13 is not 01..12"),
        ("2026-00", "period '2026-00': month 00 is not 01..12"),
        ("1999", "period '1999': year 1999 is outside 2000..2100"),
        ("2101-Q1", "period '2101-Q1': year 2101 is outside 2000..2100"),
        ("1999-H2", "period '1999-H2': year 1999 is outside 2000..2100"),
        ("2101-01", "period '2101-01': year 2101 is outside 2000..2100"),
        ("1999-12-31..2000-01-01", "period '1999-12-31..2000-01-01': year 1999 is outside 2000..2100"),
        ("2026-02-29..2026-03-31", "period '2026-02-29..2026-03-31': 2026-02-29 is not a date"),
        ("2026-01-01..2026-04-31", "period '2026-01-01..2026-04-31': 2026-04-31 is not a date"),
        ("2026-03-31..2026-01-15",
         "period '2026-03-31..2026-01-15': ends 2026-01-15 before it starts 2026-03-31"),
        ("2026-01-01..2027-01-02", "period '2026-01-01..2027-01-02': covers 367 days, at most 366"),
        ("2026-01-01..2028-12-31", "period '2026-01-01..2028-12-31': covers 1096 days, at most 366"),
    ],
)
def test_parse_period_refuses(text, message):
    with pytest.raises(InputError) as caught:
        parse_period(text)
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


def test_today_accepts_a_period_begun_today():
    assert parse_period("2026-Q3", today=date(2026, 7, 1)).label == "2026-Q3"


@pytest.mark.parametrize(
    ("text", "today", "message"),
    [
        ("2026-Q3", date(2026, 6, 30), "period '2026-Q3': starts 2026-07-01, after today 2026-06-30"),
        ("2027", date(2026, 12, 31), "period '2027': starts 2027-01-01, after today 2026-12-31"),
    ],
)
def test_today_refuses_a_period_not_begun(text, today, message):
    with pytest.raises(InputError) as caught:
        parse_period(text, today=today)
    assert str(caught.value) == message


def test_without_today_a_future_period_is_accepted():
    assert parse_period("2099-Q4").start == date(2099, 10, 1)


@pytest.mark.parametrize(
    ("text", "day", "inside"),
    [
        ("2026-Q3", date(2026, 6, 30), False),
        ("2026-Q3", date(2026, 7, 1), True),
        ("2026-Q3", date(2026, 8, 15), True),
        ("2026-Q3", date(2026, 9, 30), True),
        ("2026-Q3", date(2026, 10, 1), False),
        ("2028-02", date(2028, 2, 29), True),
        ("2028-02", date(2028, 3, 1), False),
        ("2026-01-15..2026-03-31", date(2026, 1, 14), False),
        ("2026-01-15..2026-03-31", date(2026, 1, 15), True),
        ("2026-01-15..2026-03-31", date(2026, 3, 31), True),
    ],
)
def test_contains(text, day, inside):
    assert parse_period(text).contains(day) is inside


@pytest.mark.parametrize(
    ("text", "today", "over"),
    [
        ("2026-Q3", date(2026, 9, 30), False),  # its last day is still running
        ("2026-Q3", date(2026, 10, 1), True),
        ("2026-Q3", date(2026, 8, 1), False),
        ("2026-Q3", date(2026, 1, 1), False),
        ("2026", date(2027, 1, 1), True),
        ("2026-01-15..2026-03-31", date(2026, 4, 1), True),
    ],
)
def test_is_over(text, today, over):
    assert parse_period(text).is_over(today) is over


@pytest.mark.parametrize(
    ("today", "label"),
    [
        (date(2026, 1, 1), "2025-Q4"),
        (date(2026, 3, 31), "2025-Q4"),
        (date(2026, 4, 1), "2026-Q1"),
        (date(2026, 6, 30), "2026-Q1"),
        (date(2026, 7, 1), "2026-Q2"),
        (date(2026, 10, 1), "2026-Q3"),
        (date(2026, 12, 31), "2026-Q3"),
    ],
)
def test_previous_quarter(today, label):
    period = previous_quarter(today)
    assert period == parse_period(label)
    assert period.is_over(today)
    assert not period.contains(today)


def test_previous_quarter_of_new_year_reads_in_vietnamese():
    assert previous_quarter(date(2026, 1, 1)).label_vi == "Quý IV/2025"


def test_days_counts_both_ends():
    assert parse_period("2028-02").days == 29
    assert parse_period("2028").days == 366
    assert parse_period("2026-05-04..2026-05-04").days == 1


def test_period_that_ends_before_it_starts_is_a_bug():
    with pytest.raises(ValueError, match="ends 2026-01-01 before it starts 2026-02-01"):
        Period("odd", date(2026, 2, 1), date(2026, 1, 1))


def test_label_of_no_known_form_reads_as_a_range():
    assert Period("custom", date(2026, 1, 5), date(2026, 1, 9)).label_vi == "Từ 05/01/2026 đến 09/01/2026"


@pytest.mark.parametrize(("text", "label_en"), [
    ("2026-Q3", "Q3 2026"), ("2026-H1", "First half of 2026"), ("2026-h2", "Second half of 2026"),
    ("2026-03", "March 2026"), ("2026", "Year 2026"),
    ("2026-01-15..2026-03-31", "15/01/2026 to 31/03/2026"),
])
def test_english_labels(text, label_en):
    assert parse_period(text).label_en == label_en
