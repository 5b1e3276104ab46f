"""Every main page of the console audited for accessibility in Chromium with axe-core (the
WCAG 2.0/2.1 A and AA rules: labels, contrast, headings, tables, landmarks, language…), and
checked to fit a phone screen without sideways scrolling of the page itself."""
from __future__ import annotations

import re

import pytest

from tests.browser_support import DESKTOP, PHONE, launch
from tests.console_support import console_hub
from tests.support import PASSWORD

SECRETARY, HR, ADMIN, OFFICIAL = "thuky@hcm.gov.vn", "nhansu@hcm.gov.vn", "quantri@hcm.gov.vn", "an@hcm.gov.vn"
WCAG = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
        "resultTypes": ["violations"]}


@pytest.fixture(scope="module")
def site(tmp_path_factory, ca, provisioned_home):
    """A running console with one sent meeting; yields (base URL, chromium, meeting id)."""
    pytest.importorskip("axe_playwright_python")
    hub = console_hub(tmp_path_factory.mktemp("a11y"), ca, provisioned_home, only="submission")
    secretary = hub.browser(SECRETARY)
    response, page = secretary.post("/console/meetings/new", [
        ("title", "Họp kiểm tra khả năng truy cập"), ("start", "2030-12-03T08:00"), ("end", "2030-12-03T09:00"),
        ("unit", "STTTT"), ("units", "Q1"), ("guests", "Ông Trần Văn Bảo; bao@doitac.vn; 0912 345 678"),
        ("do", "save")], page="/console/meetings/new")
    assert response.status == 303, page
    meeting = int(re.search(r"/meetings/(\d+)/", response.headers["Location"])[1])
    playwright, browser = launch()
    yield f"http://127.0.0.1:{hub.port}", browser, meeting
    browser.close()
    playwright.stop()
    hub.stop()


PAGES = [  # (who, path); {m}: the meeting's id
    (None, "/console/signin"),
    (OFFICIAL, "/console"),
    (OFFICIAL, "/console/me"),
    (SECRETARY, "/console/meetings"),
    (SECRETARY, "/console/meetings/new"),
    (SECRETARY, "/console/meetings/{m}/preview"),
    (SECRETARY, "/console/meetings/{m}"),
    (SECRETARY, "/console/meetings/{m}/edit"),
    (SECRETARY, "/console/meetings/{m}/cancel"),
    (HR, "/console/scores"),
    (HR, "/console/scores?view=official"),
    (HR, "/console/scores?trend=1"),
    (ADMIN, "/console/queue"),
    (ADMIN, "/console/refusals"),
    (ADMIN, "/console/setup"),
    (ADMIN, "/console/directory"),
    (ADMIN, "/console/directory/import"),
    (OFFICIAL, "/console/queue"),  # the refusal page
]


def open_as(browser, base: str, who: str | None, path: str, viewport: dict):
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    if who:
        page.goto(f"{base}/console/signin")
        page.get_by_label("Địa chỉ thư công vụ").fill(who)
        page.get_by_label("Mật khẩu").fill(PASSWORD)
        page.get_by_role("button", name="Đăng nhập").click()
    page.goto(base + path)
    page.wait_for_load_state("networkidle")
    return context, page


@pytest.mark.parametrize("who, path", PAGES, ids=[p for _, p in PAGES])
def test_the_page_passes_the_wcag_audit_and_fits_a_phone(site, who, path):
    from axe_playwright_python.sync_playwright import Axe

    base, browser, meeting = site
    path = path.format(m=meeting)
    context, page = open_as(browser, base, who, path, DESKTOP)
    try:
        results = Axe().run(page, options=WCAG)
        problems = [f"{v['id']} ({v['impact']}): {v['help']} — " + "; ".join(n["target"][0] for n in v["nodes"][:5])
                    for v in results.response["violations"]]
        assert problems == [], "\n".join(problems)
    finally:
        context.close()
    context, page = open_as(browser, base, who, path, PHONE)
    try:
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "wider than a phone"
    finally:
        context.close()
