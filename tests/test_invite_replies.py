"""Answers by iMIP REPLY: the attendee's client answers the REQUEST it received, the
official sends it through the relay to the organizer, and the answer is recorded;
what must be ignored is ignored."""
from __future__ import annotations

import email
import email.policy
from datetime import timedelta
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest
from icalendar import Calendar
from sqlmodel import Session, select

from invites.changes import cancel_meeting
from invites.issue import issue
from invites.replies import ReplyIntake, calendar_replies
from invites.spec import spec_from_mapping
from invites.store import create_meeting
from mailhub import directory
from mailhub.app import load_signer
from mailhub.models import Meeting, MeetingAttendee, MeetingReply, QueuedMessage, QueueRecipient
from tests.test_invite_issue import KEY, NOW, meeting, setup  # noqa: F401  (fixture)


def received_request(engine, rcpt: str) -> bytes:
    """The calendar of the latest REQUEST queued for ``rcpt``."""
    with Session(engine) as s:
        ids = [r.message_id for r in s.exec(select(QueueRecipient).where(QueueRecipient.rcpt == rcpt))]
        data = bytes(s.exec(select(QueuedMessage).where(QueuedMessage.id.in_(ids))
                            .order_by(QueuedMessage.created_at.desc())).first().data)
    part = next(p for p in email.message_from_bytes(data, policy=email.policy.default).walk()
                if p.get_content_type() == "text/calendar")
    return part.get_payload(decode=True)


def answered(request: bytes, partstat: str, method: str = "REPLY", sequence: int | None = None,
             attendee: str | None = None, counter_hours: int = 0) -> bytes:
    """What a calendar client sends back: the REQUEST with METHOD and PARTSTAT changed."""
    cal = Calendar.from_ical(request)
    cal["METHOD"] = method
    event = cal.walk("VEVENT")[0]
    event["ATTENDEE"].params["PARTSTAT"] = partstat
    if attendee:
        params = event["ATTENDEE"].params
        event["ATTENDEE"] = type(event["ATTENDEE"])(f"mailto:{attendee}")
        event["ATTENDEE"].params.update(params)
    if sequence is not None:
        event["SEQUENCE"] = sequence
    if counter_hours:
        for key in ("DTSTART", "DTEND"):
            moved = event.decoded(key) + timedelta(hours=counter_hours)
            del event[key]
            event.add(key.lower(), moved)
    return cal.to_ical()


def reply_mail(sender: str, to: str, calendar: bytes, method: str = "REPLY") -> bytes:
    """As Outlook writes it: text and the calendar in multipart/alternative."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, "Accepted: Họp giao ban"
    message.set_content("Tôi sẽ tham dự.")
    message.add_alternative(calendar.decode("utf-8"), subtype="calendar", params={"method": method})
    return message.as_bytes(policy=email.policy.SMTP)


def state(engine, address: str) -> tuple[str, list[tuple[str, str]]]:
    with Session(engine) as s:
        person = s.exec(select(MeetingAttendee).where(MeetingAttendee.email == address)).one()
        replies = [(r.method, r.partstat) for r in s.exec(select(MeetingReply)
                                                          .where(MeetingReply.attendee_id == person.id))]
        return person.partstat, replies


def test_replies_are_checked_before_they_count(setup):
    config, engine = setup
    mid = meeting(engine, config)
    issue(engine, config, load_signer(config), KEY, mid, now=NOW)
    request = received_request(engine, "an@hcm.gov.vn")
    intake = ReplyIntake(engine)
    organizer = ["vanthu@hcm.gov.vn"]

    def send(calendar, sender="an@hcm.gov.vn", rcpts=organizer, method="REPLY"):
        return [(r.outcome, r.why) for r in intake.observe(sender, rcpts, reply_mail(sender, rcpts[0], calendar,
                                                                                        method))]

    assert intake.observe("an@hcm.gov.vn", organizer, b"Subject: hi\r\n\r\nno calendar\r\n") == []
    [(outcome, why)] = send(answered(request, "ACCEPTED", attendee="binh@hcm.gov.vn"), sender="binh@hcm.gov.vn")
    assert outcome == "ignored" and why.endswith("is not invited to meeting 1")
    [(outcome, why)] = send(answered(request, "DECLINED"), sender="chau@q1.hcm.gov.vn")
    assert (outcome, why) == ("ignored", "chau@q1.hcm.gov.vn answered for an@hcm.gov.vn")
    [(outcome, why)] = send(answered(request, "DECLINED"), rcpts=["binh@hcm.gov.vn"])
    assert why == "not sent to the organizer of meeting 1"
    assert state(engine, "an@hcm.gov.vn") == ("NEEDS-ACTION", [])
    # The attendee's address is matched whatever its case; the answer counts.
    [(outcome, why)] = send(answered(request, "ACCEPTED", attendee="An@HCM.gov.vn"), rcpts=["VanThu@hcm.gov.vn"])
    assert outcome == "recorded"
    assert state(engine, "an@hcm.gov.vn") == ("ACCEPTED", [("REPLY", "ACCEPTED")])
    # A proposal of another time is kept and shown, not applied.
    [(outcome, _)] = send(answered(request, "TENTATIVE", "COUNTER", counter_hours=2), method="COUNTER")
    assert outcome == "proposal"
    with Session(engine) as s:
        counter = s.exec(select(MeetingReply).where(MeetingReply.method == "COUNTER")).one()
        stored = s.get(Meeting, mid)
    assert counter.proposed_start - stored.start_at == timedelta(hours=2)
    from invites.tracking import meeting_proposals

    [shown] = meeting_proposals(engine, mid)  # what the secretary sees in `mailhub invite status`
    assert (shown.email, shown.start - stored.start_at, shown.end - stored.end_at) == (
        "an@hcm.gov.vn", timedelta(hours=2), timedelta(hours=2))
    assert state(engine, "an@hcm.gov.vn")[0] == "ACCEPTED"
    # After an update (SEQUENCE 1), an answer to SEQUENCE 0 is stale.
    from invites.changes import update_meeting
    from invites.spec import changes_from_mapping

    update_meeting(engine, config, load_signer(config), KEY, mid, changes_from_mapping(
        {"location": "Hội trường A"}, "u"), now=NOW + timedelta(minutes=1))
    [(outcome, why)] = send(answered(request, "DECLINED"))
    assert why == "stale: an answer to SEQUENCE 0, meeting 1 is at 1"
    [(outcome, _)] = send(answered(received_request(engine, "an@hcm.gov.vn"), "DECLINED"))
    assert outcome == "recorded" and state(engine, "an@hcm.gov.vn")[0] == "DECLINED"
    cancel_meeting(engine, config, load_signer(config), KEY, mid, now=NOW + timedelta(minutes=2))
    [(outcome, why)] = send(answered(received_request(engine, "an@hcm.gov.vn"), "ACCEPTED", sequence=2))
    assert why == "meeting 1 is cancelled"


def test_the_inline_part_and_the_attachment_count_once(setup):
    config, engine = setup
    mid = meeting(engine, config)
    issue(engine, config, load_signer(config), KEY, mid, now=NOW)
    calendar = answered(received_request(engine, "an@hcm.gov.vn"), "ACCEPTED")
    message = MIMEMultipart("mixed")
    message.attach(email.message_from_bytes(reply_mail("an@hcm.gov.vn", "vanthu@hcm.gov.vn", calendar)))
    attachment = MIMEText(calendar.decode(), "calendar", "utf-8")
    attachment.add_header("Content-Disposition", "attachment", filename="invite.ics")
    message.attach(attachment)
    assert len(calendar_replies(message.as_bytes())) == 1


@pytest.mark.parametrize("garbage", [b"method=REPLY\r\n\r\nBEGIN:VCALENDAR\r\nbroken",
                                     b"Content-Type: text/calendar; method=REPLY\r\n\r\n\xff\xfe\x00"])
def test_garbage_is_ignored(setup, garbage):
    config, engine = setup
    assert ReplyIntake(engine).observe("an@hcm.gov.vn", ["vanthu@hcm.gov.vn"], garbage) == []


def test_a_reply_sent_through_the_relay_is_taken_in(hub, next_hop):
    """The whole path: the official's client sends the REPLY to the organizer through
    mailhub (TLS, login); the mail is delivered and the answer recorded."""
    import time

    from mailhub.db import make_engine

    engine = make_engine(hub.config.database_url)
    try:
        directory.add_official(engine, hub.config.domains, "vanthu@hcm.gov.vn", "Phạm Thu Hà", "STTTT",
                               ["official", "secretary"])
        spec = spec_from_mapping({"title": "Họp giao ban", "start": "2026-12-03 08:00", "duration_minutes": 60,
                                  "unit": "STTTT", "secretary": "vanthu@hcm.gov.vn",
                                  "attendees": ["an@hcm.gov.vn"]}, "hop.toml")
        mid = create_meeting(engine, hub.config.domains, spec).meeting_id
        issue(engine, hub.config, load_signer(hub.config), KEY, mid)
        calendar = answered(received_request(engine, "an@hcm.gov.vn"), "ACCEPTED")
        with hub.connect() as client:
            client.sendmail("an@hcm.gov.vn", ["vanthu@hcm.gov.vn"],
                            reply_mail("an@hcm.gov.vn", "vanthu@hcm.gov.vn", calendar))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and state(engine, "an@hcm.gov.vn")[0] != "ACCEPTED":
            time.sleep(0.05)
        arrived = next_hop.handler.wait_for(2)
        got = state(engine, "an@hcm.gov.vn")
    finally:
        engine.dispose()
    assert got == ("ACCEPTED", [("REPLY", "ACCEPTED")])
    assert sorted(rcpts[0] for _, rcpts, _ in arrived) == ["an@hcm.gov.vn", "vanthu@hcm.gov.vn"]


def test_a_guests_reply_forwarded_by_the_city_mail_server(tmp_path, ca, provisioned_home):
    """An external guest answers from their own mail system; the city's server forwards
    a copy to the reply listener, which takes the answer in (From must be the attendee)."""
    import smtplib

    from mailhub.db import make_engine
    from tests.support import make_config, provisioned_copy, start_hub

    home = provisioned_copy(provisioned_home, tmp_path / "home")
    config = make_config(home, ca, listen={"replies": "127.0.0.1:0"})
    engine = make_engine(config.database_url)
    hub = start_hub(config, ca)
    try:
        directory.add_official(engine, config.domains, "vanthu@hcm.gov.vn", "Phạm Thu Hà", "STTTT",
                               ["official", "secretary"])
        spec = spec_from_mapping({"title": "Họp với đối tác", "start": "2026-12-03 08:00", "duration_minutes": 60,
                                  "unit": "STTTT", "secretary": "vanthu@hcm.gov.vn",
                                  "guests": [{"name": "Ông Bảo", "email": "bao@doitac.vn"}]}, "hop.toml")
        mid = create_meeting(engine, config.domains, spec).meeting_id
        issue(engine, config, load_signer(config), KEY, mid)
        calendar = answered(received_request(engine, "bao@doitac.vn"), "TENTATIVE")
        with smtplib.SMTP("127.0.0.1", hub.hub.ports["replies"], timeout=10) as client:
            # Forwarded: the envelope is the forwarder's, the headers are the guest's.
            code, answer = client.sendmail("forwarder@hcm.gov.vn", ["replies@mailhub.hcm.gov.vn"],
                                           reply_mail("bao@doitac.vn", "vanthu@hcm.gov.vn", calendar)) or (250, b"")
            forged = client.sendmail("forwarder@hcm.gov.vn", ["replies@mailhub.hcm.gov.vn"],
                                     reply_mail("mallory@evil.example", "vanthu@hcm.gov.vn",
                                                answered(received_request(engine, "bao@doitac.vn"), "DECLINED")))
        got = state(engine, "bao@doitac.vn")
    finally:
        hub.stop()
        engine.dispose()
    assert forged == {}  # accepted (never bounced back to the forwarder) but not taken in
    assert got == ("TENTATIVE", [("REPLY", "TENTATIVE")])


def test_the_reply_listener_refuses_hosts_outside_its_networks(tmp_path, ca, provisioned_home):
    import smtplib

    from tests.support import make_config, provisioned_copy, start_hub

    home = provisioned_copy(provisioned_home, tmp_path / "home")
    config = make_config(home, ca, listen={"replies": "127.0.0.1:0"},
                         invites={"reply_intake_networks": ["10.0.0.0/8"]})
    hub = start_hub(config, ca)
    try:
        with smtplib.SMTP("127.0.0.1", hub.hub.ports["replies"], timeout=10) as client:
            client.ehlo("mx.example")
            code, text = client.mail("someone@example.org")
    finally:
        hub.stop()
    assert code == 554 and b"not allowed" in text
