"""The SMS queue against a real database (SQLite; PostgreSQL when configured), the
outbox gateway and the real twilio client talking to a local stand-in."""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from invites.sms import SmsOutbox
from invites.sms.queue import SMS_RETRY, SmsWorker, claim_sms, record_sms
from invites.sms.twilio_gateway import TwilioGateway
from mailhub.config import Secret
from mailhub.models import Meeting, MeetingAttendee, SmsMessage, Unit, utcnow
from tests.test_delivery_queue import postgres_engine, sqlite_engine
from tests.twilio_standin import ACCOUNT_SID, AUTH_TOKEN, TwilioStandin


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, tmp_path):
    with sqlite_engine(tmp_path) if request.param == "sqlite" else postgres_engine() as eng:
        yield eng


def enqueue(engine, to: str, *, attendee: bool = False, created_at=None) -> int:
    with Session(engine) as s:
        attendee_id = None
        if attendee:
            s.add(Unit(code="STTTT", name="Sở TTTT"))
            s.flush()
            meeting = Meeting(uid="u1@hcm.gov.vn", title="Họp", start_at=utcnow(), end_at=utcnow() + timedelta(hours=1),
                              unit_code="STTTT", secretary_email="vanthu@hcm.gov.vn")
            s.add(meeting)
            s.flush()
            person = MeetingAttendee(meeting_id=meeting.id, name="Bà Cúc", phone=to, sms_state="queued")
            s.add(person)
            s.flush()
            attendee_id = person.id
        row = SmsMessage(attendee_id=attendee_id, to=to, text="Giay moi hop: Giao ban luc 08:00 03/12",
                         encoding="GSM-7", segments=1, created_at=created_at or utcnow())
        s.add(row)
        s.commit()
        return row.id


def row(engine, sms_id: int) -> SmsMessage:
    with Session(engine) as s:
        return s.get(SmsMessage, sms_id)


async def test_outbox_delivery_and_the_attendee_follows(engine, tmp_path):
    first = enqueue(engine, "+84912345678", attendee=True)
    second = enqueue(engine, "+84987654321")
    worker = SmsWorker(engine, SmsOutbox(tmp_path / "sms"), gateway_name="outbox")
    assert await worker.drain_once() == 2
    assert await worker.drain_once() == 0  # nothing left
    lines = [json.loads(line) for line in (tmp_path / "sms" / "sms.jsonl").read_text().splitlines()]
    assert sorted(line["to"] for line in lines) == ["+84912345678", "+84987654321"]
    assert {line["reference"] for line in lines} == {str(first), str(second)}
    sent = row(engine, first)
    assert (sent.state, sent.attempts, sent.gateway, sent.lease_until) == ("sent", 1, "outbox", None)
    assert sent.gateway_id.startswith("outbox-")
    with Session(engine) as s:
        person = s.exec(select(MeetingAttendee)).one()
    assert person.sms_state == "sent"


async def test_twilio_answers_by_meaning(engine):
    standin = TwilioStandin(failures={"+84900000001": "invalid", "+84900000002": "rate_limited"}).start()
    gateway = TwilioGateway(ACCOUNT_SID, Secret(AUTH_TOKEN), from_="UBNDTPHCM", base_url=standin.base_url)
    try:
        ok = enqueue(engine, "+84912345678")
        invalid = enqueue(engine, "+84900000001")
        limited = enqueue(engine, "+84900000002")
        old = enqueue(engine, "+84900000002", created_at=utcnow() - timedelta(hours=25))
        worker = SmsWorker(engine, gateway, gateway_name="twilio", retry=replace(SMS_RETRY, jitter=0.0))
        before = utcnow()
        assert await worker.drain_once() == 4
    finally:
        await gateway.close()
        standin.stop()
    assert row(engine, ok).state == "sent" and row(engine, ok).gateway_id.startswith("SM")
    assert (row(engine, invalid).state, row(engine, invalid).reason) == (
        "failed", "invalid 'To' phone number (code 21211)")
    retried = row(engine, limited)
    assert (retried.state, retried.attempts) == ("queued", 1)
    assert retried.next_attempt_at >= before + timedelta(seconds=59)  # not before the retry delay
    assert row(engine, old).state == "failed" and row(engine, old).reason.startswith("gave up after 1 attempts")
    assert sorted(r.form["To"] for r in standin.requests) == ["+84900000001", "+84900000002", "+84900000002",
                                                              "+84912345678"]  # sent at once, in any order


def test_a_live_lease_is_not_claimed_twice_and_a_stale_result_is_not_written(engine):
    sms_id = enqueue(engine, "+84912345678")
    now = utcnow()
    [first] = claim_sms(engine, 10, lease_seconds=60, now=now)
    assert claim_sms(engine, 10, lease_seconds=60, now=now + timedelta(seconds=30)) == []
    [second] = claim_sms(engine, 10, lease_seconds=60, now=now + timedelta(seconds=61))  # the first worker died
    from invites.sms.gateway import accepted

    assert record_sms(engine, [(first, accepted("SM-old", "queued"))], now) == 0  # fenced out
    assert record_sms(engine, [(second, accepted("SM-new", "queued"))], now) == 1
    assert (row(engine, sms_id).state, row(engine, sms_id).gateway_id) == ("sent", "SM-new")


async def test_the_worker_loop_sends_what_arrives_and_stops(engine, tmp_path):
    import asyncio

    worker = SmsWorker(engine, SmsOutbox(tmp_path / "sms"), gateway_name="outbox", poll_seconds=30)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(0.1)
    sms_id = enqueue(engine, "+84912345678")
    worker.wake()  # without it the next look would be 30 s away
    for _ in range(100):
        if row(engine, sms_id).state == "sent":
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert row(engine, sms_id).state == "sent"
