"""The delivery worker against real parts: SQLite, aiosmtpd next hops, a Maildir, TLS.

No mock of mailhub code: the queue is a real SQLite file, every next hop is a
real aiosmtpd server on 127.0.0.1 with an ephemeral port, certificates come
from trustme. A few tests put a plain test class behind the Transport seam.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import stat
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import text
from sqlmodel import Session, SQLModel, create_engine, select

import mailhub.models  # noqa: F401  (registers the tables)
from mailhub.config import Config, DeliveryConfig, Secret, ServerConfig
from mailhub.db import make_engine
from mailhub.delivery import (DeliveryWorker, MaildirOutbox, RecipientResult, SmtpRelay,
                              build_transport, claim, mark_results, retry_delay)
from mailhub.delivery.claims import Outcome
from mailhub.models import QueuedMessage, QueueRecipient, utcnow

SENDER = "vanthu@hochiminhcity.gov.vn"
BODY = (b"From: Van thu <vanthu@hochiminhcity.gov.vn>\r\n"
        b"To: a@example.org\r\n"
        b"Subject: Giay moi hop\r\n"
        b"\r\n"
        b"Kinh gui anh chi,\r\n"
        b".dot line stays\r\n"
        b"Tran trong.\r\n")


# ---- queue helpers ------------------------------------------------------------

@pytest.fixture
def engine(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path / 'queue.db'}")
    SQLModel.metadata.create_all(eng)
    yield eng
    eng.dispose()


@contextmanager
def postgres_engine():
    """An engine on a fresh schema of MAILHUB_TEST_DATABASE_URL, dropped afterwards."""
    url = os.environ.get("MAILHUB_TEST_DATABASE_URL")
    if not url:
        pytest.skip("MAILHUB_TEST_DATABASE_URL is not set")
    schema = f"test_delivery_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    eng = create_engine(url, connect_args={"options": f"-csearch_path={schema}"}, pool_size=10)
    try:
        SQLModel.metadata.create_all(eng)
        yield eng
    finally:
        eng.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_engine(request, tmp_path):
    """The claims tests run on both databases the queue supports."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'queue.db'}")
        SQLModel.metadata.create_all(eng)
        yield eng
        eng.dispose()
    else:
        with postgres_engine() as eng:
            yield eng


def enqueue(engine, rcpts, *, data=BODY, mail_from=SENDER, state="queued", lease_until=None,
            next_attempt_at=None, attempts=0) -> str:
    mid = uuid.uuid4().hex
    due = next_attempt_at or utcnow() - timedelta(seconds=1)
    with Session(engine) as s:
        s.add(QueuedMessage(id=mid, mail_from=mail_from, size=len(data), data=data))
        s.flush()
        for rcpt in rcpts:
            s.add(QueueRecipient(message_id=mid, rcpt=rcpt, state=state, lease_until=lease_until,
                                 next_attempt_at=due, attempts=attempts))
        s.commit()
    return mid


def rows(engine, mid) -> dict[str, QueueRecipient]:
    with Session(engine, expire_on_commit=False) as s:
        found = s.exec(select(QueueRecipient).where(QueueRecipient.message_id == mid)).all()
    return {r.rcpt: r for r in found}


def worker(engine, transport, **kw) -> DeliveryWorker:
    kw.setdefault("concurrency", 4)
    kw.setdefault("poll_seconds", 0.05)
    return DeliveryWorker(engine, transport, node_id="test-node", **kw)


# ---- next hops ----------------------------------------------------------------

@dataclass
class Received:
    mail_from: str
    rcpts: list[str]
    data: bytes
    tls: bool


@dataclass
class NextHop:
    """An aiosmtpd handler: answers RCPT from ``rcpt_replies`` and DATA with ``data_reply``."""

    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str = "250 2.0.0 Ok: queued as 4XyZ"
    received: list[Received] = field(default_factory=list)
    mail_commands: int = 0
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.mail_commands += 1
        envelope.mail_from = address
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
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

    def start(handler: NextHop, **kwargs) -> EphemeralController:
        ctl = EphemeralController(handler, hostname="127.0.0.1", port=0, **kwargs)
        ctl.start()
        started.append(ctl)
        return ctl

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


def relay(ctl, tls_mode="none", username="", password="", tls_context=None, timeout=5.0) -> SmtpRelay:
    return SmtpRelay("127.0.0.1", ctl.port, tls_mode, username, Secret(password), timeout, tls_context)


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# ---- the retry rule -----------------------------------------------------------

@pytest.mark.parametrize("attempts, seconds", [
    (0, 60), (1, 60), (2, 120), (3, 240), (6, 1920), (7, 3600), (8, 3600), (500, 3600),
])
def test_retry_delay(attempts, seconds):
    assert retry_delay(attempts) == timedelta(seconds=seconds)


# ---- Maildir outbox -----------------------------------------------------------

async def test_outbox_writes_one_file_into_new_with_envelope_lines(tmp_path):
    box = MaildirOutbox(tmp_path / "outbox")
    results = await box.send(SENDER, ["a@example.org", "b@quan1.hochiminhcity.gov.vn"], BODY)

    assert all(r.ok for r in results.values()) and set(results) == {"a@example.org", "b@quan1.hochiminhcity.gov.vn"}
    for sub in ("", "tmp", "new", "cur"):
        assert stat.S_IMODE(os.stat(tmp_path / "outbox" / sub).st_mode) == 0o700
    assert os.listdir(tmp_path / "outbox" / "tmp") == []
    [name] = os.listdir(tmp_path / "outbox" / "new")
    path = tmp_path / "outbox" / "new" / name
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    prefix = (b"Return-Path: <vanthu@hochiminhcity.gov.vn>\r\n"
              b"X-Original-To: a@example.org\r\nDelivered-To: a@example.org\r\n"
              b"X-Original-To: b@quan1.hochiminhcity.gov.vn\r\nDelivered-To: b@quan1.hochiminhcity.gov.vn\r\n")
    assert path.read_bytes() == prefix + BODY
    assert name in results["a@example.org"].reply


async def test_outbox_names_are_unique_and_header_lines_cannot_be_injected(tmp_path):
    box = MaildirOutbox(tmp_path / "outbox")
    await asyncio.gather(*(box.send(SENDER, ["a@example.org"], b"Subject: x\n\nbody\n") for _ in range(20)))
    await box.send("evil@x\r\nBcc: victim@y", ["a@example.org"], b"Subject: y\n\nbody\n")
    names = os.listdir(tmp_path / "outbox" / "new")
    assert len(names) == 21
    texts = [(tmp_path / "outbox" / "new" / n).read_bytes() for n in names]
    assert sum(t.startswith(b"Return-Path: <evil@xBcc: victim@y>\n") for t in texts) == 1
    assert all(b"\r" not in t for t in texts)  # LF messages get LF envelope lines


async def test_worker_with_outbox_marks_delivered(engine, tmp_path):
    mid = enqueue(engine, ["a@example.org"])
    assert await worker(engine, MaildirOutbox(tmp_path / "outbox")).drain_once() == 1
    row = rows(engine, mid)["a@example.org"]
    assert (row.state, row.attempts, row.lease_until) == ("delivered", 1, None)
    assert row.last_reply.startswith("250 2.0.0 Ok: stored in the outbox")
    assert len(os.listdir(tmp_path / "outbox" / "new")) == 1


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
    await worker(engine, relay(ctl)).drain_once()
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


# ---- claims and crash safety --------------------------------------------------

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


def test_claim_groups_by_message_and_respects_limit_and_states(any_engine):
    now = utcnow()
    first = enqueue(any_engine, ["a@x.vn", "b@x.vn"], next_attempt_at=now - timedelta(minutes=3))
    second = enqueue(any_engine, ["c@x.vn"], state="deferred", next_attempt_at=now - timedelta(minutes=2))
    enqueue(any_engine, ["d@x.vn"], next_attempt_at=now - timedelta(minutes=1))
    enqueue(any_engine, ["later@x.vn"], next_attempt_at=now + timedelta(minutes=1))
    enqueue(any_engine, ["held@x.vn"], state="held")

    [whole] = claim(any_engine, "n1", limit=1, lease_seconds=60, now=now)  # one message, all its rows
    assert (whole.message_id, [r.rcpt for r in whole.recipients]) == (first, ["a@x.vn", "b@x.vn"])
    assert (whole.data, whole.mail_from, whole.lease_until) == (BODY, SENDER, now + timedelta(seconds=60))
    assert rows(any_engine, first)["a@x.vn"].lease_until == now + timedelta(seconds=60)
    claims = claim(any_engine, "n2", limit=5, lease_seconds=60, now=now)
    assert [(c.message_id, [r.rcpt for r in c.recipients]) for c in claims][0] == (second, ["c@x.vn"])
    assert [r.rcpt for c in claims for r in c.recipients] == ["c@x.vn", "d@x.vn"]
    assert claim(any_engine, "n3", 10, 60, now) == []


def test_results_of_a_lost_lease_are_not_written(any_engine):
    now = utcnow()
    mid = enqueue(any_engine, ["a@x.vn"])
    [old] = claim(any_engine, "n1", 1, 60, now)
    [new] = claim(any_engine, "n2", 1, 60, now + timedelta(seconds=61))  # n1 looked dead
    ok = RecipientResult(ok=True, permanent=False, reply="250 ok")
    assert mark_results(any_engine, old.outcomes({"a@x.vn": ok}), now) == 0
    assert rows(any_engine, mid)["a@x.vn"].state == "sending"
    assert mark_results(any_engine, [Outcome(new.recipients[0].id, new.lease_until, ok)], now) == 1
    assert rows(any_engine, mid)["a@x.vn"].state == "delivered"


def test_long_reply_is_truncated(any_engine):
    mid = enqueue(any_engine, ["a@x.vn"])
    [job] = claim(any_engine, "n1", 1, 60, utcnow())
    mark_results(any_engine, job.outcomes({"a@x.vn": RecipientResult(False, False, "451 " + "x" * 5000)}), utcnow())
    assert len(rows(any_engine, mid)["a@x.vn"].last_reply) == 1000


# ---- the loop -----------------------------------------------------------------

class FlakyTransport:
    """A plain Transport: raises for one sender, delivers the rest."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, mail_from, rcpts, data):
        if mail_from == "broken@hochiminhcity.gov.vn":
            raise RuntimeError("boom")
        self.sent.extend(rcpts)
        return {r: RecipientResult(ok=True, permanent=False, reply="250 2.0.0 Ok") for r in rcpts}


async def wait_for_state(engine, mid, rcpt, state, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while rows(engine, mid)[rcpt].state != state:
        assert asyncio.get_running_loop().time() < deadline, f"{rcpt} never became {state}"
        await asyncio.sleep(0.02)


async def test_run_wakes_at_once_and_survives_a_failing_message(engine, caplog):
    caplog.set_level(logging.INFO, logger="mailhub.delivery")
    transport = FlakyTransport()
    w = worker(engine, transport, poll_seconds=60)  # only wake() can make it look again
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    await asyncio.sleep(0.1)

    bad = enqueue(engine, ["x@example.org"], mail_from="broken@hochiminhcity.gov.vn")
    good = enqueue(engine, ["y@example.org"])
    await asyncio.to_thread(w.wake)  # from another thread, as a front end's commit thread would
    await wait_for_state(engine, good, "y@example.org", "delivered")
    await wait_for_state(engine, bad, "x@example.org", "deferred")
    assert "internal error" in rows(engine, bad)["x@example.org"].last_reply

    later = enqueue(engine, ["z@example.org"])
    w.wake()
    await wait_for_state(engine, later, "z@example.org", "delivered")
    stop.set()
    await asyncio.wait_for(task, 5)

    attempts = [r for r in caplog.records if r.getMessage().startswith("attempt ")]
    assert len(attempts) == 3
    assert any(f"message={good} rcpt=y@example.org result=delivered reply=250 2.0.0 Ok" in r.getMessage()
               for r in attempts)
    assert any(f"message={bad}" in r.getMessage() and r.exc_info for r in caplog.records)
    assert b"Kinh gui" not in caplog.text.encode()


class StuckTransport:
    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def send(self, mail_from, rcpts, data):
        self.started.set()
        await asyncio.sleep(3600)


async def test_clean_stop_leaves_unfinished_sends_to_the_lease(engine):
    transport = StuckTransport()
    w = worker(engine, transport, stop_grace_seconds=0.1)
    stop = asyncio.Event()
    mid = enqueue(engine, ["a@example.org"])
    task = asyncio.create_task(w.run(stop))
    await asyncio.wait_for(transport.started.wait(), 5)
    stop.set()
    await asyncio.wait_for(task, 5)
    row = rows(engine, mid)["a@example.org"]
    assert (row.state, row.attempts) == ("sending", 0) and row.lease_until > utcnow()


async def test_a_send_longer_than_the_lease_is_stopped_and_deferred(engine):
    mid = enqueue(engine, ["a@example.org"])
    await worker(engine, StuckTransport(), lease_seconds=0.2).drain_once()
    row = rows(engine, mid)["a@example.org"]
    assert row.state == "deferred" and "took more than" in row.last_reply


# ---- configuration ------------------------------------------------------------

def test_build_transport(tmp_path):
    home = ServerConfig(home=str(tmp_path))
    outbox = build_transport(Config(server=home))
    assert isinstance(outbox, MaildirOutbox) and outbox.path == tmp_path / "outbox"

    cfg = Config(server=home, delivery=DeliveryConfig(
        mode="relay", relay_host="smtp.hochiminhcity.gov.vn", relay_port=587, relay_tls="require-starttls",
        relay_username="mailhub", relay_password=Secret("bi-mat")))
    smtp = build_transport(cfg)
    assert isinstance(smtp, SmtpRelay)
    assert (smtp.target, smtp.tls_mode, smtp.username) == ("smtp.hochiminhcity.gov.vn:587", "require-starttls", "mailhub")
    assert "bi-mat" not in repr(smtp)


# ---- several claimers at once -------------------------------------------------------

def test_concurrent_claimers_never_share_a_row(any_engine):
    """PostgreSQL: FOR UPDATE SKIP LOCKED. SQLite: BEGIN IMMEDIATE. Four claimers, one queue."""
    for i in range(60):
        enqueue(any_engine, [f"r{i}a@x.vn", f"r{i}b@x.vn"])
    now = utcnow()
    taken: list[list[int]] = []
    barrier = threading.Barrier(4)

    def claimer(node: str) -> None:
        barrier.wait()
        mine: list[int] = []
        while batch := claim(any_engine, node, 3, 60, now):
            mine.extend(r.id for c in batch for r in c.recipients)
        taken.append(mine)

    threads = [threading.Thread(target=claimer, args=(f"n{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    every = [rid for mine in taken for rid in mine]
    assert len(every) == len(set(every)) == 120
