"""The console in a real browser: Playwright drives Debian's Chromium against `mailhub serve`
(a child process on loopback, as an operator starts it). What a secretary, HR, an official and the IT
department do, end to end; screenshots of the main pages are kept (tests/browser_support.py)."""
from __future__ import annotations

import email
import email.policy
import io
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import openpyxl
import pytest

from mailhub.config import Config, load_config
from mailhub.db import make_engine
from tests.browser_support import DESKTOP, PHONE, launch, screenshot
from tests.console_support import AN, add_staff
from tests.serve_process import ServeProcess
from tests.support import PASSWORD, provisioned_copy, wait_until, write_config_file

SECRETARY, HR, ADMIN = "thuky@hcm.gov.vn", "nhansu@hcm.gov.vn", "quantri@hcm.gov.vn"


@pytest.fixture(scope="module")
def chromium():
    playwright, browser = launch()
    yield browser
    browser.close()
    playwright.stop()


@dataclass
class Served:
    port: int  # the HTTP port of `mailhub serve`
    config: Config


@pytest.fixture
def hub(tmp_path, ca, provisioned_home):
    """`mailhub serve` as an operator starts it (a child process, the config file, SQLite,
    delivery to the local outbox), with a secretary, HR and an administrator in the directory."""
    home = provisioned_copy(provisioned_home, tmp_path / "home")
    path = write_config_file(home, 0, delivery={"mode": "outbox"})
    config = load_config(path)
    engine = make_engine(config.database_url)
    add_staff(engine, config)
    engine.dispose()
    served = ServeProcess(path)
    yield Served(served.ports["http"], config)
    served.stop()


def signed_in(chromium, hub: Served, email: str, viewport: dict, **options):
    """(base URL, context, page) of a new browser context signed in as ``email``."""
    base = f"http://127.0.0.1:{hub.port}"
    context = chromium.new_context(viewport=viewport, **options)
    page = context.new_page()
    sign_in(page, base, email)
    return base, context, page


def sign_in(page, base: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/console/signin")
    page.get_by_label("Địa chỉ thư công vụ").fill(email)
    page.get_by_label("Mật khẩu").fill(password)
    page.get_by_role("button", name="Đăng nhập").click()


def test_sign_in_language_and_a_form_without_its_token(chromium, hub):
    base = f"http://127.0.0.1:{hub.port}"
    context = chromium.new_context(viewport=PHONE)
    page = context.new_page()
    page.goto(f"{base}/console")
    assert page.url.endswith("/console/signin")
    screenshot(page, "signin-phone")
    sign_in(page, base, AN, "sai-mat-khau")
    assert "Email hoặc mật khẩu không đúng" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("Địa chỉ thư công vụ").input_value() == AN
    sign_in(page, base, AN)
    assert page.get_by_role("heading", level=1).inner_text() == "Xin chào, Nguyễn Văn An"
    # the page fits a phone: nothing wider than the screen
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "home-phone")

    page.get_by_role("link", name="English").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Hello, Nguyễn Văn An"
    page.get_by_role("link", name="Tiếng Việt").click()

    # a form whose CSRF token was taken out (as a forged cross-site form would be) is refused
    page.locator("form[action='/console/signout'] input[name=csrf]").evaluate("e => e.remove()")
    page.get_by_role("button", name="Đăng xuất").click()
    assert "Biểu mẫu đã hết hạn hoặc không hợp lệ" in page.get_by_role("alert").inner_text()
    page.goto(f"{base}/console")
    assert "Xin chào" in page.get_by_role("heading", level=1).inner_text()  # still signed in
    page.get_by_role("button", name="Đăng xuất").click()
    assert page.url.endswith("/console/signin")
    context.close()


def invitation_to(hub, address: str, title: str):
    folder = hub.config.outbox_dir / "new"
    for path in sorted(folder.glob("*")) if folder.exists() else []:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if address in str(message["To"]) and title in str(message["Subject"]):
            return message
    return None


def attendee_row(page, name: str):
    return page.get_by_role("row").filter(has_text=name)


def test_a_secretary_invites_a_unit_and_follows_the_answers(chromium, hub):
    base, context, page = signed_in(chromium, hub, SECRETARY, DESKTOP)
    page.get_by_role("navigation").get_by_role("link", name="Cuộc họp").click()
    page.get_by_role("link", name="Tạo cuộc họp mới").click()
    title = "Họp triển khai chữ ký số quý I"
    start = (datetime.now() + timedelta(days=10)).replace(hour=8, minute=0, second=0, microsecond=0)
    page.get_by_label("Tiêu đề cuộc họp").fill(title)
    page.get_by_label("Địa điểm").fill("Phòng họp số 2, 59 Lý Tự Trọng")
    page.get_by_label("Thời gian bắt đầu").fill(start.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Thời gian kết thúc").fill((start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label(re.compile(r"Ủy ban nhân dân Quận 1 \(Q1\)")).check()  # the whole unit
    page.get_by_label("Khách mời", exact=True).fill("Ông Trần Văn Bảo; bao@doitac.vn; 0912 345 678")
    screenshot(page, "meeting-form")
    page.get_by_role("button", name="Tạo cuộc họp (bản nháp)").click()

    # The preview: the email as it will go out, and the SMS with its segment count.
    assert page.get_by_role("heading", level=1).inner_text().startswith("Xem trước giấy mời")
    assert "Lê Minh Châu" in page.inner_text("main")
    assert re.search(r"Số tin nhắn \(phần\): 1\b", page.inner_text("main"))  # the guest's SMS
    frame = page.frame_locator("iframe")
    assert "Trân trọng kính mời" in frame.locator("body").inner_text()
    page.wait_for_load_state("networkidle")
    screenshot(page, "meeting-preview")
    page.get_by_role("button", name="Gửi giấy mời").click()

    # Deliveries arrive at the outbox and the status page follows them.
    assert page.get_by_role("heading", level=1).inner_text() == title
    letter = wait_until(lambda: invitation_to(hub, "chau@q1.hcm.gov.vn", title), what="Châu's invitation", timeout=30)
    wait_until(lambda: page.reload() or "Đã nhận" in attendee_row(page, "Lê Minh Châu").inner_text(),
               what="the email shown as delivered", timeout=30, every=0.3)
    assert "Chưa trả lời" in attendee_row(page, "Lê Minh Châu").inner_text()

    # Châu answers from the link in her email, in her own browser.
    link = re.search(r"https?://\S+/r/[A-Za-z0-9_-]+", letter.get_body(("plain",)).get_content())[0]
    chau = context.browser.new_context(viewport=PHONE).new_page()
    chau.goto(base + link[link.index("/r/"):])
    chau.get_by_role("button", name=re.compile("Tham dự")).click()
    chau.context.close()
    page.reload()
    assert "Tham dự" in attendee_row(page, "Lê Minh Châu").inner_text()
    screenshot(page, "meeting-status")
    context.close()


def test_hr_views_scores_and_downloads_the_xlsx(chromium, hub):
    base, context, page = signed_in(chromium, hub, HR, DESKTOP, accept_downloads=True)
    page.get_by_role("navigation").get_by_role("link", name="Điểm thi đua").click()
    assert page.get_by_role("heading", level=1).is_visible()
    assert "Sở Thông tin và Truyền thông" in page.inner_text("main")
    page.wait_for_load_state("networkidle")
    charts = page.locator("main img")
    assert charts.count() >= 2  # the ranking per group and the trend across quarters
    assert page.evaluate("Array.from(document.images).map(i => i.naturalWidth)") == [
        w for w in page.evaluate("Array.from(document.images).map(i => i.naturalWidth)") if w > 0]
    screenshot(page, "scores-units")
    page.get_by_role("link", name="Xem xu hướng theo các quý của năm").click()  # computed on request
    assert page.get_by_role("columnheader", name="Bình quân toàn thành phố").is_visible()
    page.wait_for_load_state("networkidle")
    assert page.evaluate("document.querySelector('img[src*=\"trend.svg\"]').naturalWidth") > 0
    with page.expect_download() as download:
        page.get_by_role("link", name="Excel (XLSX)").click()
    assert re.fullmatch(r"diem-thi-dua-\d{4}-Q\d\.xlsx", download.value.suggested_filename)
    book = openpyxl.load_workbook(io.BytesIO(download.value.path().read_bytes()))
    units = [row[3] for row in book["Đơn vị"].iter_rows(min_row=2, values_only=True)]
    assert {"STTTT", "Q1"} <= set(units)
    page.get_by_label("Xem theo").select_option("official")
    page.get_by_role("button", name="Xem").click()
    assert "Nguyễn Văn An" in page.inner_text("main")
    screenshot(page, "scores-officials")
    context.close()


def test_an_official_sees_their_own_score_but_not_hr_pages(chromium, hub):
    base, context, page = signed_in(chromium, hub, AN, PHONE)
    menu = page.get_by_role("navigation")
    assert menu.get_by_role("link", name="Điểm thi đua").count() == 0
    assert menu.get_by_role("link", name="Cuộc họp").count() == 0
    for path in ("/console/scores", "/console/scores/download.xlsx", "/console/meetings", "/console/queue"):
        response = page.goto(base + path)
        assert response.status == 403, path
        assert "Bạn không có quyền mở trang này" in page.get_by_role("alert").inner_text()
    screenshot(page, "refused-phone")
    menu.get_by_role("link", name="Điểm của tôi").click()
    assert page.get_by_role("heading", level=1).is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "my-score-phone")
    context.close()


def test_the_it_pages(chromium, hub):
    base, context, page = signed_in(chromium, hub, ADMIN, DESKTOP)
    for name, shot in (("Hàng đợi thư", "queue"), ("Thư bị từ chối", "refusals"),
                       ("DKIM và cấu hình", "setup"), ("Danh bạ", "directory")):
        page.get_by_role("navigation").get_by_role("link", name=name).click()
        assert page.locator("main h1").count() == 1, name
        screenshot(page, f"it-{shot}")
    page.goto(base + "/console/setup")
    assert "v=DKIM1" in page.inner_text("main")  # the DNS record to publish
    context.close()
