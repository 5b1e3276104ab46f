"""The development transport: every message lands in a local Maildir.

Nothing leaves the machine. Each ``send`` writes one file (one copy for all
recipients) the way a Maildir delivery agent does (https://cr.yp.to/proto/maildir.html):
write into ``tmp/`` under a unique name, fsync, rename into ``new/``, fsync the
folder. A reader never sees a half-written file, and a file in ``new/``
survives a power cut.
"""
from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import socket
import time
from pathlib import Path
from typing import Sequence

from mailhub.delivery.transport import RecipientResult, delivered, for_all, temporary
from mailhub.durable import fsync_dir

_counter = itertools.count(1)


def maildir_name() -> str:
    """A unique Maildir file name: ``<sec>.M<usec>P<pid>Q<n>R<random>.<host>``.

    The Maildir spec builds uniqueness from time, process id and a per-process
    counter; the random part also covers pid reuse within one microsecond. A
    ``/`` or ``:`` in the host name would break the name, so they are escaped
    as the spec says (``\\057``, ``\\072``).
    """
    now = time.time()
    sec, usec = int(now), int((now % 1) * 1_000_000)
    host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")
    return f"{sec}.M{usec}P{os.getpid()}Q{next(_counter)}R{secrets.token_hex(4)}.{host}"


def _header_value(text: str) -> bytes:
    # The addresses were checked at RCPT time, but a header line is no place to
    # trust that: a CR or LF here would inject header lines.
    return "".join(ch for ch in text if ch.isprintable()).encode("utf-8")


def _line_ending(data: bytes) -> bytes:
    """The message's own line ending, so the prepended lines match it."""
    lf = data.find(b"\n")
    return b"\r\n" if lf > 0 and data[lf - 1:lf] == b"\r" else b"\n"


def delivery_headers(mail_from: str, rcpts: Sequence[str], eol: bytes) -> bytes:
    """``Return-Path`` then one ``X-Original-To``/``Delivered-To`` pair per recipient.

    The same lines a local delivery agent adds (RFC 5321 §4.4 for Return-Path),
    so the envelope of a message in the outbox is visible without the queue.
    """
    lines = [b"Return-Path: <" + _header_value(mail_from) + b">"]
    for rcpt in rcpts:
        value = _header_value(rcpt)
        lines.append(b"X-Original-To: " + value)
        lines.append(b"Delivered-To: " + value)
    return b"".join(line + eol for line in lines)


class MaildirOutbox:
    """Write each message into the Maildir at ``path`` (created with mode 0700)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        for sub in ("", "tmp", "new", "cur"):
            (self.path / sub).mkdir(mode=0o700, parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"MaildirOutbox({str(self.path)!r})"

    async def send(self, mail_from: str, rcpts: Sequence[str], data: bytes) -> dict[str, RecipientResult]:
        try:
            name = await asyncio.to_thread(self._write, mail_from, rcpts, data)
        except OSError as exc:
            return for_all(rcpts, temporary(f"451 4.3.0 cannot write to the outbox: {exc.strerror or exc}"))
        return for_all(rcpts, delivered(f"250 2.0.0 Ok: stored in the outbox as {name}"))

    def _write(self, mail_from: str, rcpts: Sequence[str], data: bytes) -> str:
        name = maildir_name()
        tmp_path, new_path = self.path / "tmp" / name, self.path / "new" / name
        fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(delivery_headers(mail_from, rcpts, _line_ending(data)))
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.rename(tmp_path, new_path)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
        fsync_dir(self.path / "new")
        return name
