"""Twilio status callbacks on the real HTTP server: signature required, states never
move backwards, the attendee follows."""
from __future__ import annotations

import asyncio
import urllib.error
import urllib.parse
import urllib.request

import pytest
from sqlmodel import Session

from invites.sms.reports import apply_report
from invites.webhooks import twilio_router
from mailhub.app import bind_socket
from mailhub.config import config_from_mapping
from mailhub.http import HttpService, create_app
from mailhub.metrics import MetricsDir
from mailhub.models import SmsMessage, utcnow
from tests.test_delivery_queue import sqlite_engine
from tests.twilio_standin import ACCOUNT_SID, AUTH_TOKEN, signed_callback, status_callback_params

PUBLIC = "https://mail.hcm.gov.vn"
A_SID, B_SID = "SM" + "a" * 32, "SM" + "b" * 32  # Twilio message SIDs: SM + 32 hex


@pytest.fixture
def engine(tmp_path):
    with sqlite_engine(tmp_path) as eng:
        yield eng


def sms(engine, sid: str, state: str = "sent") -> int:
    with Session(engine) as s:
        row = SmsMessage(to="+84912345678", text="x", encoding="GSM-7", segments=1, gateway="twilio",
                         gateway_id=sid, state=state)
        s.add(row)
        s.commit()
        return row.id


def state_of(engine, sms_id: int) -> tuple[str, str]:
    with Session(engine) as s:
        row = s.get(SmsMessage, sms_id)
        return row.state, row.reason


@pytest.mark.parametrize("sequence, final", [
    (["sent", "delivered"], "delivered"),
    (["delivered", "sent"], "delivered"),        # out of order: never backwards
    (["failed", "delivered"], "failed"),         # a final state stays
    (["queued", "sent", "queued"], "sent"),
])
def test_states_only_move_forward(engine, sequence, final):
    sms_id = sms(engine, "SM1", state="queued")
    for state in sequence:
        apply_report(engine, "SM1", {"queued": "queued"}.get(state, state), "", utcnow())
    assert state_of(engine, sms_id)[0] == final


async def test_signed_callbacks_only(engine, tmp_path):
    config = config_from_mapping({"sms": {"gateway": "twilio", "twilio_account_sid": ACCOUNT_SID,
                                          "twilio_auth_token": AUTH_TOKEN, "twilio_from": "UBNDTPHCM"},
                                  "invites": {"public_url": PUBLIC}}, "t.toml")
    delivered, failed = sms(engine, A_SID), sms(engine, B_SID)
    service = HttpService(create_app(engine=engine, metrics_dir=MetricsDir(tmp_path),
                                     routers=[twilio_router(engine, config)]), bind_socket("127.0.0.1", 0))
    await service.start()

    def post(sid: str, status: str, code: int | None = None, *, forge: bool = False) -> int:
        path = f"/twilio/status?ref={sid}"
        params = status_callback_params(sid, status, code)
        signature = signed_callback(PUBLIC + path, params)  # what Twilio signs: the public URL
        if forge:
            params["MessageStatus"] = "delivered"
        request = urllib.request.Request(f"http://127.0.0.1:{service.port}{path}",
                                         data=urllib.parse.urlencode(params).encode(),
                                         headers={"X-Twilio-Signature": signature})
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        assert await asyncio.to_thread(post, A_SID, "delivered") == 200
        assert await asyncio.to_thread(post, B_SID, "undelivered", 30005) == 200
        assert await asyncio.to_thread(post, B_SID, "sent", forge=True) == 403  # signed "sent", sent "delivered"
    finally:
        await service.stop()
    assert state_of(engine, delivered) == ("delivered", "")
    state, reason = state_of(engine, failed)
    assert state == "failed" and reason.endswith("(code 30005)")
