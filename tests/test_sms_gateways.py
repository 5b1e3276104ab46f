"""SMS gateways: the outbox file, and the real ``twilio`` client against a local stand-in."""
from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import stat
from urllib.parse import parse_qs, urlsplit

import pytest

from invites.sms import SmsOutbox, SmsReceipt
from invites.sms.twilio_gateway import (
    TwilioGateway,
    classify_twilio_error,
    parse_status_callback,
    validate_callback,
)
from mailhub.config import Secret
from tests.twilio_standin import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    TwilioStandin,
    signed_callback,
    status_callback_params,
)

CALLBACK = "https://moi-hop.hochiminhcity.gov.vn/webhooks/twilio/status"
SID_RE = re.compile(r"SM[0-9a-f]{32}")


# ---- classify_twilio_error ----------------------------------------------------

@pytest.mark.parametrize("code, http_status, permanent, words", [
    (21211, 400, True, "invalid 'To'"),
    (21610, 400, True, "opted out"),
    (21614, 400, True, "not a mobile"),
    (30005, 200, True, "does not exist"),          # status callback: unknown handset
    (30006, 200, True, "landline"),
    (20429, 429, False, "too many"),
    (30003, 200, False, "unreachable"),
    (30004, 200, False, "blocked"),
    (30007, 200, False, "filtered"),
    (30008, 200, False, "unknown error"),
    (20003, 401, False, "credentials"),
    (None, 401, False, "credentials"),
    (None, 429, False, "too many"),
    (None, 500, False, "HTTP 500"),
    (20500, 503, False, "HTTP 503"),
    (None, 0, False, "no answer"),
    (21999, 400, False, "error 21999"),              # unknown code: retry rather than fail
])
def test_classify_twilio_error(code, http_status, permanent, words):
    got_permanent, reason = classify_twilio_error(code, http_status)
    assert got_permanent is permanent
    assert words in reason and "\n" not in reason


# ---- the outbox -------------------------------------------------------------

def read_lines(path):
    return [json.loads(line) for line in (path / "sms.jsonl").read_text("utf-8").splitlines()]


async def test_outbox_appends_one_json_line_per_sms(tmp_path):
    outbox = SmsOutbox(tmp_path / "sms")
    first = await outbox.send("+84912345678", "Hop giao ban 8:00 thu Hai", reference="inv-1")
    second = await outbox.send("+84987654321", "Họp giao ban", reference="inv-2", unicode=True)
    assert first == SmsReceipt(ok=True, permanent=False, gateway_id="outbox-1", status="stored", reason="")
    assert second.gateway_id == "outbox-2" and second.outcome == "sent"
    lines = read_lines(tmp_path / "sms")
    assert [(r["to"], r["text"], r["reference"], r["unicode"]) for r in lines] == [
        ("+84912345678", "Hop giao ban 8:00 thu Hai", "inv-1", False),
        ("+84987654321", "Họp giao ban", "inv-2", True)]
    assert lines[0]["time"].endswith("+00:00")
    assert stat.S_IMODE((tmp_path / "sms").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "sms" / "sms.jsonl").stat().st_mode) == 0o600


async def test_outbox_concurrent_sends_and_restart_keep_numbers_unique(tmp_path):
    outbox = SmsOutbox(tmp_path)
    receipts = await asyncio.gather(*(outbox.send(f"+8491234{i:04d}", f"tin {i}", reference=f"r{i}")
                                      for i in range(30)))
    assert sorted(int(r.gateway_id.split("-")[1]) for r in receipts) == list(range(1, 31))
    # The line number is the id: the line outbox-<n> names is that SMS.
    lines = read_lines(tmp_path)
    for receipt in receipts:
        n = int(receipt.gateway_id.split("-")[1])
        assert lines[n - 1]["reference"] == f"r{receipts.index(receipt)}"
    again = await SmsOutbox(tmp_path).send("+84912345678", "sau khi khoi dong lai", reference="r30")
    assert again.gateway_id == "outbox-31"


async def test_outbox_ends_a_torn_line_and_tightens_mode(tmp_path):
    (tmp_path / "sms.jsonl").write_bytes(b'{"to": "+84912345678"}\n{"to": "+849')  # cut by a crash
    (tmp_path / "sms.jsonl").chmod(0o644)
    receipt = await SmsOutbox(tmp_path).send("+84912345678", "x", reference="r")
    assert receipt.gateway_id == "outbox-3"
    assert json.loads((tmp_path / "sms.jsonl").read_text().splitlines()[2])["reference"] == "r"
    assert stat.S_IMODE((tmp_path / "sms.jsonl").stat().st_mode) == 0o600


async def test_outbox_that_cannot_write_defers(tmp_path):
    (tmp_path / "sms.jsonl").mkdir()  # a folder where the file should be
    receipt = await SmsOutbox(tmp_path).send("+84912345678", "x", reference="r")
    assert (receipt.ok, receipt.permanent, receipt.outcome) == (False, False, "deferred")
    assert "cannot write to the SMS outbox" in receipt.reason


# ---- Twilio against the stand-in ---------------------------------------------

@pytest.fixture
def standin():
    server = TwilioStandin().start()
    yield server
    server.stop()


@pytest.fixture
async def make_gateway(standin):
    made = []

    def make(**kwargs):
        kwargs.setdefault("base_url", standin.base_url)
        if "messaging_service_sid" not in kwargs:
            kwargs.setdefault("from_", "UBNDTPHCM")
        gateway = TwilioGateway(kwargs.pop("account_sid", ACCOUNT_SID), kwargs.pop("auth_token", Secret(AUTH_TOKEN)),
                                **kwargs)
        made.append(gateway)
        return gateway

    yield make
    for gateway in made:
        await gateway.close()


async def test_twilio_sends_with_sender_id(standin, make_gateway):
    gateway = make_gateway(status_callback=CALLBACK)
    receipt = await gateway.send("+84912345678", "Moi hop: Giao ban quy II", reference="att-17")
    assert receipt.ok and receipt.status == "queued" and SID_RE.fullmatch(receipt.gateway_id)
    [request] = standin.requests
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.basic_auth == (ACCOUNT_SID, AUTH_TOKEN)
    assert request.form["To"] == "+84912345678" and request.form["Body"] == "Moi hop: Giao ban quy II"
    assert request.form["From"] == "UBNDTPHCM" and "MessagingServiceSid" not in request.form
    assert request.form["SmartEncoded"] == "true"
    callback = urlsplit(request.form["StatusCallback"])
    assert callback._replace(query="").geturl() == CALLBACK and parse_qs(callback.query) == {"ref": ["att-17"]}


async def test_twilio_sends_with_messaging_service(standin, make_gateway):
    gateway = make_gateway(messaging_service_sid="MG" + "ab" * 16)
    receipt = await gateway.send("+84912345678", "Mời họp giao ban", reference="att-18", unicode=True)
    assert receipt.ok and receipt.status == "accepted" and SID_RE.fullmatch(receipt.gateway_id)
    [request] = standin.requests
    assert request.form["MessagingServiceSid"] == "MG" + "ab" * 16 and "From" not in request.form
    assert request.form["Body"] == "Mời họp giao ban" and request.form["SmartEncoded"] == "false"
    assert "StatusCallback" not in request.form


async def test_twilio_ignores_the_environment(standin, make_gateway, monkeypatch):
    # With TWILIO_REGION read from os.environ the client would rewrite the host.
    monkeypatch.setenv("TWILIO_REGION", "ie1")
    monkeypatch.setenv("TWILIO_EDGE", "dublin")
    assert (await make_gateway().send("+84912345678", "x", reference="r")).ok


@pytest.mark.parametrize("failure, permanent, code, words", [
    ("invalid", True, "21211", "invalid 'To'"),
    ("unsubscribed", True, "21610", "opted out"),
    ("not_mobile", True, "21614", "not a mobile"),
    ("rate_limited", False, "20429", "too many"),
    ("server_error", False, "20500", "internal server error"),
])
async def test_twilio_errors_by_meaning(standin, make_gateway, failure, permanent, code, words):
    standin.failures["+84900000001"] = failure
    receipt = await make_gateway().send("+84900000001", "x", reference="r")
    assert (receipt.ok, receipt.permanent, receipt.code, receipt.gateway_id) == (False, permanent, code, "")
    assert words in receipt.reason
    assert receipt.outcome == ("failed" if permanent else "deferred")


async def test_twilio_non_json_5xx_is_temporary(standin, make_gateway):
    standin.raw_failures["+84900000002"] = (503, "Service Unavailable")
    receipt = await make_gateway().send("+84900000002", "x", reference="r")
    assert (receipt.ok, receipt.permanent, receipt.code) == (False, False, "")
    assert "HTTP 503" in receipt.reason


async def test_twilio_bad_credentials_defer_and_never_show_the_token(standin, make_gateway, caplog):
    # 401 means our configuration is wrong, not the recipient: keep the SMS queued
    # (temporary) while an administrator fixes the token.
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-token-" + "9" * 20
    gateway = make_gateway(auth_token=Secret(wrong))
    receipt = await gateway.send("+84912345678", "x", reference="r")
    assert (receipt.ok, receipt.permanent, receipt.code) == (False, False, "20003")
    assert "credentials" in receipt.reason
    assert standin.requests[0].basic_auth == (ACCOUNT_SID, wrong)
    for text in (repr(gateway), receipt.reason, caplog.text):
        assert wrong not in text and AUTH_TOKEN not in text


async def test_twilio_connection_refused_is_temporary(standin, make_gateway):
    gateway = make_gateway()
    standin.stop()
    receipt = await gateway.send("+84912345678", "x", reference="r")
    assert (receipt.ok, receipt.permanent, receipt.status) == (False, False, "unsent")
    assert receipt.reason.startswith("no answer from Twilio")


async def test_twilio_timeout_is_temporary(make_gateway):
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        gateway = make_gateway(base_url=f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.3)
        receipt = await gateway.send("+84912345678", "x", reference="r")
    assert (receipt.ok, receipt.permanent) == (False, False) and "no answer" in receipt.reason


@pytest.mark.parametrize("kwargs", [
    {},                                                               # no sender
    {"from_": "UBNDTPHCM", "messaging_service_sid": "MG" + "0" * 32},  # both
    {"from_": "UBNDTPHCM", "status_callback": "ftp://x/cb"},
    {"from_": "UBNDTPHCM", "base_url": "127.0.0.1:8080"},
])
def test_twilio_gateway_refuses_bad_settings(kwargs):
    with pytest.raises(ValueError, match="Twilio: "):
        TwilioGateway(ACCOUNT_SID, Secret(AUTH_TOKEN), **kwargs)


# ---- status callbacks --------------------------------------------------------

SID = "SM" + "5" * 32
URL = CALLBACK + "?ref=att-17"


def test_validate_callback_accepts_twilio_signature():
    params = status_callback_params(SID, "delivered")
    signature = signed_callback(URL, params)
    assert validate_callback(Secret(AUTH_TOKEN), URL, params, signature)
    # Twilio may sign with or without the default port.
    assert validate_callback(Secret(AUTH_TOKEN), URL.replace(".vn/", ".vn:443/"), params, signature)


@pytest.mark.parametrize("tamper", ["status", "ref", "token", "missing", "empty token"])
def test_validate_callback_refuses_tampering(tamper):
    params = status_callback_params(SID, "undelivered", 30003)
    signature, url, token = signed_callback(URL, params), URL, Secret(AUTH_TOKEN)
    if tamper == "status":
        params = {**params, "MessageStatus": "delivered"}
    elif tamper == "ref":
        url = CALLBACK + "?ref=att-18"
    elif tamper == "token":
        token = Secret("another-token")
    elif tamper == "missing":
        signature = None
    else:
        token, signature = Secret(""), signed_callback(URL, params, "")
    assert not validate_callback(token, url, params, signature)


@pytest.mark.parametrize("params, expected", [
    (status_callback_params(SID, "delivered"), (SID, "delivered", None)),
    (status_callback_params(SID, "undelivered", 30005), (SID, "undelivered", 30005)),
    ({"SmsSid": SID, "SmsStatus": "Sent", "ErrorCode": ""}, (SID, "sent", None)),
])
def test_parse_status_callback(params, expected):
    assert parse_status_callback(params) == expected


@pytest.mark.parametrize("params, field", [
    ({"MessageStatus": "sent"}, "MessageSid"),
    ({"MessageSid": "SM123", "MessageStatus": "sent"}, "MessageSid"),
    ({"MessageSid": SID, "MessageStatus": "exploded"}, "MessageStatus"),
    ({"MessageSid": SID, "MessageStatus": "failed", "ErrorCode": "30003; DROP"}, "ErrorCode"),
])
def test_parse_status_callback_refuses_malformed(params, field):
    with pytest.raises(ValueError, match=field):
        parse_status_callback(params)


def test_callback_error_codes_classify():
    _sid, _status, code = parse_status_callback(status_callback_params(SID, "undelivered", 30006))
    assert classify_twilio_error(code, 200)[0] is True
    _sid, _status, code = parse_status_callback(status_callback_params(SID, "undelivered", 30003))
    assert classify_twilio_error(code, 200)[0] is False
