"""The relay's TLS modes, ``address=``, and what the results say for routing
(``remote``, ``answered``), against real next hops on 127.0.0.1: aiosmtpd with
real TLS (trustme), and small asyncio servers for greetings aiosmtpd cannot
give (421, silence, a hang-up).

No mock of mailhub code.
"""
from __future__ import annotations

import asyncio
import ssl

import pytest
import trustme

from mailhub.config import Secret
from mailhub.delivery import RecipientResult, SmtpRelay
from mailhub.delivery.smtp_relay import TLS_MODES
from tests.test_delivery_queue import BODY, SENDER
from tests.test_delivery_relay import NextHop, closed_port, start_hop  # noqa: F401  (start_hop: fixture)

MX = "mx.test.example"


async def send_one(transport: SmtpRelay, rcpt: str = "a@example.org") -> RecipientResult:
    try:
        return (await transport.send(SENDER, [rcpt], BODY))[rcpt]
    finally:
        await transport.close()


def server_context(ca: trustme.CA, *names: str, seen_names: list | None = None,
                   minimum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """A next hop's TLS context with a certificate for ``names``; records the SNI
    name each client sent in ``seen_names``."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(ctx)
    if minimum is not None:
        ctx.minimum_version = minimum
    if seen_names is not None:
        def record(sslobj, name, context):
            if name is not None:  # aiosmtpd's own start-up probe sends none
                seen_names.append(name)
        ctx.sni_callback = record
    return ctx


@pytest.fixture
def trusting(ca) -> ssl.SSLContext:
    """A client context that trusts the test CA (and checks host names)."""
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


# ---- the result: remote and answered -------------------------------------------

def test_recipient_result_fields():
    result = RecipientResult(False, False, "451 4.3.0 later")
    assert (result.remote, result.answered) == ("", True)  # defaults: old callers unchanged
    assert result == RecipientResult(False, False, "451 4.3.0 later", remote="mx1[192.0.2.1]:25")  # provenance
    assert result != RecipientResult(False, False, "451 4.3.0 later", answered=False)


@pytest.mark.parametrize("address, remote", [
    (None, "127.0.0.1:{port}"),
    ("127.0.0.1", "mx1.example.org[127.0.0.1]:{port}"),
])
async def test_connection_refused_is_not_answered(address, remote):
    port = closed_port()
    host = "127.0.0.1" if address is None else "mx1.example.org"
    result = await send_one(SmtpRelay(host, port, "none", "", Secret(""), 5.0, address=address))
    remote = remote.format(port=port)
    assert (result.outcome, result.answered, result.remote) == ("deferred", False, remote)
    assert result.reply == f"connection refused by {remote}"


async def greeting_server(greeting: bytes | None, then_close: bool) -> tuple[asyncio.Server, list]:
    """Sends ``greeting`` (or nothing) and then hangs up, or waits for the client
    to. Returns the server and its session tasks (await them before the loop ends)."""
    sessions: list[asyncio.Task] = []

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sessions.append(asyncio.current_task())
        if greeting is not None:
            writer.write(greeting)
            await writer.drain()
        if not then_close:
            await reader.read()  # until the client gives up
        writer.close()
        await writer.wait_closed()

    return await asyncio.start_server(session, "127.0.0.1", 0), sessions


@pytest.mark.parametrize("greeting, then_close, answered, reply", [
    (b"421 4.3.2 too busy, come back later\r\n", True, True,
     "421 4.3.2 too busy, come back later (greeting of mx1.example.org[127.0.0.1]:{port})"),
    (b"554 5.7.1 no mail from you\r\n", True, True,
     "554 5.7.1 no mail from you (greeting of mx1.example.org[127.0.0.1]:{port})"),
    (None, False, False, "connection to mx1.example.org[127.0.0.1]:{port} timed out after 0.3 s"),
    (None, True, False, "delivery to mx1.example.org[127.0.0.1]:{port} failed"),
])
async def test_greetings(greeting, then_close, answered, reply):
    """A reply, even 421, is an answer; silence or a hang-up before the greeting is not."""
    server, sessions = await greeting_server(greeting, then_close)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await send_one(SmtpRelay("mx1.example.org", port, "none", "", "", 0.3, address="127.0.0.1"))
    finally:
        server.close()
        await server.wait_closed()
        await asyncio.wait_for(asyncio.gather(*sessions), 5)
    assert (result.outcome, result.answered, result.remote) == (
        "deferred", answered, f"mx1.example.org[127.0.0.1]:{port}")
    assert result.reply.startswith(reply.format(port=port))
    assert len(sessions) == 1


# ---- may: opportunistic, unauthenticated (RFC 7435) ------------------------------

async def test_may_encrypts_with_a_certificate_nobody_trusts(start_hop):
    untrusted = trustme.CA()  # neither the system's CAs nor the test CA know it
    hop = NextHop()
    ctl = start_hop(hop, tls_context=server_context(untrusted, "somebody-else.example"))
    result = await send_one(SmtpRelay(MX, ctl.port, "may", "", "", 5.0, address="127.0.0.1"))
    assert result.ok and result.remote == f"{MX}[127.0.0.1]:{ctl.port}"
    assert [r.tls for r in hop.received] == [True]


async def test_may_without_starttls_sends_in_clear(start_hop):
    hop = NextHop()
    ctl = start_hop(hop)
    assert (await send_one(SmtpRelay("127.0.0.1", ctl.port, "may", "", "", 5.0))).ok
    assert [r.tls for r in hop.received] == [False]


async def test_may_handshake_failure_defers_and_does_not_fall_back_to_clear(start_hop, ca):
    """STARTTLS offered, handshake impossible (the server wants TLS 1.3, this
    client stops at 1.2): deferred as not answered, nothing sent in clear."""
    hop = NextHop()
    ctl = start_hop(hop, tls_context=server_context(ca, MX, minimum=ssl.TLSVersion.TLSv1_3))
    old_client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old_client.check_hostname, old_client.verify_mode = False, ssl.CERT_NONE
    old_client.maximum_version = ssl.TLSVersion.TLSv1_2
    result = await send_one(SmtpRelay(MX, ctl.port, "may", "", "", 5.0, old_client, address="127.0.0.1"))
    assert (result.outcome, result.answered) == ("deferred", False)
    assert result.reply.startswith(f"TLS with {MX}[127.0.0.1]:{ctl.port} failed")
    assert hop.mail_commands == 0 and hop.received == []


class RefusesStartTls(NextHop):
    """Lists STARTTLS in its EHLO reply but has no certificate: aiosmtpd answers
    STARTTLS with ``454 TLS not available``."""

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        responses = await super().handle_EHLO(server, session, envelope, hostname, responses)
        return [responses[0], "250-STARTTLS", *responses[1:]]


@pytest.mark.parametrize("tls_mode, delivered", [("may", True), ("starttls", False)])
async def test_starttls_offered_then_refused(start_hop, trusting, tls_mode, delivered):
    """``may`` goes on in clear on the same session, as Postfix does; ``starttls``
    defers (an answer: the host is alive)."""
    hop = RefusesStartTls()
    ctl = start_hop(hop)
    context = None if tls_mode == "may" else trusting
    result = await send_one(SmtpRelay(MX, ctl.port, tls_mode, "", "", 5.0, context, address="127.0.0.1"))
    assert (result.ok, result.answered) == (delivered, True)
    if delivered:
        assert [r.tls for r in hop.received] == [False] and hop.connections == 1
    else:
        assert result.reply == f"454 TLS not available (STARTTLS at {MX}[127.0.0.1]:{ctl.port})"
        assert hop.mail_commands == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"username": "vanthu"}, "username: tls_mode 'may'"),
    ({"tls_context": ssl.create_default_context()}, "tls_context: tls_mode 'may'"),
    ({"tls_mode": "opportunistic"}, "tls_mode: expected one of none, may, starttls, require-starttls, tls"),
    ({"protocol": "esmtp"}, "protocol: expected one of smtp, lmtp"),
])
def test_settings_that_cannot_work(kwargs, message):
    args = {"tls_mode": "may", "username": "", "tls_context": None, **kwargs}
    with pytest.raises(ValueError, match=message):
        SmtpRelay(MX, 25, args.pop("tls_mode"), args.pop("username"), "", 5.0, args.pop("tls_context"), **args)


def test_all_five_modes_are_documented():
    assert TLS_MODES == ("none", "may", "starttls", "require-starttls", "tls")
    for mode in TLS_MODES:
        assert f"``{mode}``" in SmtpRelay.__doc__


# ---- require-starttls -------------------------------------------------------------

async def test_require_starttls_without_starttls_is_answered_and_sends_nothing(start_hop, trusting):
    hop = NextHop()
    ctl = start_hop(hop)
    result = await send_one(SmtpRelay(MX, ctl.port, "require-starttls", "", "", 5.0, trusting, address="127.0.0.1"))
    assert (result.outcome, result.answered) == ("deferred", True)
    assert result.reply.startswith(f"{MX}[127.0.0.1]:{ctl.port} does not offer STARTTLS")
    assert hop.mail_commands == 0 and hop.received == []


# ---- address: connect to the IP, check the certificate against the name ----------------

@pytest.mark.parametrize("tls_mode", ["starttls", "require-starttls", "tls"])
async def test_address_connects_there_and_tls_checks_the_name(start_hop, ca, trusting, tls_mode):
    hop, seen_names = NextHop(), []
    ctx = server_context(ca, MX, seen_names=seen_names)
    ctl = start_hop(hop, ssl_context=ctx) if tls_mode == "tls" else start_hop(hop, tls_context=ctx)
    transport = SmtpRelay(MX, ctl.port, tls_mode, "", "", 5.0, trusting, address="127.0.0.1")
    assert transport.target == f"{MX}[127.0.0.1]:{ctl.port}"
    result = await send_one(transport)
    assert result.ok and result.remote == transport.target
    assert [r.tls for r in hop.received] == [True]
    assert seen_names == [MX]  # SNI (RFC 6066 §3) carried the name, not the address


@pytest.mark.parametrize("tls_mode", ["starttls", "tls"])
async def test_address_with_a_certificate_for_another_name(start_hop, ca, trusting, tls_mode):
    hop = NextHop()
    ctx = server_context(ca, "other.test.example")  # trusted CA, wrong name
    ctl = start_hop(hop, ssl_context=ctx) if tls_mode == "tls" else start_hop(hop, tls_context=ctx)
    result = await send_one(SmtpRelay(MX, ctl.port, tls_mode, "", "", 5.0, trusting, address="127.0.0.1"))
    assert (result.outcome, result.answered, result.remote) == ("deferred", False, f"{MX}[127.0.0.1]:{ctl.port}")
    assert f"TLS certificate of {MX}[127.0.0.1]:{ctl.port} not trusted" in result.reply
    assert hop.mail_commands == 0 and hop.received == []
