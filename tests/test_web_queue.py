"""The console's mail queue pages (admin) on the real server: mail submitted over SMTP to a
real aiosmtpd next hop that refuses, accepts or stalls on the test's word, so messages sit
deferred, are delivered, or are in flight when the page acts on them."""
from __future__ import annotations

import asyncio
import re
import threading
import time

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from mailhub.models import QueueRecipient
from tests.console_support import console_hub
from tests.support import RecordingHandler, free_port, message

ADMIN, OFFICIAL, SECRETARY = "quantri@hcm.gov.vn", "an@hcm.gov.vn", "thuky@hcm.gov.vn"
SECRET_BODY = "NOI DUNG THU KHONG DUOC HIEN THI"
_rcpt = QueueRecipient.__table__


class Gate(RecordingHandler):
    """A next hop whose answer the test chooses: ``refuse`` (451 at DATA: the recipient is
    deferred for minutes), ``accept``, or ``stall`` (DATA waits until ``let_go`` is set)."""

    def __init__(self) -> None:
        super().__init__()
        self.mode = "refuse"
        self.let_go = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        if self.mode == "refuse":
            return "451 4.3.2 Busy here, try later"
        while self.mode == "stall" and not self.let_go.is_set():
            await asyncio.sleep(0.05)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture(scope="module")
def gate():
    handler = Gate()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    handler.let_go.set()
    controller.stop()


@pytest.fixture(scope="module")
def hub(tmp_path_factory, ca, provisioned_home, gate):
    running = console_hub(tmp_path_factory.mktemp("queue"), ca, provisioned_home,
                          delivery={"mode": "relay", "relay_host": "127.0.0.1", "relay_port": gate[1],
                                    "relay_tls": "none", "poll_seconds": 0.2})
    yield running
    running.stop()


@pytest.fixture(scope="module")
def admin(hub):
    return hub.browser(ADMIN)


@pytest.fixture
def hop(gate):
    handler, _ = gate
    yield handler
    handler.mode = "refuse"
    handler.let_go.clear()


def submit(hub, rcpts: list[str], sender: str = OFFICIAL, subject: str = "Báo cáo tuần") -> str:
    """Mail submitted over SMTP (TLS, AUTH); its queue id from the 250 reply."""
    with hub.running.connect(login=sender) as client:
        client.mail(sender)
        for rcpt in rcpts:
            assert client.rcpt(rcpt)[0] == 250
        code, reply = client.data(message(sender=sender, to=", ".join(rcpts), subject=subject,
                                          body=f"{SECRET_BODY}\r\n"))
    assert code == 250, reply
    return re.search(rb"queued as ([0-9a-f]{32})", reply)[1].decode()


def states(hub, message_id: str) -> dict[str, str]:
    with hub.engine.connect() as conn:
        return dict(conn.execute(select(_rcpt.c.rcpt, _rcpt.c.state).where(_rcpt.c.message_id == message_id)).all())


def wait_states(hub, message_id: str, state: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = states(hub, message_id)
        if found and set(found.values()) == {state}:
            return
        time.sleep(0.1)
    raise AssertionError(f"{message_id}: {states(hub, message_id)}, expected all {state}")


def deferred(hub, rcpts: list[str], **kw) -> str:
    message_id = submit(hub, rcpts, **kw)
    wait_states(hub, message_id, "deferred")
    return message_id


def follow(browser, answer):
    response, _ = answer
    assert response.status == 303, response.status
    return browser.get(response.headers["Location"])


def test_the_admin_sees_deferred_mail_and_filters_narrow_the_list(hub, admin):
    first = deferred(hub, ["ai@example.org"])
    second = deferred(hub, ["bo@example.net", "co@example.net"], sender="binh@hcm.gov.vn")
    response, page = admin.get("/console/queue")
    assert response.status == 200
    assert first in page and second in page and f'href="/console/queue/{first}"' in page
    assert "ai@example.org" in page and "co@example.net" in page
    assert "Hoãn, sẽ thử lại" in page and "451 4.3.2 Busy here, try later" in page
    assert "Thư đang chờ gửi" in page and "Người nhận theo trạng thái" in page
    assert re.search(r"example\.net</a></td><td class=\"num\">2<", page)  # deferred by domain

    for query, shown, hidden in [("domain=EXAMPLE.net", second, first), ("sender=binh%40hcm.gov.vn", second, first),
                                 ("sender=an%40hcm.gov.vn&domain=example.org", first, second),
                                 ("newer=1h&state=deferred&state=queued", first, "state=held")]:
        response, page = admin.get(f"/console/queue?{query}")
        assert response.status == 200 and shown in page and hidden not in page, query
    response, page = admin.get("/console/queue?state=held&state=bounced")
    assert first not in page and second not in page
    response, page = admin.get("/console/queue?older=1d")
    assert first not in page and "Khớp bộ lọc: <strong>0</strong>" in page

    admin.cookies["mailhub_lang"] = "en"
    try:
        page = admin.get("/console/queue?domain=example.net")[1]
        assert "Deferred" in page and "Mail queue" in page and "Every message the filter matches" in page
    finally:
        del admin.cookies["mailhub_lang"]


def test_hold_then_release_delivers_to_the_next_hop(hub, admin, hop):
    message_id = deferred(hub, ["giu@example.org"])
    _, page = follow(admin, admin.post("/console/queue", {"action": "hold", "id": message_id}))
    assert "Đã tạm giữ" in page
    assert states(hub, message_id) == {"giu@example.org": "held"}
    page = admin.get(f"/console/queue/{message_id}")[1]
    assert "Tạm giữ" in page and "Khi được thả" in page
    assert message_id in admin.get("/console/queue?state=held")[1]

    hop.mode = "accept"
    response, _ = admin.post(f"/console/queue/{message_id}", {"action": "release"}, page=f"/console/queue/{message_id}")
    assert response.headers["Location"] == f"/console/queue/{message_id}?done=release"
    wait_states(hub, message_id, "delivered")
    assert any(rcpts == ["giu@example.org"] for _, rcpts, _ in hop.messages)
    page = admin.get(f"/console/queue/{message_id}")[1]
    assert "Đã chuyển đi" in page


def test_retry_now_delivers_a_deferred_message(hub, admin, hop):
    message_id = deferred(hub, ["thulai@example.org"])
    hop.mode = "accept"
    _, page = follow(admin, admin.post("/console/queue", {"action": "retry", "id": message_id}, page="/console/queue"))
    assert "sẽ được gửi lại ngay" in page
    wait_states(hub, message_id, "delivered")
    assert any(rcpts == ["thulai@example.org"] for _, rcpts, _ in hop.messages)


def test_an_action_on_everything_the_filter_matches(hub, admin):
    one, two = deferred(hub, ["a@bulk.example"]), deferred(hub, ["b@bulk.example", "c@keep.example"])
    other = deferred(hub, ["d@keep.example"])
    response, _ = admin.post("/console/queue", {"action": "hold", "scope": "matching", "domain": "bulk.example"},
                          page="/console/queue")
    assert response.headers["Location"] == "/console/queue?domain=bulk.example&done=hold"
    assert states(hub, one) == {"a@bulk.example": "held"}
    assert states(hub, two) == {"b@bulk.example": "held", "c@keep.example": "deferred"}  # only that domain's
    assert states(hub, other) == {"d@keep.example": "deferred"}
    _, page = follow(admin, admin.post("/console/queue", {"action": "release", "scope": "matching",
                                                          "domain": "bulk.example", "state": "held"}))
    assert "Đã thả" in page and "held" not in states(hub, one).values()
    # without a filter, "every match" is the whole queue: only when the admin says they are sure
    response, page = admin.post("/console/queue", {"action": "hold", "scope": "matching"}, page="/console/queue")
    assert response.status == 400 and "Chưa có bộ lọc nào" in page
    assert states(hub, other) == {"d@keep.example": "deferred"}
    response, _ = admin.post("/console/queue", {"action": "hold", "scope": "matching", "sure": "yes"},
                             page="/console/queue")
    assert response.status == 303 and states(hub, other) == {"d@keep.example": "held"}
    admin.post("/console/queue", {"action": "release", "scope": "matching", "sure": "yes"}, page="/console/queue")
    # nothing in a state the action applies to: said so, nothing changes
    _, page = follow(admin, admin.post("/console/queue", {"action": "release", "scope": "matching",
                                                          "domain": "bulk.example"}))
    assert "không có gì thay đổi" in page


def test_delete_asks_for_certainty_then_removes_the_message(hub, admin):
    message_id = deferred(hub, ["xoa@example.org"])
    response, page = admin.post("/console/queue", {"action": "delete", "id": message_id}, page="/console/queue")
    assert response.status == 400 and 'role="alert"' in page and "Tôi chắc chắn" in page
    assert f'value="{message_id}" checked' in page  # the choice is kept for the second try
    assert states(hub, message_id) == {"xoa@example.org": "deferred"}

    response, _ = admin.post(f"/console/queue/{message_id}", {"action": "delete"}, page=f"/console/queue/{message_id}")
    assert response.status == 400 and states(hub, message_id)
    _, page = follow(admin, admin.post(f"/console/queue/{message_id}", {"action": "delete", "sure": "yes"},
                                       page=f"/console/queue/{message_id}"))
    assert "Đã xóa thư" in page and message_id not in page
    assert states(hub, message_id) == {}
    response, page = admin.get(f"/console/queue/{message_id}")
    assert response.status == 404 and "Không có thư này trong hàng đợi" in page
    response, page = admin.post("/console/queue", {"action": "hold", "id": message_id}, page="/console/queue")
    assert response.status == 409 and "Không tìm thấy thư đã chọn" in page


def test_a_message_being_delivered_cannot_be_deleted(hub, admin, hop):
    hop.mode = "stall"
    message_id = submit(hub, ["dangdi@example.org"])
    wait_states(hub, message_id, "sending")
    page = admin.get(f"/console/queue/{message_id}")[1]
    assert "Đang gửi ngay lúc này" in page
    response, page = admin.post(f"/console/queue/{message_id}", {"action": "delete", "sure": "yes"},
                                page=f"/console/queue/{message_id}")
    assert response.status == 409 and 'role="alert"' in page and "đang được gửi ngay lúc này" in page
    response, page = admin.post("/console/queue", {"action": "delete", "id": message_id, "sure": "yes"},
                                page="/console/queue")
    assert response.status == 409 and "Chưa có thư nào bị xóa" in page
    _, page = follow(admin, admin.post("/console/queue", {"action": "hold", "id": message_id}))
    assert "chưa giữ được" in page
    assert states(hub, message_id) == {"dangdi@example.org": "sending"}
    hop.let_go.set()
    wait_states(hub, message_id, "delivered")


def test_the_detail_page_shows_recipients_headers_and_attempts_never_the_body(hub, admin):
    message_id = deferred(hub, ["mot@example.org", "hai@example.org"], subject="Giấy mời họp giao ban")
    response, page = admin.get(f"/console/queue/{message_id}")
    assert response.status == 200
    assert "mot@example.org" in page and "hai@example.org" in page and "an@hcm.gov.vn" in page
    assert "Giấy mời họp giao ban" in page and ">Subject</th>" in page and ">Message-ID</th>" in page
    assert "Lỗi tạm thời" in page and "451 4.3.2 Busy here, try later" in page  # the attempt history
    assert SECRET_BODY not in page
    assert f'action="/console/queue/{message_id}"' in page and 'name="csrf"' in page
    short = admin.get(f"/console/queue/{message_id[:10]}")  # a unique prefix, as on the command line
    assert short[0].status == 200 and message_id in short[1]


def test_officials_and_secretaries_may_not_open_or_change_the_queue(hub):
    message_id = deferred(hub, ["cam@example.org"])
    for email in (OFFICIAL, SECRETARY):
        browser = hub.browser(email)
        for path in ("/console/queue", f"/console/queue/{message_id}", "/console/queue?state=held"):
            response, page = browser.get(path)
            assert response.status == 403 and "Bạn không có quyền" in page and "cam@example.org" not in page
        response, _ = browser.post("/console/queue", {"action": "hold", "id": message_id})
        assert response.status == 403
        response, _ = browser.post(f"/console/queue/{message_id}", {"action": "delete", "sure": "yes"})
        assert response.status == 403
        assert "Hàng đợi thư" not in browser.get("/console")[1]  # not in their menu either
    assert states(hub, message_id) == {"cam@example.org": "deferred"}
    stranger = hub.browser()
    response, _ = stranger.get("/console/queue")
    assert response.status == 303 and response.headers["Location"].startswith("/console/signin")


def test_posts_without_the_csrf_token_change_nothing(hub, admin):
    message_id = deferred(hub, ["csrf@example.org"])
    for path, form in [("/console/queue", {"action": "hold", "id": message_id}),
                       (f"/console/queue/{message_id}", {"action": "delete", "sure": "yes"}),
                       (f"/console/queue/{message_id}", {"action": "hold", "csrf": "gia-mao"})]:
        response, page = admin.request("POST", path, form)
        assert response.status == 403 and "Biểu mẫu đã hết hạn" in page
    assert states(hub, message_id) == {"csrf@example.org": "deferred"}


@pytest.mark.parametrize("query, field", [
    ("older=abc", "Cũ hơn"), ("newer=5x", "Mới hơn"), ("state=lost", "Trạng thái"), ("limit=0", "Số thư tối đa"),
    ("limit=abc", "Số thư tối đa"), ("domain=bad..domain", "Tên miền người nhận"), ("sender=" + "a" * 400, "Người gửi"),
])
def test_bad_filter_values_get_a_clear_message(hub, admin, query, field):
    response, page = admin.get(f"/console/queue?{query}")
    assert response.status == 400 and 'role="alert"' in page and f"Trường “{field}”" in page
    assert "Thư đang chờ gửi" in page  # the page itself, with the form to correct it


def test_bad_action_forms_get_a_clear_message_and_change_nothing(hub, admin):
    message_id = deferred(hub, ["sai@example.org"])
    for form, text, status in [({"action": "explode", "id": message_id}, "Thao tác không hợp lệ", 400),
                               ({"action": "hold", "id": "../../etc"}, "mã thư không hợp lệ", 400),
                               ({"action": "hold"}, "Chưa chọn thư nào", 400),
                               ({"action": "hold", "scope": "all", "id": message_id}, "Áp dụng cho", 400),
                               ({"action": "hold", "id": message_id, "older": "soon"}, "Cũ hơn", 400),
                               ({"action": "hold", "id": "f" * 32}, "Không tìm thấy thư đã chọn", 409)]:
        response, page = admin.post("/console/queue", form, page="/console/queue")
        assert response.status == status and 'role="alert"' in page and text in page, form
    assert states(hub, message_id) == {"sai@example.org": "deferred"}
    for path in ("/console/queue/not-a-message", "/console/queue/" + "0" * 32):
        response, page = admin.get(path)
        assert response.status == 404 and "Không" in page
