"""Delivery to one relay host (a smarthost) over SMTP, with aiosmtplib.

One connection per message: connect, TLS as ``tls_mode`` says, AUTH if a user
name is configured, one mail transaction, QUIT.

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

Credentials are sent only over TLS, except when ``tls_mode = "none"`` (an
administrator's explicit choice for a relay on the same host or a trusted link).
"""
from __future__ import annotations

import ssl
from typing import Sequence

import aiosmtplib
from aiosmtplib.email import parse_address

from mailhub.config import Secret
from mailhub.delivery.transport import RecipientResult, for_all, from_reply, permanent, temporary

TLS_MODES = ("none", "starttls", "require-starttls", "tls")
DEFAULT_TIMEOUT = 60.0  # seconds per SMTP command, as aiosmtplib and RFC 5321 §4.5.3.2 suggest at least


class SmtpRelay:
    """Send through ``host:port``.

    ``tls_mode``: ``none`` (never TLS), ``starttls`` (use STARTTLS when offered),
    ``require-starttls`` (defer everything when it is not offered: never send in
    clear), ``tls`` (implicit TLS from the first byte, port 465).
    ``tls_context``: the context that checks the server's certificate; by default
    the system's trusted CAs and host name checking.
    """

    def __init__(self, host: str, port: int, tls_mode: str, username: str, password: str | Secret,
                 timeout: float = DEFAULT_TIMEOUT, tls_context: ssl.SSLContext | None = None,
                 *, local_hostname: str | None = None) -> None:
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

    @property
    def target(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"SmtpRelay({self.target}, tls_mode={self.tls_mode!r}, username={self.username!r})"

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
        smtp = aiosmtplib.SMTP(
            hostname=self.host, port=self.port, timeout=self.timeout,
            use_tls=self.tls_mode == "tls", start_tls=False,  # STARTTLS and AUTH are done by hand below
            tls_context=self._tls_context, local_hostname=self.local_hostname,
        )
        try:
            refusal = await self._open(smtp)
            if refusal is not None:
                return for_all(rcpts, refusal)
            return await self._transaction(smtp, mail_from, rcpts, data)
        except aiosmtplib.SMTPConnectResponseError as exc:
            return for_all(rcpts, temporary(f"{exc.code} {exc.message} (greeting of {self.target})"))
        except aiosmtplib.SMTPConnectTimeoutError:
            return for_all(rcpts, temporary(f"connection to {self.target} timed out after {self.timeout:g} s"))
        except aiosmtplib.SMTPTimeoutError:
            return for_all(rcpts, temporary(f"{self.target} did not answer within {self.timeout:g} s"))
        except (aiosmtplib.SMTPException, OSError) as exc:
            return for_all(rcpts, temporary(self._describe(exc)))
        finally:
            smtp.close()

    async def _open(self, smtp: aiosmtplib.SMTP) -> RecipientResult | None:
        """Connect, TLS, AUTH. Returns a refusal when the session must not go on."""
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
        return None

    async def _transaction(self, smtp: aiosmtplib.SMTP, mail_from: str, rcpts: list[str],
                           data: bytes) -> dict[str, RecipientResult]:
        # RFC 6531 §3.4: a non-ASCII address needs SMTPUTF8 on MAIL FROM.
        utf8 = not all(addr.isascii() for addr in (mail_from, *rcpts))
        try:
            refused, text = await smtp.sendmail(mail_from, rcpts, data,
                                                mail_options=["SMTPUTF8"] if utf8 else [])
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return {err.recipient: from_reply(err.code, err.message) for err in exc.recipients}
        except aiosmtplib.SMTPNotSupported:
            # RFC 6531 §3.2: without SMTPUTF8 at the server this address cannot be carried.
            return for_all(rcpts, permanent(f"554 5.6.7 {self.target} does not support SMTPUTF8, "
                                            "which this address needs"))
        except aiosmtplib.SMTPResponseException as exc:  # MAIL FROM or DATA refused
            return for_all(rcpts, from_reply(exc.code, exc.message))
        results = {rcpt: from_reply(250, text) for rcpt in rcpts}
        for rcpt, answer in refused.items():
            results[rcpt] = from_reply(answer.code, answer.message)
        try:
            await smtp.quit()
        except (aiosmtplib.SMTPException, OSError):
            pass  # the message is already accepted; a rude hang-up changes nothing
        return results

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


def _safe_address(address: str) -> bool:
    try:
        parse_address(address)
    except ValueError:
        return False
    return True
