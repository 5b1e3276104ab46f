"""Test helpers for the web console: a minimal cookie-keeping HTTP client against the real
server on loopback, and a running hub with officials of each role.

The browser tests (Playwright, Chromium) drive the same server; this client is for the
checks a browser would hide (headers, status codes, a form posted without its token).
"""
from __future__ import annotations

import http.client
import re
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import urlencode

from mailhub import directory
from mailhub.db import make_engine
from tests.support import PASSWORD, make_config, provision, provisioned_copy, start_hub

AN = "an@hcm.gov.vn"
# Extra officials the console tests add (unit STTTT unless said): email → (name, roles).
STAFF = {
    "thuky@hcm.gov.vn": ("Phạm Thu Kỳ", ["official", "secretary"]),
    "nhansu@hcm.gov.vn": ("Đỗ Nhân Sự", ["official", "hr"]),
    "quantri@hcm.gov.vn": ("Vũ Quản Trị", ["official", "admin"]),
}


@dataclass
class Browser:
    """A minimal browser: keeps cookies, never follows redirects."""

    port: int
    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, form: dict | list | None = None, body: bytes | None = None,
                headers: dict | None = None):
        """``form``: a dict or a list of pairs (repeated fields), sent url-encoded."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if form is not None:
            body = urlencode(form).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            data = response.read()
            for header in response.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(header).items():
                    if morsel["max-age"] == "0" or morsel.value in ("", '""'):
                        self.cookies.pop(name, None)
                    else:
                        self.cookies[name] = morsel.value
            ctype = response.headers.get("Content-Type", "")
            text = data.decode("utf-8") if ctype.startswith(("text/", "application/json")) else data
            return response, text
        finally:
            connection.close()

    def get(self, path: str):
        return self.request("GET", path)

    def csrf(self, path: str = "/console/signin") -> str:
        _, page = self.request("GET", path)
        return re.search(r'name="csrf" value="([^"]+)"', page)[1]

    def sign_in(self, email: str = AN, password: str = PASSWORD):
        return self.request("POST", "/console/signin", {"csrf": self.csrf(), "email": email, "password": password})

    def post(self, path: str, form: dict | list | None = None, page: str = "/console"):
        """Post a form with the session's CSRF token (read from ``page``)."""
        pairs = list(form.items()) if isinstance(form, dict) else list(form or [])
        return self.request("POST", path, [("csrf", self.csrf(page)), *pairs])


def add_staff(engine, config) -> None:
    """Add :data:`STAFF` to a provisioned directory (password :data:`tests.support.PASSWORD`)."""
    for email, (name, roles) in STAFF.items():
        directory.add_official(engine, config.domains, email, name, "STTTT", roles, None, PASSWORD)


@dataclass
class ConsoleHub:
    running: object
    config: object
    engine: object

    @property
    def port(self) -> int:
        return self.running.hub.ports["http"]

    def browser(self, email: str | None = None) -> Browser:
        """A browser, signed in as ``email`` when given."""
        browser = Browser(self.port)
        if email:
            response, _ = browser.sign_in(email)
            assert response.status == 303, f"sign-in as {email} failed"
        return browser

    def stop(self) -> None:
        self.running.stop()
        self.engine.dispose()


def console_hub(tmp_path, ca, provisioned_home, only: str | None = None, database_url: str | None = None,
                **overrides) -> ConsoleHub:
    """A running hub (``only``: None for submission and delivery, as `mailhub serve`) with
    :data:`STAFF` added. ``database_url``: another database than the home's SQLite (e.g. a
    PostgreSQL schema), provisioned here. ``overrides``: config sections, as for ``make_config``."""
    if database_url:
        overrides.setdefault("database", {})["url"] = database_url
    config = make_config(provisioned_copy(provisioned_home, tmp_path / "home"), ca, **overrides)
    if database_url:
        provision(config)
    engine = make_engine(config.database_url)
    add_staff(engine, config)
    return ConsoleHub(start_hub(config, ca, only=only), config, engine)
