"""The secretaries' meeting pages on the real server (loopback, delivery worker running,
mail to the Maildir outbox, SMS to the SMS outbox): create from the directory, preview,
send, watch deliveries and answers, remind, update, cancel; who may see what; CSRF;
form errors next to their fields."""
from __future__ import annotations

import email
import email.policy
import html
import json
import re
import time

import pytest

from mailhub import directory
from tests.console_support import AN, Browser, console_hub
from tests.support import PASSWORD, wait_until

THUKY = "thuky@hcm.gov.vn"
OTHER_SECRETARY = "vanthu@hcm.gov.vn"
ADMIN = "quantri@hcm.gov.vn"
HR = "nhansu@hcm.gov.vn"
START, END = "2030-12-03T08:00", "2030-12-03T09:30"
FRAME_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"


@pytest.fixture(scope="module")
def hub(tmp_path_factory, ca, provisioned_home):
    running = console_hub(tmp_path_factory.mktemp("meetings"), ca, provisioned_home, only=None)
    domains = running.config.domains
    directory.add_official(running.engine, domains, OTHER_SECRETARY, "Đỗ Văn Thư", "HCM",
                           ["official", "secretary"], None, PASSWORD)
    for address, unit in (("trung@hcm.gov.vn", "STTTT"), ("trung.nv@hcm.gov.vn", "HCM")):  # namesakes
        directory.add_official(running.engine, domains, address, "Nguyễn Văn Trùng", unit)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def thuky(hub):
    return hub.browser(THUKY)


def meeting_form(title: str, **fields) -> list[tuple[str, str]]:
    values = {"title": title, "agenda": "1. Kết quả quý III\r\n2. Kế hoạch quý IV", "location": "Phòng họp số 2",
              "start": START, "end": END, "duration": "", "unit": "STTTT", "chair": "Ông Nguyễn Văn An",
              "people": "", "guests": "", "q": "", "do": "save"} | fields
    return list(values.items())


def create(browser: Browser, form: list[tuple[str, str]]) -> int:
    response, page = browser.post("/console/meetings/new", form, page="/console/meetings/new")
    assert response.status == 303, page
    return int(re.fullmatch(r"/console/meetings/(\d+)/preview\?done=created", response.headers["Location"])[1])


def mails(hub, title: str, prefix: str = "") -> list[email.message.EmailMessage]:
    """Messages in the outbox whose Subject is ``prefix…`` and names ``title``."""
    folder = hub.config.outbox_dir / "new"
    found = []
    for path in sorted(folder.glob("*")) if folder.exists() else []:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if title in str(message["Subject"]) and str(message["Subject"]).startswith(prefix):
            found.append(message)
    return found


def recipients(messages) -> list[str]:
    return sorted(str(m["To"]).rpartition("<")[2].rstrip(">") for m in messages)


def row_of(page: str, name: str) -> str:
    """The status table's row of ``name`` (unescaped text)."""
    return re.search(rf"<tr>\s*<td>{re.escape(name)}.*?</tr>", page, re.S)[0]


def main_of(page: str) -> str:
    """The page's own content, without the frame (whose links name the path)."""
    return page[page.index("<main"):page.index("</main>")]


def sms_texts(hub) -> list[dict]:
    path = hub.config.sms_outbox_dir / "sms.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# ---- the whole life of a meeting ---------------------------------------------------------

def test_create_preview_send_follow_remind_update_cancel(hub, thuky):
    title = "Họp giao ban chuyển đổi số"
    _, page = thuky.get("/console/meetings/new")
    assert '<option value="STTTT" selected>' in page  # the secretary's own unit by default
    form = meeting_form(title, people="Trần Thị Bình",
                        guests="Ông Trần Văn Bảo; bao@doitac.vn; 0912 345 678")
    mid = create(thuky, form + [("units", "Q1")])

    # The preview: what the sending code builds, for the first attendee.
    response, page = thuky.get(f"/console/meetings/{mid}/preview?done=created")
    assert response.status == 200
    text = html.unescape(page)
    assert "Đã tạo cuộc họp (bản nháp)" in text
    assert f"Giấy mời: {title} — 03/12/2030 08:00" in text  # the decoded Subject
    assert "Phạm Thu Kỳ <thuky@hcm.gov.vn>" in text and "Trần Thị Bình <binh@hcm.gov.vn>" in text
    assert "METHOD:REQUEST" in text and "invite.ics" in text and "Chấp nhận / Từ chối" in text
    assert "Trân trọng kính mời" in text  # the text part
    assert re.search(r"Nhận qua email: 3\b", text) and re.search(r"Nhận qua SMS \(số di động\): 1\b", text)
    sms = re.search(r"<pre class=\"message\">(Giay moi hop: .*?)</pre>", text, re.S)[1]
    assert sms.startswith("Giay moi hop: Hop giao ban chuyen doi so. Luc 08:00 03/12/2030, tai Phong hop so 2.")
    assert re.search(r"/r/X{11,}$", sms)  # the personal token is not shown
    assert re.search(r"Mã hóa: <strong>GSM-7</strong>\s*·\s*Số tin nhắn \(phần\): <strong>1</strong>", text)
    assert f'<iframe sandbox src="/console/meetings/{mid}/preview/email.html"' in page
    response, part = thuky.get(f"/console/meetings/{mid}/preview/email.html")
    assert response.status == 200 and "Trân trọng kính mời" in part
    assert response.headers["Content-Security-Policy"] == FRAME_CSP
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert mails(hub, title) == []  # nothing sent by looking

    # Send; a second click sends nothing more.
    response, _ = thuky.post(f"/console/meetings/{mid}/send", page=f"/console/meetings/{mid}/preview")
    assert response.status == 303 and response.headers["Location"] == f"/console/meetings/{mid}?live=1&done=sent"
    response, _ = thuky.post(f"/console/meetings/{mid}/send", page=f"/console/meetings/{mid}/preview")
    assert response.headers["Location"] == f"/console/meetings/{mid}?live=1&done=nothing_new"
    invitations = wait_until(lambda: len(found := mails(hub, title, "Giấy mời")) >= 3 and found, what="3 invitations")
    assert recipients(invitations) == ["bao@doitac.vn", "binh@hcm.gov.vn", "chau@q1.hcm.gov.vn"]

    def status(live: str = ""):
        return html.unescape(thuky.get(f"/console/meetings/{mid}{live}")[1])

    page = wait_until(lambda: "Email:\nĐã nhận <strong>3</strong>" in (p := status()) and p, what="3 emails delivered")
    # live on request (and after sending): a page that reloads itself is the visitor's choice
    assert 'http-equiv="refresh"' not in page and f'href="/console/meetings/{mid}?live=1"' in page
    assert '<meta http-equiv="refresh" content="15">' in status("?live=1")
    for name, unit in (("Lê Minh Châu", "Ủy ban nhân dân Quận 1"), ("Trần Thị Bình", "Sở Thông tin và Truyền thông"),
                       ("Ông Trần Văn Bảo", "Khách mời")):
        row = row_of(page, name)
        assert unit in row and "Đã nhận" in row and "Chưa trả lời" in row
    wait_until(lambda: "Đã gửi" in row_of(status(), "Ông Trần Văn Bảo"), what="the SMS handed to the gateway")
    assert [m["to"] for m in sms_texts(hub)] == ["+84912345678"]

    # Châu answers through the link in her email.
    letter = next(m for m in invitations if "chau@" in str(m["To"]))
    token = re.search(r"/r/([A-Za-z0-9_-]+)", letter.get_body(("plain",)).get_content())[1]
    response, _ = Browser(hub.port).request("POST", f"/r/{token}", {"answer": "ACCEPTED"})
    assert response.status == 200
    page = status()
    assert "Tham dự" in row_of(page, "Lê Minh Châu") and "Chưa trả lời" in row_of(page, "Trần Thị Bình")
    assert "Tham dự <strong>1</strong>" in page

    # A reminder to those who have not answered: Bình and Bảo, not Châu.
    response, _ = thuky.post(f"/console/meetings/{mid}/remind", {"to": "unanswered"}, page=f"/console/meetings/{mid}")
    assert response.headers["Location"] == f"/console/meetings/{mid}?done=reminded"
    reminders = wait_until(lambda: len(found := mails(hub, title, "Đề nghị xác nhận tham dự")) >= 2 and found,
                           what="2 reminders")
    time.sleep(0.5)
    assert recipients(mails(hub, title, "Đề nghị xác nhận tham dự")) == ["bao@doitac.vn", "binh@hcm.gov.vn"]
    assert len(reminders) == 2

    # Update: a new room (everyone reached is told, answers reset) and an@ added.
    _, page = thuky.get(f"/console/meetings/{mid}/edit")
    assert f'value="{START}"' in page and "Phòng họp số 2" in page
    changed = [(k, v) for k, v in meeting_form(title, location="Phòng họp số 5", people=AN) if k != "unit"]
    response, page = thuky.post(f"/console/meetings/{mid}/edit", changed, page=f"/console/meetings/{mid}/edit")
    assert response.status == 303, page
    assert response.headers["Location"] == f"/console/meetings/{mid}?done=updated"
    # (an@ is invited at SEQUENCE 1, so the calendar sees an update too)
    updates = wait_until(lambda: len(found := mails(hub, title, "Cập nhật giấy mời")) >= 4 and found, what="4 updates")
    assert recipients(updates) == [AN, "bao@doitac.vn", "binh@hcm.gov.vn", "chau@q1.hcm.gov.vn"]
    assert all("Phòng họp số 5" in m.get_body(("plain",)).get_content() for m in updates)
    assert any(m["text"].startswith("Thay doi lich hop") for m in wait_until(
        lambda: [m for m in sms_texts(hub) if m["text"].startswith("Thay doi")], what="the SMS of the change"))
    page = status()
    assert "Chưa trả lời" in row_of(page, "Lê Minh Châu")  # a new place: everyone answers again
    assert "Nguyễn Văn An" in page

    # Cancel, after a confirmation page.
    response, page = thuky.get(f"/console/meetings/{mid}/cancel")
    assert response.status == 200 and 'name="reason"' in page
    response, _ = thuky.post(f"/console/meetings/{mid}/cancel", {"reason": "Lãnh đạo đi công tác"},
                             page=f"/console/meetings/{mid}/cancel")
    assert response.headers["Location"] == f"/console/meetings/{mid}?done=cancelled"
    cancels = wait_until(lambda: len(found := mails(hub, title, "Hủy cuộc họp")) >= 4 and found, what="4 cancellations")
    assert recipients(cancels) == [AN, "bao@doitac.vn", "binh@hcm.gov.vn", "chau@q1.hcm.gov.vn"]
    page = status()
    assert "Đã hủy" in page and 'http-equiv="refresh"' not in status("?live=1")
    response, page = thuky.post(f"/console/meetings/{mid}/remind", {"to": "unanswered"}, page="/console/meetings")
    assert response.status == 409 and "đã bị hủy" in page
    assert thuky.get(f"/console/meetings/{mid}/preview")[0].status == 409
    assert thuky.get(f"/console/meetings/{mid}/edit")[0].status == 409
    _, page = thuky.get("/console/meetings")
    assert title in page and "Đã hủy" in page


# ---- who may see what --------------------------------------------------------------------

def test_only_secretaries_and_admins_open_the_meetings(hub, thuky):
    mid = create(thuky, meeting_form("Họp riêng của thư ký", people="binh@hcm.gov.vn"))
    for who in (AN, HR):
        browser = hub.browser(who)
        for path in ("/console/meetings", "/console/meetings/new", f"/console/meetings/{mid}"):
            response, page = browser.get(path)
            assert response.status == 403 and "Bạn không có quyền mở trang này" in page, (who, path)
        response, _ = browser.post("/console/meetings/new", meeting_form("Họp trái phép", people=AN))
        assert response.status == 403
    admin = hub.browser(ADMIN)
    assert "Họp riêng của thư ký" in admin.get("/console/meetings")[1]
    assert admin.get(f"/console/meetings/{mid}")[0].status == 200
    assert "Họp trái phép" not in admin.get("/console/meetings")[1]


def test_another_secretarys_meeting_is_not_found(hub, thuky):
    mid = create(thuky, meeting_form("Họp của phòng khác", people="binh@hcm.gov.vn"))
    other = hub.browser(OTHER_SECRETARY)
    response, missing = other.get("/console/meetings/999999")
    assert response.status == 404 and "Không tìm thấy" in missing
    missing_page = main_of(missing)
    for path in ("", "/preview", "/preview/email.html", "/edit", "/cancel"):
        response, page = other.get(f"/console/meetings/{mid}{path}")
        assert response.status == 404 and main_of(page) == missing_page, path
    for path in ("/send", "/remind", "/cancel", "/edit"):
        response, page = other.post(f"/console/meetings/{mid}{path}", {"to": "all", "title": "Đổi"},
                                    page="/console/meetings")
        assert response.status == 404 and main_of(page) == missing_page, path
    for path in ("abc", "0", "-1", "1" * 30):
        assert other.get(f"/console/meetings/{path}")[0].status == 404
    assert "Họp của phòng khác" not in other.get("/console/meetings")[1]
    page = html.unescape(thuky.get(f"/console/meetings/{mid}")[1])
    assert "Bản nháp" in page and "Họp của phòng khác" in page
    assert mails(hub, "Họp của phòng khác") == []


def test_a_post_without_the_csrf_field_changes_nothing(hub, thuky):
    response, page = thuky.request("POST", "/console/meetings/new", meeting_form("Họp giả mạo", people=AN))
    assert response.status == 403 and "Biểu mẫu đã hết hạn" in page
    assert "Họp giả mạo" not in thuky.get("/console/meetings")[1]
    mid = create(thuky, meeting_form("Họp chưa gửi", people=AN))
    for fields in ([], [("csrf", "sai")]):
        response, _ = thuky.request("POST", f"/console/meetings/{mid}/send", fields)
        assert response.status == 403
        response, _ = thuky.request("POST", f"/console/meetings/{mid}/cancel", fields)
        assert response.status == 403
    time.sleep(1)
    assert mails(hub, "Họp chưa gửi") == []
    assert "Bản nháp" in html.unescape(thuky.get(f"/console/meetings/{mid}")[1])


# ---- the form ----------------------------------------------------------------------------

def test_form_errors_name_the_field_and_line_and_keep_the_values(hub, thuky):
    form = meeting_form("Họp <kiểm tra>", start="2030-12-03T10:00", end="2030-12-03T09:00",
                        people="Trần Thị Bình\n\nKhông Có Ai\nNguyễn Văn Trùng",
                        guests="Bà Cúc\nÔng Bảo; bao@doitac.vn; 0912 345 678; thừa") + [("units", "Q1")]
    response, page = thuky.post("/console/meetings/new", form, page="/console/meetings/new")
    assert response.status == 422
    text = html.unescape(page)
    assert "Thời gian kết thúc: phải sau thời gian bắt đầu" in text
    assert "Cán bộ (email hoặc họ tên): dòng 3: không có cán bộ nào tên “Không Có Ai” trong danh bạ" in text
    assert ("dòng 4: có 2 cán bộ tên “Nguyễn Văn Trùng” (trung.nv@hcm.gov.vn, trung@hcm.gov.vn); "
            "hãy ghi địa chỉ email") in text
    assert "Khách mời: dòng 2: hãy ghi “Họ tên; email; số điện thoại”" in text
    assert "Khách mời: dòng 1: cần email hoặc số điện thoại của Bà Cúc" in text
    assert 'role="alert"' in page
    # Every value is kept.
    assert 'value="Họp &lt;kiểm tra&gt;"' in page and 'value="2030-12-03T10:00"' in page
    assert ">\nTrần Thị Bình\n\nKhông Có Ai\nNguyễn Văn Trùng</textarea>" in text
    assert re.search(r'name="units" value="Q1" checked', page)
    assert "Họp <kiểm tra>" not in thuky.get("/console/meetings")[1]

    # What only the directory can say, each problem on its line; in English too.
    form = meeting_form("Họp thử lỗi", people="khongco@hcm.gov.vn", guests="Ông Bảo; bao@doitac.vn; 0912 abc")
    response, page = thuky.post("/console/meetings/new", form, page="/console/meetings/new")
    text = html.unescape(page)
    assert response.status == 422
    assert "Cán bộ (email hoặc họ tên): dòng 1: khongco@hcm.gov.vn không phải là cán bộ trong danh bạ" in text
    assert "Khách mời: dòng 1: số điện thoại “0912 abc” có ký tự không hợp lệ 'a'" in text
    english = hub.browser(THUKY)
    english.cookies["mailhub_lang"] = "en"
    response, page = english.post("/console/meetings/new", meeting_form("Họp", end="2030-12-03T07:00"),
                                  page="/console/meetings/new")
    assert "End: must be after start" in page and "Invitees: nobody is invited" in page


def test_the_officials_list_narrows_by_name_and_keeps_what_was_typed(hub, thuky):
    _, page = thuky.get("/console/meetings/new?q=binh")
    assert 'value="binh@hcm.gov.vn"' in page and 'value="chau@q1.hcm.gov.vn"' not in page
    form = meeting_form("Họp lọc danh sách", q="chau", do="filter") + [("attendees", "binh@hcm.gov.vn")]
    response, page = thuky.post("/console/meetings/new", form, page="/console/meetings/new")
    assert response.status == 200 and 'value="Họp lọc danh sách"' in page
    assert re.search(r'value="binh@hcm.gov.vn" checked', page)  # ticked before: still listed and ticked
    assert 'value="chau@q1.hcm.gov.vn"' in page and 'value="an@hcm.gov.vn"' not in page
    assert "Họp lọc danh sách" not in thuky.get("/console/meetings")[1]  # filtering saves nothing
    mid = create(thuky, meeting_form("Họp lọc danh sách") + [("attendees", "binh@hcm.gov.vn")])
    page = html.unescape(thuky.get(f"/console/meetings/{mid}")[1])
    assert "Trần Thị Bình" in page and "Số người được mời: <strong>1</strong>" in page

    # A draft is changed without sending anything; a form that changes nothing says so.
    same = [(k, v) for k, v in meeting_form("Họp lọc danh sách") if k != "unit"]
    response, page = thuky.post(f"/console/meetings/{mid}/edit", same, page=f"/console/meetings/{mid}/edit")
    assert response.status == 422 and "Cuộc họp: không có gì thay đổi" in page
    renamed = [(k, v) for k, v in meeting_form("Họp lọc danh sách (đã sửa)", people="chau@q1.hcm.gov.vn")
               if k != "unit"]
    response, _ = thuky.post(f"/console/meetings/{mid}/edit", renamed, page=f"/console/meetings/{mid}/edit")
    assert response.headers["Location"] == f"/console/meetings/{mid}?done=updated_draft"
    page = html.unescape(thuky.get(f"/console/meetings/{mid}?done=updated_draft")[1])
    assert "Đã cập nhật bản nháp" in page and "Họp lọc danh sách (đã sửa)" in page and "Lê Minh Châu" in page
    time.sleep(0.5)
    assert mails(hub, "Họp lọc danh sách") == []
