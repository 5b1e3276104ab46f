"""LMTP delivery (RFC 2033) against real servers on 127.0.0.1: aiosmtpd's LMTP
server, and a small scripted LMTP server for what aiosmtpd cannot do (replies
cut across reads, a connection lost between two replies, a reply that never
comes). Real TLS (trustme); also run once under uvloop, the production loop.

No mock of mailhub code.
"""
from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import pytest
import uvloop
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import AuthResult

from mailhub.config import Secret
from mailhub.delivery import SmtpRelay
from mailhub.delivery.transport import RecipientResult
from tests.test_delivery_queue import SENDER
from tests.test_delivery_relay import EphemeralController, NextHop, Received

# A lone "." line would end the data if it were not doubled on the wire (RFC 5321 §4.5.2).
DATA = (b"From: Van thu <vanthu@hochiminhcity.gov.vn>\r\nSubject: Giay moi hop\r\n\r\n"
        b"Kinh gui anh chi,\r\n.\r\n.dot line stays\r\n..two dots stay\r\nTran trong.\r\n")


@dataclass
class MailStore:
    """An aiosmtpd LMTP handler. ``rcpt_replies``: refusals at RCPT;
    ``delivery_replies``: the reply after the data for a recipient (default 250)."""

    rcpt_replies: dict[str, str] = field(default_factory=dict)
    delivery_replies: dict[str, str] = field(default_factory=dict)
    lhlo: int = 0
    peers: set = field(default_factory=set)
    stored: list[tuple[str, Received]] = field(default_factory=list)  # (mailbox, message)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # aiosmtpd's LHLO calls it
        self.lhlo += 1
        self.peers.add(session.peer)
        session.host_name = hostname  # the hook must set it, or MAIL is refused
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        # aiosmtpd sends the returned text as is: one line per accepted recipient (RFC 2033 §4.2).
        tls = session.ssl is not None
        replies = []
        for rcpt in envelope.rcpt_tos:
            reply = self.delivery_replies.get(rcpt, f"250 2.0.0 <{rcpt}> delivered")
            if reply.startswith("250"):
                self.stored.append((rcpt, Received(envelope.mail_from, list(envelope.rcpt_tos),
                                                   envelope.original_content, tls)))
            replies.append(reply)
        return "\r\n".join(replies)


class LmtpController(EphemeralController):
    def factory(self):
        return LMTP(self.handler, **self.SMTP_kwargs)


@pytest.fixture
def server_tls(ca):
    """The store's certificate, for its name (the relay connects to 127.0.0.1 as store.test)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("store.test").configure_cert(ctx)
    return ctx


@pytest.fixture
def client_tls(ca):
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@pytest.fixture
def start_store():
    started = []

    def start(store: MailStore, **kwargs) -> LmtpController:
        ctl = LmtpController(store, hostname="127.0.0.1", port=0, **kwargs)
        ctl.start()
        started.append(ctl)
        return ctl

    yield start
    for ctl in started:
        ctl.stop()


@pytest.fixture
def start_hop_smtp():
    started = []

    def start(hop: NextHop) -> int:
        ctl = EphemeralController(hop, hostname="127.0.0.1", port=0)
        ctl.start()
        started.append(ctl)
        return ctl.port

    yield start
    for ctl in started:
        ctl.stop()


def lmtp_relay(port: int, tls_mode: str = "none", tls_context: ssl.SSLContext | None = None,
               timeout: float = 5.0, **kw) -> SmtpRelay:
    return SmtpRelay("store.test", port, tls_mode, kw.pop("username", ""), Secret(kw.pop("password", "")),
                     timeout, tls_context, address="127.0.0.1", protocol="lmtp", **kw)


def mixed_store() -> MailStore:
    """One refusal at RCPT, two different ones after the data, two deliveries."""
    return MailStore(rcpt_replies={"ghost@hcm.gov.vn": "550 5.1.1 no such mailbox"},
                     delivery_replies={"full@hcm.gov.vn": "452 4.2.2 mailbox full",
                                       "closed@hcm.gov.vn": "550 5.2.1 mailbox disabled"})


MIXED_RCPTS = ["an@hcm.gov.vn", "full@hcm.gov.vn", "ghost@hcm.gov.vn", "closed@hcm.gov.vn", "binh@hcm.gov.vn"]


async def deliver_mixed_twice(port: int, **kw) -> list[dict[str, RecipientResult]]:
    transport = lmtp_relay(port, **kw)
    try:
        return [await transport.send(SENDER, MIXED_RCPTS, DATA) for _ in range(2)]
    finally:
        await transport.close()


def check_mixed(port: int, store: MailStore, rounds: list[dict[str, RecipientResult]], tls: bool) -> None:
    for results in rounds:
        assert {rcpt: (r.outcome, r.reply) for rcpt, r in results.items()} == {
            "an@hcm.gov.vn": ("delivered", "250 2.0.0 <an@hcm.gov.vn> delivered"),
            "full@hcm.gov.vn": ("deferred", "452 4.2.2 mailbox full"),
            "ghost@hcm.gov.vn": ("bounced", "550 5.1.1 no such mailbox"),
            "closed@hcm.gov.vn": ("bounced", "550 5.2.1 mailbox disabled"),
            "binh@hcm.gov.vn": ("delivered", "250 2.0.0 <binh@hcm.gov.vn> delivered"),
        }
        assert {(r.remote, r.answered) for r in results.values()} == {(f"store.test[127.0.0.1]:{port}", True)}
    # One session carried both messages: one connection, greeted once (twice with
    # STARTTLS: RFC 3207 §4.2 wants a new greeting after it).
    assert (len(store.peers), store.lhlo) == (1, 2 if tls else 1)
    assert [mailbox for mailbox, _ in store.stored] == ["an@hcm.gov.vn", "binh@hcm.gov.vn"] * 2
    for _, got in store.stored:
        assert (got.mail_from, got.data, got.tls) == (SENDER, DATA, tls)
        assert got.rcpts == ["an@hcm.gov.vn", "full@hcm.gov.vn", "closed@hcm.gov.vn", "binh@hcm.gov.vn"]


async def test_each_recipient_gets_its_own_reply_and_the_session_is_reused(start_store):
    store = mixed_store()
    ctl = start_store(store)
    check_mixed(ctl.port, store, await deliver_mixed_twice(ctl.port), tls=False)


async def test_lmtp_over_starttls_with_auth(start_store, server_tls, client_tls):
    store = mixed_store()
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append(auth_data.login)
        return AuthResult(success=auth_data.password == b"dung-mat-khau", handled=False)

    # Not require_starttls=True: aiosmtpd 1.4.6 then refuses LHLO itself before STARTTLS.
    ctl = start_store(store, tls_context=server_tls, authenticator=authenticator, auth_require_tls=True)
    rounds = await deliver_mixed_twice(ctl.port, tls_mode="require-starttls", tls_context=client_tls,
                                       username="vanthu", password="dung-mat-khau")
    check_mixed(ctl.port, store, rounds, tls=True)
    assert logins == [b"vanthu"]


def test_lmtp_under_uvloop(start_store, server_tls, client_tls):
    """uvloop's transports are not asyncio's: the reply reader swaps the
    connection's protocol, in clear and under TLS."""
    plain, secure = mixed_store(), mixed_store()
    plain_ctl, secure_ctl = start_store(plain), start_store(secure, tls_context=server_tls)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        check_mixed(plain_ctl.port, plain, runner.run(deliver_mixed_twice(plain_ctl.port)), tls=False)
        rounds = runner.run(deliver_mixed_twice(secure_ctl.port, tls_mode="require-starttls",
                                                tls_context=client_tls))
        check_mixed(secure_ctl.port, secure, rounds, tls=True)


async def test_a_server_that_is_not_lmtp(start_hop_smtp):
    """An SMTP server answers LHLO with 500: nothing is sent, and there is no
    fallback to EHLO or HELO (RFC 2033 §4.1)."""
    hop = NextHop()
    port = start_hop_smtp(hop)
    transport = lmtp_relay(port)
    try:
        result = (await transport.send(SENDER, ["an@hcm.gov.vn"], DATA))["an@hcm.gov.vn"]
    finally:
        await transport.close()
    assert result.outcome == "deferred" and result.answered
    assert result.reply.startswith("500 ") and result.reply.endswith(f"(LHLO at store.test[127.0.0.1]:{port})")
    assert (hop.peers, hop.mail_commands) == (set(), 0)  # no EHLO (it records the peer), no MAIL


# ---- a scripted LMTP server ---------------------------------------------------

# What the server does once it has the data; returns False to hang up.
AfterData = Callable[["Script", asyncio.StreamReader, asyncio.StreamWriter, list[str]], Awaitable[bool]]


@dataclass
class Script:
    after_data: AfterData
    connections: int = 0
    messages: list[bytes] = field(default_factory=list)
    sessions: list[asyncio.Task] = field(default_factory=list)  # awaited before the loop ends
    heard_after_silence: list[bytes] = field(default_factory=list)


async def run_script(script: Script) -> asyncio.Server:
    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        script.connections += 1
        script.sessions.append(asyncio.current_task())
        writer.write(b"220 store.test LMTP ready\r\n")
        rcpts: list[str] = []
        try:
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb == b"LHLO":
                    writer.write(b"250-store.test\r\n250 8BITMIME\r\n")
                elif verb == b"MAIL":
                    rcpts = []
                    writer.write(b"250 2.1.0 Ok\r\n")
                elif verb == b"RCPT":
                    rcpts.append(line[9:].strip().strip(b"<>").decode())
                    writer.write(b"250 2.1.5 Ok\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go ahead\r\n")
                    script.messages.append(await reader.readuntil(b"\r\n.\r\n"))
                    if not await script.after_data(script, reader, writer, rcpts):
                        break
                elif verb == b"QUIT":
                    writer.write(b"221 2.0.0 Bye\r\n")
                    break
                else:
                    writer.write(b"250 2.0.0 Ok\r\n")
                await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()

    return await asyncio.start_server(session, "127.0.0.1", 0)


async def one_by_one(script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     rcpts: list[str]) -> bool:
    """Each reply in its own write, a multi-line one cut in the middle."""
    for i, rcpt in enumerate(rcpts):
        reply = f"250-2.0.0 <{rcpt}>\r\n250 2.0.0 delivered\r\n" if i % 2 else f"452 4.2.2 <{rcpt}> full\r\n"
        for part in (reply[:7], reply[7:]):
            writer.write(part.encode())
            await writer.drain()
            await asyncio.sleep(0.01)
    return True


async def first_then_hang_up(script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                             rcpts: list[str]) -> bool:
    writer.write(f"250 2.0.0 <{rcpts[0]}> delivered\r\n".encode())
    await writer.drain()
    return False


async def first_then_silence(script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                             rcpts: list[str]) -> bool:
    """The first reply, then nothing; keeps what the client still sends until it hangs up."""
    writer.write(f"250 2.0.0 <{rcpts[0]}> delivered\r\n".encode())
    await writer.drain()
    script.heard_after_silence.append(await reader.read())
    return False


async def send_twice_to_script(after_data: AfterData) -> tuple[Script, list[dict[str, RecipientResult]], int]:
    script = Script(after_data)
    server = await run_script(script)
    port = server.sockets[0].getsockname()[1]
    transport = lmtp_relay(port, timeout=0.5)
    try:
        rounds = [await transport.send(SENDER, ["a@hcm.gov.vn", "b@hcm.gov.vn", "c@hcm.gov.vn"], DATA)
                  for _ in range(2)]
    finally:
        await transport.close()
        server.close()
        await server.wait_closed()
        await asyncio.wait_for(asyncio.gather(*script.sessions), 5)
    return script, rounds, port


async def test_replies_cut_across_reads():
    script, rounds, _ = await send_twice_to_script(one_by_one)
    for results in rounds:
        assert [(r.outcome, r.reply) for r in results.values()] == [
            ("deferred", "452 4.2.2 <a@hcm.gov.vn> full"),
            ("delivered", "250 2.0.0 <b@hcm.gov.vn> 2.0.0 delivered"),
            ("deferred", "452 4.2.2 <c@hcm.gov.vn> full"),
        ]
    assert script.connections == 1
    assert script.messages == [DATA.replace(b"\r\n.", b"\r\n..") + b".\r\n"] * 2  # dot-stuffed on the wire


@pytest.mark.parametrize("after_data, why", [
    (first_then_hang_up, "delivery to store.test[127.0.0.1]:{port} failed"),
    (first_then_silence, "store.test[127.0.0.1]:{port} did not answer within 0.5 s"),
])
async def test_a_connection_lost_between_replies_defers_the_rest(after_data, why):
    """The first recipient has its reply; the others none: deferred (the store
    may have delivered them: a duplicate later beats a loss). The session is not
    reused: a late reply could be read as the answer to the next command."""
    script, rounds, port = await send_twice_to_script(after_data)
    for results in rounds:
        first, *rest = results.values()
        assert (first.outcome, first.reply) == ("delivered", "250 2.0.0 <a@hcm.gov.vn> delivered")
        for result in rest:
            assert (result.outcome, result.answered) == ("deferred", True)
            assert result.reply.startswith(why.format(port=port))
    assert script.connections == 2
    if after_data is first_then_silence:  # the client hung up; it did not send the next MAIL there
        assert script.heard_after_silence == [b"", b""]
