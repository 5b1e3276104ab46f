"""Issuing invitations: signed iMIP emails in the relay's queue as the secretary, through
the relay's rules, ledger events of kind invite_email, SMS rows, reminders."""
from __future__ import annotations

import email
import email.policy
from datetime import datetime, timedelta, timezone

import pytest
from icalendar import Calendar
from sqlmodel import Session, select

from invites.issue import issue
from invites.rsvp import make_token
from invites.spec import spec_from_mapping
from invites.store import create_meeting
from invites.tracking import meeting_status
from mailhub import directory
from mailhub.app import load_signer
from mailhub.config import config_from_mapping
from mailhub.db import make_engine
from mailhub.dkimkeys import dns_records, ensure_domain_keys
from mailhub.models import (Meeting, MeetingAttendee, QueuedMessage, QueueRecipient, Reminder, SmsMessage,
                            UsageEvent)
from mailhub.schema import upgrade
from tests.dkimcheck import dkimpy_verify

KEY = bytes(range(32))
NOW = datetime(2026, 11, 21, 3, 0, tzinfo=timezone.utc)


@pytest.fixture
def setup(tmp_path):
    config = config_from_mapping({"server": {"home": str(tmp_path)},
                                  "domains": {"official": ["hcm.gov.vn"], "subdomains_of": ["hcm.gov.vn"]},
                                  "invites": {"public_url": "https://mail.hcm.gov.vn"}}, "t.toml")
    upgrade(config.database_url)
    ensure_domain_keys(config.dkim_keys_dir, "hcm.gov.vn", config.dkim.selector, False)
    engine = make_engine(config.database_url)
    d = config.domains
    directory.add_unit(engine, "STTTT", "Sở Thông tin và Truyền thông", kind="department")
    directory.add_unit(engine, "Q1", "Ủy ban nhân dân Quận 1")
    directory.add_official(engine, d, "vanthu@hcm.gov.vn", "Phạm Thu Hà", "STTTT", ["official", "secretary"])
    directory.add_official(engine, d, "an@hcm.gov.vn", "Nguyễn Văn An", "STTTT", ["official"], "0912345678")
    directory.add_official(engine, d, "chau@q1.hcm.gov.vn", "Lê Minh Châu", "Q1", ["official"], "0283 829 6052")
    yield config, engine
    engine.dispose()


def meeting(engine, config, title="Họp giao ban chuyển đổi số quý IV"):
    spec = spec_from_mapping({"title": title, "start": "2026-12-03 08:00", "duration_minutes": 90, "unit": "STTTT",
                              "location": "Phòng họp số 2", "secretary": "vanthu@hcm.gov.vn",
                              "attendees": ["an@hcm.gov.vn"], "units": ["Q1"],
                              "guests": [{"name": "Bà Cúc", "phone": "0903 123 456"},
                                         {"name": "Ông Bảo", "email": "bao@doitac.vn"}]}, "hop.toml")
    return create_meeting(engine, config.domains, spec).meeting_id


def test_emails_and_sms_are_queued_as_the_secretary(setup):
    config, engine = setup
    mid = meeting(engine, config)
    report = issue(engine, config, load_signer(config), KEY, mid, now=NOW)
    assert (report.emails, report.sms, report.refused, report.no_channel) == (3, 2, [], [])
    with Session(engine) as s:
        messages = s.exec(select(QueuedMessage)).all()
        rcpts = {r.message_id: r.rcpt for r in s.exec(select(QueueRecipient))}
        events = s.exec(select(UsageEvent)).all()
        people = {p.name: p for p in s.exec(select(MeetingAttendee))}
        sms = s.exec(select(SmsMessage).order_by(SmsMessage.id)).all()
        stored = s.get(Meeting, mid)
        reminders = sorted(r.due_at for r in s.exec(select(Reminder)))
    assert {m.kind for m in messages} == {"invite_email"}
    assert {m.mail_from for m in messages} == {"vanthu@hcm.gov.vn"}
    assert sorted(rcpts.values()) == ["an@hcm.gov.vn", "bao@doitac.vn", "chau@q1.hcm.gov.vn"]
    records = dns_records(config.dkim_keys_dir, "hcm.gov.vn", config.dkim.selector, False)
    for m in messages:
        assert dkimpy_verify(bytes(m.data), records)
        parsed = email.message_from_bytes(bytes(m.data), policy=email.policy.default)
        cal = next(p for p in parsed.walk() if p.get_content_type() == "text/calendar")
        event = Calendar.from_ical(cal.get_payload(decode=True)).walk("VEVENT")[0]
        assert str(event["ATTENDEE"]).lower() == f"mailto:{rcpts[m.id]}"  # personal: one ATTENDEE
        person = next(p for p in people.values() if p.email == rcpts[m.id])
        assert f"https://mail.hcm.gov.vn/r/{make_token(KEY, person.id)}" in parsed.get_body(("plain",)).get_content()
    assert sorted((e.kind, e.official_email, e.unit_code, e.recipients_internal) for e in events) == [
        ("invite_email", "vanthu@hcm.gov.vn", "STTTT", 0), ("invite_email", "vanthu@hcm.gov.vn", "STTTT", 1),
        ("invite_email", "vanthu@hcm.gov.vn", "STTTT", 1)]
    # SMS: mobiles only (Châu's number is a landline), one GSM-7 segment, the link in it
    assert [(m.to, m.encoding, m.segments) for m in sms] == [("+84912345678", "GSM-7", 1), ("+84903123456", "GSM-7", 1)]
    assert sms[0].text.startswith("Giay moi hop: Hop giao ban chuyen doi so quy IV. Luc 08:00 03/12/2026")
    assert sms[0].text.endswith(make_token(KEY, people["Nguyễn Văn An"].id))
    assert (people["Nguyễn Văn An"].email_state, people["Nguyễn Văn An"].sms_state) == ("queued", "queued")
    assert (people["Lê Minh Châu"].sms_state, people["Bà Cúc"].email_state) == ("", "")
    assert stored.status == "sent"
    start = datetime(2026, 12, 3, 1, 0, tzinfo=timezone.utc)
    assert reminders == [start - timedelta(hours=48), start - timedelta(hours=24), start - timedelta(hours=1)]
    # Issuing again reaches nobody twice.
    again = issue(engine, config, load_signer(config), KEY, mid, now=NOW)
    assert (again.emails, again.sms) == (0, 0)


def test_the_relays_rules_apply_to_invitations(setup):
    config, engine = setup
    mid = meeting(engine, config, title="Họp bàn tài liệu TUYỆT MẬT")
    report = issue(engine, config, load_signer(config), KEY, mid, now=NOW)
    assert report.emails == 0 and len(report.refused) == 3
    assert all(reply.startswith("550 5.7.1") for _, reply in report.refused)
    with Session(engine) as s:
        assert s.exec(select(QueuedMessage)).all() == []
        refusals = s.exec(select(UsageEvent).where(UsageEvent.kind == "refused")).all()
        states = {p.email: (p.email_state, p.email_reason[:9]) for p in s.exec(select(MeetingAttendee)) if p.email}
    assert {r.policy for r in refusals} == {"classification"} and len(refusals) == 3
    assert states == {e: ("failed", "550 5.7.1") for e in ("an@hcm.gov.vn", "chau@q1.hcm.gov.vn", "bao@doitac.vn")}


def issue_unit_meeting(engine, config):
    """On a provisioned home (unit STTTT: an@ and binh@): the secretary vanthu@, a meeting of
    the unit and the guest Bà Cúc (an SMS only), issued. Returns (meeting id, report)."""
    directory.add_official(engine, config.domains, "vanthu@hcm.gov.vn", "Phạm Thu Hà", "STTTT",
                           ["official", "secretary"])
    spec = spec_from_mapping({"title": "Họp", "start": "2026-12-03 08:00", "duration_minutes": 60,
                              "unit": "STTTT", "secretary": "vanthu@hcm.gov.vn", "units": ["STTTT"],
                              "guests": [{"name": "Bà Cúc", "phone": "0903 123 456"}]}, "hop.toml")
    mid = create_meeting(engine, config.domains, spec).meeting_id
    return mid, issue(engine, config, load_signer(config), KEY, mid, now=NOW)


def test_serve_delivers_the_issued_emails_and_sms(tmp_path, ca, provisioned_home):
    """The whole path on the development defaults: issue, then `serve` delivers the
    emails to the Maildir outbox and the SMS to the SMS outbox."""
    import json
    import time

    from tests.support import make_config, provisioned_copy, start_hub

    home = provisioned_copy(provisioned_home, tmp_path / "home")
    config = make_config(home, ca)
    engine = make_engine(config.database_url)
    try:
        mid, report = issue_unit_meeting(engine, config)
        hub = start_hub(config, ca)
        try:
            deadline = time.monotonic() + 20
            sms_file = config.sms_outbox_dir / "sms.jsonl"
            while time.monotonic() < deadline:
                mails = list((config.outbox_dir / "new").glob("*")) if (config.outbox_dir / "new").exists() else []
                texts = sms_file.read_text().splitlines() if sms_file.exists() else []
                if len(mails) >= report.emails and len(texts) >= report.sms:
                    break
                time.sleep(0.1)
        finally:
            hub.stop()
        with Session(engine) as s:
            sms_states = {m.to: m.state for m in s.exec(select(SmsMessage))}
        tracked = {(a.name, a.email_state, a.sms_state) for a in meeting_status(engine, mid)}
    finally:
        engine.dispose()
    assert report.emails == 3 and len(mails) == 3  # an@, binh@ and vanthu@ of STTTT
    assert [json.loads(t)["to"] for t in texts] == ["+84903123456"]
    assert sms_states == {"+84903123456": "sent"}
    # What the secretary sees: email from the mail queue itself, SMS from the SMS queue.
    assert tracked == {("Nguyễn Văn An", "delivered", ""), ("Trần Thị Bình", "delivered", ""),
                       ("Phạm Thu Hà", "delivered", ""), ("Bà Cúc", "", "sent")}


def test_email_state_follows_the_mail_queue(setup):
    config, engine = setup
    mid = meeting(engine, config)
    issue(engine, config, load_signer(config), KEY, mid, now=NOW)
    with Session(engine) as s:
        rows = {r.rcpt: r for r in s.exec(select(QueueRecipient))}
        rows["an@hcm.gov.vn"].state, rows["an@hcm.gov.vn"].last_reply = "delivered", "250 2.0.0 Ok"
        rows["bao@doitac.vn"].state, rows["bao@doitac.vn"].last_reply = "bounced", "550 5.1.1 no such user"
        rows["chau@q1.hcm.gov.vn"].state, rows["chau@q1.hcm.gov.vn"].last_reply = "deferred", "451 4.3.0 later"
        for r in rows.values():
            s.add(r)
        s.commit()
    got = {a.email: (a.email_state, a.email_reason) for a in meeting_status(engine, mid) if a.email}
    assert got == {"an@hcm.gov.vn": ("delivered", ""), "bao@doitac.vn": ("failed", "550 5.1.1 no such user"),
                   "chau@q1.hcm.gov.vn": ("queued", "451 4.3.0 later")}
