"""The console's sign-in, sign-out, language choice and home page, and the assembly of its
sections (``/console``).

Sign-in checks the directory account with the relay's own :class:`~mailhub.smtp.auth.Authenticator`
(argon2id, and the same lockout per account and per client address as SMTP AUTH), then starts
a session (:mod:`mailhub.web.sessions`) whose token goes in a ``Secure``, ``HttpOnly``,
``SameSite=Strict`` cookie. Every form carries a CSRF token: the session's once signed in, and
before that a one-time value also set as a cookie (double submit). A form without the right
token is refused (403) before anything else is looked at. Pages are server-rendered from
``templates/console/`` (:mod:`mailhub.web.pages`); each section is a module of its own.
"""
from __future__ import annotations

import asyncio
import secrets
from typing import Awaitable, Callable
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.engine import Engine

from mailhub.config import Config
from mailhub.directory import find_official, load_sender
from mailhub.signing import DkimSigner
from mailhub.smtp.auth import Authenticator, AuthOutcome
from mailhub.web import sessions
from mailhub.web.pages import (EXPIRED_FORM, LANG_COOKIE, LANGS, SESSION_COOKIE, Console, Visitor, language, read_body,
                               safe_next, set_cookie, translator)

SIGNIN_COOKIE = "mailhub_signin"  # the sign-in form's CSRF value, before there is a session
MAX_SIGNIN_FORM = 4096
ROLE_NAMES = {"official": ("Cán bộ", "Official"), "secretary": ("Thư ký / Văn thư", "Secretary"),
              "leader": ("Lãnh đạo đơn vị", "Unit leader"),
              "hr": ("Sở Nội vụ (tổ chức cán bộ)", "HR (Department of Home Affairs)"),
              "admin": ("Quản trị hệ thống", "IT administrator")}

_SIGNIN_MESSAGES = {
    AuthOutcome.INVALID: ("Email hoặc mật khẩu không đúng.", "Wrong email or password."),
    AuthOutcome.LOCKED: ("Đăng nhập sai quá nhiều lần; tài khoản tạm khóa, vui lòng thử lại sau.",
                         "Too many failed sign-ins; try again later."),
    AuthOutcome.UNAVAILABLE: ("Hệ thống tạm thời không kiểm tra được tài khoản.",
                              "Accounts cannot be checked right now."),
}


def _sections() -> list:
    from mailhub.web import directory_pages, meetings, queue_pages, refusals, scores_pages, setup_pages

    return [meetings, scores_pages, queue_pages, refusals, setup_pages, directory_pages]


def console_router(engine: Engine, config: Config,
                   signer_getter: Callable[[], Awaitable[DkimSigner]] | None = None,
                   rsvp_key: bytes = b"") -> APIRouter:
    console = Console(engine, config, signer_getter, rsvp_key)
    router = APIRouter(prefix="/console", include_in_schema=False)
    authenticator = Authenticator(engine, config.auth, load_sender)

    def signin_form(request: Request, message: tuple[str, str] | None = None, email: str = "",
                    status: int = 200, next_path: str = "/console") -> HTMLResponse:
        token = secrets.token_urlsafe(24)
        text = translator(language(request))(*message) if message else ""
        response = console.render(request, None, "signin", status, signin_csrf=token, message=text,
                                  email=email, next_path=next_path)
        set_cookie(response, SIGNIN_COOKIE, token, max_age=3600)
        return response

    @router.get("")
    async def home(request: Request, who: Visitor = Depends(console.allow())) -> Response:
        t = translator(language(request))
        roles = [t(*ROLE_NAMES[r]) for r in ROLE_NAMES if r in who.roles]
        return console.render(request, who, "home", roles=roles)

    @router.get("/signin")
    async def signin_page(request: Request) -> Response:
        next_path = safe_next(request.query_params.get("next"))
        if await console.visitor(request) is not None:
            return RedirectResponse(next_path, status_code=303)
        return signin_form(request, next_path=next_path)

    @router.post("/signin")
    async def signin(request: Request) -> Response:
        body = await read_body(request, MAX_SIGNIN_FORM)
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)) if body is not None else None
        expected = request.cookies.get(SIGNIN_COOKIE, "")
        if form is None or not expected or not sessions.csrf_ok(expected, form.get("csrf")):
            return console.refusal(request, None, 403, *EXPIRED_FORM)
        email = form.get("email", "").strip().lower()[:320]
        next_path = safe_next(form.get("next"))
        client = request.client.host if request.client else "?"
        answer = await authenticator.check(email, form.get("password", ""), client)
        if answer.outcome is not AuthOutcome.OK:
            return signin_form(request, _SIGNIN_MESSAGES[answer.outcome], email, status=401, next_path=next_path)
        official = await asyncio.to_thread(find_official, engine, email)
        token = await asyncio.to_thread(sessions.start, engine, official.id)
        response = RedirectResponse(next_path, status_code=303)
        set_cookie(response, SESSION_COOKIE, token, max_age=int(sessions.LIFETIME.total_seconds()))
        response.delete_cookie(SIGNIN_COOKIE, path="/console")
        return response

    @router.post("/signout")
    async def signout(request: Request, who: Visitor = Depends(console.allow())) -> Response:
        await console.form(request, who)
        await asyncio.to_thread(sessions.end, engine, request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/console/signin", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/console")
        return response

    @router.get("/lang/{lang}")
    async def choose_language(lang: str, request: Request) -> Response:
        """Switch the pages' language (a link, not a form: it changes nothing but the cookie)."""
        response = RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
        if lang in LANGS:
            set_cookie(response, LANG_COOKIE, lang, max_age=365 * 24 * 3600)
        return response

    for section in _sections():
        router.include_router(section.router(console))

    @router.get("/{rest:path}")
    async def unknown(rest: str, request: Request) -> Response:
        return console.not_found(request, await console.visitor(request))

    return router
