"""The HTTP API against the OpenAPI schema it serves, checked with schemathesis.

The real server runs on loopback (:func:`tests.console_support.console_hub`, with a Twilio
gateway configured so its callback is in the schema too). ``schemathesis run`` — the CLI, in
a subprocess, exactly as docs/api.md tells an operator to run it — generates requests from
``/openapi.json`` (examples, boundary values, random and schema-breaking data, and chains of
calls that follow the schema's links) and checks every answer: never a 5xx, and only the
status codes, content types, headers and bodies the schema documents. The run is
deterministic (``--generation-deterministic``) and bounded (``-n``, one worker).

Not checked: ``positive_data_acceptance``. The schema describes each field; the meeting's
rules across fields and against the directory (an end after the start, an attendee who is an
official, a period that has begun) cannot be written in it, so schema-valid requests are
rightly refused with 422.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
import schemathesis
from sqlmodel import Session, select

from invites.rsvp import ensure_key, make_token
from mailhub import directory
from mailhub.models import MeetingAttendee
from mailhub.tokens import issue_token
from tests.console_support import console_hub
from tests.support import PASSWORD

pytestmark = pytest.mark.slow

TWILIO = {"gateway": "twilio", "twilio_account_sid": "AC" + "0" * 32, "twilio_auth_token": "not-a-real-token",
          "twilio_from": "+15005550006"}
EVERYONE = "tatca@hcm.gov.vn"  # secretary, hr and admin: every operation gets past authorization
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance", "negative_data_rejection",
          "missing_required_header", "unsupported_method", "allow_header_conformance", "ignored_auth",
          "use_after_free", "ensure_resource_availability")
CONFORMANCE = CHECKS[:5]
EXAMPLES = 25  # per operation and phase


@pytest.fixture(scope="module")
def served(tmp_path_factory, ca, provisioned_home):
    """The running hub (submission and HTTP only: nothing is delivered, no SMS leaves),
    a token of :data:`EVERYONE`, and the schema it serves."""
    hub = console_hub(tmp_path_factory.mktemp("openapi"), ca, provisioned_home, only="submission", sms=TWILIO)
    try:
        directory.add_official(hub.engine, hub.config.domains, EVERYONE, "Trần Tất Cả", "STTTT",
                               ["official", "secretary", "hr", "admin"], None, PASSWORD)
        token = issue_token(hub.engine, EVERYONE, "schemathesis").token.reveal()
        status, schema = _call(hub.port, "GET", "/openapi.json")
        assert status == 200
        yield SimpleNamespace(hub=hub, port=hub.port, token=token, schema=schema)
    finally:
        hub.stop()


def _call(port: int, method: str, path: str, body: dict | None = None, token: str | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def _schemathesis(served, workdir, *options: str, token: str | None = None, config: str = ""):
    """``schemathesis run`` against the served schema: (exit code, output, JSON report,
    answers by operation). Proxies are ignored: the only traffic is loopback."""
    config_file = workdir / "schemathesis.toml"
    config_file.write_text(config)
    auth = ["--header", f"Authorization: Bearer {token}"] if token else []
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config_file), "--no-color",
               "run", f"http://127.0.0.1:{served.port}/openapi.json", "--workers", "1",
               "--generation-deterministic", "--max-examples", str(EXAMPLES), "--request-timeout", "30",
               "--report", "json,har", "--report-json-path", str(workdir / "report.json"),
               "--report-har-path", str(workdir / "report.har"), *auth, *options]
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    report = json.loads((workdir / "report.json").read_text())
    har = json.loads((workdir / "report.har").read_text())["log"]["entries"]
    return done.returncode, done.stdout + done.stderr, report, _answers(served.schema, har)


def _answers(schema: dict, har: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """The recorded responses by documented operation, (METHOD, path template) → responses.
    Requests with a method the path does not document (the 405 probes) are left out."""
    templates = [(method.upper(), path, re.compile("^" + re.sub(r"\{[^/}]+\}", "[^/]+", path) + "$"))
                 for path, item in schema["paths"].items() for method in item]
    found = defaultdict(list)
    for entry in har:
        method, path = entry["request"]["method"], urlsplit(entry["request"]["url"]).path
        operation = next(((m, p) for m, p, pattern in templates if m == method and pattern.match(path)), None)
        if operation is not None:
            found[operation].append(entry["response"])
    return found


def _operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def _protected(schema: dict) -> set[tuple[str, str]]:
    return {(method, path) for method, path, operation in _operations(schema) if operation.get("security")}


def _failed(code: int, output: str, report: dict) -> str:
    return f"schemathesis exit code {code}: {report['failures']}\n{output[-6000:]}"


# ---- the schema itself -------------------------------------------------------------------

def test_the_schema_is_valid_openapi_and_documents_every_operation(served):
    schema = served.schema
    assert schema["openapi"].startswith("3.1")
    schemathesis.openapi.from_dict(schema).validate()  # against the OpenAPI 3.1 meta-schema
    assert schema["components"]["securitySchemes"]["ApiToken"]["scheme"] == "bearer"
    assert "HTTPValidationError" not in schema["components"]["schemas"]  # FastAPI's 422 shape is never answered
    assert set(schema["components"]["schemas"]["ErrorBody"]["required"]) == {"error", "message"}
    protected = _protected(schema)
    assert {path for _, path in protected} == {p for p in schema["paths"] if p.startswith("/api/v1/")}
    ids = set()
    for method, path, operation in _operations(schema):
        name = f"{method} {path}"
        assert operation.get("summary") and operation.get("operationId"), name
        ids.add(operation["operationId"])
        responses = operation["responses"]
        success = [code for code in responses if code.startswith("2")]
        assert success and all(responses[code].get("content") for code in success), name
        if method in ("POST", "PATCH", "PUT") and path != "/api/v1/meetings/{meeting_id}/send":
            assert operation.get("requestBody", {}).get("content"), name
        if (method, path) in protected:
            codes = ["401", "403", "500", "503"] + ["422"] * bool(operation.get("parameters")
                                                                 or operation.get("requestBody"))
            for code in codes:
                ref = responses[code]["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/ErrorBody", (name, code)
            assert "WWW-Authenticate" in responses["401"]["headers"], name
            if "{meeting_id}" in path:
                assert "404" in responses, name
    assert len(ids) == len(list(_operations(schema)))  # operation ids are unique
    created = schema["paths"]["/api/v1/meetings"]["post"]["responses"]["201"]
    assert "Location" in created["headers"]
    assert {link["operationId"] for link in created["links"].values()} <= ids


# ---- schemathesis runs ---------------------------------------------------------------------

def test_schemathesis_finds_no_server_error_and_nothing_undocumented(served, tmp_path):
    code, output, report, answers = _schemathesis(served, tmp_path, "--checks", ",".join(CHECKS),
                                                  token=served.token)
    assert code == 0 and not report["failures"] and not report["errors"], _failed(code, output, report)
    assert report["operations"]["tested"] == report["operations"]["total"] == len(list(_operations(served.schema)))
    statuses = [r["status"] for responses in answers.values() for r in responses]
    assert statuses and max(statuses) < 500
    for operation in _protected(served.schema):  # the token gets past authentication and authorization
        assert {r["status"] for r in answers[operation]} - {401, 403}, operation
    assert Counter(r["status"] for r in answers[("POST", "/api/v1/meetings")])[201] >= 1
    for method in ("GET", "POST"):  # tokens made up by schemathesis: never valid, always a plain 404
        assert {r["status"] for r in answers[(method, "/r/{token}")]} == {404}, method


def test_without_a_token_every_protected_operation_answers_401(served, tmp_path):
    code, output, report, answers = _schemathesis(served, tmp_path, "--checks", ",".join(CONFORMANCE),
                                                  "--phases", "examples,coverage,fuzzing")
    assert code == 0 and not report["failures"] and not report["errors"], _failed(code, output, report)
    for operation in _protected(served.schema):
        responses = answers[operation]
        assert responses and {r["status"] for r in responses} == {401}, operation
        assert all(any(h["name"].lower() == "www-authenticate" for h in r["headers"]) for r in responses)


def test_the_rsvp_page_of_a_real_invitation(served, tmp_path):
    """The RSVP routes with a valid link: schemathesis varies the answer (and sends bodies
    that are not one), the page answers 200 or 400, never anything undocumented."""
    meeting = {"title": "Họp kiểm thử trang trả lời", "start": "2026-12-10 08:00", "duration_minutes": 60,
               "unit": "STTTT", "attendees": ["an@hcm.gov.vn"]}
    status, created = _call(served.port, "POST", "/api/v1/meetings", meeting, served.token)
    assert status == 201, created
    assert _call(served.port, "POST", f"/api/v1/meetings/{created['id']}/send", token=served.token)[0] == 200
    with Session(served.hub.engine) as session:
        attendee = session.exec(select(MeetingAttendee).where(MeetingAttendee.meeting_id == created["id"])).one()
    link = make_token(ensure_key(served.hub.config.rsvp_key_path), attendee.id)

    code, output, report, answers = _schemathesis(served, tmp_path, "--checks", ",".join(CONFORMANCE),
                                                  "--include-path-regex", "^/r/",
                                                  config=f'[parameters]\n"path.token" = "{link}"\n')
    assert code == 0 and not report["failures"] and not report["errors"], _failed(code, output, report)
    assert {r["status"] for r in answers[("GET", "/r/{token}")]} == {200}
    assert {r["status"] for r in answers[("POST", "/r/{token}")]} == {200, 400}
    with Session(served.hub.engine) as session:
        assert session.get(MeetingAttendee, attendee.id).partstat in {"ACCEPTED", "TENTATIVE", "DECLINED"}
