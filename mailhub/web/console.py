"""The console's sign-in, sign-out and home page (``/console``).

Sign-in checks the directory account with the relay's own :class:`~mailhub.smtp.auth.Authenticator`
(argon2id, and the same lockout per account and per client address as SMTP AUTH), then starts
a session (:mod:`mailhub.web.sessions`) whose token goes in a ``Secure``, ``HttpOnly``,
``SameSite=Strict`` cookie. Every form carries a CSRF token: the session's once signed in, and
before that a one-time value also set as a cookie (double submit). A form without the right
token is refused (403) before anything else is looked at. Pages are server-rendered from
``templates/console/``, Vietnamese first.
"""
from __future__ import annotations

import asyncio
import secrets
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.engine import Engine

from mailhub.config import Config
from mailhub.directory import find_official, load_sender
from mailhub.smtp.auth import Authenticator, AuthOutcome
from mailhub.templating import environment
from mailhub.web import sessions

SESSION_COOKIE = "mailhub_session"
SIGNIN_COOKIE = "mailhub_signin"  # the sign-in form's CSRF value, before there is a session
MAX_FORM = 4096
ROLE_NAMES = {"official": "Cán bộ", "secretary": "Thư ký / Văn thư", "leader": "Lãnh đạo đơn vị",
              "hr": "Sở Nội vụ (tổ chức cán bộ)", "admin": "Quản trị hệ thống"}

_SIGNIN_MESSAGES = {
    AuthOutcome.INVALID: "Email hoặc mật khẩu không đúng. / Wrong email or password.",
    AuthOutcome.LOCKED: "Đăng nhập sai quá nhiều lần; tài khoản tạm khóa, vui lòng thử lại sau. "
                        "/ Too many failed sign-ins; try again later.",
    AuthOutcome.UNAVAILABLE: "Hệ thống tạm thời không kiểm tra được tài khoản. / Accounts cannot be "
                             "checked right now.",
}


def _page(name: str, status: int = 200, **values) -> HTMLResponse:
    html = environment().get_template(f"console/{name}.html.j2").render(**values)
    response = HTMLResponse(html, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "default-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'"
    return response


def _cookie(response: Response, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/console", secure=True, httponly=True,
                        samesite="strict")


async def _form(request: Request) -> dict[str, str] | None:
    body = await request.body()
    if len(body) > MAX_FORM:
        return None
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _refused() -> HTMLResponse:
    return _page("refused", 403, title="Yêu cầu bị từ chối / Request refused",
                 text="Biểu mẫu đã hết hạn hoặc không hợp lệ; vui lòng tải lại trang. "
                      "/ The form expired or is not valid; reload the page.")


def console_router(engine: Engine, config: Config) -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False)
    authenticator = Authenticator(engine, config.auth, load_sender)

    async def visitor(request: Request) -> sessions.Visitor | None:
        return await asyncio.to_thread(sessions.find, engine, request.cookies.get(SESSION_COOKIE))

    def signin_form(message: str = "", email: str = "", status: int = 200) -> HTMLResponse:
        token = secrets.token_urlsafe(24)
        response = _page("signin", status, csrf=token, message=message, email=email)
        _cookie(response, SIGNIN_COOKIE, token, max_age=3600)
        return response

    @router.get("")
    async def home(request: Request) -> Response:
        who = await visitor(request)
        if who is None:
            return RedirectResponse("/console/signin", status_code=303)
        roles = [ROLE_NAMES[r] for r in ROLE_NAMES if r in who.roles]
        return _page("home", visitor=who, roles=roles)

    @router.get("/signin")
    async def signin_page(request: Request) -> Response:
        if await visitor(request) is not None:
            return RedirectResponse("/console", status_code=303)
        return signin_form()

    @router.post("/signin")
    async def signin(request: Request) -> Response:
        form = await _form(request)
        expected = request.cookies.get(SIGNIN_COOKIE, "")
        if form is None or not expected or not sessions.csrf_ok(expected, form.get("csrf")):
            return _refused()
        email = form.get("email", "").strip().lower()[:320]
        client = request.client.host if request.client else "?"
        answer = await authenticator.check(email, form.get("password", ""), client)
        if answer.outcome is not AuthOutcome.OK:
            return signin_form(_SIGNIN_MESSAGES[answer.outcome], email, status=401)
        official = await asyncio.to_thread(find_official, engine, email)
        token = await asyncio.to_thread(sessions.start, engine, official.id)
        response = RedirectResponse("/console", status_code=303)
        _cookie(response, SESSION_COOKIE, token, max_age=int(sessions.LIFETIME.total_seconds()))
        response.delete_cookie(SIGNIN_COOKIE, path="/console")
        return response

    @router.post("/signout")
    async def signout(request: Request) -> Response:
        who = await visitor(request)
        form = await _form(request)
        if who is None or form is None or not sessions.csrf_ok(who.csrf, form.get("csrf")):
            return _refused()
        await asyncio.to_thread(sessions.end, engine, request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/console/signin", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/console")
        return response

    return router
