"""HTTP endpoints that gateways call: Twilio's message status callbacks.

``POST /twilio/status`` is accepted only with a valid ``X-Twilio-Signature``
(HMAC-SHA1 of the URL Twilio called and the form fields, under the account's
auth token): the URL checked is ``[invites] public_url`` + the path and query
Twilio used, because behind a reverse proxy the request's own URL is not the
one Twilio signed. Anything else gets 403 and changes nothing.
"""
from __future__ import annotations

import asyncio
import logging
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from sqlalchemy.engine import Engine

from invites.sms.reports import TWILIO_STATES, apply_report
from invites.sms.twilio_gateway import classify_twilio_error, parse_status_callback, validate_callback
from mailhub.config import Config
from mailhub.http.bodies import read_limited
from mailhub.models import utcnow

log = logging.getLogger("mailhub.sms")

MAX_BODY = 16 * 1024  # a status callback is a few hundred bytes

# The OpenAPI description: the callback is read by hand (its signature covers the raw fields).
_TEXT = {"text/plain": {"schema": {"type": "string"}}}
_CALLBACK = {
    "parameters": [{"name": "X-Twilio-Signature", "in": "header", "required": True, "schema": {"type": "string"},
                    "description": "Base64 HMAC-SHA1 of the URL Twilio called and the form fields, "
                                   "under the account's auth token"}],
    "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
        "type": "object", "required": ["MessageSid", "MessageStatus"],
        "properties": {"MessageSid": {"type": "string", "pattern": "^(SM|MM)[0-9a-f]{32}$"},
                       "MessageStatus": {"type": "string", "description": "queued, sent, delivered, undelivered, "
                                                                          "failed, …"},
                       "ErrorCode": {"type": "string", "pattern": "^[0-9]*$"}}}}}},
}
_ANSWERS = {
    200: {"description": "`ok` (applied, if it moves the SMS forward) or `ignored` (a status that changes "
                         "nothing)", "content": _TEXT},
    400: {"description": "A signed callback whose fields are malformed; the text names the field",
          "content": _TEXT},
    403: {"description": "The signature is missing or wrong; nothing changes", "content": _TEXT},
    413: {"description": "A body over 16 KiB", "content": _TEXT},
}


def twilio_router(engine: Engine, config: Config) -> APIRouter:
    router = APIRouter(tags=["webhooks"])
    token = config.sms.twilio_auth_token
    public = config.invites.public_url.rstrip("/")

    @router.post("/twilio/status", summary="Twilio message status callback (signed)", response_class=PlainTextResponse,
                 responses=_ANSWERS, openapi_extra=_CALLBACK, operation_id="twilioStatusCallback")
    async def twilio_status(request: Request) -> Response:
        """Moves the SMS the callback names to its new state (forward only)."""
        body = await read_limited(request, MAX_BODY)
        if body is None:
            return Response("too large\n", status_code=413, media_type="text/plain")
        params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        url = public + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if not validate_callback(token, url, params, request.headers.get("X-Twilio-Signature", "")):
            log.warning("a Twilio callback with a bad signature was refused (from %s)",
                        request.client.host if request.client else "?")
            return Response("forbidden\n", status_code=403, media_type="text/plain")
        try:
            sid, status, code = parse_status_callback(params)
        except ValueError as exc:
            return Response(f"{exc}\n", status_code=400, media_type="text/plain")
        state = TWILIO_STATES.get(status)
        if state is None:
            return Response("ignored\n", media_type="text/plain")
        reason = "" if state != "failed" else classify_twilio_error(code, 200)[1] + (f" (code {code})" if code else "")
        changed = await asyncio.to_thread(apply_report, engine, sid, state, reason, utcnow())
        log.info("sms report sid=%s status=%s applied=%s", sid, status, changed)
        return Response("ok\n", media_type="text/plain")

    return router
