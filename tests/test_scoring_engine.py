"""The scoring engine on a real database: a hand-worked quarter (joiner, transfer, leaver,
weekend mail, secretary, burst, deduction, register, insufficient data), the monthly rollup
against the events it summarises, and closing a period. SQLite, and PostgreSQL when
MAILHUB_TEST_DATABASE_URL is set."""
from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest
from sqlalchemy import func, select

from mailhub import directory
from mailhub.config import config_from_mapping
from mailhub.db import make_engine
from mailhub.errors import InputError
from mailhub.models import Meeting, Official, OfficialAssignment, UsageEvent, UsageMonth
from mailhub.schema import upgrade
from mailhub.scoring import inputs, periodstore, rollup
from mailhub.scoring.counts import daily_counts
from mailhub.scoring.engine import compute
from mailhub.scoring.modelfile import SHIPPED_HOLIDAYS, SHIPPED_MODEL, load_holidays, load_model
from policies.scoring.calendar import working_days
from policies.scoring.formula import INSUFFICIENT_DATA, SCORED
from policies.scoring.periods import parse_period
from tests.scoring_sample import at_vn, mail

CONFIG = config_from_mapping({"domains": {"official": ["hcm.gov.vn"]}})
MODELS = load_model(SHIPPED_MODEL)
HOLIDAYS = load_holidays(SHIPPED_HOLIDAYS)  # 01/09 and 02/09/2026 are in Q3
Q3 = parse_period("2026-Q3")
AFTER_Q3 = datetime(2026, 10, 2, 3, 0, tzinfo=timezone.utc)  # 10:00 in Vietnam
WORKING_Q3 = working_days(Q3.start, Q3.end, HOLIDAYS.dates)

AN, BINH, CUONG, DUNG, EM, GIANG, HOA = (f"{n}@hcm.gov.vn" for n in
                                         ("an", "binh", "cuong", "dung", "em", "giang", "hoa"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request, tmp_path):
    url = (f"sqlite:///{tmp_path / 'mailhub.db'}" if request.param == "sqlite"
           else request.getfixturevalue("pg_schema_url"))
    upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def add(engine, rows: list[dict]) -> None:
    with engine.begin() as conn:
        conn.execute(UsageEvent.__table__.insert(), rows)


def assign(engine, email: str, unit: str, start: date, end: date | None = None) -> None:
    official = directory.find_official(engine, email)
    with engine.begin() as conn:
        conn.execute(OfficialAssignment.__table__.insert(),
                     [{"official_id": official.id, "unit_code": unit, "start": start, "end": end}])


def quarter(engine) -> None:
    """The directory and the quarter's activity of the hand-worked case."""
    for code, name, kind, parent in [("SO-A", "Sở A", "department", None), ("QH-1", "Quận 1", "district", None),
                                     ("QH-3", "Quận 3", "district", None), ("P-1", "Phường 1", "ward", "QH-1")]:
        directory.add_unit(engine, code, name, parent=parent, kind=kind)
    for email, name, unit in [(AN, "Nguyễn Văn An", "SO-A"), (BINH, "Trần Thị Bình", "SO-A"),
                              (CUONG, "Lê Văn Cường", "QH-3"), (DUNG, "Phạm Thị Dung", "QH-1"),
                              (EM, "Võ Văn Em", "QH-1"), (GIANG, "Đỗ Giang", "P-1"), (HOA, "Hồ Hoa", "QH-3")]:
        directory.add_official(engine, CONFIG.domains, email, name, unit)
    with engine.begin() as conn:  # left, no dates recorded: not scored
        conn.execute(Official.__table__.update().where(Official.__table__.c.email == EM).values(active=False))
    assign(engine, BINH, "SO-A", date(2026, 8, 1))  # joined on 01/08
    assign(engine, CUONG, "QH-1", date(2025, 1, 1), date(2026, 8, 14))  # transferred
    assign(engine, CUONG, "QH-3", date(2026, 8, 17))
    assign(engine, GIANG, "P-1", date(2026, 9, 14))  # 13 working days: too few

    rows = []
    for day in WORKING_Q3:
        rows += mail(AN, day) + mail(CUONG, day) + mail(HOA, day) + mail(EM, day)
    rows += mail(AN, date(2026, 7, 4), 3)  # a Saturday: counts as mail, not as an active day
    rows += mail(AN, date(2026, 7, 6), 4, kind="refused", policy="sender_domain_official")
    rows += mail(AN, date(2026, 7, 6), 2, kind="refused", policy="rate_limit")  # not an outside system
    rows += mail(AN, date(2026, 7, 7), 5, to_self=True) + mail(AN, date(2026, 7, 8), 5, automatic=True)
    rows += mail(AN, date(2026, 7, 9), signature="signed-valid") + mail(AN, date(2026, 7, 9), signature="unsigned")
    rows += mail(AN, date(2026, 6, 30)) + mail(AN, date(2026, 10, 1))  # outside the quarter
    binh_days = [d for d in WORKING_Q3 if d.month >= 8][:30]
    for day in binh_days:
        rows += mail(BINH, day)
    for day in WORKING_Q3[:10]:
        rows += mail(DUNG, day)
    for day in WORKING_Q3[-5:]:
        rows += mail(HOA, day, 8)  # 1 + 8 a day in the last 5 working days
    for day in WORKING_Q3[-10:]:
        rows += mail(GIANG, day)
    add(engine, rows)
    with engine.begin() as conn:
        conn.execute(Meeting.__table__.insert(), [
            {"uid": f"m{n}@x", "title": "Họp", "start_at": at_vn(date(2026, 7, 20)), "end_at": at_vn(date(2026, 7, 20), 11),
             "unit_code": "QH-1", "secretary_email": DUNG, "status": status, "created_at": at_vn(date(2026, 7, 10))}
            for n, status in enumerate(["sent", "sent", "sent", "draft"])])
    inputs.record_deduction(engine, AN, date(2026, 8, 10), 1, "Gửi công văn qua Gmail (xác minh 12/08)", "hr@hcm.gov.vn")


def by_email(scores):
    return {o.email: o for o in scores.officials}


def test_the_hand_worked_quarter(db, tmp_path):
    quarter(db)
    register = tmp_path / "register.csv"
    register.write_text("Mã đơn vị;Tháng;Văn bản ban hành;Văn bản điện tử\n"
                        "SO-A;07/2026;100;50\nSO-A;08/2026;100;50\nSO-A;09/2026;100;50\n", encoding="utf-8-sig")
    assert inputs.import_register(db, register) == 3
    scores = compute(db, Q3, MODELS, HOLIDAYS, now=AFTER_Q3)
    o = by_email(scores)
    assert scores.working_days == 64 == len(WORKING_Q3)
    assert EM not in o  # inactive without employment dates

    an = o[AN]
    assert (an.activity.sent, an.activity.refused_outside, an.activity.active_days) == (69, 4, 64)  # 64 working days + 3 on Saturday + 2 documents
    assert (an.activity.documents, an.activity.documents_valid, an.activity.deduction_cases) == (2, 1, 1)
    # I3 does not apply; its 20 points spread: ×100/80. I1 69/73 → 41,4; I2 → 31,25; I4 50% → 12,5; −5.
    assert an.score.status == SCORED and an.score.total == pytest.approx(69 / 73 * 43.75 + 31.25 + 12.5 - 5)
    assert "I3 (Tỷ lệ giấy mời họp điện tử) không áp dụng" in an.score.notes[0]

    binh = o[BINH]  # joined 01/08: 21 + 20 working days, mail on 30 of them
    assert binh.days_by_unit == (("SO-A", 41),) and binh.activity.active_days == 30
    i2 = next(p for p in binh.score.parts if p.code == "I2")
    assert (i2.numerator, i2.denominator) == (30, 41)

    cuong = o[CUONG]  # transfer on 17/08: 23 + 10 days in QH-1, 11 + 20 in QH-3
    assert cuong.days_by_unit == (("QH-1", 33), ("QH-3", 31)) and cuong.unit == "QH-3"

    dung = o[DUNG]
    assert (dung.activity.meetings, dung.activity.meetings_electronic) == (4, 3)
    assert next(p for p in dung.score.parts if p.code == "I3").rate == 0.75

    assert o[GIANG].score.status == INSUFFICIENT_DATA and o[GIANG].days_counted == 13
    assert [b.end for b in o[HOA].bursts] == [date(2026, 9, 30)] and not an.bursts
    assert "cuối kỳ" in o[HOA].bursts[0].reason_vi

    units = {u.code: u for u in scores.units}
    so_a = units["SO-A"]
    assert (so_a.issued, so_a.issued_electronic) == (300, 150)
    u1 = so_a.score.unit_parts[0]
    assert u1.rate == 0.5 and u1.points == pytest.approx(50 / 0.6 * 100 / 100)
    assert so_a.score.headcount == 2
    # QH-1 counts Cường's 33 days there and Dũng's 64; QH-3 Cường's 31 and Hoa's 64
    assert units["QH-1"].score.headcount == 2 and units["QH-3"].score.headcount == 2
    assert {units["QH-1"].rank, units["QH-3"].rank} == {1, 2} and units["QH-1"].group_size == 2
    assert units["P-1"].rank == 0 and units["P-1"].score.total is None
    assert scores.data_until == at_vn(date(2026, 10, 1))


def test_a_running_period_counts_up_to_today_and_reads_the_unrolled_day_live(db):
    quarter(db)
    mid_august = datetime(2026, 8, 12, 3, tzinfo=timezone.utc)  # 10:00 on Wed 12/08 in Vietnam
    scores = compute(db, Q3, MODELS, HOLIDAYS, now=mid_august)
    so_far = working_days(Q3.start, date(2026, 8, 12), HOLIDAYS.dates)
    assert scores.working_days == len(so_far)
    an = by_email(scores)[AN]
    assert an.activity.active_days == len(so_far)  # today's mail (09:00) is read from the events
    with db.connect() as conn:
        assert rollup.rolled_through(conn, [date(2026, 7, 1), date(2026, 8, 1)]) == {
            date(2026, 7, 1): date(2026, 7, 31), date(2026, 8, 1): date(2026, 8, 11)}
    add(db, mail(AN, date(2026, 8, 12)))
    assert by_email(compute(db, Q3, MODELS, HOLIDAYS, now=mid_august))[AN].activity.sent == an.activity.sent + 1


def test_the_rollup_gives_exactly_the_events_counts(db):
    rng = random.Random(7)
    officials = [f"o{n}@hcm.gov.vn" for n in range(25)]
    start = date(2026, 6, 28)
    rows = []
    for _ in range(3000):
        moment = datetime(2026, 6, 27, 17, tzinfo=timezone.utc) + timedelta(seconds=rng.randrange(100 * 86400))
        kind = rng.choice(["email"] * 6 + ["refused", "invite_email"])
        rows.append(dict(at=moment, kind=kind, official_email=rng.choice(officials), unit_code=None,
                         policy=rng.choice(["sender_owned", "sender_domain_official", "rate_limit"]) if kind == "refused" else None,
                         signature=rng.choice([None, None, "signed-valid", "unsigned"]),
                         to_self=rng.random() < 0.1, automatic=rng.random() < 0.1))
    add(db, rows)
    index = {o: n for n, o in enumerate(officials)}
    end = date(2026, 10, 4)
    expected = np.zeros((len(officials), (end - start).days + 1, 4), dtype=np.int64)
    with db.connect() as conn:
        for official, day, *counts in daily_counts(conn, start, end):
            expected[index[official], (day - start).days] = counts
    assert expected.sum() > 1000
    for now in (datetime(2026, 8, 20, 5, tzinfo=timezone.utc), datetime(2026, 10, 10, tzinfo=timezone.utc)):
        grid = rollup.period_grid(db, start, end, index, now=now)
        assert np.array_equal(grid, expected)
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(UsageMonth)).scalar() > 0
    # a late event for a rolled-up day is seen once the month is rebuilt
    add(db, mail("o1@hcm.gov.vn", date(2026, 7, 15)))
    assert rollup.roll_up(db, start, end, now=datetime(2026, 10, 10, tzinfo=timezone.utc), rebuild=True)[1] == "2026-07"
    grid = rollup.period_grid(db, start, end, index, now=datetime(2026, 10, 10, tzinfo=timezone.utc))
    assert grid[index["o1@hcm.gov.vn"], (date(2026, 7, 15) - start).days, rollup.SENT] == \
        expected[index["o1@hcm.gov.vn"], (date(2026, 7, 15) - start).days, rollup.SENT] + 1


def test_closing_freezes_the_scores_and_says_who(db, tmp_path):
    quarter(db)
    config = config_from_mapping({"domains": {"official": ["hcm.gov.vn"]}})
    with pytest.raises(InputError, match="can be closed from 01/10/2026"):
        periodstore.close_period(db, config, "2026-Q3", "hr@hcm.gov.vn", now=datetime(2026, 9, 20, tzinfo=timezone.utc))
    closed = periodstore.close_period(db, config, "2026-Q3", "hr@hcm.gov.vn", now=AFTER_Q3)
    assert closed.closed_by == "hr@hcm.gov.vn" and closed.closed_at == AFTER_Q3
    inputs.record_deduction(db, AN, date(2026, 7, 20), 2, "Xác minh sau khi chốt kỳ", "hr@hcm.gov.vn")  # later changes...
    again = periodstore.scores_for(db, config, "2026-Q3", now=AFTER_Q3 + timedelta(days=3))
    assert again == closed  # ...do not move a closed period
    with pytest.raises(InputError, match="closed by hr@hcm.gov.vn on 02/10/2026 10:00"):
        periodstore.close_period(db, config, "2026-Q3", "other@hcm.gov.vn", now=AFTER_Q3)
    open_month = periodstore.scores_for(db, config, "2026-07", now=AFTER_Q3)
    assert by_email(open_month)[AN].activity.deduction_cases == 2  # an open period is recomputed
    assert by_email(again)[AN].activity.deduction_cases == 1
    assert [row[0] for row in periodstore.closed_periods(db)] == ["2026-Q3"]
