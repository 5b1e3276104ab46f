"""Opening an SMTP/LMTP session to one next hop (:class:`SessionOpener`):
connect, TLS as the mode says, greeting, AUTH.

What opening trusts and checks: whenever TLS is used, except in ``may``, the
certificate is checked against ``host`` (never ``address``); a password goes only over
TLS whose certificate was checked, or in clear when the mode is ``none`` (an
administrator's explicit choice for a trusted link). A failure before the
server could answer (refused, timed out before the greeting, TLS failed, lost
before the greeting) is marked ``answered=False`` (see :class:`.RecipientResult`).
"""
from __future__ import annotations

import asyncio
import functools
import socket
import ssl
from dataclasses import dataclass

import aiosmtplib

from mailhub.config import Secret
from mailhub.delivery import lmtp
from mailhub.delivery.transport import RecipientResult, temporary

TLS_MODES = ("none", "may", "starttls", "require-starttls", "tls")
PROTOCOLS = ("smtp", "lmtp")
LINK_ERRORS = (aiosmtplib.SMTPException, OSError)
QUIT_SECONDS = 2.0  # a polite QUIT is not worth a long wait (nor a slow stop): then just close


@dataclass(eq=False)
class PooledSession:
    """One open, greeted (and, as configured, encrypted and logged in) session."""

    smtp: aiosmtplib.SMTP
    transactions: int = 0  # MAIL FROM commands sent on it
    idle_since: float = 0.0  # event loop time when it was last given back


async def quit_session(smtp: aiosmtplib.SMTP) -> None:
    """QUIT (bounded by QUIT_SECONDS), then close, whatever happens, and wait (as
    long again at most) until the socket is really released.

    Closing a TLS session only starts its shutdown (close_notify, then the peer's
    answer); the socket is released later. Waiting here means a stop that
    awaited its QUITs has let go of its sockets, instead of leaving them to the
    garbage collector after the event loop is gone.
    """
    protocol = smtp.protocol
    try:
        await smtp.quit(timeout=QUIT_SECONDS)
    except (aiosmtplib.SMTPException, OSError):
        pass  # nothing is lost: the session carried no transaction any more
    finally:
        smtp.close()
        await _released(protocol, QUIT_SECONDS)


async def _released(protocol: object, limit: float) -> None:
    """Until ``protocol`` saw its connection lost, at most ``limit`` seconds. asyncio
    offers no public waiter for that; aiosmtplib's protocol (an asyncio
    ``FlowControlMixin``) sets ``_connection_lost`` when it happens."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not getattr(protocol, "_connection_lost", True) and loop.time() < deadline:
        await asyncio.sleep(0.01)


class NotStarted(Exception):
    """The session failed before MAIL FROM was accepted: nothing was delivered."""

    def __init__(self, result: RecipientResult) -> None:
        super().__init__(result.reply)
        self.result = result


class SessionOpener:
    """Opens sessions to ``host`` at ``address:port``; the arguments are those of
    :class:`.SmtpRelay`, which documents the TLS modes. Raises ``ValueError``
    for a mode or protocol it does not know, and for ``may`` with a user name or
    with a context that checks certificates."""

    def __init__(self, host: str, port: int, tls_mode: str, username: str, password: Secret, timeout: float,
                 tls_context: ssl.SSLContext | None, *, address: str | None, protocol: str,
                 local_hostname: str | None) -> None:
        if tls_mode not in TLS_MODES:
            raise ValueError(f"tls_mode: expected one of {', '.join(TLS_MODES)}, got {tls_mode!r}")
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol: expected one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        if tls_mode == "may" and username:  # nobody checked who would receive the password
            raise ValueError("username: tls_mode 'may' does not check the server's certificate; "
                             "log in with 'starttls', 'require-starttls' or 'tls'")
        if tls_mode == "may" and tls_context is not None and tls_context.verify_mode != ssl.CERT_NONE:
            raise ValueError("tls_context: tls_mode 'may' does not check certificates, this context does")
        if tls_context is None and tls_mode != "none":
            tls_context = _unchecked_context() if tls_mode == "may" else verified_context()
        self.host, self.port, self.address = host, port, address or host
        self.tls_mode, self.protocol, self.username = tls_mode, protocol, username
        self.timeout, self.local_hostname = timeout, local_hostname
        self._password, self._tls_context = password, tls_context

    @property
    def target(self) -> str:
        """``host:port``, ``[ipv6]:port``, or ``host[address]:port`` when they differ."""
        if self.address != self.host:
            return f"{self.host}[{self.address}]:{self.port}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    async def open(self) -> PooledSession:
        """Connect, TLS, EHLO/LHLO, AUTH. Raises :class:`NotStarted` when the
        session cannot carry mail (and closes it)."""
        smtp = aiosmtplib.SMTP(
            hostname=self.host, port=self.port, timeout=self.timeout,
            use_tls=self.tls_mode == "tls", start_tls=False,  # STARTTLS and AUTH are done by hand below
            tls_context=self._tls_context, local_hostname=self.local_hostname,
        )
        try:
            refusal = await self._handshake(smtp)
        except BaseException as exc:
            smtp.close()
            if isinstance(exc, LINK_ERRORS):
                raise NotStarted(self.failure(exc)) from exc
            raise
        if refusal is not None:
            # The server is answering (it refused STARTTLS-less mail or our AUTH):
            # end politely with QUIT, so the TLS session closes now instead of
            # lingering in an unanswered TLS shutdown.
            await quit_session(smtp)
            raise NotStarted(refusal)
        return PooledSession(smtp)

    async def _handshake(self, smtp: aiosmtplib.SMTP) -> RecipientResult | None:
        """Returns a refusal when the session must not go on."""
        await self._connect(smtp)
        if self.tls_mode in ("may", "starttls", "require-starttls"):
            await self._greet(smtp)
            if smtp.supports_extension("starttls"):
                try:  # RFC 3207 §4.2: aiosmtplib then forgets what the EHLO said
                    await smtp.starttls(server_hostname=self.host)
                except aiosmtplib.SMTPResponseException as exc:  # refused: that is an answer
                    if self.tls_mode != "may" or exc.code == 421:
                        return temporary(f"{exc.code} {exc.message} (STARTTLS at {self.target})")
                    # RFC 7435 §3 (Postfix "may"): the session is still in clear and usable: go on.
                except LINK_ERRORS as exc:  # the handshake failed: no TLS server answered
                    raise NotStarted(self.failure(exc, in_handshake=True)) from exc
            elif self.tls_mode == "require-starttls":
                return temporary(f"{self.target} does not offer STARTTLS and the TLS mode is "
                                 "require-starttls: nothing was sent")
        if smtp.is_ehlo_or_helo_needed:  # here, not inside MAIL: the session is ready before any mail
            await self._greet(smtp)
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

    async def _connect(self, smtp: aiosmtplib.SMTP) -> None:
        """Connect and read the greeting. With an ``address`` apart from ``host``
        the socket is connected here and handed to aiosmtplib, which then takes
        ``host`` as the TLS server name (it has no other way to set it for
        implicit TLS)."""
        if self.address == self.host:
            await smtp.connect()
            return
        sock = await _connected_socket(self.address, self.port, self.timeout)
        try:
            await smtp.connect(sock=sock, port=None)
        except BaseException:
            sock.close()
            raise

    async def _greet(self, smtp: aiosmtplib.SMTP) -> None:
        if self.protocol == "lmtp":
            await lmtp.lhlo(smtp, self.timeout)  # RFC 2033 §4.1: no HELO to fall back to
            return
        try:
            await smtp.ehlo()
        except aiosmtplib.SMTPHeloError:
            await smtp.helo()  # RFC 5321 §3.2: a server without EHLO

    def failure(self, exc: BaseException, *, in_handshake: bool = False) -> RecipientResult:
        """A deferral for a failure below the mail transaction. Not ``answered``
        when it came before the greeting (refused, timed out, lost, implicit TLS),
        from TLS, or ``in_handshake`` (STARTTLS's handshake, whatever its error)."""
        before_greeting = (isinstance(exc, aiosmtplib.SMTPConnectError)
                           and not isinstance(exc, aiosmtplib.SMTPConnectResponseError))
        tls = in_handshake or any(isinstance(err, ssl.SSLError) for err in _chain(exc))
        return temporary(self._describe(exc, in_handshake), answered=not (before_greeting or tls))

    def _describe(self, exc: BaseException, in_handshake: bool) -> str:
        if isinstance(exc, aiosmtplib.SMTPConnectResponseError):
            return f"{exc.code} {exc.message} (greeting of {self.target})"
        if isinstance(exc, aiosmtplib.SMTPConnectTimeoutError):
            return f"connection to {self.target} timed out after {self.timeout:g} s"
        if isinstance(exc, aiosmtplib.SMTPTimeoutError):
            return f"{self.target} did not answer within {self.timeout:g} s"
        if isinstance(exc, aiosmtplib.SMTPHeloError):
            greeting = "LHLO" if self.protocol == "lmtp" else "EHLO"
            return f"{exc.code} {exc.message} ({greeting} at {self.target})"
        for err in _chain(exc):
            if isinstance(err, ConnectionRefusedError):
                return f"connection refused by {self.target}"
            if isinstance(err, ssl.SSLCertVerificationError):
                return f"TLS certificate of {self.target} not trusted: {err.verify_message}"
            if isinstance(err, ssl.SSLError):
                return f"TLS with {self.target} failed: {err.reason or err}"
        return f"{'TLS with' if in_handshake else 'delivery to'} {self.target} failed: {exc}"


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes (aiosmtplib wraps the OSError or SSLError underneath)."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    return chain


@functools.cache
def verified_context(ca_file: str = "") -> ssl.SSLContext:
    """The system's trusted CAs, plus ``ca_file`` (PEM) when given, and host name
    checking; built once per file (loading the CAs takes milliseconds) and shared
    by every opener given no context of its own."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(ca_file)
    return context


@functools.cache
def _unchecked_context() -> ssl.SSLContext:
    """``may`` (RFC 7435 §2): encrypt, check neither the chain nor the name."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def _connected_socket(address: str, port: int, timeout: float) -> socket.socket:
    """A TCP socket connected to ``address:port`` (its first resolved address),
    failing as aiosmtplib's own connect does."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(address, port, type=socket.SOCK_STREAM)
            family, kind, proto, _, sockaddr = infos[0]
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                await loop.sock_connect(sock, sockaddr)
            except BaseException:
                sock.close()
                raise
            return sock
    except TimeoutError as exc:
        raise aiosmtplib.SMTPConnectTimeoutError(f"Timed out connecting to {address} on port {port}") from exc
    except OSError as exc:
        raise aiosmtplib.SMTPConnectError(f"Error connecting to {address} on port {port}: {exc}") from exc
