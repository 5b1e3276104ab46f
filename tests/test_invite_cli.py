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
