"""What every console page shares: who is signed in, which roles may open it, the page's
language, rendering, and forms with their CSRF check.

A section of the console is a module with ``router(console: Console) -> APIRouter``; its
routes take the visitor from a guard::

    @router.get("/meetings")
    async def meetings(request: Request, who: Visitor = Depends(console.allow("secretary"))):
        return console.render(request, who, "meetings/list", title=..., rows=...)

A guard answers for the route when the visitor may not go on: no session → redirect to the
sign-in page, a role missing → 403 page. Forms are read with :meth:`Console.form`, which
refuses (403) a form without the session's CSRF token before anything in it is used.

Language: Vietnamese unless the visitor chose English (cookie ``mailhub_lang``, set by
``/console/lang``). Templates write both texts side by side, ``{{ t("Cuộc họp", "Meetings") }}``,
so a page's two languages are read and changed together.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qsl, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.engine import Engine

from mailhub.config import Config
from mailhub.http.bodies import read_limited
from mailhub.signing import DkimSigner
from mailhub.templating import environment
from mailhub.web import sessions
from mailhub.web.sessions import Visitor

SESSION_COOKIE = "mailhub_session"
LANG_COOKIE = "mailhub_lang"
LANGS = ("vi", "en")
# Forms are text: a meeting with 2,000 typed addresses is about 75 KB. Uploads have their own limit.
MAX_FORM = 256 * 1024
# No JavaScript anywhere in the console: script-src 'none'.
CSP = ("default-src 'self'; script-src 'none'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
       "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")

# The console's sections, in the order the menu shows them: (path, Vietnamese, English, roles
# that see it; empty = every signed-in official).
MENU = (
    ("/console", "Trang chính", "Home", ()),
    ("/console/me", "Điểm của tôi", "My usage and score", ()),
    ("/console/meetings", "Cuộc họp", "Meetings", ("secretary", "admin")),
    ("/console/scores", "Điểm thi đua", "Scores", ("hr", "leader", "admin")),
    ("/console/queue", "Hàng đợi thư", "Mail queue", ("admin",)),
    ("/console/refusals", "Thư bị từ chối", "Refused mail", ("admin",)),
    ("/console/setup", "DKIM và cấu hình", "DKIM and settings", ("admin",)),
    ("/console/directory", "Danh bạ", "Directory", ("admin",)),
)


EXPIRED_FORM = ("Biểu mẫu đã hết hạn hoặc không hợp lệ; vui lòng tải lại trang.",
                "The form expired or is not valid; reload the page.")  # a form without its CSRF token


class Stop(Exception):
    """Ends a console request with ``response`` (a redirect to sign in, a refusal page).
    Answered by the handler :func:`mailhub.http.app.create_app` installs."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def language(request: Request) -> str:
    lang = request.cookies.get(LANG_COOKIE, "vi")
    return lang if lang in LANGS else "vi"


def translator(lang: str) -> Callable[[str, str], str]:
    return (lambda vi, en: en) if lang == "en" else (lambda vi, en: vi)


def safe_next(path: str | None) -> str:
    """A place inside the console to go back to; anything else (another site) becomes home."""
    if not path or not path.startswith("/console") or "//" in path or "\\" in path or ".." in path or any(
            ord(c) < 0x21 for c in path):
        return "/console"
    return path


def secure_headers(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Content-Security-Policy"] = CSP
    return response


def set_cookie(response: Response, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/console", secure=True, httponly=True,
                        samesite="strict")


def menu_for(roles: frozenset[str], lang: str) -> list[tuple[str, str]]:
    t = translator(lang)
    return [(path, t(vi, en)) for path, vi, en, need in MENU if not need or roles & set(need)]


@dataclass
class Console:
    """The console's shared parts, built once by :func:`mailhub.web.console.console_router`.

    ``signer_getter`` and ``rsvp_key``: what issuing invitations needs (the meetings pages).
    """

    engine: Engine
    config: Config
    signer_getter: Callable[[], Awaitable[DkimSigner]] | None = None
    rsvp_key: bytes = b""
    extras: dict[str, Any] = field(default_factory=dict)

    # ---- who is there ------------------------------------------------------------------

    async def visitor(self, request: Request) -> Visitor | None:
        return await asyncio.to_thread(sessions.find, self.engine, request.cookies.get(SESSION_COOKIE))

    def allow(self, *roles: str) -> Callable[[Request], Awaitable[Visitor]]:
        """A FastAPI dependency: the signed-in visitor, who must hold one of ``roles``
        (none given: any signed-in official)."""

        async def guard(request: Request) -> Visitor:
            who = await self.visitor(request)
            if who is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                target = safe_next(target)
                query = "?" + urlencode({"next": target}) if target != "/console" else ""
                raise Stop(RedirectResponse("/console/signin" + query, status_code=303))
            if roles and not who.roles & set(roles):
                raise Stop(self.refusal(request, who, 403,
                                        "Bạn không có quyền mở trang này.",
                                        "You may not open this page."))
            return who

        return guard

    # ---- pages -------------------------------------------------------------------------

    def render(self, request: Request, who: Visitor | None, name: str, status: int = 200,
               **values: Any) -> HTMLResponse:
        """``templates/console/<name>.html.j2`` with the frame's values: ``t``, ``lang``,
        ``visitor``, ``csrf``, ``menu``, ``here`` (the path) and ``notice`` (a message named by
        ``?done=`` after a form, looked up in ``values['notices']``, never echoed)."""
        lang = language(request)
        notices = values.pop("notices", {})
        done = request.query_params.get("done", "")
        notice = notices.get(done)
        context = dict(t=translator(lang), lang=lang, visitor=who, csrf=who.csrf if who else "",
                       menu=menu_for(who.roles, lang) if who else [], here=request.url.path,
                       here_full=str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""),
                       notice=translator(lang)(*notice) if notice else "")
        context.update(values)
        html = environment().get_template(f"console/{name}.html.j2").render(**context)
        return secure_headers(HTMLResponse(html, status_code=status))

    def refusal(self, request: Request, who: Visitor | None, status: int, vi: str, en: str) -> HTMLResponse:
        t = translator(language(request))
        return self.render(request, who, "refused", status, title=t("Không thực hiện được", "Not possible"),
                           text=t(vi, en))

    def not_found(self, request: Request, who: Visitor | None) -> HTMLResponse:
        return self.refusal(request, who, 404, "Không tìm thấy.", "Not found.")

    # ---- forms -------------------------------------------------------------------------

    async def form(self, request: Request, who: Visitor, limit: int = MAX_FORM) -> dict[str, str]:
        """The posted form (``application/x-www-form-urlencoded``), its CSRF token checked
        against the session's. A repeated field keeps its last value; use :meth:`form_lists`
        for fields that repeat (checkboxes)."""
        return {k: v[-1] for k, v in (await self.form_lists(request, who, limit)).items()}

    async def form_lists(self, request: Request, who: Visitor, limit: int = MAX_FORM) -> dict[str, list[str]]:
        body = await read_body(request, limit)
        if body is None:
            raise Stop(self.refusal(request, who, 413,
                                    f"Biểu mẫu quá lớn (tối đa {limit // 1024} KB); chưa có gì được lưu. "
                                    "Hãy chia thành nhiều lần.",
                                    f"The form is too large (at most {limit // 1024} KB); nothing was saved. "
                                    "Split it into several."))
        values: dict[str, list[str]] = {}
        for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            values.setdefault(key, []).append(value)
        token = values.get("csrf", [""])[-1]
        if not sessions.csrf_ok(who.csrf, token):
            raise Stop(self.refusal(request, who, 403, *EXPIRED_FORM))
        return values

    def check_csrf(self, request: Request, who: Visitor, token: str | None) -> None:
        """For forms not read by :meth:`form` (a file upload): refuse without the session's token."""
        if not sessions.csrf_ok(who.csrf, token):
            raise Stop(self.refusal(request, who, 403, *EXPIRED_FORM))


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it is longer than ``limit`` bytes (read no further)."""
    return await read_limited(request, limit)


def done(path: str, key: str) -> RedirectResponse:
    """After a form: back to ``path`` with the notice ``key`` (Post/Redirect/Get)."""
    separator = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{separator}done={key}", status_code=303)
