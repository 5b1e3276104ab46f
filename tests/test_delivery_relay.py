"""The SMTP relay against real parts: aiosmtpd next hops on 127.0.0.1 with
ephemeral ports, real TLS (trustme), a real SQLite queue; connection reuse.

No mock of mailhub code. The queue helpers come from ``test_delivery_queue.py``.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import text
from sqlmodel import Session

from mailhub.config import Secret
from mailhub.delivery import RecipientResult, RetrySchedule, SmtpRelay
from mailhub.models import utcnow
from tests.test_delivery_queue import (BODY, SENDER, enqueue, postgres_engine, rows, sqlite_engine, states,
                                       wait_for_state, wait_until, worker)


@pytest.fixture
def engine(tmp_path):
    with sqlite_engine(tmp_path) as eng:
        yield eng


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_engine(request, tmp_path):
    with sqlite_engine(tmp_path) if request.param == "sqlite" else postgres_engine() as eng:
        yield eng


# ---- next hops ----------------------------------------------------------------

@dataclass
class Received:
    mail_from: str
    rcpts: list[str]
    data: bytes
    tls: bool


@dataclass
class NextHop:
    """An aiosmtpd handler: answers RCPT from ``rcpt_replies`` and DATA with ``data_reply``.

    It counts connections (by the client's address at EHLO), RSET and QUIT. ``hang_up_at``,
    e.g. ``("MAIL", 2)``: close the connection without a reply at the second MAIL
    of every connection, as a relay that restarts or drops idle clients does.
    """

    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str = "250 2.0.0 Ok: queued as 4XyZ"
    received: list[Received] = field(default_factory=list)
    mail_commands: int = 0
    mail_options: list[list[str]] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)
    peers: set = field(default_factory=set)  # (address, port) of each connection
    rsets: int = 0
    quits: int = 0
    hang_up_at: tuple[str, int] | None = None

    @property
    def connections(self) -> int:
        # By peer, not by session: aiosmtpd starts a new session after STARTTLS.
        # The client's port stays in TIME_WAIT after it closes, so it is not reused here.
        return len(self.peers)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        self.peers.add(session.peer)
        return responses

    def _hangs_up(self, server, session, command: str) -> bool:
        seen = session.__dict__.setdefault("commands", {})
        seen[command] = seen.get(command, 0) + 1
        if self.hang_up_at == (command, seen[command]):
            server.transport.close()
            return True
        return False

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.mail_commands += 1
        self.mail_options.append(list(mail_options))
        if self._hangs_up(server, session, "MAIL"):
            return "421 4.3.0 never seen: the connection is closed"
        envelope.mail_from = address
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self._hangs_up(server, session, "RCPT"):
            return "421 4.3.0 never seen: the connection is closed"
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply.startswith("250"):
            tls = server.transport.get_extra_info("sslcontext") is not None or session.ssl is not None
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          envelope.original_content, tls))
        return self.data_reply

    async def handle_RSET(self, server, session, envelope):
        self.rsets += 1
        return "250 2.0.0 Ok"

    async def handle_QUIT(self, server, session, envelope):
        self.quits += 1
        return "221 2.0.0 Bye"

    def authenticator(self, server, session, envelope, mechanism, auth_data):
        assert isinstance(auth_data, LoginPassword)
        self.logins.append((auth_data.login, auth_data.password))
        # FIELD-NOTES: a failure must be handled=False or the client hangs.
        return AuthResult(success=auth_data.password == b"dung-mat-khau", handled=False)


class EphemeralController(Controller):
    """aiosmtpd's Controller on port 0: learn the port the system chose before the self-test."""

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@pytest.fixture
def start_hop():
    started = []

    def start(handler: NextHop, port: int = 0, **kwargs) -> EphemeralController:
        ctl = EphemeralController(handler, hostname="127.0.0.1", port=port, **kwargs)
        ctl.start()
        started.append(ctl)
        return ctl

    def stop(ctl: EphemeralController) -> None:
        started.remove(ctl)
        ctl.stop()

    start.stop = stop
    yield start
    for ctl in started:
        ctl.stop()


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(ca):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return ctx


@pytest.fixture(scope="module")
def client_tls(ca):
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def relay(ctl, tls_mode="none", username="", password="", tls_context=None, timeout=5.0, **kw) -> SmtpRelay:
    return SmtpRelay("127.0.0.1", ctl.port, tls_mode, username, Secret(password), timeout, tls_context, **kw)


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# ---- SMTP relay ---------------------------------------------------------------

async def test_relay_delivers_byte_identical_and_records(engine, start_hop):
    hop = NextHop()
    ctl = start_hop(hop)
    mid = enqueue(engine, ["a@example.org", "b@example.org"])
    before = utcnow()
    await worker(engine, relay(ctl)).drain_once()

    [got] = hop.received
    assert (got.mail_from, got.rcpts, got.data, got.tls) == (SENDER, ["a@example.org", "b@example.org"], BODY, False)
    for row in rows(engine, mid).values():
        assert (row.state, row.attempts, row.lease_until) == ("delivered", 1, None)
        assert row.last_reply == "250 2.0.0 Ok: queued as 4XyZ"
        assert row.updated_at >= before


@pytest.mark.parametrize("data_reply, state", [
    ("451 4.3.0 try later", "deferred"),
    ("554 5.7.1 message refused", "bounced"),
])
async def test_relay_data_refusal_applies_to_every_recipient(engine, start_hop, data_reply, state):
    ctl = start_hop(NextHop(data_reply=data_reply))
    mid = enqueue(engine, ["a@example.org", "b@example.org"])
    before = utcnow()
    # The schedule pinned (60 s, no jitter): this checks that a deferral is scheduled, not the defaults.
    await worker(engine, relay(ctl), schedule=RetrySchedule(min_seconds=60, jitter=0.0)).drain_once()
    after = utcnow()

    for row in rows(engine, mid).values():
        assert (row.state, row.attempts, row.last_reply, row.lease_until) == (state, 1, data_reply, None)
        if state == "deferred":
            assert before + timedelta(seconds=60) <= row.next_attempt_at <= after + timedelta(seconds=60)


async def test_relay_rcpt_answers_are_per_recipient(engine, start_hop):
    hop = NextHop(rcpt_replies={"ghost@example.org": "550 5.1.1 no such user",
                                "busy@example.org": "452 4.2.2 mailbox full"})
    ctl = start_hop(hop)
    mid = enqueue(engine, ["ok@example.org", "ghost@example.org", "busy@example.org"])
    await worker(engine, relay(ctl)).drain_once()

    got = rows(engine, mid)
    assert (got["ok@example.org"].state, got["ok@example.org"].last_reply[:3]) == ("delivered", "250")
    assert (got["ghost@example.org"].state, got["ghost@example.org"].last_reply) == ("bounced", "550 5.1.1 no such user")
    assert (got["busy@example.org"].state, got["busy@example.org"].last_reply) == ("deferred", "452 4.2.2 mailbox full")
    assert [r.rcpts for r in hop.received] == [["ok@example.org"]]


async def test_relay_all_recipients_refused(engine, start_hop):
    hop = NextHop(rcpt_replies={"a@example.org": "550 5.1.1 no", "b@example.org": "451 4.3.0 later"})
    ctl = start_hop(hop)
    mid = enqueue(engine, ["a@example.org", "b@example.org"])
    await worker(engine, relay(ctl)).drain_once()
    got = rows(engine, mid)
    assert (got["a@example.org"].state, got["b@example.org"].state) == ("bounced", "deferred")
    assert hop.received == []


async def test_relay_connection_refused_defers_and_backs_off(engine):
    port = closed_port()
    transport = SmtpRelay("127.0.0.1", port, "none", "", Secret(""), 5.0)
    mid = enqueue(engine, ["a@example.org"])
    w = worker(engine, transport)
    await w.drain_once()
    row = rows(engine, mid)["a@example.org"]
    assert (row.state, row.attempts, row.last_reply) == ("deferred", 1, f"connection refused by 127.0.0.1:{port}")

    assert await w.drain_once() == 0  # not due yet
    with Session(engine) as s:  # time passes
        s.exec(text("UPDATE queue_recipient SET next_attempt_at = :t"), params={"t": utcnow() - timedelta(seconds=1)})
        s.commit()
    before = utcnow()
    await w.drain_once()
    row = rows(engine, mid)["a@example.org"]
    assert (row.state, row.attempts) == ("deferred", 2)
    assert row.next_attempt_at >= before + timedelta(seconds=120)


async def test_relay_data_refusal_keeps_the_rcpt_answers(engine, start_hop):
    """DATA refused: the recipients the server had accepted take the DATA answer;
    a recipient refused at RCPT keeps its own."""
    ctl = start_hop(NextHop(rcpt_replies={"ghost@example.org": "550 5.1.1 no such user"},
                            data_reply="451 4.3.0 try later"))
    mid = enqueue(engine, ["a@example.org", "ghost@example.org"])
    await worker(engine, relay(ctl)).drain_once()
    got = rows(engine, mid)
    assert (got["a@example.org"].state, got["a@example.org"].last_reply) == ("deferred", "451 4.3.0 try later")
    assert (got["ghost@example.org"].state, got["ghost@example.org"].last_reply) == (
        "bounced", "550 5.1.1 no such user")


# ---- connection reuse ---------------------------------------------------------

async def test_a_run_of_messages_shares_a_few_connections(engine, start_hop):
    hop = NextHop()
    ctl = start_hop(hop)
    for i in range(30):
        enqueue(engine, [f"r{i}@example.org"])
    w = worker(engine, relay(ctl, max_connections=4), concurrency=4)
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    await wait_until(lambda: len(hop.received) == 30, what="30 messages at the next hop")
    stop.set()
    await asyncio.wait_for(task, 5)

    assert states(engine) == {"delivered": 30}
    assert sorted(r.rcpts[0] for r in hop.received) == sorted(f"r{i}@example.org" for i in range(30))
    assert 1 <= hop.connections <= 4 + 1, hop.connections
    assert (hop.mail_commands, hop.rsets) == (30, 0)  # no RSET between good transactions
    assert hop.quits == hop.connections  # the stop closed each one with QUIT


async def test_eight_bit_content_is_declared(start_hop):
    """RFC 6152: BODY=8BITMIME for a message with 8-bit bytes, nothing for plain ASCII."""
    hop = NextHop()
    transport = relay(start_hop(hop))
    vietnamese = BODY.replace(b"Kinh gui anh chi,", "Kính gửi anh chị,".encode())
    try:
        assert (await transport.send(SENDER, ["a@example.org"], vietnamese))["a@example.org"].ok
        assert (await transport.send(SENDER, ["b@example.org"], BODY))["b@example.org"].ok
    finally:
        await transport.close()
    assert ["BODY=8BITMIME" in options for options in hop.mail_options] == [True, False]
    assert hop.received[0].data == vietnamese


async def test_rset_only_after_a_transaction_that_failed_midway(start_hop):
    hop = NextHop(rcpt_replies={"ghost@example.org": "550 5.1.1 no such user"})
    transport = relay(start_hop(hop))
    try:
        first = await transport.send(SENDER, ["a@example.org"], BODY)
        refused = await transport.send(SENDER, ["ghost@example.org"], BODY)
        last = await transport.send(SENDER, ["b@example.org"], BODY)
    finally:
        await transport.close()
    assert first["a@example.org"].ok and last["b@example.org"].ok
    assert refused["ghost@example.org"] == RecipientResult(False, True, "550 5.1.1 no such user")
    assert (hop.connections, hop.mail_commands, hop.rsets, hop.quits) == (1, 3, 1, 1)
    assert [r.rcpts for r in hop.received] == [["a@example.org"], ["b@example.org"]]


async def test_a_session_is_quit_after_its_reuse_limit_and_when_idle(start_hop):
    hop = NextHop()
    transport = relay(start_hop(hop), reuse_limit=3, idle_seconds=0.2)
    try:
        for i in range(7):
            assert (await transport.send(SENDER, [f"r{i}@example.org"], BODY))[f"r{i}@example.org"].ok
        await wait_until(lambda: hop.quits == 2, what="QUIT after the 3rd and the 6th message")
        assert hop.connections == 3
        await wait_until(lambda: hop.quits == 3, what="QUIT of the idle session")
        await transport.send(SENDER, ["late@example.org"], BODY)
        assert hop.connections == 4
    finally:
        await transport.close()
    assert hop.quits == 4 and len(hop.received) == 8


async def test_a_pooled_session_lost_before_mail_from_is_retried_on_a_new_one(start_hop):
    """The server drops the connection at the second MAIL FROM: nothing of that
    message was accepted, so it goes out at once on a new connection."""
    hop = NextHop(hang_up_at=("MAIL", 2))
    transport = relay(start_hop(hop))
    try:
        first = await transport.send(SENDER, ["a@example.org"], BODY)
        second = await transport.send(SENDER, ["b@example.org"], BODY)
    finally:
        await transport.close()
    assert first["a@example.org"].ok and second["b@example.org"].ok
    assert [r.rcpts for r in hop.received] == [["a@example.org"], ["b@example.org"]]
    assert (hop.connections, hop.mail_commands) == (2, 3)


async def test_a_session_lost_after_mail_from_is_deferred_not_retried(start_hop):
    """After MAIL FROM was accepted the server might hold the message: no second
    copy now; the recipient is deferred and tried at the next attempt."""
    hop = NextHop(hang_up_at=("RCPT", 2))
    transport = relay(start_hop(hop))
    try:
        first = await transport.send(SENDER, ["a@example.org"], BODY)
        lost = await transport.send(SENDER, ["b@example.org"], BODY)
        again = await transport.send(SENDER, ["b@example.org"], BODY)
    finally:
        await transport.close()
    assert first["a@example.org"].ok and again["b@example.org"].ok
    assert lost["b@example.org"].outcome == "deferred"
    assert lost["b@example.org"].reply.startswith(f"delivery to 127.0.0.1:{transport.port} failed")
    assert hop.mail_commands == 3  # no retry inside the lost attempt
    assert [r.rcpts for r in hop.received] == [["a@example.org"], ["b@example.org"]]


async def test_next_hop_restarted_between_messages(engine, start_hop):
    """The pooled session dies with the old relay process; the next message is
    delivered once, by the new one, and no attempt is lost or counted twice."""
    before = NextHop()
    ctl = start_hop(before)
    w = worker(engine, relay(ctl), concurrency=1)
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    one = enqueue(engine, ["one@example.org"])
    w.wake()
    await wait_for_state(engine, one, "one@example.org", "delivered")

    start_hop.stop(ctl)
    after = NextHop()
    start_hop(after, port=ctl.port)
    two = enqueue(engine, ["two@example.org"])
    w.wake()
    await wait_for_state(engine, two, "two@example.org", "delivered")
    stop.set()
    await asyncio.wait_for(task, 5)

    assert [r.rcpts for r in before.received] == [["one@example.org"]]
    assert [r.rcpts for r in after.received] == [["two@example.org"]]
    assert rows(engine, one)["one@example.org"].attempts == rows(engine, two)["two@example.org"].attempts == 1


# ---- TLS ----------------------------------------------------------------------

async def test_require_starttls_delivers_over_tls_with_auth(engine, start_hop, server_tls, client_tls, caplog):
    hop = NextHop()
    ctl = start_hop(hop, tls_context=server_tls, require_starttls=True, authenticator=hop.authenticator,
                    auth_require_tls=True)
    transport = relay(ctl, "require-starttls", "vanthu", "dung-mat-khau", client_tls)
    mid = enqueue(engine, ["a@example.org"])
    caplog.set_level(logging.DEBUG)
    await worker(engine, transport).drain_once()

    assert rows(engine, mid)["a@example.org"].state == "delivered"
    assert [r.tls for r in hop.received] == [True]
    assert hop.logins == [(b"vanthu", b"dung-mat-khau")]
    assert "dung-mat-khau" not in caplog.text and "dung-mat-khau" not in repr(transport)


async def test_a_reused_connection_keeps_tls_and_logs_in_once(start_hop, server_tls, client_tls, caplog):
    hop = NextHop()
    ctl = start_hop(hop, tls_context=server_tls, require_starttls=True, authenticator=hop.authenticator,
                    auth_require_tls=True)
    transport = relay(ctl, "require-starttls", "vanthu", "dung-mat-khau", client_tls)
    caplog.set_level(logging.DEBUG)
    try:
        for i in range(3):
            assert (await transport.send(SENDER, [f"r{i}@example.org"], BODY))[f"r{i}@example.org"].ok
    finally:
        await transport.close()
    assert [r.tls for r in hop.received] == [True, True, True]
    assert (hop.connections, hop.logins, hop.quits) == (1, [(b"vanthu", b"dung-mat-khau")], 1)
    assert "dung-mat-khau" not in caplog.text


async def test_auth_refused_is_deferred_not_bounced(engine, start_hop, server_tls, client_tls):
    hop = NextHop()
    ctl = start_hop(hop, tls_context=server_tls, authenticator=hop.authenticator, auth_require_tls=True)
    mid = enqueue(engine, ["a@example.org"])
    await worker(engine, relay(ctl, "starttls", "vanthu", "sai", client_tls)).drain_once()
    row = rows(engine, mid)["a@example.org"]
    assert row.state == "deferred" and row.last_reply.startswith("535") and "AUTH as vanthu" in row.last_reply
    assert hop.mail_commands == 0


async def test_require_starttls_without_starttls_sends_nothing(engine, start_hop, client_tls):
    hop = NextHop()
    ctl = start_hop(hop)
    mid = enqueue(engine, ["a@example.org"])
    await worker(engine, relay(ctl, "require-starttls", tls_context=client_tls)).drain_once()
    row = rows(engine, mid)["a@example.org"]
    assert row.state == "deferred"
    assert "does not offer STARTTLS" in row.last_reply
    assert hop.mail_commands == 0 and hop.received == []


async def test_opportunistic_starttls(engine, start_hop, server_tls, client_tls):
    plain, secure = NextHop(), NextHop()
    plain_ctl, secure_ctl = start_hop(plain), start_hop(secure, tls_context=server_tls)
    w1 = worker(engine, relay(plain_ctl, "starttls", tls_context=client_tls))
    w2 = worker(engine, relay(secure_ctl, "starttls", tls_context=client_tls))
    enqueue(engine, ["a@example.org"])
    await w1.drain_once()
    enqueue(engine, ["b@example.org"])
    await w2.drain_once()
    assert [r.tls for r in plain.received] == [False]  # not offered: sent in clear
    assert [r.tls for r in secure.received] == [True]  # offered: used


async def test_password_never_goes_in_clear(engine, start_hop, client_tls):
    hop = NextHop()
    ctl = start_hop(hop, authenticator=hop.authenticator, auth_require_tls=False)
    mid = enqueue(engine, ["a@example.org"])
    await worker(engine, relay(ctl, "starttls", "vanthu", "dung-mat-khau", client_tls)).drain_once()
    row = rows(engine, mid)["a@example.org"]
    assert row.state == "deferred" and "not sent in clear" in row.last_reply
    assert hop.logins == [] and hop.mail_commands == 0


async def test_implicit_tls(engine, start_hop, server_tls, client_tls):
    hop = NextHop()
    ctl = start_hop(hop, ssl_context=server_tls)
    mid = enqueue(engine, ["a@example.org"])
    await worker(engine, relay(ctl, "tls", tls_context=client_tls)).drain_once()
    assert rows(engine, mid)["a@example.org"].state == "delivered"
    assert len(hop.received) == 1


async def test_untrusted_certificate_defers(engine, start_hop, server_tls):
    hop = NextHop()
    ctl = start_hop(hop, tls_context=server_tls)
    mid = enqueue(engine, ["a@example.org"])
    await worker(engine, relay(ctl, "require-starttls")).drain_once()  # system CAs: trustme is unknown
    row = rows(engine, mid)["a@example.org"]
    assert row.state == "deferred" and "not trusted" in row.last_reply
    assert hop.mail_commands == 0


# ---- leases ------------------------------------------------------------------

async def test_expired_lease_is_taken_over_and_live_lease_is_not(any_engine, start_hop):
    hop = NextHop()
    ctl = start_hop(hop)
    now = utcnow()
    crashed = enqueue(any_engine, ["crashed@example.org"], state="sending", lease_until=now - timedelta(seconds=5))
    busy = enqueue(any_engine, ["busy@example.org"], state="sending", lease_until=now + timedelta(minutes=5))
    await worker(any_engine, relay(ctl)).drain_once()

    assert rows(any_engine, crashed)["crashed@example.org"].state == "delivered"
    live = rows(any_engine, busy)["busy@example.org"]
    assert (live.state, live.attempts) == ("sending", 0)
    assert [r.rcpts for r in hop.received] == [["crashed@example.org"]]
