"""The web console's sign-in on the real server (loopback, ephemeral port): directory accounts,
lockout shared with SMTP AUTH, sessions in cookies, CSRF on every form, sign-out."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from mailhub.db import make_engine
from mailhub.models import Official, utcnow
from mailhub.web import sessions
from tests.console_support import AN, Browser
from tests.support import PASSWORD, make_config, provisioned_copy, start_hub


@pytest.fixture
def console(tmp_path, ca, provisioned_home):
    config = make_config(provisioned_copy(provisioned_home, tmp_path / "home"), ca,
                         auth={"max_failures": 3})
    running = start_hub(config, ca, only="submission")
    engine = make_engine(config.database_url)
    yield running.hub.ports["http"], engine
    running.stop()
    engine.dispose()


def test_sign_in_see_home_and_sign_out(console):
    port, engine = console
    browser = Browser(port)
    response, _ = browser.request("GET", "/console")
    assert response.status == 303 and response.headers["Location"] == "/console/signin"

    response, _ = browser.sign_in()
    assert response.status == 303 and response.headers["Location"] == "/console"
    cookie = next(h for h in response.headers.get_all("Set-Cookie") if h.startswith("mailhub_session="))
    assert all(flag in cookie.lower() for flag in ("httponly", "secure", "samesite=strict", "path=/console"))
    response, page = browser.request("GET", "/console")
    assert response.status == 200 and "Xin chào, Nguyễn Văn An" in page
    assert response.headers["Cache-Control"] == "no-store" and response.headers["X-Frame-Options"] == "DENY"

    csrf = re.search(r'name="csrf" value="([^"]+)"', page)[1]
    response, _ = browser.request("POST", "/console/signout", {"csrf": "not-the-token"})
    assert response.status == 403
    assert browser.request("GET", "/console")[0].status == 200  # still signed in
    response, _ = browser.request("POST", "/console/signout", {"csrf": csrf})
    assert response.status == 303
    stolen = Browser(port, {"mailhub_session": cookie.split(";")[0].split("=", 1)[1]})
    assert stolen.request("GET", "/console")[0].status == 303  # the token no longer opens anything


def test_a_form_without_its_csrf_token_is_refused(console):
    port, _ = console
    browser = Browser(port)
    browser.csrf()  # has the sign-in cookie, but posts without the field
    response, page = browser.request("POST", "/console/signin", {"email": AN, "password": PASSWORD})
    assert response.status == 403 and "mailhub_session" not in browser.cookies
    other = Browser(port)  # the field without the cookie it must match (a cross-site form)
    response, _ = other.request("POST", "/console/signin", {"csrf": browser.csrf(), "email": AN, "password": PASSWORD})
    assert response.status == 403 and "mailhub_session" not in other.cookies


def test_wrong_passwords_lock_the_account_for_the_web_and_smtp_alike(console):
    port, _ = console
    browser = Browser(port)
    for _ in range(3):
        response, page = browser.sign_in(password="sai-mat-khau")
        assert response.status == 401 and "mailhub_session" not in browser.cookies
    assert "Email hoặc mật khẩu không đúng" in page
    response, page = browser.sign_in()  # the right password, while locked
    assert response.status == 401 and "tạm khóa" in page and "mailhub_session" not in browser.cookies
    assert 'value="an@hcm.gov.vn"' in page  # the address is kept, never the password
    assert "sai-mat-khau" not in page and PASSWORD not in page


def test_sessions_end_when_idle_expired_or_the_official_leaves(console):
    _, engine = console
    official = engine.connect().execute(Official.__table__.select().where(Official.__table__.c.email == AN)).first()
    now = utcnow()
    token = sessions.start(engine, official.id, now)
    assert sessions.find(engine, token, now + timedelta(minutes=29)).email == AN
    assert sessions.find(engine, token, now + timedelta(minutes=29) + sessions.IDLE + timedelta(seconds=1)) is None
    token = sessions.start(engine, official.id, now)
    assert sessions.find(engine, token, now + sessions.LIFETIME) is None
    token = sessions.start(engine, official.id, now)
    with engine.begin() as conn:
        conn.execute(Official.__table__.update().where(Official.__table__.c.email == AN).values(active=False))
    assert sessions.find(engine, token, now) is None
    assert sessions.find(engine, "x" * 65) is None and sessions.find(engine, None) is None


def test_sign_in_returns_to_the_page_asked_for_but_never_to_another_site(console):
    port, _ = console
    browser = Browser(port)
    response, _ = browser.request("GET", "/console/meetings?view=all")
    assert response.status == 303
    assert response.headers["Location"] == "/console/signin?next=%2Fconsole%2Fmeetings%3Fview%3Dall"
    _, page = browser.request("GET", response.headers["Location"])
    assert 'name="next" value="/console/meetings?view=all"' in page
    response, _ = browser.request("POST", "/console/signin", {"csrf": browser.csrf(), "email": AN,
                                                               "password": PASSWORD, "next": "/console/meetings?view=all"})
    assert response.headers["Location"] == "/console/meetings?view=all"
    for elsewhere in ("https://evil.example/", "//evil.example/console", "/console/../x", "/consolex\\@evil"):
        other = Browser(port)
        response, _ = other.request("POST", "/console/signin", {"csrf": other.csrf(), "email": AN,
                                                                 "password": PASSWORD, "next": elsewhere})
        assert response.status == 303 and response.headers["Location"] == "/console", elsewhere
    response, _ = browser.request("GET", "/console/lang/en?next=https://evil.example/")
    assert response.headers["Location"] == "/console"


def test_the_pages_speak_english_when_the_visitor_chooses_it(console):
    port, _ = console
    browser = Browser(port)
    browser.sign_in()
    _, page = browser.request("GET", "/console")
    assert '<html lang="vi">' in page and "Xin chào" in page and "Đăng xuất" in page
    response, _ = browser.request("GET", "/console/lang/en?next=/console")
    assert response.status == 303 and response.headers["Location"] == "/console"
    _, page = browser.request("GET", "/console")
    assert '<html lang="en">' in page and "Hello, Nguyễn Văn An" in page and "Sign out" in page
    assert "Xin chào" not in page and "Đăng xuất" not in page
    browser.request("GET", "/console/lang/xx?next=/console")  # not a language: nothing changes
    assert "Hello," in browser.request("GET", "/console")[1]
    browser.request("GET", "/console/lang/vi?next=/console")
    assert "Xin chào" in browser.request("GET", "/console")[1]


def test_pages_carry_security_headers_and_the_menu_follows_the_roles(console):
    port, _ = console
    browser = Browser(port)
    browser.sign_in()
    response, page = browser.request("GET", "/console")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "script-src 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert 'href="/console/me"' in page  # every official: their own score
    assert 'href="/console/scores"' not in page and 'href="/console/queue"' not in page


def test_a_form_too_large_is_refused_as_such(console):
    port, _ = console
    browser = Browser(port)
    browser.sign_in()
    csrf = re.search(r'name="csrf" value="([^"]+)"', browser.request("GET", "/console")[1])[1]
    response, page = browser.request("POST", "/console/signout", {"csrf": csrf, "x": "a" * 300_000})
    assert response.status == 413 and "Biểu mẫu quá lớn" in page
    assert browser.request("GET", "/console")[0].status == 200  # nothing happened: still signed in


def _sign_in_from(browser: Browser, address: str, email: str, password: str):
    return browser.request("POST", "/console/signin", {"csrf": browser.csrf(), "email": email, "password": password},
                           headers={"X-Forwarded-For": address})


def test_behind_a_trusted_proxy_the_lockout_is_per_browser_address(tmp_path, ca, provisioned_home):
    config = make_config(provisioned_copy(provisioned_home, tmp_path / "home"), ca, auth={"max_failures": 3},
                         listen={"http_trusted_proxies": ["127.0.0.0/8"]})
    running = start_hub(config, ca, only="submission")
    try:
        port = running.hub.ports["http"]
        for n in range(3):  # someone at 203.0.113.5 guesses three accounts
            response, _ = _sign_in_from(Browser(port), "203.0.113.5", f"khong-co-{n}@hcm.gov.vn", "doan-bua")
            assert response.status == 401
        response, page = _sign_in_from(Browser(port), "203.0.113.5", AN, PASSWORD)
        assert response.status == 401 and "tạm khóa" in page  # that address is locked out
        response, _ = _sign_in_from(Browser(port), "198.51.100.7", AN, PASSWORD)
        assert response.status == 303  # another browser behind the same proxy is not
    finally:
        running.stop()


def test_without_trusted_proxies_forwarded_addresses_are_ignored(console):
    port, _ = console
    for n in range(3):
        _sign_in_from(Browser(port), f"203.0.113.{n}", f"khong-co-{n}@hcm.gov.vn", "doan-bua")
    response, page = _sign_in_from(Browser(port), "198.51.100.7", AN, PASSWORD)
    assert response.status == 401 and "tạm khóa" in page  # all came from 127.0.0.1, whatever they claimed


def test_a_new_password_or_leaving_ends_the_sessions_and_ended_ones_are_swept(console):
    from mailhub import directory

    port, engine = console
    browser = Browser(port)
    browser.sign_in()
    directory.set_password(engine, AN, "mot-mat-khau-moi-2026")
    assert browser.request("GET", "/console")[0].status == 303  # signed out by the new password
    assert browser.sign_in(password="mot-mat-khau-moi-2026")[0].status == 303
    assert directory.set_active(engine, AN, False) is True
    assert browser.request("GET", "/console")[0].status == 303
    assert browser.sign_in(password="mot-mat-khau-moi-2026")[0].status == 401  # and cannot sign in again
    assert directory.set_active(engine, AN, True) is True and directory.set_active(engine, AN, True) is False
    official_id = directory.find_official(engine, AN).id
    old = utcnow() - timedelta(days=2)
    sessions.start(engine, official_id, old)  # a session of two days ago, never used since
    count = "SELECT count(*) FROM web_session"
    with engine.connect() as conn:
        before = conn.exec_driver_sql(count).scalar()
    browser.sign_in(password="mot-mat-khau-moi-2026")
    with engine.connect() as conn:
        assert conn.exec_driver_sql(count).scalar() == before  # one swept, one started
