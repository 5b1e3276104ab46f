"""A next-hop SMTP sink for the relay benchmark: answers 250 to everything, counts messages.

Run by ``bench/relay.py`` in its own process, so its CPU is not the relay's::

    python bench/sink.py [--impl raw|aiosmtpd] [--port 0] [--sample-every N --sample-dir DIR]

It prints ``port N`` on stdout once it listens. Then it reads commands on stdin,
one per line, and answers each on stdout:

- ``count``  -> ``<messages received> <CLOCK_MONOTONIC seconds>``
- ``exit`` (or end of input: the parent is gone) -> stops.

``raw`` (the default) is a bare asyncio protocol: a few microseconds per message,
so the sink takes as little CPU as possible from the relay under test on a small
machine. ``aiosmtpd`` is a stock aiosmtpd server with a handler that only counts,
for comparison (it costs roughly ten times more CPU per message).
Loopback only; nothing is stored, except with ``--sample-every N --sample-dir DIR``
(raw only): every N-th message is written to ``DIR/<count>.eml`` as it was sent,
for checks after the run (``bench/invites.py`` verifies their DKIM signatures).
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

COUNT = 0


class RawSink(asyncio.Protocol):
    """Just enough SMTP for aiosmtplib: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

    __slots__ = ("buf", "in_data", "scan_from", "transport")

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.buf = b""
        self.in_data = False
        self.scan_from = 0
        transport.write(b"220 sink.test ESMTP bench sink\r\n")

    def arrived(self, message: bytes) -> None:
        """One message received (without its final CRLF.CRLF); a subclass may look at it."""
        global COUNT
        COUNT += 1

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        out = []
        while buf:
            if self.in_data:
                # The message ends at CRLF.CRLF; the message itself starts right after
                # the 354, so a message that is only "." is "\r\n.\r\n" minus the first CRLF.
                if buf.startswith(b".\r\n") and self.scan_from == 0:
                    end, skip = 0, 3
                else:
                    end = buf.find(b"\r\n.\r\n", max(0, self.scan_from - 4))
                    skip = 5
                if end < 0:
                    self.scan_from = len(buf)
                    break
                self.arrived(buf[:end])
                buf = buf[end + skip:]
                self.in_data = False
                self.scan_from = 0
                out.append(b"250 2.0.0 Ok: queued\r\n")
                continue
            i = buf.find(b"\r\n")
            if i < 0:
                if len(buf) > 4096:
                    out.append(b"500 5.5.2 line too long\r\n")
                    buf = b""
                break
            verb = buf[:4].upper()
            buf = buf[i + 2:]
            if verb in (b"EHLO",):
                out.append(b"250-sink.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 104857600\r\n")
            elif verb == b"DATA":
                self.in_data = True
                self.scan_from = 0
                out.append(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            elif verb == b"QUIT":
                out.append(b"221 2.0.0 Bye\r\n")
                self.transport.write(b"".join(out))
                self.transport.close()
                self.buf = b""
                return
            else:  # HELO, MAIL, RCPT, RSET, NOOP, anything: accepted
                out.append(b"250 2.0.0 Ok\r\n")
        self.buf = buf
        if out:
            self.transport.write(b"".join(out))


class SamplingSink(RawSink):
    """A :class:`RawSink` that also keeps every ``every``-th message in ``folder``."""

    every = 0
    folder = None

    def arrived(self, message: bytes) -> None:
        super().arrived(message)
        if self.every and COUNT % self.every == 0:
            # RFC 5321 §4.5.2: undo the client's dot-stuffing; the file is the message sent.
            data = message[1:] if message.startswith(b"..") else message
            (self.folder / f"{COUNT}.eml").write_bytes(data.replace(b"\r\n..", b"\r\n.") + b"\r\n")


class CountingHandler:
    async def handle_DATA(self, server, session, envelope):
        global COUNT
        COUNT += 1
        return "250 2.0.0 Ok: queued"


async def _control(stop: asyncio.Event) -> None:
    """Answer ``count`` on stdin; stop on ``exit`` or end of input."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        cmd = line.strip()
        if not line or cmd == b"exit":
            stop.set()
            return
        if cmd == b"count":
            sys.stdout.write(f"{COUNT} {time.monotonic():.6f}\n")
            sys.stdout.flush()


async def main(impl: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    if impl == "raw":
        protocol = SamplingSink if SamplingSink.every else RawSink
        server = await loop.create_server(protocol, "127.0.0.1", port, backlog=1024)
    else:
        from aiosmtpd.smtp import SMTP

        handler = CountingHandler()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="sink.test", enable_SMTPUTF8=True),
            "127.0.0.1", port, backlog=1024)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    await _control(stop)
    server.close()


if __name__ == "__main__":
    import logging

    logging.getLogger("mail.log").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=("raw", "aiosmtpd"), default="raw")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--sample-every", type=int, default=0, help="keep every N-th message (raw only)")
    parser.add_argument("--sample-dir", type=Path, help="where --sample-every writes them")
    args = parser.parse_args()
    if args.sample_every:
        SamplingSink.every, SamplingSink.folder = args.sample_every, args.sample_dir
        args.sample_dir.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(main(args.impl, args.port))
    except KeyboardInterrupt:
        pass
