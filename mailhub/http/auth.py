"""The JSON API's two shared pieces: who is calling (a bearer API token), and how
every error looks.

Authentication: ``Authorization: Bearer mh_...`` (RFC 6750 §2.1), checked by
:func:`mailhub.tokens.check_token` against the database on every request, so a
revoked token, an expired one or an official made inactive stops working at once.
A missing or refused token answers 401 with ``WWW-Authenticate: Bearer`` (RFC 6750
§3); the client is not told why (the log is, with the token's id, never the token).
A valid token whose official lacks the role answers 403. The token is checked before
the body: without a valid one, even a body that is not JSON answers 401 (only a body
over :data:`MAX_BODY` is refused first, with 413, unread).

Errors: every answer that is not a success is one JSON document,
``{"error": code, "message": {"vi": ..., "en": ...}, "errors": [{"field", "message"}]}``
— also for a body that does not parse or validate (FastAPI's own 422 shape is
replaced), and for an unexpected failure (500 with a reference that is in the log
next to the traceback). Routers get this by ``APIRouter(route_class=ApiRoute)``.
"""
from __future__ import annotations

import asyncio
import logging
import re
import secrets
from typing import Any, Awaitable, Callable, Iterable

from fastapi import Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from mailhub.http.bodies import read_limited
from mailhub.tokens import TokenOwner, check_token

log = logging.getLogger("mailhub.http")

Caller = TokenOwner  # the official a request acts for: email, full_name, unit_code, roles
MAX_BODY = 2 * 1024 * 1024  # a meeting naming 10,000 attendees one by one is ~400 kB
_BODY_METHODS = {"POST", "PUT", "PATCH"}

# status → (code, Vietnamese, English), for errors raised without a message of their own
MESSAGES: dict[int, tuple[str, str, str]] = {
    400: ("bad_request", "Yêu cầu không hợp lệ.", "The request is not valid."),
    401: ("unauthorized", "Cần mã truy cập (API token) hợp lệ.", "A valid API token is required."),
    403: ("forbidden", "Tài khoản không có quyền thực hiện thao tác này.", "Your account may not do this."),
    404: ("not_found", "Không tìm thấy.", "Not found."),
    405: ("method_not_allowed", "Phương thức không được hỗ trợ.", "Method not allowed."),
    409: ("conflict", "Không thể thực hiện ở trạng thái hiện tại.", "Not possible in the current state."),
    413: ("too_large", "Yêu cầu quá lớn.", "The request is too large."),
    422: ("invalid", "Dữ liệu gửi lên có lỗi.", "The request has problems."),
    500: ("internal", "Lỗi nội bộ.", "Internal error."),
    503: ("unavailable", "Cơ sở dữ liệu không phản hồi, vui lòng thử lại sau.",
          "The database does not answer; try again later."),
}


class Message(BaseModel):
    vi: str
    en: str


class Problem(BaseModel):
    field: str  # e.g. "end", "guests[0].phone"; "" when the problem is about the whole request
    message: str


class ErrorBody(BaseModel):
    error: str  # a stable code: unauthorized, forbidden, not_found, invalid, conflict, ...
    message: Message
    errors: list[Problem] = []


class ApiError(HTTPException):
    """An error answer; raised anywhere in a route or dependency of an :class:`ApiRoute`."""

    def __init__(self, status: int, vi: str | None = None, en: str | None = None, *,
                 errors: Iterable[Problem] = (), headers: dict[str, str] | None = None) -> None:
        code, default_vi, default_en = MESSAGES.get(status, ("error", "Lỗi.", "Error."))
        self.body = ErrorBody(error=code, message=Message(vi=vi or default_vi, en=en or default_en),
                              errors=list(errors))
        super().__init__(status, self.body.model_dump(), headers)

    def response(self) -> Response:
        return JSONResponse(self.body.model_dump(), self.status_code, headers=self.headers)


_FIELD = re.compile(r"[a-z_][a-z0-9_]*(\[\d+\])*(\.[a-z_][a-z0-9_]*(\[\d+\])*)*")  # end, guests[0].phone


def problems(lines: str, source: str = "") -> list[Problem]:
    """An InputError's lines (``[source: ]field: problem``) as :class:`Problem` items. A
    line whose prefix is not a field name (``meeting 12: nothing changes``) is about the
    whole request: field ``""`` and the line as it is."""
    found = []
    for line in lines.splitlines():
        if source and line.startswith(f"{source}: "):
            line = line[len(source) + 2:]
        field, sep, message = line.partition(": ")
        found.append(Problem(field=field, message=message) if sep and _FIELD.fullmatch(field)
                     else Problem(field="", message=line))
    return found


_CHALLENGE = {"WWW-Authenticate": {"description": 'RFC 6750 §3: `Bearer realm="mailhub"`, with '
                                                  '`error="invalid_token"` when a token was given',
                                   "schema": {"type": "string"}}}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route, so the OpenAPI schema documents its error answers
    (each an :class:`ErrorBody`; a 401 with its ``WWW-Authenticate`` challenge)."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        documented[status] = {"model": ErrorBody, "description": MESSAGES[status][2]}
        if status == 401:
            documented[status]["headers"] = _CHALLENGE
    return documented


def _field(loc: Iterable[Any]) -> str:
    """``("body", "guests", 0, "name")`` → ``guests[0].name``."""
    text = ""
    for part in list(loc)[1:]:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _validation_error(exc: RequestValidationError) -> ApiError:
    found = []
    for err in exc.errors():
        message = err.get("msg", "invalid")
        if err.get("type") == "json_invalid":
            found.append(Problem(field="", message=f"not valid JSON: {err.get('ctx', {}).get('error', '')}"))
            continue
        found.append(Problem(field=_field(err.get("loc", ())), message=message))
    return ApiError(422, errors=found)


def _framework_error(exc: StarletteHTTPException) -> ApiError:
    """An error FastAPI raised before the route ran, in the API's shape. Its 400 means
    the body could not be decoded at all (e.g. bytes that are not UTF-8, which JSON
    requires: RFC 8259 §8.1; nested deeper or a number longer than the parser takes): a
    body that is not JSON, so 422 like any other."""
    if exc.status_code == 400:
        return ApiError(422, errors=[Problem(field="", message="not valid JSON: the body cannot be decoded "
                                                               "(not UTF-8, nested too deep or a number too long)")])
    return ApiError(exc.status_code if exc.status_code in MESSAGES else 400, headers=exc.headers)


async def _bounded(request: Request) -> Request:
    """``request`` with its body read, at most :data:`MAX_BODY` bytes (413 beyond)."""
    body = await read_limited(request, MAX_BODY)
    if body is None:
        raise ApiError(413)
    replayed = False

    async def receive() -> dict[str, Any]:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await request.receive()  # then: the client's disconnect, if it comes

    return Request(request.scope, receive)


class ApiRoute(APIRoute):
    """A route whose every failure is an :class:`ErrorBody` (see the module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                try:
                    if request.method in _BODY_METHODS:
                        request = await _bounded(request)
                    return await handler(request)
                except (RequestValidationError, StarletteHTTPException) as exc:
                    raise await self._refusal(request, exc) from None
            except ApiError as exc:
                return exc.response()
            except ClientDisconnect:  # gone while sending the body: nobody to answer
                return Response(status_code=400)
            except OperationalError as exc:
                log.warning("API %s %s: the database does not answer: %s", request.method, request.url.path,
                            (str(exc.orig).strip().splitlines() or ["?"])[0])
                return ApiError(503).response()
            except Exception:
                error_id = secrets.token_hex(6)
                log.exception("API %s %s failed (error id %s)", request.method, request.url.path, error_id)
                return ApiError(500, f"Lỗi nội bộ, mã tham chiếu {error_id}.",
                                f"Internal error, reference {error_id}.").response()

        return guarded

    async def _refusal(self, request: Request, exc: Exception) -> ApiError:
        """The answer to a request refused before the route ran. FastAPI decodes the
        body before it runs the dependencies, so a body that is not JSON would be a
        422 even without a token: the token is checked first (401 comes before 422)."""
        if isinstance(exc, ApiError):
            return exc
        if isinstance(exc, RequestValidationError):
            if any(err.get("type") == "json_invalid" for err in exc.errors()):
                await self._authenticate(request)
            return _validation_error(exc)
        await self._authenticate(request)
        return _framework_error(exc)

    async def _authenticate(self, request: Request) -> None:
        """Raise the 401 of this route's :class:`ApiAuth`, if it has one and the request's
        token is not valid."""
        dependants = list(self.dependant.dependencies)
        while dependants:
            dependant = dependants.pop()
            if isinstance(dependant.call, ApiAuth):
                await dependant.call(request, await _bearer(request))
                return
            dependants.extend(dependant.dependencies)


# ---- authentication -------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, scheme_name="ApiToken",
                     description="An API token from `mailhub token create EMAIL`: `Authorization: Bearer mh_...`")


class ApiAuth:
    """FastAPI dependency: the :data:`Caller` of a request with a valid API token, else 401."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def __call__(self, request: Request,
                       credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Caller:
        if credentials is None:
            raise ApiError(401, headers={"WWW-Authenticate": 'Bearer realm="mailhub"'})
        verdict = await asyncio.to_thread(check_token, self.engine, credentials.credentials)
        if verdict.owner is None:
            log.info("API token refused: %s%s (from %s)", verdict.reason,
                     f", token id {verdict.token_id}" if verdict.token_id else "",
                     request.client.host if request.client else "?")
            raise ApiError(401, "Mã truy cập không hợp lệ, đã hết hạn hoặc đã bị thu hồi.",
                           "The API token is not valid, has expired or was revoked.",
                           headers={"WWW-Authenticate": 'Bearer realm="mailhub", error="invalid_token"'})
        return verdict.owner

    def requiring(self, *roles: str) -> Callable[..., Awaitable[Caller]]:
        """A dependency: the caller if they have one of ``roles``, else 403."""
        wanted = frozenset(roles)

        async def caller_with_role(caller: Caller = Depends(self)) -> Caller:
            if not caller.roles & wanted:
                raise ApiError(403, f"Cần một trong các vai trò: {', '.join(sorted(wanted))}.",
                               f"This needs one of the roles: {', '.join(sorted(wanted))}.")
            return caller

        return caller_with_role
