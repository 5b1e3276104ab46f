"""The web console on PostgreSQL: sessions, the meetings pages with real deliveries, the
directory search, the queue, refusals and scores pages, each reading a real server's tables
(the queries are SQLAlchemy Core and must mean the same on both databases)."""
from __future__ import annotations

import html
import re
import time

import pytest

from tests.console_support import console_hub

pytestmark = pytest.mark.postgres

SECRETARY, HR, ADMIN = "thuky@hcm.gov.vn", "nhansu@hcm.gov.vn", "quantri@hcm.gov.vn"


@pytest.fixture
def hub(tmp_path, ca, provisioned_home, pg_schema_url):
    running = console_hub(tmp_path, ca, provisioned_home, database_url=pg_schema_url)
    yield running
    running.stop()


def main_text(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page[page.index("<main"):page.index("</main>")]))


def test_the_console_on_postgresql(hub):
    # Secretary: a meeting for a whole unit, sent, delivered.
    secretary = hub.browser(SECRETARY)
    form = [("title", "Họp trên PostgreSQL"), ("start", "2030-12-03T08:00"), ("end", "2030-12-03T09:00"),
            ("unit", "STTTT"), ("units", "Q1"), ("do", "save")]
    response, page = secretary.post("/console/meetings/new", form, page="/console/meetings/new")
    assert response.status == 303, page
    meeting = re.search(r"/console/meetings/(\d+)/preview", response.headers["Location"])[1]
    response, _ = secretary.post(f"/console/meetings/{meeting}/send", page=f"/console/meetings/{meeting}/preview")
    assert response.status == 303
    deadline = time.monotonic() + 30
    while "Đã nhận" not in (text := main_text(secretary.get(f"/console/meetings/{meeting}")[1])):
        assert time.monotonic() < deadline, "the invitation was not delivered"
        time.sleep(0.3)
    assert "Lê Minh Châu" in text
    assert "Họp trên PostgreSQL" in main_text(secretary.get("/console/meetings")[1])

    # A refusal for the IT pages: an official sending as someone else.
    with hub.running.connect("an@hcm.gov.vn") as client:
        assert client.mail("binh@hcm.gov.vn")[0] == 553

    admin = hub.browser(ADMIN)
    # PostgreSQL compares Vietnamese letters case-insensitively (SQLite only ASCII): "đỗ" finds "Đỗ".
    response, page = admin.get("/console/directory?q=%C4%91%E1%BB%97")
    assert response.status == 200 and "nhansu@hcm.gov.vn" in page and "an@hcm.gov.vn" not in main_text(page)
    response, page = admin.get("/console/refusals")
    assert response.status == 200 and "sender_owned" in page and "Nguyễn Văn An" in main_text(page)
    response, page = admin.get("/console/queue?state=delivered")
    assert response.status == 200 and "chau@q1.hcm.gov.vn" in main_text(page)
    assert admin.get("/console/setup")[0].status == 200

    hr = hub.browser(HR)
    response, page = hr.get("/console/scores")
    assert response.status == 200 and "Sở Thông tin và Truyền thông" in main_text(page)
    response, page = hr.get("/console/scores?view=official")
    assert response.status == 200 and "Nguyễn Văn An" in main_text(page)
    assert hr.get("/console/me")[0].status == 200
