"""The console in a real browser: Playwright drives Debian's Chromium against the real server
(`mailhub serve`'s services on loopback). What a secretary, HR, an official and the IT
department do, end to end; screenshots of the main pages are kept (tests/browser_support.py)."""
from __future__ import annotations

import pytest

from tests.browser_support import DESKTOP, PHONE, launch, screenshot
from tests.console_support import AN, console_hub
from tests.support import PASSWORD


@pytest.fixture(scope="module")
def chromium():
    playwright, browser = launch()
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture
def hub(tmp_path, ca, provisioned_home):
    running = console_hub(tmp_path, ca, provisioned_home)
    yield running
    running.stop()


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
