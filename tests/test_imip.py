"""Invitation emails and calendars (invites.ical, invites.imip), parsed back with the
email package and icalendar and checked against RFC 5546 / RFC 6047 and FIELD-NOTES."""
from __future__ import annotations

import email
import email.policy
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from invites.ical import (
    AttendeeInfo,
    MeetingInfo,
    ReplyInfo,
    build_calendar,
    one_line,
    parse_reply,
)
from invites.imip import build_invitation

VN = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
TITLE = "Họp giao ban chuyển đổi số quý IV — Sở Thông tin và Truyền thông"
MEETING = MeetingInfo(
    uid="3f2a9c@hochiminhcity.gov.vn", sequence=0, title=TITLE,
    agenda="1. Kết quả quý III\n2. Kế hoạch quý IV; ngân sách, nhân sự",
    location="Phòng họp số 2, 59 Lý Tự Trọng",
    start=datetime(2026, 3, 4, 2, 0, tzinfo=UTC), end=datetime(2026, 3, 4, 3, 30, tzinfo=UTC),
    organizer_email="vanthu@hochiminhcity.gov.vn", organizer_name="Văn thư Sở TTTT",
    chair_name="Đồng chí Nguyễn Văn An, Giám đốc Sở", unit_name="Sở Thông tin và Truyền thông",
    created=datetime(2026, 3, 1, 1, 0, tzinfo=UTC),
)
AN = AttendeeInfo(email="An@HCM.gov.vn", name="Trần Thị Bình")
RSVP = "https://mail.hochiminhcity.gov.vn/r/AQ3kLm9xYz"
CANCELLED = replace(MEETING, sequence=2, cancelled=True)


def invite(meeting=MEETING, attendee=AN, method="REQUEST", **kw) -> bytes:
    kw = {"rsvp_url": RSVP, "now": NOW, "message_id": "<inv-1@hochiminhcity.gov.vn>"} | kw
    return build_invitation(meeting, attendee, method, **kw)


def parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)


def calendar_part(msg: EmailMessage) -> EmailMessage:
    return msg.get_payload()[0].get_payload()[2]


def calendar_of(data: bytes) -> Calendar:
    return Calendar.from_ical(calendar_part(parse(data)).get_content())


def event_of(data: bytes):
    (event,) = [c for c in calendar_of(data).subcomponents if c.name == "VEVENT"]
    return event


MESSAGES = {
    "request": lambda: invite(),
    "update": lambda: invite(replace(MEETING, sequence=3)),
    "cancel": lambda: invite(CANCELLED, method="CANCEL"),
    "uninvite": lambda: invite(replace(MEETING, sequence=1), method="CANCEL"),
    "english": lambda: invite(locale="en"),
    "no rsvp": lambda: invite(rsvp_url=None),
    "long texts": lambda: invite(replace(MEETING, title="Họp " * 120, agenda="Nội dung " * 400,
                                         organizer_name="Văn thư " * 30)),
}


@pytest.mark.parametrize("name", MESSAGES)
def test_mime_layout(name):
    data = MESSAGES[name]()
    msg = parse(data)
    assert msg.get_content_type() == "multipart/mixed"
    alternative, attachment = msg.get_payload()
    assert alternative.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in alternative.get_payload()] == ["text/plain", "text/html", "text/calendar"]
    cal_part = alternative.get_payload()[2]
    method = calendar_of(data)["METHOD"]
    assert method == method.upper() == cal_part.get_param("method")
    assert cal_part.get_param("charset") == "UTF-8"
    assert cal_part["Content-Disposition"] is None
    assert attachment.get_content_type() == "application/ics"
    assert attachment.get_param("name") == "invite.ics"
    assert attachment.get_content_disposition() == "attachment"
    assert attachment.get_filename() == "invite.ics"
    assert attachment.get_content() == cal_part.get_content().encode("utf-8")
    assert [p.get_content_type() for p in msg.walk()] == [
        "multipart/mixed", "multipart/alternative", "text/plain", "text/html", "text/calendar", "application/ics"]
    assert not msg.defects and all(not p.defects for p in msg.walk())


@pytest.mark.parametrize("name", MESSAGES)
def test_wire_format(name):
    data = MESSAGES[name]()
    assert b"\n" not in data.replace(b"\r\n", b"") and b"\r" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    assert data.isascii()  # 7bit: Vietnamese only as encoded words, quoted-printable and base64
    head = data.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
    assert data == MESSAGES[name]()  # deterministic


def test_request_follows_itip():
    data = invite()
    cal, event = calendar_of(data), event_of(data)
    assert cal["METHOD"] == "REQUEST" and cal["VERSION"] == "2.0" and cal["PRODID"]
    assert "UID" not in cal  # FIELD-NOTES: the RFC 7986 UID icalendar adds is removed
    organizer = event["ORGANIZER"]
    assert str(organizer) == "mailto:vanthu@hochiminhcity.gov.vn"
    assert dict(organizer.params) == {"CN": "Văn thư Sở TTTT"}
    attendee = event["ATTENDEE"]
    assert not isinstance(attendee, list)  # exactly one: this recipient
    assert str(attendee) == "mailto:An@HCM.gov.vn"
    assert dict(attendee.params) == {"CN": "Trần Thị Bình", "ROLE": "REQ-PARTICIPANT",
                                     "PARTSTAT": "NEEDS-ACTION", "RSVP": "TRUE"}
    (tz,) = [c for c in cal.subcomponents if c.name == "VTIMEZONE"]
    assert tz["TZID"] == "Asia/Ho_Chi_Minh"
    assert event["DTSTART"].params["TZID"] == event["DTEND"].params["TZID"] == "Asia/Ho_Chi_Minh"
    assert event.decoded("DTSTART") == MEETING.start and event.decoded("DTSTART").hour == 9  # 02:00Z = 09:00 ICT
    assert event.decoded("DTEND") == MEETING.end
    assert event.decoded("DTSTAMP") == NOW and event.decoded("DTSTAMP").utcoffset() == timedelta(0)
    assert "DTSTAMP:20260302T083000Z" in calendar_part(parse(data)).get_content()
    assert event["UID"] == MEETING.uid and event["SEQUENCE"] == 0
    assert event["STATUS"] == "CONFIRMED"
    assert event["SUMMARY"] == TITLE and event["LOCATION"] == MEETING.location
    assert event["DESCRIPTION"] == MEETING.agenda


@pytest.mark.parametrize("meeting, status", [
    (CANCELLED, "CANCELLED"),  # RFC 5546 §3.2.5: the whole meeting
    (replace(MEETING, sequence=2), None),  # one attendee removed: STATUS MUST NOT be included
])
def test_cancel_follows_itip(meeting, status):
    data = invite(meeting, method="CANCEL")
    event = event_of(data)
    assert calendar_of(data)["METHOD"] == "CANCEL"
    assert event.get("STATUS") == status
    assert event["UID"] == MEETING.uid and event["SEQUENCE"] == 2  # as given: the caller increments
    assert "RSVP" not in event["ATTENDEE"].params
    assert str(event["ATTENDEE"]) == "mailto:An@HCM.gov.vn"
    assert RSVP not in data.decode("ascii") and RSVP not in parse(data).get_body(("plain",)).get_content()


def test_calendar_lists_every_attendee_given():
    people = [AN, AttendeeInfo("binh@hcm.gov.vn", "Bình", partstat="ACCEPTED", role="OPT-PARTICIPANT")]
    event = Calendar.from_ical(build_calendar(MEETING, people, "REQUEST", now=NOW)).walk("VEVENT")[0]
    assert [(str(a), a.params["PARTSTAT"], a.params["ROLE"]) for a in event["ATTENDEE"]] == [
        ("mailto:An@HCM.gov.vn", "NEEDS-ACTION", "REQ-PARTICIPANT"),
        ("mailto:binh@hcm.gov.vn", "ACCEPTED", "OPT-PARTICIPANT")]


@pytest.mark.parametrize("meeting, method, locale, prefix", [
    (MEETING, "REQUEST", "vi", "Giấy mời: "),
    (replace(MEETING, sequence=1), "REQUEST", "vi", "Cập nhật giấy mời: "),
    (CANCELLED, "CANCEL", "vi", "Hủy cuộc họp: "),
    (replace(MEETING, sequence=1), "CANCEL", "vi", "Hủy giấy mời: "),
    (MEETING, "REQUEST", "en", "Invitation: "),
    (CANCELLED, "cancel", "en", "Meeting cancelled: "),
])
def test_subject(meeting, method, locale, prefix):
    msg = parse(invite(meeting, method=method, locale=locale))
    assert msg["Subject"] == f"{prefix}{TITLE} — 04/03/2026 09:00"


def test_ascii_subject_that_looks_encoded_stays_literal():
    msg = parse(invite(replace(MEETING, title="=?utf-8?q?Evil?="), locale="en"))
    assert msg["Subject"] == "Invitation: =?utf-8?q?Evil?= — 04/03/2026 09:00"
    plain = parse(invite(replace(MEETING, title="Plain ASCII title"), locale="en", method="REQUEST"))
    assert plain["Subject"] == "Invitation: Plain ASCII title — 04/03/2026 09:00"


def test_vietnamese_round_trips():
    msg = parse(invite())
    assert TITLE in msg["Subject"] and event_of(invite())["SUMMARY"] == TITLE
    assert msg["From"].addresses[0].display_name == "Văn thư Sở TTTT"
    assert msg["From"].addresses[0].addr_spec == "vanthu@hochiminhcity.gov.vn"
    assert msg["To"].addresses[0].display_name == "Trần Thị Bình"
    for body in (msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()):
        for text in (TITLE, "Lý Tự Trọng", "Nguyễn Văn An", "Sở Thông tin", "Kế hoạch quý IV",
                     "04/03/2026 09:00 (GMT+7)", f"Xác nhận tham dự / RSVP</a>: {RSVP}"
                     if "<html" in body else f"Xác nhận tham dự / RSVP: {RSVP}"):
            assert text in body


@pytest.mark.parametrize("locale, first, second", [("vi", "Kính gửi", "Dear"), ("en", "Dear", "Kính gửi")])
def test_locale_order(locale, first, second):
    msg = parse(invite(locale=locale))
    for body in (msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()):
        assert 0 <= body.index(first) < body.index(second)


@pytest.mark.parametrize("text", [
    TITLE, "Họp " * 120, "Short ASCII", "A long ASCII title " * 6, 'Quotes "x", <angle> \\ and =?utf-8?q?x?=',
    "Đ" * 43, "a" + "ệ" * 30,  # characters across an encoded word's edge
])
def test_headers_round_trip(text):
    data = invite(replace(MEETING, title=text, organizer_name=text), AttendeeInfo("an@hcm.gov.vn", text))
    msg, raw = parse(data), email.message_from_bytes(data, policy=email.policy.compat32)
    assert msg["Subject"] == f"Giấy mời: {one_line(text, 500)} — 04/03/2026 09:00"
    for field, addr_spec in (("From", MEETING.organizer_email), ("To", "an@hcm.gov.vn")):
        (address,) = msg[field].addresses
        assert address.addr_spec == addr_spec
        # RFC 2047 §6.2: white space between adjacent encoded words is dropped. email.header
        # does that; Python 3.11's address parser keeps it, so its display name is compared
        # without spaces only.
        assert one_line(text) in str(make_header(decode_header(raw[field])))
        assert address.display_name.replace(" ", "") == one_line(text).replace(" ", "")
    assert not msg.defects


def test_header_injection_adds_no_header():
    evil = replace(MEETING, title="Họp\r\nBcc: spy@evil.example\r\n\r\nbody", organizer_name="A\nX-Evil: 1",
                   location="P2\r\nContent-Type: text/html")
    msg = parse(invite(evil, AttendeeInfo("an@hcm.gov.vn", "B\r\nCc: spy@evil.example")))
    assert list(msg.keys()) == ["From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"]
    assert msg["Subject"] == "Giấy mời: Họp Bcc: spy@evil.example body — 04/03/2026 09:00"
    assert msg["To"].addresses[0].addr_spec == "an@hcm.gov.vn" and len(msg["To"].addresses) == 1
    assert "\n" not in event_of(invite(evil))["SUMMARY"]


def test_html_is_escaped():
    html = parse(invite(replace(MEETING, title="<script>alert(1)</script>"))).get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_no_rsvp_link_when_none():
    msg = parse(invite(rsvp_url=None))
    assert "RSVP:" not in msg.get_body(("plain",)).get_content()
    assert "href" not in msg.get_body(("html",)).get_content()
    assert event_of(invite(rsvp_url=None))["ATTENDEE"].params["RSVP"] == "TRUE"  # the buttons stay


@pytest.mark.parametrize("kind", ["REQUEST", "CANCEL", "reminder", "unanswered"])
@pytest.mark.parametrize("name", ["Trần Thị Bình", "", 'A <b>&amp; "Q" \'x\'', "Đỗ {{ title }} %s \\1"])
@pytest.mark.parametrize("link", [RSVP, "https://x.vn/r/a&b<c>", None])
def test_each_copy_reads_as_if_rendered_for_its_attendee_alone(kind, name, link):
    """A meeting's bodies are rendered once and personalised per attendee (bench/invites.py):
    each copy's text and HTML must be exactly what the templates give for that attendee."""
    from invites.imip import TEMPLATES, _kind, _values, build_reminder
    from invites.ical import one_line
    from mailhub.templating import environment

    attendee = AttendeeInfo("an@hcm.gov.vn", name)
    meeting = CANCELLED if kind == "CANCEL" else MEETING
    for first in (AttendeeInfo("z@hcm.gov.vn", "Other"), attendee):  # the cache is warm for someone else
        if kind in TEMPLATES:
            data = build_invitation(meeting, first, kind, rsvp_url=link, now=NOW, message_id="<m@x.vn>")
        else:
            data = build_reminder(meeting, first, kind, rsvp_url=link, now=NOW, message_id="<m@x.vn>")
    template = TEMPLATES.get(kind, "invites/reminder")
    values = _values(meeting, one_line(name), _kind(meeting, kind) if kind in TEMPLATES else kind, link, "vi")
    msg = parse(data)
    for subtype, suffix in (("plain", ".txt.j2"), ("html", ".html.j2")):
        expected = environment().get_template(template + suffix).render(values)
        assert msg.get_body((subtype,)).get_content().replace("\r\n", "\n") == expected.replace("\r\n", "\n")


@pytest.mark.parametrize("change", [
    {"meeting": replace(MEETING, start=datetime(2026, 3, 4, 9, 0))},  # naive
    {"meeting": replace(MEETING, end=MEETING.start)},
    {"meeting": replace(MEETING, sequence=-1)},
    {"meeting": replace(MEETING, uid="")},
    {"meeting": replace(MEETING, organizer_email="vanthu@hcm.gov.vn\r\nBcc: x@y")},
    {"meeting": CANCELLED},  # a REQUEST for a cancelled meeting
    {"attendee": AttendeeInfo("an@hcm.gov.vn", "An", partstat="MAYBE")},
    {"attendee": AttendeeInfo("not an address", "An")},
    {"method": "PUBLISH"},  # FIELD-NOTES: never PUBLISH, it shows no buttons
    {"method": "REPLY"},
    {"now": datetime(2026, 3, 2, 8, 30)},
    {"message_id": "no-at-sign"},
    {"rsvp_url": "javascript:alert(1)"},
    {"rsvp_url": "https://x.vn/r/a b"},
    {"locale": "fr"},
])
def test_caller_bugs_raise(change):
    with pytest.raises(ValueError):
        invite(**change)


# --- replies -----------------------------------------------------------------------------------

OUTLOOK_REPLY = (
    "BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nPRODID:Microsoft Exchange Server 2010\r\nVERSION:2.0\r\n"
    "BEGIN:VEVENT\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:An@HCM.gov.vn\r\n"
    "COMMENT;LANGUAGE=vi-VN:Tôi sẽ đến đúng giờ.\r\n"
    "SUMMARY;LANGUAGE=vi-VN:Đã chấp nhận: Họp giao ban\r\n"
    "DTSTART:20260304T020000Z\r\nDTEND:20260304T033000Z\r\nUID:3f2a9c@hochiminhcity.gov.vn\r\n"
    "SEQUENCE:2\r\nDTSTAMP:20260302T091500Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")

GOOGLE_REPLY = (
    "BEGIN:VCALENDAR\r\nPRODID:-//Google Inc//Google Calendar 70.9054//EN\r\nVERSION:2.0\r\n"
    "CALSCALE:GREGORIAN\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\nDTSTART:20260304T020000Z\r\n"
    "DTEND:20260304T033000Z\r\nDTSTAMP:20260302T091500Z\r\n"
    "ORGANIZER;CN=Văn thư Sở TTTT:mailto:vanthu@hochiminhcity.gov.vn\r\nUID:3f2a9c@hochiminhcity.gov.vn\r\n"
    "ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=DECLINED;CN=an@hcm.gov.vn;\r\n"
    " X-RESPONSE-COMMENT=\"Bận công tác\";X-NUM-GUESTS=0:MAILTO:an@hcm.gov.vn\r\n"
    "SEQUENCE:1\r\nSTATUS:CONFIRMED\r\nSUMMARY:Họp giao ban\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")

OUTLOOK_COUNTER = (
    "BEGIN:VCALENDAR\r\nMETHOD:COUNTER\r\nPRODID:Microsoft Exchange Server 2010\r\nVERSION:2.0\r\n"
    "BEGIN:VTIMEZONE\r\nTZID:SE Asia Standard Time\r\nBEGIN:STANDARD\r\nDTSTART:16010101T000000\r\n"
    "TZOFFSETFROM:+0700\r\nTZOFFSETTO:+0700\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    "BEGIN:VEVENT\r\nATTENDEE;PARTSTAT=TENTATIVE;CN=An:mailto:an@hcm.gov.vn\r\n"
    "COMMENT:Xin dời sang 10 giờ.\r\nUID:3f2a9c@hochiminhcity.gov.vn\r\nSEQUENCE:0\r\n"
    "DTSTART;TZID=SE Asia Standard Time:20260304T100000\r\nDTEND;TZID=SE Asia Standard Time:20260304T113000\r\n"
    "DTSTAMP:20260302T091500Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


def google_reply_mail() -> bytes:
    """A reply as Gmail sends it: From calendar-notification@google.com, not the attendee."""
    msg = EmailMessage()
    msg["From"] = "Google Calendar <calendar-notification@google.com>"
    msg["To"] = "vanthu@hochiminhcity.gov.vn"
    msg["Subject"] = "Declined: Họp giao ban"
    msg.set_content("an@hcm.gov.vn has declined this invitation.")
    msg.add_alternative(GOOGLE_REPLY.encode("utf-8"), maintype="text", subtype="calendar",
                        params={"method": "REPLY", "charset": "UTF-8"})
    return msg.as_bytes()


def reply(partstat="ACCEPTED", **kw) -> ReplyInfo:
    fields = {"method": "REPLY", "uid": MEETING.uid, "sequence": 0, "attendee_email": "an@hcm.gov.vn",
                  "partstat": partstat, "proposed_start": None, "proposed_end": None, "comment": ""}
    return ReplyInfo(**fields | kw)


def swap(text: str, old: str, new: str) -> str:
    assert old in text  # so that a case cannot pass because the edit did nothing
    return text.replace(old, new)


@pytest.mark.parametrize("data, expected", [
    (OUTLOOK_REPLY, reply(sequence=2, comment="Tôi sẽ đến đúng giờ.")),
    (swap(OUTLOOK_REPLY, "SEQUENCE:2\r\n", ""), reply(comment="Tôi sẽ đến đúng giờ.")),  # missing: 0
    (swap(OUTLOOK_REPLY, "SEQUENCE:2", "SEQUENCE:two"), reply(comment="Tôi sẽ đến đúng giờ.")),  # vBroken
    (swap(OUTLOOK_REPLY, "DTSTAMP:20260302T091500Z", "DTSTAMP:yesterday"),  # vBroken, not needed
     reply(sequence=2, comment="Tôi sẽ đến đúng giờ.")),
    (swap(OUTLOOK_REPLY, "PARTSTAT=ACCEPTED", "PARTSTAT=tentative"),
     reply("TENTATIVE", sequence=2, comment="Tôi sẽ đến đúng giờ.")),
    (swap(OUTLOOK_REPLY, "\r\n", "\n"), reply(sequence=2, comment="Tôi sẽ đến đúng giờ.")),  # bare LF
    (GOOGLE_REPLY, reply("DECLINED", sequence=1, comment="Bận công tác")),
    (OUTLOOK_COUNTER, reply("TENTATIVE", method="COUNTER", comment="Xin dời sang 10 giờ.",
                            proposed_start=datetime(2026, 3, 4, 10, 0, tzinfo=VN),
                            proposed_end=datetime(2026, 3, 4, 11, 30, tzinfo=VN))),
    (swap(swap(OUTLOOK_COUNTER, "TZID=SE Asia Standard Time:20260304T100000", "TZID=Nowhere/Zone:20260304T100000"),
          "DTEND;TZID=SE Asia Standard Time:20260304T113000", "DURATION:PT45M"),  # floating: Vietnam time
     reply("TENTATIVE", method="COUNTER", comment="Xin dời sang 10 giờ.",
           proposed_start=datetime(2026, 3, 4, 10, 0, tzinfo=VN),
           proposed_end=datetime(2026, 3, 4, 10, 45, tzinfo=VN))),
], ids=["outlook", "no-sequence", "broken-sequence", "broken-dtstamp", "lower-case-partstat", "bare-lf",
        "google", "counter", "counter-floating-duration"])
def test_parse_reply(data, expected):
    got = parse_reply(data.encode("utf-8"))
    assert got == expected
    if got.proposed_start is not None:  # same instant and aware, whatever tzinfo object
        assert got.proposed_start.utcoffset() == timedelta(hours=7)


def test_reply_attendee_comes_from_calendar_not_from_header():
    msg = parse(google_reply_mail())
    (part,) = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
    got = parse_reply(part.get_payload(decode=True))
    assert msg["From"].addresses[0].addr_spec == "calendar-notification@google.com"
    assert got is not None and got.attendee_email == "an@hcm.gov.vn" and got.partstat == "DECLINED"


def test_reply_round_trip_from_our_request():
    """An attendee's client answers our calendar by changing METHOD and PARTSTAT (RFC 5546 §3.2.3)."""
    ours = calendar_part(parse(invite(replace(MEETING, sequence=4)))).get_content()
    answer = swap(swap(ours, "METHOD:REQUEST", "METHOD:REPLY"), "PARTSTAT=NEEDS-ACTION", "PARTSTAT=ACCEPTED")
    assert parse_reply(answer.encode("utf-8")) == reply(sequence=4)


@pytest.mark.parametrize("data", [
    b"",
    b"not a calendar at all",
    b"\xff\xfe\x00B\x00E",
    swap(OUTLOOK_REPLY, "METHOD:REPLY\r\n", "").encode(),  # no METHOD
    swap(OUTLOOK_REPLY, "METHOD:REPLY", "METHOD:REQUEST").encode(),
    swap(OUTLOOK_REPLY, "UID:3f2a9c@hochiminhcity.gov.vn\r\n", "").encode(),
    swap(OUTLOOK_REPLY, "ATTENDEE;PARTSTAT=ACCEPTED:mailto:An@HCM.gov.vn\r\n", "").encode(),
    swap(OUTLOOK_REPLY, "COMMENT", "ATTENDEE:mailto:b@hcm.gov.vn\r\nCOMMENT").encode(),  # two attendees
    swap(OUTLOOK_REPLY, "mailto:An@HCM.gov.vn", "urn:uuid:2f1c").encode(),
    swap(OUTLOOK_REPLY, "mailto:An@HCM.gov.vn", "mailto:An@HCM.gov.vn>\\, evil").encode(),
    swap(OUTLOOK_REPLY, "END:VEVENT", "END:VEVENT\r\nBEGIN:VEVENT\r\nUID:x\r\nEND:VEVENT").encode(),
    OUTLOOK_REPLY.split("BEGIN:VEVENT")[0].encode() + b"END:VCALENDAR\r\n",  # no VEVENT
    b"BEGIN:VEVENT\r\n" + OUTLOOK_REPLY.split("BEGIN:VEVENT\r\n")[1].split("END:VCALENDAR")[0].encode(),
    (OUTLOOK_REPLY * 2).encode(),  # two calendars
    OUTLOOK_REPLY.encode()[:200],  # cut off
], ids=lambda d: re.sub(r"[^A-Za-z0-9]+", "-", d[:24].decode("latin-1")))
def test_parse_reply_refuses(data):
    assert parse_reply(data) is None
