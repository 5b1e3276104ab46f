"""Delivery status notifications (RFC 3464 / RFC 6522): status codes, the templates'
environment, and build_notice parsed back with the stdlib email package."""
from __future__ import annotations

import email
import email.policy
import email.utils
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage

import jinja2
import pytest

from mailhub.delivery.dsn import (DISPLAY_NAME, HEADER_CAP, NoticeRequest, RecipientNotice, build_notice,
                                  status_code)
from mailhub.templating import environment, vn_time

UTC = timezone.utc
ARRIVAL = datetime(2026, 3, 4, 2, 5, tzinfo=UTC)  # 09:05 in Vietnam
NOW = datetime(2026, 3, 4, 3, 0, tzinfo=UTC)
GIVE_UP = datetime(2026, 3, 9, 2, 5, tzinfo=UTC)
ORIGINAL = (b"Received: from client by relay.hcm.gov.vn\r\n"
            b"From: Nguyen Van A <a@hcm.gov.vn>\r\n"
            b"Subject: =?utf-8?q?H=E1=BB=8Dp_giao_ban_th=C3=A1ng_3?=\r\n"
            b"Message-ID: <orig-1@hcm.gov.vn>\r\n"
            b"\r\n"
            b"SECRET-BODY-TEXT line 1\r\nSECRET-BODY-TEXT line 2\r\n")
NO_USER = RecipientNotice("x@example.org", "failed", "550 5.1.1 <x@example.org>: no such user",
                          "mx.example.org", datetime(2026, 3, 4, 2, 59, tzinfo=UTC))
REFUSED = RecipientNotice("y@example.net", "failed", "connection refused by mx.example.net[192.0.2.7]:25")
GREYLISTED = RecipientNotice("z@example.com", "delayed", "451 4.7.1 greylisted, try again later",
                             "mx.example.com", datetime(2026, 3, 4, 2, 40, tzinfo=UTC))


def notice_request(*recipients: RecipientNotice, **changes) -> NoticeRequest:
    req = NoticeRequest(reporting_mta="relay.hcm.gov.vn", from_address="MAILER-DAEMON@hochiminhcity.gov.vn",
                        to_address="a@hcm.gov.vn", queue_id="Q7F3A", arrival=ARRIVAL, original=ORIGINAL,
                        recipients=recipients or (NO_USER, REFUSED))
    return replace(req, **changes)


def build(req: NoticeRequest, message_id: str = "<dsn-1@relay.hcm.gov.vn>") -> bytes:
    return build_notice(req, now=NOW, message_id=message_id)


def parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def status_blocks(msg: EmailMessage) -> list[dict[str, str]]:
    """The message/delivery-status part as one dict per block (per-message first)."""
    part = msg.get_payload()[1]
    assert part.get_content_type() == "message/delivery-status"
    return [{name: str(value) for name, value in block.items()} for block in part.get_payload()]


def human_text(msg: EmailMessage) -> str:
    return msg.get_payload()[0].get_content()


# --- status_code ---------------------------------------------------------------------------

@pytest.mark.parametrize("reply, permanent, expected", [
    ("550 5.1.1 <x@example.org>: no such user", True, "5.1.1"),
    ("550 no such user", True, "5.0.0"),  # no enhanced code: the basic code's class
    ("451 4.7.1 greylisted", False, "4.7.1"),
    ("550 4.1.1 mismatched classes", True, "5.0.0"),  # RFC 2034 §4: class must match the code
    ("450 5.1.1 mismatched classes", True, "5.0.0"),
    ("connection refused by mx.example.org[1.2.3.4]:25", False, "4.0.0"),
    ("connection refused by mx.example.org[1.2.3.4]:25", True, "5.0.0"),
    ("550 5.999.1x garbage", True, "5.0.0"),
    ("550 5.1234.1 subject too long", True, "5.0.0"),
    ("550 5.1 too short", True, "5.0.0"),
    ("550 5.1.10 three-digit detail", True, "5.1.10"),
    ("550-5.1.1 first line of a multi-line reply", True, "5.1.1"),
    ("  552 5.3.4", True, "5.3.4"),  # ends right after the enhanced code
    ("5501 5.1.1 not a reply code", True, "5.0.0"),
    ("554 5.4.7 delivery time expired: no success in 5 days; last answer: 451 4.4.1 x", True, "5.4.7"),
    ("451 4.4.1 timed out", True, "5.0.0"),  # a temporary reply that ended in a bounce
    ("550 5.1.1 user unknown", False, "4.0.0"),  # disagrees with "delayed"
    ("250 2.0.0 ok", True, "5.0.0"),
    ("", False, "4.0.0"),
])
def test_status_code(reply, permanent, expected):
    assert status_code(reply, permanent) == expected


# --- templating ----------------------------------------------------------------------------

@pytest.mark.parametrize("moment, expected", [
    (datetime(2026, 3, 4, 2, 5, tzinfo=UTC), "04/03/2026 09:05 (GMT+7)"),
    (datetime(2025, 12, 31, 17, 0, tzinfo=UTC), "01/01/2026 00:00 (GMT+7)"),  # day and year roll over
    (datetime(2026, 7, 1, 23, 59, tzinfo=timezone(timedelta(hours=-5))), "02/07/2026 11:59 (GMT+7)"),
])
def test_vn_time(moment, expected):
    assert vn_time(moment) == expected


def test_vn_time_agrees_with_the_tz_database():
    zoneinfo = pytest.importorskip("zoneinfo")
    try:
        hcm = zoneinfo.ZoneInfo("Asia/Ho_Chi_Minh")
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no tz database")
    for day in range(0, 3650, 37):
        moment = datetime(2020, 1, 1, 13, 7, tzinfo=UTC) + timedelta(days=day, hours=day % 24)
        assert vn_time(moment) == moment.astimezone(hcm).strftime("%d/%m/%Y %H:%M (GMT+7)")


def test_vn_time_refuses_a_naive_datetime():
    with pytest.raises(ValueError):
        vn_time(datetime(2026, 3, 4, 9, 5))


def test_environment_is_shared_strict_and_escapes_only_html():
    env = environment()
    assert env is environment()
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ missing }}").render()
    assert env.autoescape("invite.html.j2") and env.autoescape("page.html")
    assert not env.autoescape("dsn/failed.txt.j2")
    assert env.get_template("dsn/failed.txt.j2").render(
        reporting_mta="r", queue_id="q", arrival=ARRIVAL, subject="",
        recipients=[dict(address="a<b>@x", reply="r", remote_mta="", last_attempt=None)],
    ).count("a<b>@x") == 2  # not escaped in text, once per language


# --- build_notice: structure ----------------------------------------------------------------

def test_is_a_multipart_report_with_three_parts_in_order():
    msg = parse(build(notice_request()))
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert [p.get_content_type() for p in msg.get_payload()] == [
        "text/plain", "message/delivery-status", "text/rfc822-headers"]
    assert msg.get_payload()[0].get_content_charset() == "utf-8"
    assert not msg.defects and not any(p.defects for p in msg.get_payload())


def test_top_level_headers():
    msg = parse(build(notice_request()))
    assert msg["From"].addresses[0].display_name == DISPLAY_NAME
    assert msg["From"].addresses[0].addr_spec == "MAILER-DAEMON@hochiminhcity.gov.vn"
    assert msg["To"].addresses[0].addr_spec == "a@hcm.gov.vn"
    assert msg["Date"].datetime == NOW
    assert msg["Message-ID"] == "<dsn-1@relay.hcm.gov.vn>"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Auto-Submitted"] == "auto-replied"


@pytest.mark.parametrize("given", ["<dsn-1@relay.hcm.gov.vn>", "dsn-1@relay.hcm.gov.vn"])
def test_message_id_with_or_without_angle_brackets(given):
    assert parse(build(notice_request(), given))["Message-ID"] == "<dsn-1@relay.hcm.gov.vn>"


def test_failed_subject_and_no_will_retry_until():
    msg = parse(build(notice_request(will_retry_until=GIVE_UP)))  # ignored for "failed"
    assert msg["Subject"] == "Thư không gửi được / Undelivered Mail Returned to Sender"
    blocks = status_blocks(msg)
    assert [b["Action"] for b in blocks[1:]] == ["failed", "failed"]
    assert all("Will-Retry-Until" not in b for b in blocks)
    assert "09/03/2026" not in human_text(msg)


def test_delayed_subject_will_retry_until_and_text():
    msg = parse(build(notice_request(GREYLISTED, will_retry_until=GIVE_UP)))
    assert msg["Subject"] == "Thư chưa gửi được, hệ thống đang thử lại / Delayed Mail (still being retried)"
    [block] = status_blocks(msg)[1:]
    assert block["Action"] == "delayed"
    assert block["Status"] == "4.7.1"
    assert email.utils.parsedate_to_datetime(block["Will-Retry-Until"]) == GIVE_UP
    text = human_text(msg)
    assert "09/03/2026 09:05 (GMT+7)" in text  # GIVE_UP in Vietnam time
    assert "không cần gửi lại thư" in text and "You need NOT do anything" in text


def test_delayed_without_a_give_up_time():
    msg = parse(build(notice_request(GREYLISTED)))
    assert "Will-Retry-Until" not in status_blocks(msg)[1]
    assert "không cần gửi lại thư" in human_text(msg)


# --- build_notice: the delivery-status part -------------------------------------------------

def test_delivery_status_fields():
    per_message, no_user, refused = status_blocks(parse(build(notice_request())))
    assert per_message == {"Reporting-MTA": "dns; relay.hcm.gov.vn",
                           "Arrival-Date": "Wed, 04 Mar 2026 02:05:00 +0000",
                           "X-Mailhub-Queue-ID": "Q7F3A"}
    assert no_user == {"Final-Recipient": "rfc822; x@example.org", "Action": "failed", "Status": "5.1.1",
                       "Remote-MTA": "dns; mx.example.org",
                       "Diagnostic-Code": "smtp; 550 5.1.1 <x@example.org>: no such user",
                       "Last-Attempt-Date": "Wed, 04 Mar 2026 02:59:00 +0000"}
    assert refused == {"Final-Recipient": "rfc822; y@example.net", "Action": "failed", "Status": "5.0.0",
                       "Diagnostic-Code": "X-mailhub; connection refused by mx.example.net[192.0.2.7]:25"}


@pytest.mark.parametrize("reply, remote, diagnostic, remote_field", [
    ("550 5.7.1 relaying denied", "mx.example.org", "smtp; 550 5.7.1 relaying denied", "dns; mx.example.org"),
    ("554 5.4.7 delivery time expired", "", "smtp; 554 5.4.7 delivery time expired", None),
    ("timed out talking to mx.example.org", "", "X-mailhub; timed out talking to mx.example.org", None),
    ("TLS handshake failed", "mx.example.org", "X-mailhub; TLS handshake failed", "dns; mx.example.org"),
    ("550 5.1.1 Người nhận không tồn tại", "mx.example.org",
     "smtp; 550 5.1.1 Ng??i nh?n kh?ng t?n t?i", "dns; mx.example.org"),  # ASCII only in this part
])
def test_diagnostic_type_and_remote_mta(reply, remote, diagnostic, remote_field):
    rcpt = RecipientNotice("x@example.org", "failed", reply, remote)
    block = status_blocks(parse(build(notice_request(rcpt))))[1]
    assert block["Diagnostic-Code"] == diagnostic
    assert block.get("Remote-MTA") == remote_field


def test_long_diagnostic_is_folded_and_unfolds_to_the_reply():
    reply = "550 5.7.1 " + " ".join(f"word{i}" for i in range(250))
    raw = build(notice_request(RecipientNotice("x@example.org", "failed", reply, "mx.example.org")))
    assert status_blocks(parse(raw))[1]["Diagnostic-Code"] == "smtp; " + reply
    status_part = raw.split(b"message/delivery-status\r\n\r\n")[1].split(b"\r\n--=_")[0]
    assert max(len(line) for line in status_part.split(b"\r\n")) <= 78
    assert re.search(rb"\r\n Diagnostic-Code|\r\n word\d+", status_part)  # continuation lines


# --- build_notice: human part and original headers ------------------------------------------

def test_human_part_vietnamese_then_english():
    text = human_text(parse(build(notice_request())))
    assert text.index("Kính gửi anh/chị") < text.index("Dear colleague")
    assert "KHÔNG gửi được" in text and "could NOT be delivered" in text
    assert "Kiểm tra lại địa chỉ người nhận" in text and "Check the recipient's address" in text
    assert "Máy chủ mx.example.org trả lời: 550 5.1.1 <x@example.org>: no such user" in text
    assert "The server mx.example.org answered: 550 5.1.1" in text
    assert "Lý do: connection refused by mx.example.net[192.0.2.7]:25" in text
    assert "04/03/2026 09:05 (GMT+7)" in text  # arrival in Vietnam time
    assert "Họp giao ban tháng 3" in text  # the original subject, decoded
    assert "Q7F3A" in text


def test_original_headers_returned_and_body_not():
    raw = build(notice_request())
    assert b"SECRET-BODY-TEXT" not in raw
    part = parse(raw).get_payload()[2]
    assert part.get_content() == ORIGINAL.split(b"\r\n\r\n")[0].decode() + "\r\n"
    assert "Content-Transfer-Encoding" not in part and "Content-Transfer-Encoding" not in parse(raw)


def test_non_ascii_original_headers_are_8bit():
    original = "Subject: Họp giao ban\r\nFrom: a@hcm.gov.vn\r\n\r\nbody\r\n".encode()
    raw = build(notice_request(original=original))
    msg = parse(raw)
    assert msg["Content-Transfer-Encoding"] == "8bit"  # RFC 2045 §6.4
    assert msg.get_payload()[2]["Content-Transfer-Encoding"] == "8bit"
    assert "Subject: Họp giao ban".encode() + b"\r\nFrom: a@hcm.gov.vn\r\n" in raw
    assert b"body" not in raw.split(b"text/rfc822-headers")[1]


def test_original_without_separator_is_all_headers_capped():
    short = build(notice_request(original=b"Subject: only headers\r\nX-A: 1"))
    assert parse(short).get_payload()[2].get_content() == "Subject: only headers\r\nX-A: 1\r\n"
    huge = b"".join(b"X-Filler-%06d: %s\r\n" % (i, b"f" * 60) for i in range(3000))  # ~240 KiB
    part = parse(build(notice_request(original=huge))).get_payload()[2].get_content().encode()
    assert len(part) <= HEADER_CAP and part.endswith(b"\r\n")
    assert part.startswith(b"X-Filler-000000: ") and huge.startswith(part)  # cut after a whole line


# --- build_notice: what the wire sees -------------------------------------------------------

def test_header_section_ascii_crlf_only_and_short_lines():
    long_word = "y" * 2500
    rcpt = RecipientNotice("x@example.org", "failed", f"550 5.1.1 {long_word} end", "mx.example.org")
    original = b"Subject: " + b"s" * 3000 + b"\r\nX-Bare: lf\nX-Bare: cr\rX-Nul: a\0b\r\n\r\nbody\r\n"
    raw = build(notice_request(rcpt, REFUSED, original=original))
    raw.split(b"\r\n\r\n", 1)[0].decode("ascii")  # raises if a header byte is not ASCII
    assert re.search(rb"\r(?!\n)|(?<!\r)\n", raw) is None  # no bare CR or LF
    assert b"\0" not in raw
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    msg = parse(raw)
    assert status_blocks(msg)[1]["Diagnostic-Code"].replace(" ", "") == f"smtp;5505.1.1{long_word}end"
    assert long_word in human_text(msg)


def test_crlf_in_values_cannot_inject_headers_or_parts():
    evil = "victim@example.org\r\nBcc: evil@attacker.example"
    rcpt = RecipientNotice(evil, "failed", "550 5.1.1 x\r\n\r\n--boundary\r\nContent-Type: text/html\r\n\r\n<b>",
                           "mx.example.org\r\nX-Injected: 1")
    req = notice_request(rcpt, to_address=evil, reporting_mta="relay.hcm.gov.vn\r\nX-Injected: 2",
                         from_address="MAILER-DAEMON@hcm.gov.vn\r\nX-Injected: 3", queue_id="Q1\r\nX-Injected: 4")
    raw = build(req)
    msg = parse(raw)
    assert "Bcc" not in msg and "X-Injected" not in msg
    assert len(msg["To"].addresses) == 1
    assert len(msg.get_payload()) == 3
    per_message, block = status_blocks(msg)
    assert set(per_message) == {"Reporting-MTA", "Arrival-Date", "X-Mailhub-Queue-ID"}
    assert set(block) == {"Final-Recipient", "Action", "Status", "Remote-MTA", "Diagnostic-Code"}
    assert not re.search(rb"^(Bcc|X-Injected):", raw, re.MULTILINE)


def test_boundary_never_occurs_in_the_content():
    raw = build(notice_request())
    boundary = parse(raw).get_boundary()
    original = f"X-Trap: --{boundary}\r\n--{boundary}--\r\n\r\nbody\r\n".encode()
    msg = parse(build(notice_request(original=original)))
    assert msg.get_boundary() != boundary
    assert len(msg.get_payload()) == 3
    assert f"--{boundary}--" in msg.get_payload()[2].get_content()


def test_is_deterministic():
    assert build(notice_request()) == build(notice_request())


@pytest.mark.parametrize("req, message_id", [
    (notice_request(to_address=""), "<a@b>"),  # never to the null sender
    (notice_request(NO_USER, GREYLISTED), "<a@b>"),  # mixed actions
    (notice_request(replace(NO_USER, action="relayed")), "<a@b>"),
    (replace(notice_request(), recipients=()), "<a@b>"),
    (notice_request(arrival=datetime(2026, 3, 4, 9, 5)), "<a@b>"),  # naive
    (notice_request(replace(NO_USER, last_attempt=datetime(2026, 3, 4))), "<a@b>"),
    (notice_request(), "no-at-sign"),
    (notice_request(), "<a b@c>"),
    (notice_request(), "<a@b>\r\nX-Injected: 1"),
])
def test_refuses_caller_bugs(req, message_id):
    with pytest.raises(ValueError):
        build(req, message_id)
