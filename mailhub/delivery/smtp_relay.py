"""Delivery to one next hop (a smarthost, an MX host, an LMTP store) over SMTP
or LMTP, with aiosmtplib.

A session is opened once (connect, TLS as ``tls_mode`` says, EHLO or LHLO, AUTH
if a user name is configured) and then carries many mail transactions
(:mod:`.smtp_pool`). Between transactions nothing is sent, except RSET after a
transaction that failed midway (RFC 5321 §4.1.1.5), so the next one starts
from a clean state.

What becomes of each recipient:

- a failure before ``MAIL FROM`` (no connection, timeout, bad greeting, TLS
  handshake or certificate failure, STARTTLS required but not offered, AUTH
  refused) defers every recipient: the fault is the link or our settings, not
  the message. An AUTH refusal is deferred, not bounced, as Postfix does by
  default (``smtp_sasl_auth_soft_bounce = yes``): a wrong password must not
  bounce a whole day of mail. When no server answered at all (refused, timed
  out before the greeting, TLS failed, lost before the greeting) the results
  say ``answered=False``, so that routing can try the next host;
- ``MAIL FROM`` refused: every recipient by the reply code;
- ``RCPT TO`` refused: that recipient by its own reply code;
- ``DATA`` refused: every recipient the server had accepted, by the reply code;
- after the data, SMTP has one reply for all accepted recipients; LMTP has one
  per accepted recipient, and each gets its own (RFC 2033 §4.2, :mod:`.lmtp`).

Every result names the hop in ``remote`` (:attr:`SmtpRelay.target`).

A session taken from the pool may have been closed by the server, or the relay
restarted, since its last use. If it fails before ``MAIL FROM`` is accepted the
message is sent once more on a new session: nothing of it has been delivered
yet. After ``MAIL FROM`` was accepted a failure is reported as it is (deferred)
and never retried here: the server may already hold the message, and a second
copy now is worse than a retry at the next attempt.

Opening a session (TLS, what is checked, when a password is sent) is
:class:`.smtp_session.SessionOpener`; LMTP's differences are :mod:`.lmtp`.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import ssl
from typing import Sequence

import aiosmtplib
from aiosmtplib.email import parse_address
from aiosmtplib.protocol import normalize_message_line_endings

from mailhub.config import Secret
from mailhub.delivery import lmtp
from mailhub.delivery.smtp_pool import IDLE_SECONDS, REUSE_LIMIT, SessionPool
from mailhub.delivery.smtp_session import (LINK_ERRORS, PROTOCOLS, TLS_MODES, NotStarted, PooledSession,
                                           SessionOpener)
from mailhub.delivery.transport import RecipientResult, for_all, from_reply, permanent

log = logging.getLogger("mailhub.delivery")

__all__ = ["DEFAULT_TIMEOUT", "PROTOCOLS", "TLS_MODES", "SmtpRelay"]

DEFAULT_TIMEOUT = 60.0  # seconds per SMTP command, as aiosmtplib and RFC 5321 §4.5.3.2 suggest at least


class SmtpRelay:
    """Send through ``host:port`` (or ``host[address]:port``).

    ``host``: the next hop's name. It is the name the TLS certificate must match
    and the one sent in SNI (RFC 6066 §3), also after STARTTLS, and the one in
    messages. ``address``: the IP address to connect to (e.g. the one routing
    chose among the MX host's addresses); by default ``host`` itself.

    ``tls_mode``:

    - ``none``: never TLS;
    - ``may``: opportunistic STARTTLS (RFC 7435, Postfix ``may``): used when
      offered, without checking the certificate (encryption without
      authentication still beats clear text against a passive listener); clear
      text when not offered or refused. A failed TLS handshake defers the
      recipients (``answered=False``); unlike Postfix it is not retried in
      clear within this call: routing tries the next host, or the next attempt
      does. No user name (the password would go to a server nobody checked);
    - ``starttls``: STARTTLS when offered, certificate checked with
      ``tls_context``; clear text when not offered (deferred when refused);
    - ``require-starttls``: as ``starttls``, but when STARTTLS is not offered
      every recipient is deferred and nothing is sent;
    - ``tls``: implicit TLS from the first byte (port 465), certificate checked.

    ``tls_context``: the context that checks the server's certificate; by default
    the system's trusted CAs and host name checking. In ``may`` mode the default
    checks nothing, and a given context must not check either.
    ``protocol``: ``smtp``, or ``lmtp`` (RFC 2033, :mod:`.lmtp`).
    ``max_connections``: idle sessions kept open (the worker's concurrency);
    ``idle_seconds``, ``reuse_limit``: see :mod:`.smtp_pool`. Call :meth:`close`
    when done. ``ValueError`` for settings that cannot work together.
    """

    def __init__(self, host: str, port: int, tls_mode: str, username: str, password: str | Secret,
                 timeout: float = DEFAULT_TIMEOUT, tls_context: ssl.SSLContext | None = None,
                 *, address: str | None = None, protocol: str = "smtp", local_hostname: str | None = None,
                 max_connections: int = 10, idle_seconds: float = IDLE_SECONDS,
                 reuse_limit: int = REUSE_LIMIT) -> None:
        self._opener = SessionOpener(host, port, tls_mode, username,
                                     password if isinstance(password, Secret) else Secret(password),
                                     timeout, tls_context, address=address, protocol=protocol,
                                     local_hostname=local_hostname)
        # Read-only copies, for logs and tests.
        self.host, self.port, self.address = host, port, self._opener.address
        self.tls_mode, self.protocol, self.username, self.timeout = tls_mode, protocol, username, timeout
        self.target = self._opener.target
        self._pool = SessionPool(max_connections, idle_seconds, reuse_limit)

    def __repr__(self) -> str:
        return (f"SmtpRelay({self.target}, tls_mode={self.tls_mode!r}, protocol={self.protocol!r}, "
                f"username={self.username!r})")

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
            for rcpt, result in (await self._deliver(mail_from, valid, data)).items():
                results[rcpt] = dataclasses.replace(result, remote=self.target)
        return results

    async def _deliver(self, mail_from: str, rcpts: list[str], data: bytes) -> dict[str, RecipientResult]:
        session = self._pool.take()
        if session is not None:
            try:
                return await self._transaction(session, mail_from, rcpts, data)
            except NotStarted as broken:  # closed by the server, relay restarted, ...
                log.debug("pooled session to %s failed before MAIL FROM (%s); sending on a new one",
                          self.target, broken.result.reply)
        try:
            session = await self._opener.open()
        except NotStarted as refused:
            return for_all(rcpts, refused.result)
        try:
            return await self._transaction(session, mail_from, rcpts, data)
        except NotStarted as failed:
            return for_all(rcpts, failed.result)

    async def _transaction(self, session: PooledSession, mail_from: str, rcpts: list[str],
                           data: bytes) -> dict[str, RecipientResult]:
        """One mail transaction on ``session``; gives the session back or closes it.

        Raises :class:`NotStarted` when the session failed before MAIL FROM was
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
            if not data.isascii() and smtp.supports_extension("8bitmime"):
                # RFC 6152 §3: declare 8-bit content (Vietnamese text in 8bit parts, the
                # original headers in a notice). A server without 8BITMIME still gets the
                # message as it is, as Postfix sends it: downgrading would break DKIM.
                options.append("BODY=8BITMIME")
            session.transactions += 1  # counts against the reuse limit even if refused
            try:
                await smtp.mail(mail_from, options=options, encoding=encoding)
            except aiosmtplib.SMTPResponseException as exc:
                if exc.code == 421 or not smtp.is_connected:  # RFC 5321 §3.8: the server is closing
                    self._pool.discard(session)
                    raise NotStarted(from_reply(exc.code, exc.message)) from exc
                self._pool.give_back(session)  # a refused MAIL opens no transaction
                return for_all(rcpts, from_reply(exc.code, exc.message))
            except LINK_ERRORS as exc:
                self._pool.discard(session)
                raise NotStarted(self._opener.failure(exc)) from exc
            try:
                results, complete = await self._envelope_and_data(smtp, rcpts, data, encoding)
            except LINK_ERRORS as exc:
                self._pool.discard(session)
                return for_all(rcpts, self._opener.failure(exc))
            if complete or (smtp.is_connected and await _reset(smtp)):
                self._pool.give_back(session)
            else:
                self._pool.discard(session)
            return results
        except BaseException:  # cancelled (timeout of the attempt) or a bug: state unknown
            self._pool.discard(session)
            raise

    async def _envelope_and_data(self, smtp: aiosmtplib.SMTP, rcpts: list[str], data: bytes,
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
        if self.protocol == "lmtp":  # RFC 2033 §4.2: one reply per accepted recipient
            answers, complete = await lmtp.send_data(smtp, accepted, data, self.timeout, self._opener.failure)
            results.update(answers)
            return results, complete
        try:
            response = await smtp.data(data)
        except aiosmtplib.SMTPResponseException as exc:  # DATA or the message refused
            results.update(for_all(accepted, from_reply(exc.code, exc.message)))
            return results, False
        results.update(for_all(accepted, from_reply(250, response.message)))
        return results, True


async def _reset(smtp: aiosmtplib.SMTP) -> bool:
    """RSET after a transaction that failed midway (RFC 5321 §4.1.1.5); whether
    the session is clean again."""
    try:
        await smtp.rset()
    except LINK_ERRORS:
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
