"""Burst flags (the directive's fairness rule): what is flagged, merged ranges, the Vietnamese
reason with its numbers worked by hand."""
from __future__ import annotations

import math
from datetime import date

import pytest

from policies.scoring.bursts import BurstFlag, find_bursts
from policies.scoring.calendar import working_days

AN = "an@hcm.gov.vn"
# Q3 2026 with National Day (02/09) as the configured holiday: 23 working days in July, 21 in
# August, 22 − 1 in September = 65. Index 60..64 is 24/09..30/09; the last 10 start at 55 (17/09).
Q3 = working_days(date(2026, 7, 1), date(2026, 9, 30), frozenset({date(2026, 9, 2)}))


def steady(per_day: int = 4, **spikes: list[int]) -> dict[date, int]:
    """``per_day`` mail every working day; ``at_<index>=[...]`` overrides days from that index."""
    daily = dict.fromkeys(Q3, per_day)
    for key, counts in spikes.items():
        first = int(key.removeprefix("at_"))
        for offset, c in enumerate(counts):
            daily[Q3[first + offset]] = c
    return daily


def ranges(flags: list[BurstFlag]) -> list[tuple[date, date, int]]:
    return [(f.start, f.end, f.sent) for f in flags]


def test_the_calendar_is_what_the_comments_say():
    assert (len(Q3), Q3[55], Q3[60], Q3[-1]) == (65, date(2026, 9, 17), date(2026, 9, 24),
                                                  date(2026, 9, 30))


@pytest.mark.parametrize("daily", [
    steady(4),
    {d: 3 + 2 * (i % 2) for i, d in enumerate(Q3)},   # 3, 5, 3, 5 …: windows hold 19–21
    steady(40),                                        # busy but steady: 200 < 4 × 40 × 5
])
def test_steady_sender_is_not_flagged(daily):
    assert find_bursts(daily, Q3, official=AN) == []


def test_quarter_end_spike_is_one_flag_worded_as_end_of_period():
    # 4 a day, then 12, 12, 12, 12, 72 = 120 over the last five working days (24/09–30/09).
    # Baseline: the 60 days before, 240 / 60 = 4.0; expected 4.0 × 5 = 20; ratio 120 / 20 = 6.0.
    # Windows reaching in from the left hold only the 12s: 4 + 4 × 12 = 52 < 80 (= 4 × 4.0 × 5).
    [flag] = find_bursts(steady(at_60=[12, 12, 12, 12, 72]), Q3, official=AN)
    assert flag == BurstFlag(
        AN, date(2026, 9, 24), date(2026, 9, 30), 120, 20.0, 6.0,
        "Gửi 120 thư trong 5 ngày làm việc cuối kỳ (24/09–30/09), gấp 6,0 lần mức thường ngày "
        "(4,0 thư/ngày) — cần xem xét trước khi tính điểm")


def test_mid_period_spike_is_flagged_without_end_of_period_wording():
    # 17 a day at index 20..24 (29/07–04/08): 85 ≥ 80 = 4 × 4.0 × 5; ratio 85 / 20 = 4.25 → 4,3.
    # A window with 4 of those days holds 4 + 68 = 72 < 80, so the flag is exactly the five days.
    [flag] = find_bursts(steady(at_20=[17] * 5), Q3, official=AN)
    assert (flag.start, flag.end, flag.sent, flag.expected, flag.ratio) == (
        date(2026, 7, 29), date(2026, 8, 4), 85, 20.0, 4.25)
    assert flag.reason_vi == ("Gửi 85 thư trong 5 ngày làm việc (29/07–04/08), gấp 4,3 lần mức "
                              "thường ngày (4,0 thư/ngày) — cần xem xét trước khi tính điểm")


def test_small_numbers_below_min_sent_are_not_flagged():
    # One mail every fifth day (baseline 0.2), then 5 a day: 25 is 25 times usual but < 30.
    daily = {d: int(i % 5 == 0) for i, d in enumerate(Q3)}
    daily.update(dict.fromkeys(Q3[30:35], 5))
    assert find_bursts(daily, Q3, official=AN) == []
    # The same spike reaching min_sent is flagged.
    assert len(find_bursts(daily, Q3, official=AN, min_sent=25)) == 1


def test_two_separate_spikes_are_two_flags():
    # 17 a day at 15..19: as in the mid-period case, 85 ≥ 80. At 40..44 the baseline has risen
    # to (35 × 4 + 85) / 40 = 5.625, so the second needs 112.5: 25 a day gives 125.
    flags = find_bursts(steady(at_15=[17] * 5, at_40=[25] * 5), Q3, official=AN)
    assert ranges(flags) == [(date(2026, 7, 22), date(2026, 7, 28), 85),
                             (date(2026, 8, 26), date(2026, 9, 1), 125)]
    assert [f.reason_vi.split(",")[0] for f in flags] == [
        "Gửi 85 thư trong 5 ngày làm việc (22/07–28/07)",
        "Gửi 125 thư trong 5 ngày làm việc (26/08–01/09)"]


def test_overlapping_windows_are_merged_into_one_range():
    # 30 a day at 20..24 over 4 a day. Bursting windows (threshold 4 × baseline × 5):
    #   start 18: 4 + 4 + 90 = 98 ≥ 80 (baseline 4.0)     start 19: 4 + 120 = 124 ≥ 80
    #   start 20: 150 ≥ 80                                 start 21: 120 + 4 = 124 ≥ 104.8
    #     (baseline (20 × 4 + 30) / 21 = 5.238)
    # but not start 17 (12 + 60 = 72 < 80) nor 22 (90 + 8 = 98 < 127.3, baseline 140 / 22).
    # Merged: 18..25 (27/07–05/08), 8 days, 2 × 4 + 150 + 4 = 162; baseline before 18 is 4.0,
    # expected 32, ratio 162 / 32 = 5.0625 → 5,1.
    [flag] = find_bursts(steady(at_20=[30] * 5), Q3, official=AN)
    assert (flag.start, flag.end, flag.sent, flag.expected, flag.ratio) == (
        date(2026, 7, 27), date(2026, 8, 5), 162, 32.0, 5.0625)
    assert flag.reason_vi.startswith("Gửi 162 thư trong 8 ngày làm việc (27/07–05/08), gấp 5,1 lần")


def test_zero_baseline_flags_on_min_sent_alone():
    # Nothing for 60 days, then 6, 6, 6, 6, 16 = 40 ≥ 30; the window of the first four 6s holds
    # 24 < 30, so only the last five days.
    daily = steady(0, at_60=[6, 6, 6, 6, 16])
    [flag] = find_bursts(daily, Q3, official=AN)
    assert (flag.start, flag.end, flag.sent, flag.expected) == (
        date(2026, 9, 24), date(2026, 9, 30), 40, 0.0)
    assert math.isinf(flag.ratio)
    assert flag.reason_vi == ("Gửi 40 thư trong 5 ngày làm việc cuối kỳ (24/09–30/09), không có "
                              "thư trước đó — cần xem xét trước khi tính điểm")


def test_unordered_working_days_are_refused():
    with pytest.raises(ValueError, match="strictly increasing"):
        find_bursts({}, [Q3[1], Q3[0]], official=AN)
