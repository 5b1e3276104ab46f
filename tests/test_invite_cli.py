"""``mailhub invite create / send / status`` as a secretary's script runs them."""
from __future__ import annotations

import json

from tests.test_cli import hub, ready, ready_home  # noqa: F401  (fixtures)

MEETING = '''
title = "Họp giao ban chuyển đổi số"
start = "2026-12-03 08:00"
duration_minutes = 90
location = "Phòng họp số 2"
unit = "STTTT"
secretary = "vanthu@hcm.gov.vn"
attendees = ["an@hcm.gov.vn"]

[[guests]]
name = "Bà Cúc"
phone = "0903 123 456"
'''


def test_create_send_status(ready):
    for args, stdin in ((["user", "add", "vanthu@hcm.gov.vn", "--name", "Phạm Thu Hà", "--unit", "STTTT",
                          "--role", "official", "--role", "secretary"], "mat-khau-rat-dai-2026\n"),
                        (["user", "add", "an@hcm.gov.vn", "--name", "Nguyễn Văn An", "--unit", "STTTT",
                          "--phone", "0912345678"], "mat-khau-rat-dai-2026\n")):
        result = ready(*args, stdin=stdin)
        assert result.returncode == 0, result.stderr
    (ready.tmp / "hop.toml").write_text(MEETING, encoding="utf-8")
    created = ready("invite", "create", "hop.toml")
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("meeting 1 created: 1 official(s), 1 guest(s); 1 without email")
    sent = ready("invite", "send", "1")
    assert sent.returncode == 0, sent.stderr
    assert "meeting 1: 1 email(s) and 2 SMS queued" in sent.stdout
    status = json.loads(ready("invite", "status", "1", "--json").stdout)
    assert status["status"] == "sent"
    assert [(a["name"], a["email_state"], a["sms_state"]) for a in status["attendees"]] == [
        ("Nguyễn Văn An", "queued", "queued"), ("Bà Cúc", "-", "queued")]
    table = ready("invite", "status", "1").stdout
    assert "Họp giao ban chuyển đổi số (sent, sequence 0)" in table and "Bà Cúc" in table


def test_a_bad_meeting_file_is_one_line_per_problem(ready):
    (ready.tmp / "hop.toml").write_text(MEETING.replace('duration_minutes = 90', 'end = "2026-12-03 07:00"'),
                                        encoding="utf-8")
    result = ready("invite", "create", "hop.toml")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    # The file is checked before the directory: only its own problem is reported.
    assert lines == ["error: hop.toml: end: must be after start"]
    assert ready("invite", "status", "7").stderr.strip() == "error: no meeting 7"


def test_create_by_flags_update_cancel_and_remind(ready):
    for args in (["user", "add", "vanthu@hcm.gov.vn", "--name", "Phạm Thu Hà", "--unit", "STTTT", "--role",
                  "official", "--role", "secretary"],
                 ["user", "add", "an@hcm.gov.vn", "--name", "Nguyễn Văn An", "--unit", "STTTT", "--phone",
                  "0912345678"],
                 ["user", "add", "binh@hcm.gov.vn", "--name", "Trần Bình", "--unit", "STTTT"]):
        assert ready(*args, stdin="mat-khau-rat-dai-2026\n").returncode == 0
    created = ready("invite", "create", "--title", "Họp khẩn", "--start", "03/12/2026 14:00", "--duration", "60",
                    "--unit", "STTTT", "--secretary", "vanthu@hcm.gov.vn", "--attendee", "an@hcm.gov.vn")
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("meeting 1 created: 1 official(s), 0 guest(s)")
    missing = ready("invite", "create", "--title", "Họp", "--unit", "STTTT", "--secretary", "vanthu@hcm.gov.vn")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        "error: command line: start: required", "error: command line: end: required (or duration_minutes)",
        "error: command line: attendees: nobody is invited (give attendees, units or guests)"]
    assert ready("invite", "send", "1").returncode == 0
    moved = ready("invite", "update", "1", "--start", "2026-12-04 14:00", "--add-attendee", "binh@hcm.gov.vn")
    assert moved.returncode == 0, moved.stderr
    assert "changed start, end; 1 person(s) added; sequence 1" in moved.stdout
    assert "every answer is reset" in moved.stdout
    assert "2 email(s) and 1 SMS queued" in moved.stdout  # the update to An (email, SMS), the invitation to Bình
    status = json.loads(ready("invite", "status", "1", "--json").stdout)
    assert status["sequence"] == 1 and [a["name"] for a in status["attendees"]] == ["Nguyễn Văn An", "Trần Bình"]
    remind = ready("invite", "remind", "1")
    assert remind.returncode == 0 and "those who have not answered" in remind.stdout
    withdrawn = ready("invite", "cancel", "1", "--attendee", "binh@hcm.gov.vn")
    assert withdrawn.returncode == 0 and "1 invitation(s) withdrawn" in withdrawn.stdout
    cancelled = ready("invite", "cancel", "1")
    assert cancelled.returncode == 0 and "meeting 1 cancelled" in cancelled.stdout
    again = ready("invite", "update", "1", "--title", "Họp lại")
    assert again.returncode == 2 and again.stderr.strip() == "error: meeting 1 is cancelled: it cannot change any more"
    status = json.loads(ready("invite", "status", "1", "--json").stdout)
    assert (status["status"], status["sequence"]) == ("cancelled", 2)
