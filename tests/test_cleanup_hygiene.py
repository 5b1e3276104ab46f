"""Protocol hygiene checks and the cleanup step, as plain functions."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from mailhub.cleanup import TraceInfo, cleanup, header_names, split_message
from mailhub.smtp.hygiene import has_bare_newline, has_control_chars, has_source_route, safe_helo


@pytest.mark.parametrize("data, bare", [
    (b"", False),
    (b"a\r\nb\r\n", False),
    (b"a\r\n\r\nbody\r\n", False),
    (b"a\nb\r\n", True),  # bare LF
    (b"a\rb\r\n", True),  # bare CR
    (b"x\n.\r\n", True),  # <LF>.<CRLF>
    (b"x\r\n.\n", True),  # <CRLF>.<LF>
    (b"x\n.\n", True),
    (b"x\r.\r", True),
    (b"x\r\r\n", True),  # CR CR LF: one CR is bare
    (b"x\n\r\n", True),  # LF CR LF: the first LF is bare
    (b"x\r", True),
    (b"\n", True),
])
def test_bare_newlines(data, bare):
    assert has_bare_newline(data) is bare


@pytest.mark.parametrize("arg, bad", [
    (None, False), ("", False), ("FROM:<an@hcm.gov.vn>", False),
    ("FROM:<an\r@hcm.gov.vn>", True), ("x\x00", True), ("x\x1b[31m", True),
    ("x\x7f", True), ("x\ty", True), ("Đà Nẵng", False),
])
def test_control_characters(arg, bad):
    assert has_control_chars(arg) is bad


@pytest.mark.parametrize("arg, routed", [
    ("FROM:<an@hcm.gov.vn>", False), ("TO:<an@hcm.gov.vn>", False),
    ("FROM:<@evil.com:an@hcm.gov.vn>", True), ("TO: < @a,@b:an@hcm.gov.vn>", True),
    ("from:<@x:y@z>", True), ("FROM:<>", False),
])
def test_source_routes(arg, routed):
    assert has_source_route(arg) is routed


@pytest.mark.parametrize("helo, safe", [
    ("client.test", "client.test"), ("[127.0.0.1]", "[127.0.0.1]"), (None, "unknown"),
    ("x (comment) y", "x__comment__y"), ("a;b=c", "a_b_c"), ("x" * 300, "x" * 255),
])
def test_helo_is_sanitised_for_received(helo, safe):
    assert safe_helo(helo) == safe


TRACE = TraceInfo(helo="pc-01.sotttt", client_ip="10.1.2.3", hostname="mail.hcm.gov.vn",
                  queue_id="q1", tls="TLSv1.3 TLS_AES_256_GCM_SHA384", authenticated=True)
WHEN = datetime(2026, 11, 21, 9, 30, tzinfo=timezone(timedelta(hours=7)))


def test_cleanup_adds_date_message_id_and_received():
    data = b"From: an@hcm.gov.vn\r\nSubject: x\r\n\r\nbody\r\n"
    out, message_id = cleanup(data, TRACE, message_id_domain="hcm.gov.vn", when=WHEN)
    assert message_id == "<q1@hcm.gov.vn>"
    assert out.startswith(b"Received: from pc-01.sotttt ([10.1.2.3])\r\n"
                          b"\t(using TLSv1.3 TLS_AES_256_GCM_SHA384)\r\n"
                          b"\tby mail.hcm.gov.vn (mailhub) with ESMTPSA id q1;\r\n"
                          b"\tSat, 21 Nov 2026 09:30:00 +0700\r\n")
    head, body = split_message(out)
    assert body == b"body\r\n"
    assert header_names(head) == {"received", "from", "subject", "date", "message-id"}
    assert b"Date: Sat, 21 Nov 2026 09:30:00 +0700\r\nMessage-ID: <q1@hcm.gov.vn>\r\n\r\n" in out


def test_cleanup_keeps_existing_fields_and_reports_the_message_id():
    data = (b"From: an@hcm.gov.vn\r\nmessage-id:\r\n <abc@x>\r\nDATE: Mon, 2 Nov 2026 08:00:00 +0700\r\n"
            b"\r\nbody\r\n")
    out, message_id = cleanup(data, TRACE, message_id_domain="hcm.gov.vn", when=WHEN)
    assert message_id == "<abc@x>"
    assert out.count(b"Date") + out.count(b"DATE") == 1
    assert out.endswith(data)


@pytest.mark.parametrize("data, head, body", [
    (b"A: 1\r\n\r\nb\r\n", b"A: 1\r\n", b"b\r\n"),
    (b"A: 1\r\n", b"A: 1\r\n", b""),  # header only
    (b"A: 1", b"A: 1\r\n", b""),
    (b"\r\nbody\r\n", b"", b"body\r\n"),  # no header at all
])
def test_split_message(data, head, body):
    assert split_message(data) == (head, body)


def test_continuation_lines_are_not_header_names():
    assert header_names(b"Subject: a\r\n\tFrom: not-a-field\r\nTo: b\r\n") == {"subject", "to"}
