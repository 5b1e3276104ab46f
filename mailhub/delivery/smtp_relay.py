"""Delivery to one relay host (a smarthost) over SMTP, with aiosmtplib.

A session is opened once (connect, TLS as ``tls_mode`` says, EHLO, AUTH if a
user name is configured) and then carries many mail transactions
(:mod:`.smtp_pool`). Between transactions nothing is sent, except RSET after a
transaction that failed midway (RFC 5321 §4.1.1.5), so the next one starts
from a clean state.

What becomes of each recipient:

- a failure before ``MAIL FROM`` (no connection, timeout, bad greeting, TLS
  handshake or certificate failure, STARTTLS required but not offered, AUTH
  refused) defers every recipient: the fault is the link or our settings, not
  the message. An AUTH refusal is deferred, not bounced, as Postfix does by
  default (``smtp_sasl_auth_soft_bounce = yes``): a wrong password must not
  bounce a whole day of mail;
- ``MAIL FROM`` refused: every recipient by the reply code;
- ``RCPT TO`` refused: that recipient by its own reply code;
- ``DATA`` refused: every recipient the server had accepted, by the reply code.

A session taken from the pool may have been closed by the server, or the relay
restarted, since its last use. If it fails before ``MAIL FROM`` is accepted the
message is sent once more on a new session: nothing of it has been delivered
yet. After ``MAIL FROM`` was accepted a failure is reported as it is (deferred)
and never retried here: the server may already hold the message, and a second
copy now is worse than a retry at the next attempt.

Credentials are sent only over TLS, except when ``tls_mode = "none"`` (an
administrator's explicit choice for a relay on the same host or a trusted link).
"""
from __future__ import annotations

import functools
import logging
import ssl
from typing import Sequence

import aiosmtplib
from aiosmtplib.email import parse_address
from aiosmtplib.protocol import normalize_message_line_endings

from mailhub.config import Secret
from mailhub.delivery.smtp_pool import (IDLE_SECONDS, REUSE_LIMIT, PooledSession, SessionPool,
                                        quit_session)
from mailhub.delivery.transport import RecipientResult, for_all, from_reply, permanent, temporary

log = logging.getLogger("mailhub.delivery")

TLS_MODES = ("none", "starttls", "require-starttls", "tls")
DEFAULT_TIMEOUT = 60.0  # seconds per SMTP command, as aiosmtplib and RFC 5321 §4.5.3.2 suggest at least
_LINK_ERRORS = (aiosmtplib.SMTPException, OSError)


class _NotStarted(Exception):
    """The session failed before MAIL FROM was accepted: nothing was delivered."""

    def __init__(self, result: RecipientResult) -> None:
        super().__init__(result.reply)
        self.result = result


class SmtpRelay:
    """Send through ``host:port``.

    ``tls_mode``: ``none`` (never TLS), ``starttls`` (use STARTTLS when offered),
    ``require-starttls`` (defer everything when it is not offered: never send in
    clear), ``tls`` (implicit TLS from the first byte, port 465).
    ``tls_context``: the context that checks the server's certificate; by default
    the system's trusted CAs and host name checking.
    ``max_connections``: idle sessions kept open (the worker's concurrency);
    ``idle_seconds``, ``reuse_limit``: see :mod:`.smtp_pool`. Call :meth:`close`
    when done.
    """

    def __init__(self, host: str, port: int, tls_mode: str, username: str, password: str | Secret,
                 timeout: float = DEFAULT_TIMEOUT, tls_context: ssl.SSLContext | None = None,
                 *, local_hostname: str | None = None, max_connections: int = 10,
                 idle_seconds: float = IDLE_SECONDS, reuse_limit: int = REUSE_LIMIT) -> None:
        if tls_mode not in TLS_MODES:
            raise ValueError(f"tls_mode: expected one of {', '.join(TLS_MODES)}, got {tls_mode!r}")
        self.host, self.port, self.tls_mode = host, port, tls_mode
        self.username = username
        self._password = password if isinstance(password, Secret) else Secret(password)
        self.timeout = timeout
        self.local_hostname = local_hostname
        if tls_context is None and tls_mode != "none":
            tls_context = ssl.create_default_context()
        self._tls_context = tls_context
        self._pool = SessionPool(max_connections, idle_seconds, reuse_limit)

    @property
    def target(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"SmtpRelay({self.target}, tls_mode={self.tls_mode!r}, username={self.username!r})"

    async def close(self) -> None:
        """QUIT the sessions kept open. The relay can still be used afterwards."""
        await self._pool.close()

    async def send(self, mail_from: str, rcpts: Sequence[str], data: bytes) -> dict[str, RecipientResult]:
        # aiosmtplib refuses (ValueError) an address that could smuggle a command
        # onto the MAIL/RCPT line; check first so one bad address fails alone.
        results: dict[str, RecipientResult] = {}
        if not _safe_address(mail_from):
            return for_all(rcpts, permanent("553 5.1.7 sender address has characters not allowed in SMTP"))
        valid = []
        for rcpt in dict.fromkeys(rcpts):
            if _safe_address(rcpt):
                valid.append(rcpt)
            else:
                results[rcpt] = permanent("553 5.1.3 recipient address has characters not allowed in SMTP")
        if valid:
            results.update(await self._deliver(mail_from, valid, data))
        return results

    async def _deliver(self, mail_from: str, rcpts: list[str], data: bytes) -> dict[str, RecipientResult]:
        session = self._pool.take()
        if session is not None:
            try:
                return await self._transaction(session, mail_from, rcpts, data)
            except _NotStarted as broken:  # closed by the server, relay restarted, ...
                log.debug("pooled session to %s failed before MAIL FROM (%s); sending on a new one",
                          self.target, broken.result.reply)
        try:
            session = await self._open()
        except _NotStarted as refused:
            return for_all(rcpts, refused.result)
        try:
            return await self._transaction(session, mail_from, rcpts, data)
        except _NotStarted as failed:
            return for_all(rcpts, failed.result)

    async def _open(self) -> PooledSession:
        """Connect, TLS, EHLO, AUTH. Raises :class:`_NotStarted` when the session
        cannot carry mail (and closes it)."""
        smtp = aiosmtplib.SMTP(
            hostname=self.host, port=self.port, timeout=self.timeout,
            use_tls=self.tls_mode == "tls", start_tls=False,  # STARTTLS and AUTH are done by hand below
            tls_context=self._tls_context, local_hostname=self.local_hostname,
        )
        try:
            refusal = await self._handshake(smtp)
        except _LINK_ERRORS as exc:
            smtp.close()
            raise _NotStarted(self._link_failure(exc)) from exc
        except BaseException:
            smtp.close()
            raise
        if refusal is not None:
            # The server is answering (it refused STARTTLS-less mail or our AUTH):
            # end politely with QUIT, so the TLS session closes now instead of
            # lingering in an unanswered TLS shutdown.
            await quit_session(smtp)
            raise _NotStarted(refusal)
        return PooledSession(smtp)

    async def _handshake(self, smtp: aiosmtplib.SMTP) -> RecipientResult | None:
        """Returns a refusal when the session must not go on."""
        await smtp.connect()
        if self.tls_mode in ("starttls", "require-starttls"):
            await smtp.ehlo()
            if smtp.supports_extension("starttls"):
                await smtp.starttls()  # RFC 3207: aiosmtplib forgets the pre-TLS EHLO
            elif self.tls_mode == "require-starttls":
                return temporary(f"{self.target} does not offer STARTTLS and delivery.relay_tls is "
                                 "require-starttls: nothing was sent")
        if self.username:
            encrypted = smtp.get_transport_info("sslcontext") is not None
            if not encrypted and self.tls_mode != "none":
                return temporary(f"{self.target} offers no TLS: the relay password is not sent in clear, "
                                 "nothing was sent")
            try:
                await smtp.login(self.username, self._password.reveal())
            except aiosmtplib.SMTPResponseException as exc:
                return temporary(f"{exc.code} {exc.message} (AUTH as {self.username} at {self.target})")
        if smtp.is_ehlo_or_helo_needed:  # here, not inside MAIL: the session is ready before any mail
            try:
                await smtp.ehlo()
            except aiosmtplib.SMTPHeloError:
                await smtp.helo()  # RFC 5321 §3.2: a server without EHLO
        return None

    async def _transaction(self, session: PooledSession, mail_from: str, rcpts: list[str],
                           data: bytes) -> dict[str, RecipientResult]:
        """One mail transaction on ``session``; gives the session back or closes it.

        Raises :class:`_NotStarted` when the session failed before MAIL FROM was
        accepted (the session is closed then).
        """
        smtp = session.smtp
        try:
            # RFC 6531 §3.4: a non-ASCII address needs SMTPUTF8 on MAIL FROM.
            utf8 = not all(addr.isascii() for addr in (mail_from, *rcpts))
            if utf8 and not smtp.supports_extension("smtputf8"):
                self._pool.give_back(session)  # nothing was sent
                # RFC 6531 §3.2: without SMTPUTF8 at the server this address cannot be carried.
                return for_all(rcpts, permanent(f"554 5.6.7 {self.target} does not support SMTPUTF8, "
                                                "which this address needs"))
            encoding = "utf-8" if utf8 else "ascii"
            options = ["SMTPUTF8"] if utf8 else []
            if smtp.supports_extension("size"):
                options.insert(0, f"SIZE={_wire_size(data)}")
            session.transactions += 1  # counts against the reuse limit even if refused
            try:
                await smtp.mail(mail_from, options=options, encoding=encoding)
            except aiosmtplib.SMTPResponseException as exc:
                if exc.code == 421 or not smtp.is_connected:  # RFC 5321 §3.8: the server is closing
                    self._pool.discard(session)
                    raise _NotStarted(from_reply(exc.code, exc.message)) from exc
                self._pool.give_back(session)  # a refused MAIL opens no transaction
                return for_all(rcpts, from_reply(exc.code, exc.message))
            except _LINK_ERRORS as exc:
                self._pool.discard(session)
                raise _NotStarted(self._link_failure(exc)) from exc
            try:
                results, complete = await self._envelope_and_data(smtp, rcpts, data, encoding)
            except _LINK_ERRORS as exc:
                self._pool.discard(session)
                return for_all(rcpts, self._link_failure(exc))
            if complete or await _reset(smtp):
                self._pool.give_back(session)
            else:
                self._pool.discard(session)
            return results
        except BaseException:  # cancelled (timeout of the attempt) or a bug: state unknown
            self._pool.discard(session)
            raise

    @staticmethod
    async def _envelope_and_data(smtp: aiosmtplib.SMTP, rcpts: list[str], data: bytes,
                                 encoding: str) -> tuple[dict[str, RecipientResult], bool]:
        """RCPT TO for each recipient, then DATA if any was accepted. Returns the
        results and whether the transaction ended cleanly (no RSET needed)."""
        results: dict[str, RecipientResult] = {}
        accepted = []
        for rcpt in rcpts:
            try:
                await smtp.rcpt(rcpt, encoding=encoding)
            except aiosmtplib.SMTPRecipientRefused as exc:
                results[rcpt] = from_reply(exc.code, exc.message)
            else:
                accepted.append(rcpt)
        if not accepted:
            return results, False
        try:
            response = await smtp.data(data)
        except aiosmtplib.SMTPResponseException as exc:  # DATA or the message refused
            results.update(for_all(accepted, from_reply(exc.code, exc.message)))
            return results, False
        results.update(for_all(accepted, from_reply(250, response.message)))
        return results, True

    def _link_failure(self, exc: BaseException) -> RecipientResult:
        if isinstance(exc, aiosmtplib.SMTPConnectResponseError):
            return temporary(f"{exc.code} {exc.message} (greeting of {self.target})")
        if isinstance(exc, aiosmtplib.SMTPConnectTimeoutError):
            return temporary(f"connection to {self.target} timed out after {self.timeout:g} s")
        if isinstance(exc, aiosmtplib.SMTPTimeoutError):
            return temporary(f"{self.target} did not answer within {self.timeout:g} s")
        if isinstance(exc, aiosmtplib.SMTPHeloError):
            return temporary(f"{exc.code} {exc.message} (EHLO at {self.target})")
        return temporary(self._describe(exc))

    def _describe(self, exc: BaseException) -> str:
        """One line about a failure below SMTP: refused, TLS, lost connection."""
        chain: list[BaseException] = []
        cause: BaseException | None = exc
        while cause is not None and cause not in chain:
            chain.append(cause)
            cause = cause.__cause__ or cause.__context__
        for err in chain:
            if isinstance(err, ConnectionRefusedError):
                return f"connection refused by {self.target}"
            if isinstance(err, ssl.SSLCertVerificationError):
                return f"TLS certificate of {self.target} not trusted: {err.verify_message}"
            if isinstance(err, ssl.SSLError):
                return f"TLS with {self.target} failed: {err.reason or err}"
        return f"delivery to {self.target} failed: {exc}"


async def _reset(smtp: aiosmtplib.SMTP) -> bool:
    """RSET after a transaction that failed midway (RFC 5321 §4.1.1.5); whether
    the session is clean again."""
    try:
        await smtp.rset()
    except _LINK_ERRORS:
        return False
    return True


def _wire_size(data: bytes) -> int:
    """RFC 1870: the size with every line ending as CRLF, as aiosmtplib sends it.
    Queued mail already has CRLF line endings (the front end refuses bare CR and
    LF), so counting is enough; rewriting 5 KB on every send is not."""
    crlf = data.count(b"\r\n")
    if data.count(b"\r") == crlf == data.count(b"\n"):
        return len(data)
    return len(normalize_message_line_endings(data))


@functools.lru_cache(maxsize=4096)  # the same few thousand addresses, message after message
def _safe_address(address: str) -> bool:
    try:
        parse_address(address)
    except ValueError:
        return False
    return True
