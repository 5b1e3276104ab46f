"""`mailhub queue ...`, run as a real subprocess against a real database.

The queue rows are inserted with SQLAlchemy Core; every command is checked by its
output and by what is in the database afterwards.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.header import Header
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from mailhub import schema
from mailhub.db import make_engine
from mailhub.delivery.claims import claim
from mailhub.delivery.records import mark_results
from mailhub.delivery.transport import RecipientResult
from mailhub.models import DeliveryAttempt, QueuedMessage, QueueRecipient
from tests.test_cli import CONFIG

_msg, _rcpt, _att = QueuedMessage.__table__, QueueRecipient.__table__, DeliveryAttempt.__table__


def _id(n: int) -> str:
    """Ids as mailhub.queue makes them (32 hex digits); all share the prefix 0190a000."""
    return f"0190a00000{n:02d}" + f"{n:x}".rjust(20, "e")


M1, M2, M3, M4, M5, M6 = (_id(n) for n in range(1, 7))
SUBJECT = "Giấy mời họp"
SECRET = "NOI DUNG MAT: bien ban hop kin"


def _data(subject: str = SUBJECT) -> bytes:
    return (f"From: {Header('Nguyễn Văn An', 'utf-8').encode()} <an@hcm.gov.vn>\r\n"
            f"To: x@example.org\r\nSubject: {Header(subject, 'utf-8').encode()}\r\n"
            f"Message-ID: <m1@hcm.gov.vn>\r\nX-Trap: \x1b[31mred\r\n\r\n{SECRET}\r\n").encode()


ORG, COM = "mx.example.org[192.0.2.7]:25", "mx.example.com[192.0.2.9]:25"  # remote hosts


def seed(engine, now: datetime) -> dict[str, int]:
    """Six messages in every state; returns the recipient ids by address."""
    messages = [  # id, sender, kind, age
        (M1, "An@HCM.gov.vn", "email", timedelta(days=3)),
        (M2, "binh@hcm.gov.vn", "email", timedelta(hours=5)),
        (M3, "an@hcm.gov.vn", "email", timedelta(minutes=30)),
        (M4, "", "notice", timedelta(hours=2)),
        (M5, "chau@q1.hcm.gov.vn", "email", timedelta(hours=26)),
        (M6, "an@hcm.gov.vn", "email", timedelta(minutes=10)),
    ]
    recipients = [  # message, address, state, attempts, next attempt, lease, reply, notified
        (M1, "binh@hcm.gov.vn", "delivered", 1, None, None, "250 2.0.0 Ok", ""),
        (M1, "x@example.org", "deferred", 2, timedelta(minutes=10), None, "451 4.7.1 Thử lại sau", ""),
        (M2, "info@xn--bcher-kva.example", "queued", 0, None, None, "", ""),
        (M2, "sales@bücher.example", "queued", 0, None, None, "", ""),
        (M3, "c@example.org", "sending", 0, None, timedelta(minutes=5), "", ""),
        (M3, "d@example.net", "queued", 0, None, None, "", ""),
        (M4, "an@hcm.gov.vn", "held", 1, None, None, "452 4.2.2 mailbox full", "final"),
        (M5, "e@example.com", "bounced", 1, None, None, "550 5.1.1 no such user", ""),
        (M5, "f@example.com", "sending", 1, None, timedelta(minutes=-10), "", ""),
        (M6, "g@example.org", "delivered", 1, None, None, "250 ok", ""),
        (M6, "h@example.org", "delivered", 1, None, None, "250 ok", ""),
    ]
    with engine.begin() as conn:
        conn.execute(insert(_msg), [dict(id=i, mail_from=s, kind=k, size=len(_data()), data=_data(),
                                         created_at=now - age) for i, s, k, age in messages])
        conn.execute(insert(_rcpt), [dict(message_id=m, rcpt=a, state=s, attempts=n, last_reply=reply,
                                          next_attempt_at=now + (nxt or timedelta()), updated_at=now,
                                          lease_until=now + lease if lease else None, notified=notified)
                                     for m, a, s, n, nxt, lease, reply, notified in recipients])
        ids = dict(conn.execute(select(_rcpt.c.rcpt, _rcpt.c.id)).all())
        conn.execute(insert(_att), [
            dict(recipient_id=ids[a], message_id=m, at=now - ago, node="node-1", outcome=o, reply=r, remote=remote)
            for m, a, ago, o, r, remote in [
                (M1, "binh@hcm.gov.vn", timedelta(days=3), "delivered", "250 2.0.0 Ok", "mx.hcm.gov.vn[10.0.0.5]:25"),
                (M1, "x@example.org", timedelta(days=3), "deferred", "451 4.7.1 greylisted", ORG),
                (M1, "x@example.org", timedelta(hours=2), "deferred", "451 4.7.1 Thử lại sau", ORG),
                (M5, "e@example.com", timedelta(hours=20), "deferred", "451 try later", COM),
                (M5, "e@example.com", timedelta(minutes=30), "bounced", "550 5.1.1 no such user", COM),
                (M6, "g@example.org", timedelta(minutes=5), "delivered", "250 ok", ORG),
                (M6, "h@example.org", timedelta(hours=3), "delivered", "250 ok", ORG),
            ]])
    return ids


@dataclass
class Hub:
    """Runs `python -m mailhub --config <tmp>/mailhub.toml queue ...` on one database."""

    tmp: Path
    database_url: str

    def __call__(self, *args: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILHUB_")}
        env |= {"MAILHUB_HOME": str(self.tmp / "home"), "MAILHUB_DATABASE_URL": self.database_url}
        return subprocess.run([sys.executable, "-m", "mailhub", "--config", str(self.tmp / "mailhub.toml"),
                               "queue", *args], capture_output=True, text=True, encoding="utf-8", env=env,
                              cwd=self.tmp, timeout=120)

    def json(self, *args: str):
        result = self(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def rows(self) -> dict[str, tuple]:
        """(state, attempts, next_attempt_at, lease_until) by address."""
        engine = make_engine(self.database_url)
        try:
            with engine.connect() as conn:
                return {r.rcpt: (r.state, r.attempts, r.next_attempt_at, r.lease_until) for r in conn.execute(
                    select(_rcpt.c.rcpt, _rcpt.c.state, _rcpt.c.attempts, _rcpt.c.next_attempt_at,
                           _rcpt.c.lease_until))}
        finally:
            engine.dispose()


def _hub(tmp: Path, url: str) -> Hub:
    (tmp / "mailhub.toml").write_text(CONFIG, encoding="utf-8")
    return Hub(tmp, url)


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("schema") / "mailhub.db"
    schema.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def now() -> datetime:
    return datetime.now(timezone.utc)


@pytest.fixture
def hub(tmp_path, empty_db, now) -> Hub:
    (tmp_path / "home").mkdir()
    shutil.copy(empty_db, tmp_path / "home" / "mailhub.db")
    hub = _hub(tmp_path, f"sqlite:///{tmp_path / 'home' / 'mailhub.db'}")
    engine = make_engine(hub.database_url)
    seed(engine, now)
    engine.dispose()
    return hub


def _error_line(result: subprocess.CompletedProcess, status: int) -> str:
    assert result.returncode == status, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def _listed(document) -> list[tuple[str, list[str]]]:
    return [(m["id"], [r["address"] for r in m["recipients"]]) for m in document["messages"]]


@pytest.mark.parametrize("args, expected", [
    ([], [(M1, ["x@example.org"]), (M5, ["f@example.com"]),
          (M2, ["info@xn--bcher-kva.example", "sales@bücher.example"]),
          (M4, ["an@hcm.gov.vn"]), (M3, ["c@example.org", "d@example.net"])]),
    (["--state", "deferred"], [(M1, ["x@example.org"])]),
    (["--state", "queued,held"], [(M2, ["info@xn--bcher-kva.example", "sales@bücher.example"]),
                                  (M4, ["an@hcm.gov.vn"]), (M3, ["d@example.net"])]),
    (["--state", "delivered", "--state", "bounced"], [(M1, ["binh@hcm.gov.vn"]), (M5, ["e@example.com"]),
                                                      (M6, ["g@example.org", "h@example.org"])]),
    (["--sender", "AN@hcm.gov.vn"], [(M1, ["x@example.org"]), (M3, ["c@example.org", "d@example.net"])]),
    (["--sender", "<>"], [(M4, ["an@hcm.gov.vn"])]),
    (["--recipient-domain", "BÜCHER.example"], [(M2, ["info@xn--bcher-kva.example", "sales@bücher.example"])]),
    (["--recipient-domain", "xn--bcher-kva.example"], [(M2, ["info@xn--bcher-kva.example", "sales@bücher.example"])]),
    (["--recipient-domain", "Example.ORG"], [(M1, ["x@example.org"]), (M3, ["c@example.org"])]),
    (["--older-than", "1d"], [(M1, ["x@example.org"]), (M5, ["f@example.com"])]),
    (["--newer-than", "3h"], [(M4, ["an@hcm.gov.vn"]), (M3, ["c@example.org", "d@example.net"])]),
    (["--older-than", "4h", "--newer-than", "2d"], [(M5, ["f@example.com"]), (M2, ["info@xn--bcher-kva.example",
                                                                                    "sales@bücher.example"])]),
])
def test_list_filters(hub, args, expected):
    document = hub.json("list", *args)
    assert _listed(document) == expected
    assert document["total"] == len(expected) and document["not_shown"] == 0


def test_list_table_limit_and_json_fields(hub, now):
    table = hub("list")
    assert table.returncode == 0, table.stderr
    assert "Thử lại sau" in table.stdout and "3d 0h" in table.stdout and "in flight" in table.stdout
    assert "UTC" in table.stdout and "<> (notice)" in table.stdout and "sales@bücher.example" in table.stdout
    assert "delivered" not in table.stdout and "more not shown" not in table.stdout
    cut = hub("list", "--limit", "2")
    assert M1 in cut.stdout and M5 in cut.stdout and M2 not in cut.stdout
    assert "3 more not shown" in cut.stdout
    document = hub.json("list", "--limit", "2")
    assert (document["total"], document["not_shown"]) == (5, 3)
    first = document["messages"][0]
    assert set(first) == {"id", "kind", "sender", "size", "created_at", "age_seconds", "recipients"}
    assert first["sender"] == "An@HCM.gov.vn" and 3 * 86400 <= first["age_seconds"] < 3 * 86400 + 120
    assert first["created_at"].endswith("Z")
    assert datetime.fromisoformat(first["created_at"]) == (now - timedelta(days=3)).replace(microsecond=0)
    assert first["recipients"] == [{
        "address": "x@example.org", "state": "deferred", "attempts": 2,
        "next_attempt_at": first["recipients"][0]["next_attempt_at"], "lease_until": None,
        "last_reply": "451 4.7.1 Thử lại sau", "notified": ""}]


@pytest.mark.parametrize("args, option", [
    (["--older-than", "3x"], "--older-than"), (["--newer-than", ""], "--newer-than"),
    (["--state", "lost"], "--state"), (["--recipient-domain", "a..b"], "--recipient-domain"),
    (["--limit", "0"], "--limit"),
])
def test_list_bad_options_are_one_line(hub, args, option):
    assert option in _error_line(hub("list", *args), 2)


def test_show_decodes_headers_never_the_body(hub):
    result = hub("show", M1[:12])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert M1 in out and f"Subject: {SUBJECT}" in out and "Nguyễn Văn An <an@hcm.gov.vn>" in out
    assert SECRET not in out and "NOI DUNG" not in out
    assert "\x1b" not in out and "X-Trap: \\x1b[31mred" in out  # escaped, not obeyed
    assert "mx.example.org[192.0.2.7]:25" in out and "451 4.7.1 greylisted" in out and "node-1" in out
    document = hub.json("show", M1)
    assert document["id"] == M1 and document["sender"] == "An@HCM.gov.vn" and document["kind"] == "email"
    assert {"name": "Subject", "value": SUBJECT} in document["headers"]
    assert SECRET not in json.dumps(document, ensure_ascii=False)
    assert [(r["address"], r["state"]) for r in document["recipients"]] == [
        ("binh@hcm.gov.vn", "delivered"), ("x@example.org", "deferred")]
    assert [(a["recipient"], a["outcome"]) for a in document["attempts"]] == [
        ("binh@hcm.gov.vn", "delivered"), ("x@example.org", "deferred"), ("x@example.org", "deferred")]
    assert set(document["attempts"][0]) == {"at", "recipient", "outcome", "remote", "reply", "node"}
    assert document["headers_truncated"] is False


@pytest.mark.parametrize("given, expected", [
    ("deadbeef0000", "no such message"),
    ("0190", "at least 8 hex digits"),
    ("0190a000", "several messages start with it"),
])
def test_show_unknown_or_ambiguous_id(hub, given, expected):
    assert expected in _error_line(hub("show", given), 1)


def test_retry_makes_waiting_recipients_due(hub, now):
    before = hub.rows()
    assert before["x@example.org"][2] > now
    result = hub("retry", M1[:12])
    assert result.returncode == 0, result.stderr
    assert "1 recipient of 1 message due now" in result.stdout
    after = hub.rows()
    assert after["x@example.org"][0] == "deferred" and after["x@example.org"][2] <= datetime.now(timezone.utc)
    assert after["binh@hcm.gov.vn"] == before["binh@hcm.gov.vn"]  # delivered: untouched


def test_bulk_needs_yes(hub):
    before = hub.rows()
    preview = hub("hold", "--recipient-domain", "example.org")
    assert "add --yes to hold them" in _error_line(preview, 1)
    assert M1 in preview.stdout and "x@example.org" in preview.stdout
    assert "c@example.org" not in preview.stdout  # in flight: it would not be held
    assert hub.rows() == before
    document = json.loads(hub("retry", "--all-deferred", "--json").stdout)
    assert document["applied"] is False and document["messages"] == [M1]
    assert hub.rows() == before
    assert "not both" in _error_line(hub("delete", M1, "--sender", "an@hcm.gov.vn"), 2)
    assert "name the messages" in _error_line(hub("release"), 2)
    done = hub.json("retry", "--all-deferred", "--yes")
    assert (done["applied"], done["recipients"], done["targets"]) == (True, 1, [
        {"message_id": M1, "recipient": "x@example.org", "state": "deferred"}])
    assert hub.rows()["x@example.org"][2] <= datetime.now(timezone.utc)


def test_hold_leaves_in_flight_recipients_and_release_makes_them_due(hub, now):
    before = hub.rows()
    result = hub("hold", M3, M5)
    assert result.returncode == 0, result.stderr
    assert "held 2 recipients of 2 messages" in result.stdout
    assert "1 recipient in flight was not held; run hold again after the attempt" in result.stdout
    rows = hub.rows()
    assert rows["c@example.org"] == before["c@example.org"]  # a current lease is never overwritten
    assert rows["d@example.net"][0] == "held"
    assert rows["f@example.com"][0] == "held" and rows["f@example.com"][3] is None  # its lease had run out
    assert rows["e@example.com"] == before["e@example.com"]  # bounced: untouched
    everything = hub.json("release", "--all", "--yes")
    assert sorted(t["recipient"] for t in everything["targets"]) == ["an@hcm.gov.vn", "d@example.net", "f@example.com"]
    rows, moment = hub.rows(), datetime.now(timezone.utc)
    assert rows["d@example.net"][0] == "queued"  # never attempted
    assert rows["f@example.com"][0] == rows["an@hcm.gov.vn"][0] == "deferred"
    assert all(rows[a][2] <= moment for a in ("d@example.net", "f@example.com", "an@hcm.gov.vn"))
    assert rows["c@example.org"] == before["c@example.org"]


def test_delete_refuses_in_flight_unless_forced(hub):
    refused = hub("delete", M3)
    assert refused.returncode == 1
    assert "may get it anyway" in refused.stderr and "--force" in refused.stderr and M3 in refused.stderr
    assert "c@example.org" in hub.rows()
    deleted = hub("delete", M1, M3, "--force")
    assert deleted.returncode == 0, deleted.stderr
    assert "deleted 2 messages (4 recipients, 3 attempt records)" in deleted.stdout
    engine = make_engine(hub.database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(_msg).where(_msg.c.id.in_([M1, M3]))).scalar() == 0
            assert conn.execute(select(func.count()).select_from(_att).where(_att.c.message_id == M1)).scalar() == 0
            assert conn.execute(select(func.count()).select_from(_att)).scalar() == 4
    finally:
        engine.dispose()
    assert {"x@example.org", "c@example.org", "d@example.net", "binh@hcm.gov.vn"}.isdisjoint(hub.rows())
    assert "no such message" in _error_line(hub("delete", M1), 1)


def test_bulk_delete_by_sender(hub):
    preview = hub("delete", "--sender", "binh@hcm.gov.vn")
    assert preview.returncode == 1 and M2 in preview.stdout
    assert "sales@bücher.example" in hub.rows()
    done = hub.json("delete", "--sender", "binh@hcm.gov.vn", "--yes")
    assert (done["messages"], done["recipients"], done["attempts_deleted"]) == ([M2], 2, 0)
    assert "sales@bücher.example" not in hub.rows() and "x@example.org" in hub.rows()


def test_stats(hub):
    document = hub.json("stats")
    assert document["recipients"] == {"queued": 3, "sending": 2, "deferred": 1, "delivered": 3, "bounced": 1,
                                      "held": 1}
    assert document["messages_waiting"] == 5
    assert 3 * 86400 <= document["oldest_waiting_age_seconds"] < 3 * 86400 + 120
    assert document["deferred_by_domain"] == [{"domain": "example.org", "recipients": 1}]
    assert document["last_hour"] == {"delivered": 1, "bounced": 1}
    assert document["last_24h"] == {"delivered": 2, "bounced": 1}
    assert document["notices_pending"] == 1
    table = hub("stats")
    assert table.returncode == 0, table.stderr
    assert "example.org" in table.stdout and "Messages waiting: 5; oldest waiting: 3d 0h" in table.stdout


def test_a_worker_result_after_hold_and_forced_delete(tmp_path, empty_db):
    """The delivery worker's own claim and result functions around the commands:
    hold leaves the claimed rows, whose result is then recorded; after a forced
    delete the late result finds no row and is dropped, without an error."""
    (tmp_path / "home").mkdir()
    shutil.copy(empty_db, tmp_path / "home" / "mailhub.db")
    hub = _hub(tmp_path, f"sqlite:///{tmp_path / 'home' / 'mailhub.db'}")
    engine = make_engine(hub.database_url)
    try:
        now = datetime.now(timezone.utc)
        with engine.begin() as conn:
            conn.execute(insert(_msg), [dict(id=M1, mail_from="an@hcm.gov.vn", size=1, data=b"x", created_at=now)])
            conn.execute(insert(_rcpt), [dict(message_id=M1, rcpt="x@example.org", next_attempt_at=now,
                                              updated_at=now)])
        (job,) = claim(engine, "node-1", 10, 300, now)
        assert "1 recipient in flight was not held" in hub("hold", M1).stdout
        ok = {"x@example.org": RecipientResult(ok=True, permanent=False, reply="250 ok")}
        assert mark_results(engine, job.outcomes(ok), now) == 1
        assert hub.rows()["x@example.org"][0] == "delivered"
        with engine.begin() as conn:
            conn.execute(_rcpt.update().values(state="queued", lease_until=None))
        (job,) = claim(engine, "node-1", 10, 300, now)
        assert hub("delete", M1).returncode == 1
        assert hub("delete", M1, "--force").returncode == 0
        assert mark_results(engine, job.outcomes(ok), now) == 0
    finally:
        engine.dispose()


# ---- PostgreSQL -------------------------------------------------------------------



@pytest.mark.postgres
def test_hold_release_delete_on_postgresql(tmp_path, pg_schema_url, now):
    schema.upgrade(pg_schema_url)
    engine = make_engine(pg_schema_url)
    seed(engine, now)
    engine.dispose()
    hub = _hub(tmp_path, pg_schema_url)
    before = hub.rows()
    held = hub("hold", M3[:12], M5)
    assert held.returncode == 0, held.stderr
    assert "held 2 recipients of 2 messages" in held.stdout and "1 recipient in flight" in held.stdout
    rows = hub.rows()
    assert rows["c@example.org"] == before["c@example.org"]
    assert rows["d@example.net"][0] == rows["f@example.com"][0] == "held"
    assert hub.json("list", "--recipient-domain", "bücher.example")["messages"][0]["id"] == M2
    shown = hub.json("show", M1[:12])
    assert {"name": "Subject", "value": SUBJECT} in shown["headers"] and len(shown["attempts"]) == 3
    released = hub.json("release", "--state", "held", "--sender", "an@hcm.gov.vn", "--yes")
    assert [t["recipient"] for t in released["targets"]] == ["d@example.net"]
    assert hub.rows()["d@example.net"][0] == "queued"
    assert hub("delete", M3).returncode == 1
    deleted = hub.json("delete", M3, M1, "--force")
    assert (deleted["messages"], deleted["recipients"], deleted["attempts_deleted"]) == ([M3, M1], 4, 3)
    assert "c@example.org" not in hub.rows()
    assert hub.json("stats")["recipients"]["held"] == 2
