"""A local stand-in for Twilio's Messages API, for the real ``twilio`` client.

A real HTTP server on 127.0.0.1 (ephemeral port, background thread) that answers
``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` the way Twilio does
(https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource):
HTTP Basic auth with the account SID and auth token, form fields ``To``,
``Body``, ``From`` or ``MessagingServiceSid``, ``StatusCallback``; a ``201``
with the message resource as JSON, or Twilio's error JSON
(``{"code", "message", "more_info", "status"}``) for the failures a test scripts
per ``To`` number. Every request is recorded, including refused ones.

:func:`signed_callback` builds a status callback the way Twilio signs it
(``X-Twilio-Signature``), for the webhook tests.
"""
from __future__ import annotations

import base64
import json
import secrets
import threading
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from twilio.request_validator import RequestValidator

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "standin-auth-token-0123456789abcdef"
API_PREFIX = "/2010-04-01/Accounts/"


def error_body(status: int, code: int, message: str) -> dict:
    """Twilio's legacy error shape, as the ``twilio`` package parses it."""
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}


# The failures Twilio answers at create time, keyed by a name a test can use.
FAILURES = {
    "invalid": (400, 21211, "The 'To' number {to} is not a valid phone number."),
    "unsubscribed": (400, 21610, "Attempt to send to unsubscribed recipient"),
    "not_mobile": (400, 21614, "'To' number is not a valid mobile number"),
    "rate_limited": (429, 20429, "Too Many Requests"),
    "server_error": (500, 20500, "An internal server error has occurred"),
}


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    form: dict[str, str]

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        scheme, _, value = self.headers.get("Authorization", "").partition(" ")
        if scheme != "Basic":
            return None
        user, _, password = base64.b64decode(value).decode().partition(":")
        return user, password


@dataclass
class TwilioStandin:
    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    failures: dict[str, str] = field(default_factory=dict)  # To number -> key of FAILURES
    raw_failures: dict[str, tuple[int, str]] = field(default_factory=dict)  # To -> (status, non-JSON body)
    requests: list[Recorded] = field(default_factory=list)
    thread: threading.Thread | None = None

    def start(self) -> TwilioStandin:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode(), keep_blank_values=True).items()}
                status, body = standin.answer(self.path, dict(self.headers), form)
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        """Stop answering (a test may stop it early to see connections refused)."""
        if self.thread is None:
            return
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
        self.thread = None

    def answer(self, path: str, headers: dict[str, str], form: dict[str, str]) -> tuple[int, dict | str]:
        recorded = Recorded(path, headers, form)
        self.requests.append(recorded)
        if recorded.basic_auth != (self.account_sid, self.auth_token):
            return 401, error_body(401, 20003, "Authenticate")
        if path != f"{API_PREFIX}{self.account_sid}/Messages.json":
            return 404, error_body(404, 20404, f"The requested resource {path} was not found")
        to = form.get("To", "")
        if not to or not form.get("Body") or ("From" in form) == ("MessagingServiceSid" in form):
            return 400, error_body(400, 21604, "A 'To', a 'Body' and one of 'From' or 'MessagingServiceSid' "
                                               "are required")
        if to in self.raw_failures:
            return self.raw_failures[to]
        if to in self.failures:
            status, code, message = FAILURES[self.failures[to]]
            return status, error_body(status, code, message.format(to=to))
        return 201, self.message(form)

    def message(self, form: dict[str, str]) -> dict:
        sid = "SM" + secrets.token_hex(16)
        now = formatdate(usegmt=True)
        service = form.get("MessagingServiceSid")
        body = form["Body"]
        gsm = all(ord(ch) < 128 for ch in body)  # rough: enough for a stand-in
        single, part = (160, 153) if gsm else (70, 67)
        segments = 1 if len(body) <= single else -(-len(body) // part)
        uri = f"{API_PREFIX}{self.account_sid}/Messages/{sid}"
        return {
            "account_sid": self.account_sid, "api_version": "2010-04-01", "body": body,
            "date_created": now, "date_sent": None, "date_updated": now, "direction": "outbound-api",
            "error_code": None, "error_message": None, "from": None if service else form["From"],
            "messaging_service_sid": service, "num_media": "0", "num_segments": str(segments),
            "price": None, "price_unit": "USD", "sid": sid, "status": "accepted" if service else "queued",
            "subresource_uris": {"media": f"{uri}/Media.json"}, "to": form["To"], "uri": f"{uri}.json",
        }


def signed_callback(url: str, params: dict[str, str], auth_token: str = AUTH_TOKEN) -> str:
    """The ``X-Twilio-Signature`` Twilio would send with ``params`` POSTed to ``url``."""
    return RequestValidator(auth_token).compute_signature(url, params)


def status_callback_params(sid: str, status: str, error_code: int | None = None,
                           account_sid: str = ACCOUNT_SID) -> dict[str, str]:
    """The form fields of a Twilio message status callback."""
    params = {"AccountSid": account_sid, "ApiVersion": "2010-04-01", "From": "UBNDTPHCM",
              "MessageSid": sid, "MessageStatus": status, "SmsSid": sid, "SmsStatus": status,
              "To": "+84912345678"}
    if error_code is not None:
        params["ErrorCode"] = str(error_code)
    return params
