"""The meetings JSON API on the real server (loopback, ephemeral port) with a real HTTP
client, and the ``mailhub token`` command as a subprocess."""
from __future__ import annotations

import http.client
import json
import logging
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from mailhub import directory
from mailhub.config import DomainsConfig
from mailhub.db import make_engine
from mailhub.models import Official, QueuedMessage, SmsMessage, utcnow
from mailhub.tokens import check_token, issue_token, revoke_token
from tests.support import make_config, provisioned_copy, start_hub
from tests.test_cli import hub, ready, ready_home  # noqa: F401  (fixtures of the CLI test)

SECRETARY_A = "vanthu@hcm.gov.vn"
SECRETARY_B = "thuky@q1.hcm.gov.vn"
ADMIN = "quantri@hcm.gov.vn"
MEETING = {"title": "Họp giao ban chuyển đổi số", "start": "2026-12-03 08:00", "duration_minutes": 90,
           "location": "Phòng họp số 2", "unit": "STTTT", "attendees": ["an@hcm.gov.vn", "binh@hcm.gov.vn"],
           "guests": [{"name": "Bà Cúc", "phone": "0903 123 456"}]}


@dataclass
class Api:
    port: int
    engine: object
    tokens: dict[str, str]  # email -> token

    def __call__(self, method: str, path: str, body=None, *, who: str | None = SECRETARY_A,
                 token: str | None = None, headers: dict | None = None, raw: bytes | None = None):
        """(status, headers, JSON document) of one request; ``who`` picks a test token."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        sent = dict(headers or {})
        token = token if token is not None else self.tokens.get(who) if who else None
        if token:
            sent["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        try:
            connection.request(method, path, body=data, headers=sent)
            response = connection.getresponse()
            payload = response.read()
            return response.status, response.headers, json.loads(payload) if payload else None
        finally:
            connection.close()


@pytest.fixture
def api(tmp_path, ca, provisioned_home):
    """A hub's front end and HTTP server (no delivery worker: what is queued stays
    queued), with two secretaries, an admin, and a token for each and for an@."""
    config = make_config(provisioned_copy(provisioned_home, tmp_path / "home"), ca)
    engine = make_engine(config.database_url)
    for email, name, unit, roles, phone in (
            (SECRETARY_A, "Phạm Thu Hà", "STTTT", ["official", "secretary"], None),
            (SECRETARY_B, "Đỗ Văn Kỳ", "Q1", ["official", "secretary"], None),
            (ADMIN, "Lý Quản Trị", "STTTT", ["official", "admin"], None)):
        directory.add_official(engine, config.domains, email, name, unit, roles, phone)
    with Session(engine) as session:  # an@ gets a mobile number: reachable by email and SMS
        an = session.exec(select(Official).where(Official.email == "an@hcm.gov.vn")).one()
        an.phone = "+84912345678"
        session.add(an)
        session.commit()
    tokens = {email: issue_token(engine, email, "test").token.reveal()
              for email in (SECRETARY_A, SECRETARY_B, ADMIN, "an@hcm.gov.vn")}
    running = start_hub(config, ca, only="submission")
    yield Api(running.hub.ports["http"], engine, tokens)
    running.stop()
    engine.dispose()


def _created(api: Api, who: str = SECRETARY_A, **changes) -> int:
    status, _, body = api("POST", "/api/v1/meetings", MEETING | changes, who=who)
    assert status == 201, body
    return body["id"]


# ---- authentication -----------------------------------------------------------------

def _refused_tokens(engine) -> dict[str, str]:
    revoked = issue_token(engine, SECRETARY_A, "revoked")
    revoke_token(engine, revoked.id)
    expired = issue_token(engine, SECRETARY_A, "expired", days=1, now=utcnow() - timedelta(days=2))
    directory.add_official(engine, DomainsConfig(("hcm.gov.vn",), ("hcm.gov.vn",)), "nghi@hcm.gov.vn",
                           "Người Đã Nghỉ", "STTTT", ["secretary"])
    inactive = issue_token(engine, "nghi@hcm.gov.vn")
    with Session(engine) as session:
        gone = session.exec(select(Official).where(Official.email == "nghi@hcm.gov.vn")).one()
        gone.active = False
        session.add(gone)
        session.commit()
    return {"revoked": revoked.token.reveal(), "expired": expired.token.reveal(),
            "inactive": inactive.token.reveal(), "unknown": "mh_" + "A" * 43, "malformed": "not-a-token"}


def test_requests_without_a_valid_token_get_401(api, caplog):
    caplog.set_level(logging.INFO, "mailhub.http")
    refused = _refused_tokens(api.engine)
    attempts = [("missing", {}), ("basic", {"Authorization": "Basic YW46bWF0a2hhdQ=="})]
    attempts += [(name, {"Authorization": f"Bearer {token}"}) for name, token in refused.items()]
    for name, headers in attempts:
        for method, path in (("GET", "/api/v1/meetings"), ("GET", "/api/v1/meetings/1"),
                             ("POST", "/api/v1/meetings/1/send")):
            status, got, body = api(method, path, who=None, headers=headers)
            assert status == 401, (name, path, body)
            assert got["WWW-Authenticate"].startswith('Bearer realm="mailhub"')
            assert body["error"] == "unauthorized" and body["message"]["vi"] and body["message"]["en"]
    status, _, body = api("POST", "/api/v1/meetings", MEETING, who=None,
                          headers={"Authorization": f"Bearer {refused['revoked']}"})
    assert status == 401 and body["error"] == "unauthorized"
    for reason in ("revoked", "expired", "inactive", "unknown", "malformed"):
        assert f"API token refused: {reason}" in caplog.text
    assert not any(token in caplog.text for token in refused.values())  # never logged


def test_an_official_without_the_secretary_role_gets_403(api):
    for method, path, body in (("GET", "/api/v1/meetings", None), ("POST", "/api/v1/meetings", MEETING)):
        status, _, answer = api(method, path, body, who="an@hcm.gov.vn")
        assert status == 403 and answer["error"] == "forbidden"
        assert "secretary" in answer["message"]["en"]


def test_a_token_records_its_last_use(api):
    assert api("GET", "/api/v1/meetings")[0] == 200
    verdict = check_token(api.engine, api.tokens[SECRETARY_A])
    assert verdict.owner.email == SECRETARY_A and verdict.owner.roles == {"official", "secretary"}
    from mailhub.tokens import list_tokens

    used = [t for t in list_tokens(api.engine, SECRETARY_A) if t.label == "test"]
    assert used[0].last_used_at is not None


# ---- validation -------------------------------------------------------------------------

def test_a_bad_meeting_is_422_listing_every_problem(api):
    bad = MEETING | {"end": "2026-12-03 07:00", "guests": [{"name": "Ông Bảo"}], "attendees": ["khong-co"]}
    del bad["duration_minutes"]
    status, _, body = api("POST", "/api/v1/meetings", bad)
    assert status == 422 and body["error"] == "invalid"
    assert body["errors"] == [{"field": "end", "message": "must be after start"},
                              {"field": "guests[0]", "message": "give an email or a phone number for Ông Bảo"}]
    # The fields are right; now the directory has its say, every problem at once.
    status, _, body = api("POST", "/api/v1/meetings", MEETING | {"unit": "NOPE", "units": ["NOPE"],
                                                                   "attendees": ["ai@hcm.gov.vn"]})
    assert status == 422
    assert [p["field"] for p in body["errors"]] == ["unit", "attendees[0]", "units"]
    assert body["errors"][1]["message"] == "ai@hcm.gov.vn is not an official in the directory"
    assert api("GET", "/api/v1/meetings")[2]["total"] == 0  # nothing was written


@pytest.mark.parametrize("body, fields", [
    (MEETING | {"duration_minutes": "90", "colour": "red"}, ["duration_minutes", "colour"]),
    ({"title": "Họp"}, ["start", "unit"]),
    (MEETING | {"guests": [{"name": "X\x00", "phone": 5}]}, ["guests[0].name", "guests[0].phone"]),
    ([1, 2], [""]),
])
def test_a_body_of_the_wrong_shape_is_422_in_the_same_shape(api, body, fields):
    status, _, answer = api("POST", "/api/v1/meetings", body)
    assert status == 422 and answer["error"] == "invalid"
    assert [p["field"] for p in answer["errors"]] == fields
    assert all(p["message"] for p in answer["errors"])


def test_json_that_does_not_parse_and_a_huge_body(api):
    status, _, body = api("POST", "/api/v1/meetings", raw=b'{"title": ')
    assert status == 422 and body["errors"][0]["message"].startswith("not valid JSON")
    # Refused on the announced length, before the body is read.
    status, _, body = api("POST", "/api/v1/meetings", raw=b"{}", headers={"Content-Length": str(3 * 2**20)})
    assert status == 413 and body["error"] == "too_large"
    for path in ("/api/v1/meetings/abc", "/api/v1/meetings/0", "/api/v1/meetings?limit=1000"):
        status, _, body = api("GET", path)
        assert status == 422 and body["error"] == "invalid", path


# ---- create, send, status -------------------------------------------------------------

def test_create_send_status(api):
    status, headers, created = api("POST", "/api/v1/meetings", MEETING | {"start": "2026-12-03T01:00:00Z"})
    assert status == 201, created
    assert headers["Location"] == f"/api/v1/meetings/{created['id']}"
    assert {k: created[k] for k in ("officials", "guests", "without_email", "without_phone")} == {
        "officials": 2, "guests": 1, "without_email": 1, "without_phone": 1}
    path = f"/api/v1/meetings/{created['id']}"
    status, _, meeting = api("GET", path)
    assert status == 200
    assert (meeting["status"], meeting["secretary"], meeting["uid"]) == ("draft", SECRETARY_A, created["uid"])
    assert (meeting["start"], meeting["end"]) == ("2026-12-03T08:00:00+07:00", "2026-12-03T09:30:00+07:00")
    assert {a["answer"] for a in meeting["attendees"]} == {"NEEDS-ACTION"}

    status, _, report = api("POST", path + "/send")
    assert status == 200, report
    assert report == {"id": created["id"], "emails": 2, "sms": 2, "refused": [], "no_channel": []}
    status, _, meeting = api("GET", path)
    assert meeting["status"] == "sent" and meeting["invited"] == 3
    assert [(a["name"], a["email_state"], a["sms_state"]) for a in meeting["attendees"]] == [
        ("Nguyễn Văn An", "queued", "queued"), ("Trần Thị Bình", "queued", ""), ("Bà Cúc", "", "queued")]
    assert set(meeting["attendees"][0]) == {"name", "email", "phone", "removed", "answer", "email_state",
                                            "email_reason", "sms_state", "sms_reason"}
    with Session(api.engine) as session:
        messages = session.exec(select(QueuedMessage)).all()
        assert {(m.kind, m.mail_from) for m in messages} == {("invite_email", SECRETARY_A)}
        assert len(session.exec(select(SmsMessage)).all()) == 2
    # Sending again reaches nobody twice.
    assert api("POST", path + "/send")[2] | {"id": 0} == {"id": 0, "emails": 0, "sms": 0, "refused": [],
                                                           "no_channel": []}
    status, _, listing = api("GET", "/api/v1/meetings")
    assert (listing["total"], listing["meetings"][0]["id"], listing["meetings"][0]["invited"]) == (1, created["id"], 3)


def test_refused_invitations_are_in_the_report(api):
    meeting_id = _created(api, title="Họp bàn tài liệu TUYỆT MẬT")
    status, _, report = api("POST", f"/api/v1/meetings/{meeting_id}/send")
    assert status == 200 and report["emails"] == 0 and report["sms"] == 2
    assert sorted(r["address"] for r in report["refused"]) == ["an@hcm.gov.vn", "binh@hcm.gov.vn"]
    assert all(r["reply"].startswith("550 5.7.1") for r in report["refused"])


def test_an_unexpected_failure_is_a_json_500_with_a_reference(api, monkeypatch, caplog):
    def broken(engine, meeting_id):
        raise RuntimeError("details for the log only")

    meeting_id = _created(api)
    monkeypatch.setattr("invites.api.meeting_status", broken)
    with caplog.at_level(logging.ERROR, "mailhub.http"):
        status, _, body = api("GET", f"/api/v1/meetings/{meeting_id}")
    assert status == 500 and body["error"] == "internal"
    reference = body["message"]["en"].removeprefix("Internal error, reference ").removesuffix(".")
    assert f"failed (error id {reference})" in caplog.text and "details for the log only" in caplog.text
    assert "RuntimeError" not in json.dumps(body) and "details" not in json.dumps(body)


# ---- who may see what ----------------------------------------------------------------------

def test_a_secretary_sees_only_their_own_meetings(api):
    mine = _created(api)
    theirs = _created(api, who=SECRETARY_B, unit="Q1", attendees=["chau@q1.hcm.gov.vn"])
    nowhere = 999
    for target in (theirs, nowhere):
        for method, path in (("GET", f"/api/v1/meetings/{target}"), ("POST", f"/api/v1/meetings/{target}/send")):
            status, _, body = api(method, path)
            assert status == 404 and body["error"] == "not_found", (target, path)
            assert body["message"]["en"] == f"No meeting {target}."  # the same answer: ids reveal nothing
    assert [m["id"] for m in api("GET", "/api/v1/meetings")[2]["meetings"]] == [mine]
    assert [m["id"] for m in api("GET", "/api/v1/meetings", who=SECRETARY_B)[2]["meetings"]] == [theirs]
    # The admin sees and acts on every meeting, with paging.
    status, _, listing = api("GET", "/api/v1/meetings?limit=1&offset=1", who=ADMIN)
    assert (listing["total"], [m["id"] for m in listing["meetings"]]) == (2, [mine])
    assert api("GET", f"/api/v1/meetings/{theirs}", who=ADMIN)[2]["secretary"] == SECRETARY_B
    assert api("POST", f"/api/v1/meetings/{theirs}/send", who=ADMIN)[2]["emails"] == 1


def test_only_an_admin_names_another_secretary(api):
    status, _, body = api("POST", "/api/v1/meetings", MEETING | {"secretary": SECRETARY_B})
    assert status == 403 and body["errors"] == [{"field": "secretary", "message": "must be yourself"}]
    assert _created(api, secretary="VanThu@HCM.gov.vn")  # themselves, in any case
    status, _, created = api("POST", "/api/v1/meetings", MEETING | {"secretary": SECRETARY_A}, who=ADMIN)
    assert status == 201
    assert api("GET", f"/api/v1/meetings/{created['id']}")[2]["secretary"] == SECRETARY_A
    status, _, body = api("POST", "/api/v1/meetings", MEETING | {"secretary": "an@hcm.gov.vn"}, who=ADMIN)
    assert status == 422 and body["errors"][0]["field"] == "secretary"  # not a secretary


# ---- the schema ---------------------------------------------------------------------------------

def test_the_openapi_schema_documents_the_api(api):
    status, _, schema = api("GET", "/openapi.json", who=None)
    assert status == 200
    paths = schema["paths"]
    assert set(paths["/api/v1/meetings"]) == {"get", "post"}
    assert set(paths["/api/v1/meetings/{meeting_id}"]) == {"get", "patch"}
    for action in ("send", "cancel", "remind"):
        assert set(paths[f"/api/v1/meetings/{{meeting_id}}/{action}"]) == {"post"}
    assert schema["components"]["securitySchemes"]["ApiToken"] == {
        "type": "http", "scheme": "bearer",
        "description": "An API token from `mailhub token create EMAIL`: `Authorization: Bearer mh_...`"}
    create = paths["/api/v1/meetings"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/MeetingIn")
    for code in ("401", "403", "422"):
        assert create["responses"][code]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert "404" in paths["/api/v1/meetings/{meeting_id}/send"]["post"]["responses"]


def test_update_remind_withdraw_and_cancel(api):
    mid = _created(api)
    assert api("POST", f"/api/v1/meetings/{mid}/send")[0] == 200
    status, _, body = api("PATCH", f"/api/v1/meetings/{mid}", {"start": "2026-12-04T02:00:00Z"})
    assert status == 200, body
    assert (body["sequence"], body["changed"], body["answers_reset"]) == (1, ["start", "end"], True)
    assert (body["emails"], body["sms"]) == (2, 2)  # an@ and binh@ by email; an@ and Bà Cúc by SMS
    status, _, shown = api("GET", f"/api/v1/meetings/{mid}")
    assert shown["start"] == "2026-12-04T09:00:00+07:00" and shown["sequence"] == 1
    status, _, body = api("PATCH", f"/api/v1/meetings/{mid}", {"add_attendees": ["nobody@hcm.gov.vn"]})
    assert status == 422 and body["errors"] == [
        {"field": "add_attendees[0]", "message": "nobody@hcm.gov.vn is not an official in the directory"}]
    status, _, body = api("PATCH", f"/api/v1/meetings/{mid}", {"start": "tomorrow"})
    assert status == 422 and body["errors"][0]["field"] == "start"
    assert api("PATCH", f"/api/v1/meetings/{mid}", {"title": "X"}, who=SECRETARY_B)[0] == 404
    status, _, body = api("POST", f"/api/v1/meetings/{mid}/remind", {"to": "all"})
    assert (status, body) == (202, {"id": mid, "to": "all"})
    status, _, body = api("POST", f"/api/v1/meetings/{mid}/cancel", {"attendees": ["binh@hcm.gov.vn"]})
    assert (status, body["emails"], body["sms"]) == (200, 1, 0)
    status, _, body = api("POST", f"/api/v1/meetings/{mid}/cancel")
    assert (status, body["emails"]) == (200, 1)  # an@ only: binh@ was withdrawn already
    status, _, shown = api("GET", f"/api/v1/meetings/{mid}")
    assert (shown["status"], shown["sequence"]) == ("cancelled", 2)
    for method, path, body in (("PATCH", "", {"title": "X"}), ("POST", "/cancel", None),
                               ("POST", "/remind", None), ("POST", "/send", None)):
        status, _, answer = api(method, f"/api/v1/meetings/{mid}{path}", body)
        assert status == 409 and answer["message"]["en"].startswith("The meeting is cancelled"), path


# ---- mailhub token ---------------------------------------------------------------------------------

def test_token_cli(ready):  # noqa: F811
    result = ready("user", "add", SECRETARY_A, "--name", "Phạm Thu Hà", "--unit", "STTTT", "--role", "secretary",
                   stdin="mat-khau-rat-dai-2026\n")
    assert result.returncode == 0, result.stderr
    created = ready("token", "create", "VanThu@hcm.gov.vn", "--label", "lịch họp [Văn phòng]", "--days", "30")
    assert created.returncode == 0, created.stderr
    first, token = created.stdout.strip().splitlines()
    assert first.startswith(f"token 1 for {SECRETARY_A}, expires ") and token.startswith("mh_")
    assert "shown only once" in created.stderr
    listing = ready("token", "list")
    document = json.loads(ready("token", "list", "--json").stdout)
    assert token not in listing.stdout + listing.stderr and token[3:] not in json.dumps(document)
    assert "lịch họp [Văn phòng]" in listing.stdout
    assert [(t["id"], t["official"], t["state"]) for t in document["tokens"]] == [(1, SECRETARY_A, "active")]
    engine = ready.engine()
    try:
        assert check_token(engine, token).owner.email == SECRETARY_A
        revoked = ready("token", "revoke", "1")
        assert (revoked.returncode, revoked.stdout.strip()) == (0, "token 1 revoked")
        assert ready("token", "revoke", "1").stdout.strip() == "token 1 revoked (already)"
        assert check_token(engine, token).reason == "revoked"
    finally:
        engine.dispose()
    assert json.loads(ready("token", "list", "--json").stdout)["tokens"][0]["state"] == "revoked"
    forever = ready("token", "create", SECRETARY_A, "--days", "0")
    assert "never expires" in forever.stdout
    for args, error in ((["create", "ai@hcm.gov.vn"], "error: ai@hcm.gov.vn: no such official"),
                        (["create", SECRETARY_A, "--days", "-1"], "error: --days: expected 1 to 3650"),
                        (["revoke", "9"], "error: no API token 9")):
        failed = ready("token", *args)
        assert failed.returncode == 2 and failed.stderr.startswith(error) and "Traceback" not in failed.stderr
