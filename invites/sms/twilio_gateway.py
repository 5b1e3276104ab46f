"""SMS through Twilio's Messages API, with the ``twilio`` package.

The sender is a Messaging Service (``MG…``) or one registered sender (an
alphanumeric brandname such as ``UBNDTPHCM``, or a number); Twilio cannot take
SMS replies from Vietnamese numbers, so nothing here receives messages.
Twilio's answer to a create is only "accepted"; delivery comes later as a
status callback (:func:`validate_callback`, :func:`parse_status_callback`),
possibly out of order.
"""
from __future__ import annotations

import base64
import logging
import re
from collections.abc import Mapping
from urllib.parse import urlencode

import aiohttp
from twilio.base import values
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from invites.sms.gateway import SmsReceipt, accepted, refused
from mailhub.config import Secret

# https://www.twilio.com/docs/api/errors/<code>. Only the codes marked True are
# permanent; the 30003–30008 family also arrives later, in status callbacks.
TWILIO_ERRORS: dict[int, tuple[bool, str]] = {
    21211: (True, "invalid 'To' phone number"),
    21610: (True, "the recipient has opted out (replied STOP)"),
    21614: (True, "the 'To' number is not a mobile number"),
    30005: (True, "unknown destination handset: the number does not exist"),
    30006: (True, "landline or unreachable carrier"),
    20003: (False, "Twilio refused our credentials: check sms.twilio_account_sid and sms.twilio_auth_token"),
    20429: (False, "too many requests to Twilio"),
    30003: (False, "destination handset unreachable (switched off or out of coverage)"),
    30004: (False, "message blocked by the recipient or the carrier"),
    30007: (False, "message filtered by the carrier"),
    30008: (False, "unknown error from the carrier"),
}
_SID = re.compile(r"(SM|MM)[0-9a-f]{32}")
STATUSES = frozenset({"queued", "sending", "sent", "failed", "delivered", "undelivered", "receiving",
                      "received", "accepted", "scheduled", "read", "partially_delivered", "canceled"})


def classify_twilio_error(code: int | None, http_status: int) -> tuple[bool, str]:
    """``(permanent, reason)`` for a Twilio error (https://www.twilio.com/docs/api/errors).

    ``code`` is Twilio's error code (the ``code`` of an error answer, the
    ``ErrorCode`` of a status callback) or ``None``; ``http_status`` is the
    HTTP status of the answer, ``0`` when there was none (connection refused,
    timeout). Known codes decide first. Permanent means retrying cannot help:
    the number is invalid, not mobile, does not exist, or opted out (21211,
    21614, 30005, 30006, 21610). Everything else is temporary, on purpose:
    rate limits (20429, 429), Twilio's 5xx, carrier trouble (30003, 30004,
    30007, 30008), no answer, and our own configuration (401/20003 bad
    credentials, unknown 4xx): an administrator can fix those, and a
    retried SMS is not lost meanwhile. When unsure, retry rather than fail.
    """
    if code in TWILIO_ERRORS:
        return TWILIO_ERRORS[code]
    if http_status == 0:
        return False, "no answer from Twilio"
    if http_status in (401, 403):
        return False, f"Twilio refused our credentials (HTTP {http_status})"
    if http_status == 429:
        return False, "too many requests to Twilio"
    if http_status >= 500:
        return False, f"Twilio server error (HTTP {http_status})"
    suffix = f" error {code}" if code else ""
    return False, f"Twilio{suffix} (HTTP {http_status})"


def _reveal(token: Secret | str) -> str:
    # Secret(Secret(...)) would wrap the masked text: unwrap instead of converting.
    return token.reveal() if isinstance(token, Secret) else token


class TwilioGateway:
    """Send each SMS with ``client.messages.create_async`` (one HTTP request).

    ``status_callback``: the public URL of our status webhook; each SMS's
    ``reference`` is added to it as ``ref=`` so a callback can be matched even
    if the SID was never stored. ``base_url`` replaces ``https://api.twilio.com``
    (tests point it at a local stand-in). ``timeout``: seconds for the whole request.
    """

    def __init__(self, account_sid: str, auth_token: Secret, *, messaging_service_sid: str = "",
                 from_: str = "", status_callback: str = "", base_url: str | None = None,
                 timeout: float = 30.0) -> None:
        if not account_sid or not auth_token:
            raise ValueError("Twilio: account_sid and auth_token are required")
        if bool(messaging_service_sid) == bool(from_):
            raise ValueError("Twilio: give exactly one of messaging_service_sid or from_")
        for name, url in (("status_callback", status_callback), ("base_url", base_url)):
            if url and not url.startswith(("http://", "https://")):
                raise ValueError(f"Twilio: {name}: expected an http:// or https:// address, got {url!r}")
        self.account_sid = account_sid
        self.sender = {"messaging_service_sid": messaging_service_sid} if messaging_service_sid else {"from_": from_}
        self.status_callback = status_callback
        self.timeout = timeout
        self._http = _AiohttpClient(timeout)
        # A non-empty environment: the client would otherwise read TWILIO_EDGE and
        # TWILIO_REGION from os.environ, and configuration comes only from the config file.
        self._client = Client(account_sid, _reveal(auth_token), http_client=self._http,
                              environment={"TWILIO_EDGE": "", "TWILIO_REGION": ""})
        if base_url:
            self._client.api.base_url = base_url  # the Domain every Messages URL is built from

    def __repr__(self) -> str:
        [(key, value)] = self.sender.items()
        return f"TwilioGateway(account_sid={self.account_sid!r}, {key}={value!r})"

    async def send(self, to: str, text: str, *, reference: str, unicode: bool = False) -> SmsReceipt:
        callback = values.unset
        if self.status_callback:
            joiner = "&" if "?" in self.status_callback else "?"
            callback = f"{self.status_callback}{joiner}{urlencode({'ref': reference})}"
        try:
            message = await self._client.messages.create_async(
                to=to, body=text, status_callback=callback,
                # Smart Encoding swaps look-alike characters (curly quotes, ...) for GSM-7
                # ones; unicode=True asks for the text exactly as written.
                smart_encoded=not unicode, **self.sender)
        except (TwilioRestException, TwilioServiceException) as exc:
            # The twilio package uses the HTTP status as the code when the answer has none.
            code = exc.code if isinstance(exc.code, int) and exc.code >= 10000 else None
            permanent, reason = classify_twilio_error(code, exc.status)
            said = getattr(exc, "msg", "") or getattr(exc, "detail", "") or ""
            if code not in TWILIO_ERRORS and said:  # our table has no words for it: keep Twilio's
                reason = f"{reason}: {said}"
            return refused(reason, permanent=permanent, code=str(code or ""))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            # The request may have reached Twilio before the connection broke: a retry
            # can send the SMS twice (at least once, as the mail queue).
            permanent, reason = classify_twilio_error(None, 0)
            return refused(f"{reason}: {exc.__class__.__name__} {exc}".strip(), permanent=permanent, status="unsent")
        return accepted(message.sid or "", str(message.status or ""))

    async def close(self) -> None:
        await self._http.close()


class _AiohttpClient(AsyncHttpClient):
    """The HTTP client behind :class:`twilio.rest.Client` (``http_client=``).

    twilio 9.13's own ``AsyncTwilioHttpClient`` builds ``aiohttp.BasicAuth``,
    deprecated in aiohttp 3.14 (a DeprecationWarning, an error under our test
    settings), ignores its ``timeout`` (here: aiohttp's total timeout, for the
    whole request and answer) and opens its session when constructed,
    which needs a running event loop. This one sends the same request.
    """

    def __init__(self, timeout: float) -> None:
        super().__init__(logging.getLogger("invites.sms.twilio"), is_async=True, timeout=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def request(self, method: str, uri: str, params: dict | None = None, data: dict | None = None,
                      headers: dict | None = None, auth: tuple[str, str] | None = None,
                      timeout: float | None = None, allow_redirects: bool = False) -> Response:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        headers = dict(headers or {})
        if auth:  # HTTP Basic with the account SID and auth token (RFC 7617)
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
        body = urlencode(data, doseq=True) if data else None
        # timeout=None would switch aiohttp's timeout off: leave the session's in place unless given.
        extra = {"timeout": aiohttp.ClientTimeout(total=timeout)} if timeout else {}
        async with self._session.request(method, uri, params=params or None, data=body, headers=headers,
                                         allow_redirects=allow_redirects, **extra) as resp:
            return Response(resp.status, await resp.text(), dict(resp.headers))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def validate_callback(auth_token: Secret, url: str, params: Mapping[str, str], signature: str | None) -> bool:
    """Whether ``X-Twilio-Signature`` ``signature`` signs this POST (RequestValidator).

    ``url`` must be the full URL Twilio requested, query included, as Twilio
    saw it (the public https address, not the one behind a reverse proxy);
    ``params`` the form fields. Trusts nothing else: a missing signature or an
    empty token is refused.
    """
    if not signature or not isinstance(signature, str) or not auth_token:
        return False
    return RequestValidator(_reveal(auth_token)).validate(url, dict(params), signature)


def parse_status_callback(params: Mapping[str, str]) -> tuple[str, str, int | None]:
    """``(sid, status, error_code)`` of a Twilio status callback's form fields.

    Call it after :func:`validate_callback`. Raises ValueError naming the field
    when ``MessageSid``, ``MessageStatus`` or ``ErrorCode`` is missing or malformed.
    """
    sid = params.get("MessageSid") or params.get("SmsSid") or ""
    if not _SID.fullmatch(sid):
        raise ValueError(f"MessageSid: not a Twilio message SID: {sid[:40]!r}")
    status = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
    if status not in STATUSES:
        raise ValueError(f"MessageStatus: unknown status {status[:40]!r}")
    code = params.get("ErrorCode") or ""
    if code and not (code.isascii() and code.isdigit()):
        raise ValueError(f"ErrorCode: not a number: {code[:40]!r}")
    return sid, status, int(code) if code else None
