"""The RSVP page on the real `serve` HTTP server: GET shows, only POST answers."""
from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

from sqlmodel import Session, select

from invites.rsvp import make_token
from invites.spec import spec_from_mapping
from invites.store import create_meeting
from mailhub import directory
from mailhub.db import make_engine
from mailhub.models import MeetingAttendee, MeetingReply
from tests.support import make_config, provisioned_copy, start_hub


def fetch(url: str, data: dict | None = None) -> tuple[int, str]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def invited(tmp_path, ca, provisioned_home, **fields):
    """A data folder with one meeting to which an@ is invited; (config, engine, attendee id)."""
    home = provisioned_copy(provisioned_home, tmp_path / "home")
    config = make_config(home, ca)
    engine = make_engine(config.database_url)
    directory.add_official(engine, config.domains, "vanthu@hcm.gov.vn", "Phạm Thu Hà", "STTTT",
                           ["official", "secretary"])
    create_meeting(engine, config.domains, spec_from_mapping(
        {"title": "Họp", "start": "2026-12-03 08:00", "duration_minutes": 60, "unit": "STTTT",
         "secretary": "vanthu@hcm.gov.vn", "attendees": ["an@hcm.gov.vn"], **fields}, "hop.toml"))
    with Session(engine) as s:
        return config, engine, s.exec(select(MeetingAttendee.id)).one()


def test_rsvp_page(tmp_path, ca, provisioned_home):
    config, engine, attendee_id = invited(tmp_path, ca, provisioned_home, title="Họp giao ban <quý IV>",
                                          location="Phòng họp số 2")
    hub = start_hub(config, ca)
    try:
        key = config.rsvp_key_path.read_bytes()  # made by serve if `mailhub init` did not
        base = f"http://127.0.0.1:{hub.hub.ports['http']}"
        url = f"{base}/r/{make_token(key, attendee_id)}"
        status, page = fetch(url)
        assert status == 200
        assert "Họp giao ban &lt;quý IV&gt;" in page  # escaped
        assert "08:00" in page and "Tham dự / Accept" in page and "Không tham dự / Decline" in page
        status, page = fetch(url, {"answer": "ACCEPTED"})
        assert status == 200 and "Đã ghi nhận" in page and "Your answer has been recorded: Accept" in page
        assert fetch(url, {"answer": "MAYBE"})[0] == 400
        assert fetch(f"{base}/r/{make_token(bytes(32), attendee_id)}")[0] == 404  # another key
        assert fetch(f"{base}/r/not-a-token")[0] == 404
    finally:
        hub.stop()
    with Session(engine) as s:
        attendee = s.get(MeetingAttendee, attendee_id)
        replies = s.exec(select(MeetingReply)).all()
    engine.dispose()
    assert attendee.partstat == "ACCEPTED" and attendee.answered_at is not None
    assert [(r.method, r.partstat, r.sequence) for r in replies] == [("RSVP-LINK", "ACCEPTED", 0)]


def test_looking_at_the_page_answers_nothing(tmp_path, ca, provisioned_home):
    config, engine, attendee_id = invited(tmp_path, ca, provisioned_home)
    hub = start_hub(config, ca)
    try:
        url = f"http://127.0.0.1:{hub.hub.ports['http']}/r/{make_token(config.rsvp_key_path.read_bytes(), attendee_id)}"
        for _ in range(3):  # a mail scanner, a link preview, the official
            assert fetch(url)[0] == 200
    finally:
        hub.stop()
    with Session(engine) as s:
        assert s.get(MeetingAttendee, attendee_id).partstat == "NEEDS-ACTION"
        assert s.exec(select(MeetingReply)).all() == []
    engine.dispose()
