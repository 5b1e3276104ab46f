"""aiosmtpd's SMTP protocol with the hygiene and AUTH behaviour mailhub needs.

What this subclass changes, and why:

- every command argument is checked for C0 control characters before the
  command runs (aiosmtpd accepts a bare CR inside arguments);
- a client that talks before the greeting is dropped (a spam-bot trait that
  Postfix's postscreen also tests): we wait ``pregreet_wait`` seconds and look
  at the input buffer before sending 220;
- on the implicit-TLS listener AUTH is offered and accepted (aiosmtpd only
  counts STARTTLS as TLS, aio-libs/aiosmtpd#281); the socket itself is TLS there;
- AUTH PLAIN and LOGIN verify the password off the event loop (argon2 is slow
  on purpose), count failures per session and disconnect after too many.
"""
from __future__ import annotations

import asyncio
import binascii
import re
import logging
from base64 import b64decode
from functools import wraps

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Session

from mailhub.smtp import replies
from mailhub.smtp.auth import AuthOutcome, Authenticator
from mailhub.smtp.hygiene import has_control_chars, has_source_route

log = logging.getLogger("mailhub.smtp")


class _Session(Session):
    """aiosmtpd's Session logs a deprecation warning each time smtp_AUTH sets
    ``login_data``; we read ``auth_data`` instead, so keep it quiet. ``facts``
    caches the pipeline's view of the session (see mailhub.smtp.handler)."""

    facts = None

    @property
    def login_data(self):
        return self._login_data

    @login_data.setter
    def login_data(self, value) -> None:
        self._login_data = value


# An angle-bracketed dot-atom address with optional parameters after it: what every
# mail client sends. aiosmtpd parses addresses with the email package's RFC 5322
# parser (~5% of a front end's CPU); for this plain form the result is the text
# between the brackets, so it is taken directly, and anything else (quoted local
# parts, comments, source routes, no brackets) still goes through aiosmtpd's parser.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_PATH = re.compile(rf"\s*<({_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>"
                         r"((?:\s+[^\s()]+)*)\s*\Z")


class SubmissionSMTP(SMTP):
    def __init__(self, handler, *, authenticator: Authenticator, implicit_tls: bool,
                 pregreet_wait: float, session_max_auth_failures: int, **kwargs) -> None:
        super().__init__(handler, auth_required=True, auth_require_tls=True, **kwargs)
        self._authn = authenticator
        self._implicit_tls = implicit_tls
        self._pregreet_wait = pregreet_wait
        self._session_max_failures = max(1, session_max_auth_failures)
        self._auth_failures = 0
        if implicit_tls:
            # The whole connection is TLS; aiosmtpd would otherwise hide AUTH.
            self._auth_require_tls = False
        self._smtp_methods = {name: self._guarded(method)
                              for name, method in self._smtp_methods.items()}

    def _getaddr(self, arg: str):
        match = _PLAIN_PATH.match(arg) if arg else None
        if match:
            return match.group(1), match.group(2)
        return super()._getaddr(arg)

    def _create_session(self) -> Session:
        return _Session(self.loop)

    def _guarded(self, method):
        routed = method.__name__ in ("smtp_MAIL", "smtp_RCPT")

        @wraps(method)
        async def guarded(arg):
            if has_control_chars(arg):
                await self.push(replies.CONTROL_CHARS)
            elif routed and has_source_route(arg):
                await self.push(replies.SOURCE_ROUTE)
            else:
                await method(arg)
        return guarded

    async def _handle_client(self) -> None:
        if self._pregreet_wait > 0:
            await asyncio.sleep(self._pregreet_wait)
            if self._reader._buffer:  # type: ignore[attr-defined]  # data before 220
                log.warning("%r spoke before the greeting; dropped", self.session.peer)
                await self.push(replies.PREGREET)
                self.transport.close()
                return
        await super()._handle_client()

    @property
    def client_ip(self) -> str:
        peer = self.session.peer if self.session else None
        return str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"

    # ---- AUTH mechanisms (RFC 4954, RFC 4616) --------------------------------
    async def auth_PLAIN(self, _server, args: list[str]) -> AuthResult:
        if len(args) == 1:
            blob = await self.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            blob = await self._decode(args[1])
            if blob is None:
                return AuthResult(success=False, handled=True)
        parts = blob.split(b"\x00")
        if len(parts) != 3 or (parts[0] and parts[0] != parts[1]):
            await self.push(replies.AUTH_SYNTAX)
            return AuthResult(success=False, handled=True)
        return await self._verify(parts[1], parts[2])

    async def auth_LOGIN(self, _server, args: list[str]) -> AuthResult:
        if len(args) == 1:
            login = await self.challenge_auth("Username:")
        else:
            login = await self._decode(args[1])
        if login is MISSING or login is None:
            return AuthResult(success=False, handled=True)
        password = await self.challenge_auth("Password:")
        if password is MISSING:
            return AuthResult(success=False, handled=True)
        return await self._verify(login, password)

    async def _decode(self, text: str) -> bytes | None:
        try:
            return b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            await self.push(replies.AUTH_SYNTAX)
            return None

    async def _verify(self, login_b: bytes, password_b: bytes) -> AuthResult:
        try:
            login, password = login_b.decode("utf-8"), password_b.decode("utf-8")
        except UnicodeDecodeError:
            login, password = "", ""
        if not login or not password or has_control_chars(login):
            answer_outcome = AuthOutcome.INVALID
            answer = None
        else:
            answer = await self._authn.check(login, password, self.client_ip)
            answer_outcome = answer.outcome
        if answer_outcome is AuthOutcome.OK and answer is not None:
            return AuthResult(success=True, auth_data=answer.sender, message=replies.AUTH_OK)
        if answer_outcome is AuthOutcome.UNAVAILABLE:
            return AuthResult(success=False, handled=False, message=replies.AUTH_UNAVAILABLE)
        self._auth_failures += 1
        if self._auth_failures >= self._session_max_failures:
            await self.push(replies.AUTH_TOO_MANY)
            self.transport.close()
            return AuthResult(success=False, handled=True)
        message = replies.AUTH_LOCKED if answer_outcome is AuthOutcome.LOCKED else replies.AUTH_INVALID
        return AuthResult(success=False, handled=False, message=message)
