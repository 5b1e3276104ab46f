"""Scoring counts from the usage ledger and the meetings table: what is counted, Vietnam days
(UTC+7) on SQLite and, when MAILHUB_TEST_DATABASE_URL is set, PostgreSQL; and the counts
through :func:`policies.scoring.formula.score`."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from mailhub.db import make_engine
from mailhub.models import Meeting, MeetingAttendee, Unit, UsageEvent
from mailhub.schema import upgrade
from mailhub.scoring.counts import OfficialCounts, counts_for_period, indicator_counts
from policies.scoring.calendar import working_days
from policies.scoring.formula import SCORED, Counts, score
from policies.scoring.model import DEFAULT_MODEL

AN = "an@hcm.gov.vn"
BINH = "binh@hcm.gov.vn"
VANTHU = "vanthu@hcm.gov.vn"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def migrated(url: str):
    upgrade(url)
    return make_engine(url)


@pytest.fixture
def engine(tmp_path):
    engine = migrated(f"sqlite:///{tmp_path / 'mailhub.db'}")
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_engine(request, tmp_path):
    """A migrated engine on SQLite, and on PostgreSQL in a throw-away schema when available."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'mailhub.db'}"
    else:
        url = request.getfixturevalue("pg_schema_url")
    engine = migrated(url)
    yield engine
    engine.dispose()


def add_events(engine, *events: dict) -> None:
    with engine.begin() as conn:
        conn.execute(UsageEvent.__table__.insert(), list(events))


def ev(at: datetime, kind: str = "email", official: str | None = AN, **extra) -> dict:
    """One ledger line; every row has every key, as an executemany insert needs."""
    row = dict(at=at, kind=kind, official_email=official, unit_code="STTTT", policy=None, reason=None,
               signature=None, signer=None, to_self=False, automatic=False)
    return row | extra


def refused(at: datetime, policy: str, official: str | None = AN, **extra) -> dict:
    return ev(at, "refused", official, policy=policy, reason="550 5.7.1 refused", **extra)


def test_only_counted_mail_and_outside_refusals_make_i1(any_engine):
    noon = utc(2026, 3, 2, 5)
    add_events(any_engine,
               ev(noon), ev(noon), ev(noon),
               ev(noon, to_self=True), ev(noon, automatic=True), ev(noon, to_self=True, automatic=True),
               ev(noon, "invite_email"),
               refused(noon, "sender_domain_official"), refused(noon, "sender_owned"),
               refused(noon, "classification"), refused(noon, "rate_limit"), refused(noon, "declared_size"),
               refused(noon, "sender_domain_official", official=None))  # not logged in: nobody's
    counts = counts_for_period(any_engine, date(2026, 3, 1), date(2026, 3, 31))
    assert counts == {AN: OfficialCounts(AN, sent=3, refused_outside=2, active_days=frozenset({date(2026, 3, 2)}))}


def test_an_official_with_only_uncounted_events_has_nothing_counted(engine):
    add_events(engine, ev(utc(2026, 3, 2, 5), "invite_email", BINH), refused(utc(2026, 3, 3, 5), "rate_limit", BINH))
    assert counts_for_period(engine, date(2026, 3, 1), date(2026, 3, 31)) == {}


@pytest.mark.parametrize(("start", "end", "sent", "days"), [
    (date(2026, 3, 1), date(2026, 3, 1), 2, {date(2026, 3, 1)}),
    (date(2026, 3, 2), date(2026, 3, 2), 1, {date(2026, 3, 2)}),
    (date(2026, 3, 1), date(2026, 3, 2), 3, {date(2026, 3, 1), date(2026, 3, 2)}),
    (date(2026, 2, 28), date(2026, 2, 28), 0, set()),
])
def test_vietnam_day_starts_at_1700_utc(any_engine, start, end, sent, days):
    # 16:59 UTC is 23:59 in Hà Nội, 17:00 UTC is 00:00 the next day.
    add_events(any_engine, ev(utc(2026, 3, 1, 16, 59)), ev(utc(2026, 3, 1, 16, 59, 59, 999999)),
               ev(utc(2026, 3, 1, 17, 0)))
    counts = counts_for_period(any_engine, start, end)
    if not sent:
        assert counts == {}
    else:
        assert (counts[AN].sent, counts[AN].active_days) == (sent, frozenset(days))


def test_period_bounds_are_inclusive_vietnam_days(engine):
    add_events(engine,
               ev(utc(2026, 2, 28, 16, 59)),  # 28/02 23:59 in Vietnam: before
               ev(utc(2026, 2, 28, 17, 0)),  # 01/03 00:00: first instant
               ev(utc(2026, 3, 15, 3, 0)),
               ev(utc(2026, 3, 31, 16, 59, 59)),  # 31/03 23:59:59: last second
               ev(utc(2026, 3, 31, 17, 0)))  # 01/04 00:00: after
    counts = counts_for_period(engine, date(2026, 3, 1), date(2026, 3, 31))
    assert counts[AN].sent == 3
    assert counts[AN].active_days == {date(2026, 3, 1), date(2026, 3, 15), date(2026, 3, 31)}
    with pytest.raises(ValueError, match="before it starts"):
        counts_for_period(engine, date(2026, 3, 31), date(2026, 3, 1))


def test_documents_count_accepted_and_refused_submissions(any_engine):
    noon = utc(2026, 3, 2, 5)
    add_events(any_engine,
               ev(noon, signature="signed-valid", signer="CN=Nguyễn Văn An"),
               ev(noon, signature="signed-valid", signer="CN=Nguyễn Văn An"),
               ev(noon, signature="unsigned"),  # accepted in warn mode
               ev(noon, signature="signed-invalid"),
               refused(noon, "signed_documents", signature="unsigned"),
               refused(noon, "signed_documents", signature="signed-invalid"),
               refused(noon, "rate_limit", signature="signed-valid"),
               ev(noon))  # ordinary mail is no submission
    c = counts_for_period(any_engine, date(2026, 3, 2), date(2026, 3, 2))[AN]
    assert (c.documents, c.documents_valid) == (7, 3)
    assert (c.sent, c.refused_outside) == (5, 0)


def add_meeting(conn, secretary: str, status: str, created_at: datetime, channels: tuple[str, str] = ("", "")) -> None:
    """A meeting with one attendee whose (email_state, sms_state) is ``channels``."""
    meeting_id = conn.execute(Meeting.__table__.insert().values(
        uid=f"m-{secretary}-{status}-{created_at.isoformat()}-{channels}", title="Họp giao ban",
        start_at=created_at + timedelta(days=7), end_at=created_at + timedelta(days=7, hours=2), unit_code="STTTT",
        secretary_email=secretary, status=status, created_at=created_at, updated_at=created_at)).inserted_primary_key[0]
    conn.execute(MeetingAttendee.__table__.insert().values(
        meeting_id=meeting_id, name="Nguyễn Văn An", email=AN, email_state=channels[0], sms_state=channels[1]))


def test_meetings_per_secretary_and_which_are_electronic(any_engine):
    march = utc(2026, 3, 10, 2)
    with any_engine.begin() as conn:
        conn.execute(Unit.__table__.insert().values(code="STTTT", name="Sở Thông tin và Truyền thông"))
        add_meeting(conn, VANTHU, "draft", march)
        add_meeting(conn, VANTHU, "sent", march, ("queued", "queued"))
        add_meeting(conn, VANTHU, "cancelled", march, ("sent", ""))  # cancelled after the invitations
        add_meeting(conn, VANTHU, "cancelled", march, ("", "failed"))  # SMS tried, failed, then cancelled
        add_meeting(conn, VANTHU, "cancelled", march)  # cancelled as a draft
        add_meeting(conn, VANTHU, "sent", utc(2026, 2, 28, 16, 59), ("sent", "sent"))  # February in Vietnam
        add_meeting(conn, BINH, "sent", utc(2026, 2, 28, 17, 0), ("delivered", ""))  # 1 March in Vietnam
    counts = counts_for_period(any_engine, date(2026, 3, 1), date(2026, 3, 31))
    assert counts == {VANTHU: OfficialCounts(VANTHU, meetings=5, meetings_electronic=3),
                      BINH: OfficialCounts(BINH, meetings=1, meetings_electronic=1)}


@pytest.mark.parametrize(("counts", "days", "expected"), [
    (OfficialCounts(AN), 22, {"I1": Counts(0, 0), "I2": Counts(0, 22), "I3": Counts(0, 0), "I4": Counts(0, 0)}),
    (OfficialCounts(AN), 0, {"I1": Counts(0, 0), "I2": Counts(0, 0), "I3": Counts(0, 0), "I4": Counts(0, 0)}),
    (OfficialCounts(AN, refused_outside=2), 5, {"I1": Counts(0, 2), "I2": Counts(0, 5), "I3": Counts(0, 0),
                                                "I4": Counts(0, 0)}),
    # mail on 3 days of a 2-working-day period (a weekend): I2 is capped at 2/2
    (OfficialCounts(AN, sent=4, active_days=frozenset({date(2026, 3, 6), date(2026, 3, 7), date(2026, 3, 9)}),
                    documents=2, documents_valid=1, meetings=3, meetings_electronic=3), 2,
     {"I1": Counts(4, 4), "I2": Counts(2, 2), "I3": Counts(3, 3), "I4": Counts(1, 2)}),
])
def test_indicator_counts(counts, days, expected):
    assert indicator_counts(counts, len(counts.active_days), days) == expected


def test_march_score_end_to_end(engine):
    """An in March 2026 (22 working days, no holiday): mail on 15 of them, 18 messages of which
    3 are signed submissions, 1 refused unsigned submission, 2 attempts from an outside
    address, no meeting of her own.

    I1 18/20 = 0.9; I2 15/22 against a 0.8 target; I3 does not apply, so its 20 points are
    spread: scale 100/80 = 1.25; I4 3/4 = 0.75.
    I1 0.9 × 43.75 = 39.375; I2 (15/22)/0.8 × 31.25 = 26.6335…; I4 0.75 × 25 = 18.75;
    sum 84.7585…, minus one confirmed case (5) = 79.7585…
    """
    days = working_days(date(2026, 3, 1), date(2026, 3, 31), frozenset())
    assert len(days) == 22
    events = []
    for n, day in enumerate(days[:15]):
        at = datetime(day.year, day.month, day.day, 1, 30, tzinfo=timezone.utc)  # 08:30 in Hà Nội
        events.append(ev(at, signature="signed-valid") if n < 3 else ev(at))
        if n < 3:
            events.append(ev(at + timedelta(hours=2)))
    events += [refused(utc(2026, 3, 4, 2), "signed_documents", signature="unsigned"),
               refused(utc(2026, 3, 5, 2), "sender_owned"), refused(utc(2026, 3, 6, 2), "sender_domain_official"),
               ev(utc(2026, 3, 7, 2), to_self=True)]  # a Saturday note to herself: no active day
    add_events(engine, *events)

    c = counts_for_period(engine, date(2026, 3, 1), date(2026, 3, 31))[AN]
    assert (c.sent, c.refused_outside, len(c.active_days), c.documents, c.documents_valid, c.meetings) == \
        (18, 2, 15, 4, 3, 0)
    result = score(DEFAULT_MODEL, indicator_counts(c, len(c.active_days), len(days)), days_counted=len(days), deductions=1)
    assert result.status == SCORED
    points = {p.code: p.points for p in result.parts}
    assert points["I1"] == pytest.approx(39.375)
    assert points["I2"] == pytest.approx(468.75 / 17.6)
    assert points["I3"] == 0.0 and not result.parts[2].applies
    assert points["I4"] == pytest.approx(18.75)
    assert result.total == pytest.approx(84.758522727 - 5)
