"""Scriptable next hops for the delivery tests: real aiosmtpd servers on loopback."""
from __future__ import annotations

import asyncio
import ssl
import threading

import trustme
from aiosmtpd.controller import Controller

from tests.support import RecordingHandler, free_port


def server_tls(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    """A server-side TLS context with a certificate from ``ca`` for ``names``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


class ScriptedHandler(RecordingHandler):
    """A next hop: answers RCPT with ``rcpt_reply`` (None: accept), records what it
    accepts, and can hold DATA until ``gate`` is set (a stuck server)."""

    def __init__(self, rcpt_reply: str | None = None, gate: threading.Event | None = None) -> None:
        super().__init__()
        self.rcpt_reply = rcpt_reply
        self.gate = gate
        self.tls_sessions = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        if self.gate is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.gate.wait, 30)
        self.tls_sessions += session.ssl is not None
        return await super().handle_DATA(server, session, envelope)


class Hop:
    def __init__(self, handler: ScriptedHandler, **kw) -> None:
        self.handler = handler
        self.controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **kw)
        self.controller.start()

    @property
    def port(self) -> int:
        return self.controller.port

    def stop(self) -> None:
        if self.handler.gate is not None:
            self.handler.gate.set()
        self.controller.stop()
