"""The SMPP gateway (smpplib in its own thread) against a local SMSC speaking real SMPP 3.4
(tests/smsc_standin.py), the SMS queue on SQLite, and `mailhub serve` end to end."""
from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import replace

import pytest
from sqlmodel import Session, select

from invites.sms import build_gateway
from invites.sms.queue import SMS_RETRY, SmsWorker
from invites.sms.reports import apply_report
from invites.sms.smpp_codec import classify_smpp_status, encode_parts, parse_receipt
from invites.sms.smpp_gateway import SmppGateway
from mailhub.config import Secret, config_from_mapping
from mailhub.errors import ConfigError
from mailhub.models import MeetingAttendee, utcnow
from tests.smsc_standin import BRANDNAME, PASSWORD, SYSTEM_ID, SmscStandin
from tests.test_delivery_queue import sqlite_engine
from tests.test_sms_queue import enqueue, row

TEXT = "Giay moi hop: Giao ban luc 08:00 03/12"  # what tests.test_sms_queue.enqueue queues


async def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.fixture
def engine(tmp_path):
    with sqlite_engine(tmp_path) as eng:
        yield eng


@pytest.fixture
def standin():
    server = SmscStandin().start()
    yield server
    server.stop()


@pytest.fixture
async def make_gateway(standin):
    made = []

    def make(**kwargs) -> SmppGateway:
        kwargs.setdefault("timeout", 2.0)
        gateway = SmppGateway("127.0.0.1", kwargs.pop("port", standin.port), SYSTEM_ID,
                              Secret(kwargs.pop("password", PASSWORD)), BRANDNAME, **kwargs)
        made.append(gateway)
        return gateway

    yield make
    for gateway in made:
        await gateway.close()


def reporting_to(engine, reports: list):
    """An on_report that applies each receipt (on the gateway's thread, as a test may)."""
    def on_report(gateway_id: str, state: str, reason: str) -> None:
        reports.append((gateway_id, state, reason))
        apply_report(engine, gateway_id, state, reason, utcnow())
    return on_report


# ---- the wire meanings -------------------------------------------------------

@pytest.mark.parametrize("status, permanent, words", [
    (0x0B, True, "invalid destination address (ESME_RINVDSTADR 0x0B)"),
    (0x0A, True, "ESME_RINVSRCADR 0x0A"),
    (0x51, True, "ESME_RINVDSTNPI 0x51"),
    (0x58, False, "ESME_RTHROTTLED 0x58"),
    (0x14, False, "ESME_RMSGQFUL 0x14"),
    (0x08, False, "ESME_RSYSERR 0x08"),
    (0x0D, False, "check sms.smpp_system_id and sms.smpp_password (ESME_RBINDFAIL 0x0D)"),
    (0x45F, False, "unknown command_status 0x45F"),  # a vendor's code: retry rather than fail
])
def test_classify_smpp_status(status, permanent, words):
    got_permanent, reason = classify_smpp_status(status)
    assert got_permanent is permanent and words in reason and "\n" not in reason


RECEIPT = "id:{id} sub:001 dlvrd:000 submit date:2611211000 done date:2611211001 stat:{stat} err:{err} text:Giay moi"


@pytest.mark.parametrize("stat, err, expected", [
    ("DELIVRD", "000", ("5A01", "delivered", "")),
    ("UNDELIV", "069", ("5A01", "failed", "stat:UNDELIV err:069")),
    ("EXPIRED", "000", ("5A01", "failed", "stat:EXPIRED err:000")),
    ("REJECTD", "011", ("5A01", "failed", "stat:REJECTD err:011")),
    ("DELETED", "000", ("5A01", "failed", "stat:DELETED err:000")),
    ("UNKNOWN", "000", ("5A01", "failed", "stat:UNKNOWN err:000")),
    ("ENROUTE", "000", ("5A01", "sent", "")),
    ("ACCEPTD", "000", ("5A01", "sent", "")),
    ("HAPPY", "000", None),  # a stat word SMPP 3.4 does not define
])
def test_parse_receipt_text(stat, err, expected):
    assert parse_receipt(RECEIPT.format(id="5A01", stat=stat, err=err).encode()) == expected


def test_parse_receipt_prefers_the_tlvs():
    text = RECEIPT.format(id="0001", stat="ENROUTE", err="000").encode()
    assert parse_receipt(text, b"5A02", 2) == ("5A02", "delivered", "")
    assert parse_receipt(text, b"5A02", 5) == ("5A02", "failed", "stat:UNDELIV err:000")
    assert parse_receipt(b"text:no fields", None, None) is None


@pytest.mark.parametrize("text, unicode, parts, coding", [
    ("a" * 160, False, 1, 0),
    ("a" * 161, False, 2, 0),
    ("a" * 306, False, 2, 0),  # 153 per part
    ("a" * 307, False, 3, 0),
    ("ơ" * 70, True, 1, 8),
    ("ơ" * 71, True, 2, 8),  # 67 per part
    ("Họp giao ban", False, 1, 8),  # no GSM-7 for ọ: UCS-2 rather than '?'
])
def test_encode_parts_sizes(text, unicode, parts, coding):
    got, got_coding, esm_class = encode_parts(text, unicode)
    assert (len(got), got_coding, esm_class) == (parts, coding, 0x40 if parts > 1 else 0)
    if parts > 1:
        assert {p[:5] for p in got} == {got[0][:5]} and [p[5] for p in got] == list(range(1, parts + 1))


def test_encode_parts_never_cuts_an_escape_or_a_surrogate_pair():
    gsm, _, _ = encode_parts("a" * 152 + "[" + "b" * 20, False)  # '[' is ESC + 0x3C, at bytes 152-153
    assert gsm[0][6:].endswith(b"a") and gsm[1][6:].startswith(b"\x1b<")
    ucs2, _, _ = encode_parts("ơ" * 66 + "😀" + "ơ" * 10, True)  # the emoji's pair at code units 66-67
    assert [len(p) - 6 for p in ucs2] == [132, 24]
    assert b"".join(p[6:] for p in ucs2).decode("utf-16-be") == "ơ" * 66 + "😀" + "ơ" * 10


# ---- the gateway against the stand-in -----------------------------------------

async def test_accepted_then_the_receipt_moves_the_sms_to_delivered(engine, standin, make_gateway):
    standin.hold_receipts = True  # the receipt after the worker wrote the gateway id
    reports: list = []
    gateway = make_gateway(on_report=reporting_to(engine, reports))
    sms_id = enqueue(engine, "+84912345678", attendee=True)
    assert await SmsWorker(engine, gateway, gateway_name="smpp").drain_once() == 1
    [sub] = standin.submits
    assert (sub.source, sub.source_ton, sub.source_npi) == (BRANDNAME, 5, 0)
    assert (sub.to, sub.dest_ton, sub.dest_npi) == ("84912345678", 1, 1)
    assert (sub.data_coding, sub.esm_class, sub.registered_delivery, sub.decoded()) == (0, 0, 1, TEXT)
    sent = row(engine, sms_id)
    assert (sent.state, sent.gateway, sent.gateway_id) == ("sent", "smpp", sub.message_id)
    standin.release_receipts()
    await wait_until(lambda: row(engine, sms_id).state == "delivered")
    assert reports == [(sub.message_id, "delivered", "")]
    await wait_until(lambda: standin.receipts_acked == 1)  # deliver_sm_resp
    with Session(engine) as s:
        assert s.exec(select(MeetingAttendee)).one().sms_state == "delivered"


@pytest.mark.parametrize("tlvs", [True, False])
async def test_failed_and_out_of_order_receipts(engine, standin, make_gateway, tlvs):
    standin.hold_receipts, standin.receipt_tlvs = True, tlvs
    standin.receipts = {"84912345678": ["UNDELIV"], "84987654321": ["DELIVRD", "ENROUTE"]}
    reports: list = []
    gateway = make_gateway(on_report=reporting_to(engine, reports))
    undelivered, delivered = enqueue(engine, "+84912345678"), enqueue(engine, "+84987654321")
    assert await SmsWorker(engine, gateway, gateway_name="smpp").drain_once() == 2
    standin.release_receipts()
    await wait_until(lambda: len(reports) == 3)
    assert (row(engine, undelivered).state, row(engine, undelivered).reason) == ("failed", "stat:UNDELIV err:069")
    assert row(engine, delivered).state == "delivered"  # the late ENROUTE changed nothing


async def test_invalid_number_fails_for_good(engine, standin, make_gateway):
    standin.statuses["84900000001"] = 0x0B
    receipt = await make_gateway().send("+84900000001", "x", reference="r")
    assert (receipt.ok, receipt.permanent, receipt.outcome, receipt.gateway_id) == (False, True, "failed", "")
    assert receipt.reason == "invalid destination address (ESME_RINVDSTADR 0x0B)"


@pytest.mark.parametrize("status, name", [(0x58, "ESME_RTHROTTLED"), (0x14, "ESME_RMSGQFUL"), (0x08, "ESME_RSYSERR")])
async def test_load_and_smsc_trouble_are_retried(engine, standin, make_gateway, status, name):
    standin.statuses["84900000002"] = status
    sms_id = enqueue(engine, "+84900000002")
    worker = SmsWorker(engine, make_gateway(), gateway_name="smpp", retry=replace(SMS_RETRY, jitter=0.0))
    assert await worker.drain_once() == 1
    deferred = row(engine, sms_id)
    assert (deferred.state, deferred.attempts) == ("queued", 1)
    assert f"({name} 0x{status:02X})" in deferred.reason and deferred.next_attempt_at > utcnow()


async def test_wrong_password_defers_and_never_shows_it(standin, make_gateway, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng!pw"
    gateway = make_gateway(password=wrong)
    receipt = await gateway.send("+84912345678", "x", reference="r")
    assert (receipt.ok, receipt.permanent, receipt.outcome) == (False, False, "deferred")
    assert "check sms.smpp_system_id and sms.smpp_password (ESME_RBINDFAIL 0x0D)" in receipt.reason
    assert [(b.password, b.ok) for b in standin.binds] == [(wrong, False)]  # it was sent, and refused
    started = time.monotonic()
    again = await gateway.send("+84912345678", "x", reference="r")  # waiting to bind again: answered at once
    assert again.reason == receipt.reason and time.monotonic() - started < 0.5 and len(standin.binds) == 1
    for text in (repr(gateway), receipt.reason, caplog.text):
        assert wrong not in text and wrong.encode().hex() not in text.lower() and PASSWORD not in text
    assert "ESME_RBINDFAIL" in caplog.text  # the administrator sees why in the log


async def test_unicode_arrives_as_ucs2(standin, make_gateway):
    text = "Mời họp giao ban quý IV, phòng họp số 2"
    assert (await make_gateway().send("+84912345678", text, reference="r", unicode=True)).ok
    [sub] = standin.submits
    assert (sub.data_coding, sub.esm_class, sub.short_message.decode("utf-16-be")) == (8, 0, text)


async def test_long_gsm_text_goes_as_two_concatenated_parts(standin, make_gateway):
    text = ("Giay moi hop: Giao ban chuyen doi so quy IV luc 08:00 ngay 03/12/2026 tai phong hop so 2, "
            "So Thong tin va Truyen thong. Xac nhan tham du: https://mail.hcm.gov.vn/r/AbCdEfGh1234")
    text = (text + " " + "x" * 200)[:200]
    receipt = await make_gateway().send("+84912345678", text, reference="r")
    first, second = standin.submits
    assert receipt.ok and receipt.gateway_id == first.message_id != second.message_id  # the first part's id
    assert (first.esm_class, second.esm_class, first.data_coding, second.registered_delivery) == (0x40, 0x40, 0, 1)
    (ref1, total1, n1), (ref2, total2, n2) = first.concat, second.concat
    assert (ref1, total1, n1, ref2, total2, n2) == (ref1, 2, 1, ref1, 2, 2)
    assert first.decoded() + second.decoded() == text and len(first.decoded()) == 153


async def test_a_dropped_link_is_bound_again(standin, make_gateway):
    gateway = make_gateway()
    assert (await gateway.send("+84912345678", "truoc", reference="r1")).ok
    standin.drop()  # the SMSC restarts
    receipt = await gateway.send("+84912345678", "sau", reference="r2")
    assert receipt.ok and [s.decoded() for s in standin.submits] == ["truoc", "sau"]
    assert [b.ok for b in standin.binds] == [True, True]


async def test_no_answer_is_retried_and_the_link_stays_usable(standin, make_gateway):
    standin.stall.add("84900000003")
    gateway = make_gateway(timeout=0.3)
    started = time.monotonic()
    receipt = await gateway.send("+84900000003", "x", reference="r")
    assert (receipt.ok, receipt.permanent) == (False, False) and time.monotonic() - started < 2
    assert receipt.reason == "no answer from the SMSC within 0.3 s"
    assert (await gateway.send("+84912345678", "x", reference="r")).ok and len(standin.binds) == 1


async def test_connection_refused_is_retried(make_gateway):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    gateway = make_gateway(port=port)
    receipt = await gateway.send("+84912345678", "x", reference="r")
    assert (receipt.ok, receipt.permanent, receipt.status) == (False, False, "unsent")
    assert receipt.reason.startswith(f"cannot connect to the SMSC at 127.0.0.1:{port}: ")


async def test_keepalive_and_unbind_on_close(standin, make_gateway):
    gateway = make_gateway(enquire_seconds=0.05)
    assert (await gateway.send("+84912345678", "x", reference="r")).ok
    await wait_until(lambda: standin.enquire_links >= 2)
    await gateway.close()
    assert standin.unbinds == 1
    after = await gateway.send("+84912345678", "x", reference="r")
    assert (after.ok, after.permanent) == (False, False)


def smpp_config(**sms) -> dict:
    return {"sms": {"gateway": "smpp", "smpp_host": "127.0.0.1", "smpp_port": 2775, "smpp_system_id": SYSTEM_ID,
                    "smpp_password": PASSWORD, "smpp_source_addr": BRANDNAME, **sms}}


def test_build_gateway_makes_the_smpp_gateway():
    gateway = build_gateway(config_from_mapping(smpp_config(), "t.toml"))
    assert isinstance(gateway, SmppGateway) and PASSWORD not in repr(gateway)
    with pytest.raises(ConfigError, match=r"t\.toml: sms\.smpp_password: 1 to 8"):
        build_gateway(config_from_mapping(smpp_config(smpp_password="nine-char"), "t.toml"))
    with pytest.raises(ConfigError, match=r"sms\.smpp_source_addr: 1 to 11"):
        build_gateway(config_from_mapping(smpp_config(smpp_source_addr="UBND-TPHCM-Q1"), "t.toml"))


# ---- mailhub serve -----------------------------------------------------------

def test_serve_delivers_an_invitation_sms_through_smpp(tmp_path, ca, provisioned_home, standin):
    """Issue, then `serve` sends the SMS to the SMSC; the SMSC's immediate receipt (ahead of
    the worker's write of the gateway id) still ends the SMS `delivered` for the secretary."""
    from invites.tracking import meeting_status
    from mailhub.db import make_engine
    from tests.support import make_config, provisioned_copy, start_hub
    from tests.test_invite_issue import issue_unit_meeting

    home = provisioned_copy(provisioned_home, tmp_path / "home")
    config = make_config(home, ca, **smpp_config(smpp_port=standin.port))
    engine = make_engine(config.database_url)
    try:
        mid, report = issue_unit_meeting(engine, config)
        assert report.sms == 1
        hub = start_hub(config, ca)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                guest = next(a for a in meeting_status(engine, mid) if a.name == "Bà Cúc")
                if guest.sms_state == "delivered":
                    break
                time.sleep(0.05)
        finally:
            hub.stop()
    finally:
        engine.dispose()
    assert (guest.sms_state, guest.sms_reason) == ("delivered", "")
    [sub] = standin.submits
    assert (sub.to, sub.source, sub.data_coding) == ("84903123456", BRANDNAME, 0)
    assert sub.decoded().startswith("Giay moi hop: Hop. Luc 08:00 03/12/2026")
    assert standin.unbinds == 1  # the hub's stop closed the bind
