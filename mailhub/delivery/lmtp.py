"""What LMTP (RFC 2033) changes in a session of :class:`~.smtp_relay.SmtpRelay`.

LMTP is SMTP for the last hop into a mail store (Dovecot, Cyrus), with two
differences that matter here:

- the greeting command is ``LHLO`` (RFC 2033 §4.1); ``EHLO`` and ``HELO`` are
  not LMTP commands, so there is no fallback;
- after the end of the message data the server answers once per recipient it
  accepted at ``RCPT``, in ``RCPT`` order (RFC 2033 §4.2): one mailbox can be
  full while the next one takes the message.

Everything else (connection, STARTTLS, AUTH, MAIL, RCPT, RSET, QUIT, the
session pool) is the relay's SMTP code on the same aiosmtplib session.

Why the replies are not read with aiosmtplib's ``read_response``: its protocol
expects one reply per command. A second reply that arrives in the same read as
the first stays in its buffer and is never handed out (the next read times
out), and data arriving while a parsed reply waits to be picked up is dropped.
So for the replies after the data, the connection's protocol is swapped, with
asyncio's public ``transport.set_protocol``, for :class:`_ReplyReader`, which
keeps every byte, and put back afterwards.

What is trusted: the server's replies are parsed as SMTP replies (a three-digit
code, ``-`` for a continuation) and bounded in size; nothing else from them is
believed. A connection lost (or a timeout) after the data leaves the recipients
without a reply deferred: the server may have delivered to some of them, so a
retry can duplicate (RFC 1047: a duplicate is the lesser harm than a loss).
"""
from __future__ import annotations

import asyncio
import collections
from typing import Callable

import aiosmtplib
from aiosmtplib.protocol import MAX_RESPONSE_LENGTH, PERIOD_REGEX, normalize_message_line_endings

from mailhub.delivery.transport import RecipientResult, for_all, from_reply


async def lhlo(smtp: aiosmtplib.SMTP, timeout: float) -> None:
    """Send ``LHLO`` (RFC 2033 §4.1) and record the extensions the server lists,
    as aiosmtplib does for ``EHLO`` (``supports_extension``, AUTH methods)."""
    hostname = smtp.local_hostname or "localhost"  # aiosmtplib sets it (validated) on connect
    response = await smtp.execute_command(b"LHLO", hostname.encode("ascii"), timeout=timeout)
    if response.code != 250:
        raise aiosmtplib.SMTPHeloError(response.code, response.message)
    smtp.last_ehlo_response = response


async def send_data(smtp: aiosmtplib.SMTP, accepted: list[str], data: bytes, timeout: float,
                    link_failure: Callable[[BaseException], RecipientResult],
                    ) -> tuple[dict[str, RecipientResult], bool]:
    """``DATA``, the message, then one reply per recipient of ``accepted`` (the
    recipients the server accepted at RCPT, in RCPT order).

    Returns a result for each of ``accepted`` and whether the transaction ended
    cleanly. ``DATA`` refused gives every recipient its reply (not clean: the
    caller resets). A link failure after the data gives the recipients still
    without a reply ``link_failure(exc)``; the session is closed then, since a
    late reply could be taken for the answer to the next command. A link failure
    before the data is sent is raised, as in SMTP.
    """
    response = await smtp.execute_command(b"DATA", timeout=timeout)
    if response.code != 354:
        return for_all(accepted, from_reply(response.code, response.message)), False
    # The same transparency and line endings aiosmtplib applies to SMTP DATA
    # (RFC 5321 §4.5.2: a line starting with "." gets another one).
    payload = PERIOD_REGEX.sub(b"..", normalize_message_line_endings(data)) + b".\r\n"
    protocol, transport = smtp.protocol, smtp.transport
    if protocol is None or transport is None:
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    results: dict[str, RecipientResult] = {}
    reader = _ReplyReader()
    transport.set_protocol(reader)
    try:
        protocol.write(payload)
        for rcpt in accepted:
            code, text = await reader.next_reply(timeout)
            results[rcpt] = from_reply(code, text)
    except (aiosmtplib.SMTPException, OSError) as exc:
        failed = link_failure(exc)
        results.update((rcpt, failed) for rcpt in accepted if rcpt not in results)
        reader.broken = True
    finally:
        transport.set_protocol(protocol)
        if reader.closed:  # the connection ended while the reader had it: tell its owner
            protocol.connection_lost(reader.close_reason)
    if reader.broken or reader.closed or reader.pending:
        smtp.close()  # lost, timed out, garbled, or more replies than recipients: never reuse
        return results, False
    return results, True


class _ReplyReader(asyncio.Protocol):
    """Holds the connection while the per-recipient replies come in.

    Keeps every byte it receives and splits it into replies; it never drops
    data, whatever the timing or the way the replies are cut into reads.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._replies: collections.deque[tuple[int, str]] = collections.deque()
        self._error: aiosmtplib.SMTPException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.broken = False  # a reply is missing or garbled: the session is out of step
        self.closed = False  # the connection is gone
        self.close_reason: Exception | None = None

    @property
    def pending(self) -> bool:
        """Bytes or replies received and not taken: the server said more than asked."""
        return bool(self._buffer or self._replies)

    def data_received(self, data: bytes) -> None:
        if self._error is not None:
            return
        self._buffer += data
        try:
            while (reply := _take_reply(self._buffer)) is not None:
                self._replies.append(reply)
            if len(self._buffer) > MAX_RESPONSE_LENGTH:
                raise aiosmtplib.SMTPResponseException(-1, "reply too long")
        except aiosmtplib.SMTPResponseException as exc:
            self._error = exc
        self._wake()

    def eof_received(self) -> bool:
        return False  # the transport closes; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed, self.close_reason = True, exc
        self._wake()

    async def next_reply(self, timeout: float) -> tuple[int, str]:
        """The next reply; raises as aiosmtplib does for a timeout or a lost connection."""
        while not self._replies:
            if self._error is not None:
                raise self._error
            if self.closed:
                raise aiosmtplib.SMTPServerDisconnected("Connection lost") from self.close_reason
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._waiter, timeout)
            except TimeoutError as exc:
                raise aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response") from exc
            finally:
                self._waiter = None
        return self._replies.popleft()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


def _take_reply(buffer: bytearray) -> tuple[int, str] | None:
    """Remove one complete reply from the start of ``buffer`` (RFC 5321 §4.2:
    ``250-first line``, ..., ``250 last line``); ``None`` while it is incomplete."""
    lines: list[str] = []
    offset = 0
    while (end := buffer.find(b"\n", offset)) != -1:
        line = bytes(buffer[offset:end]).rstrip(b"\r")
        offset = end + 1
        code, separator = line[:3], line[3:4]
        if not (code.isdigit() and len(code) == 3 and separator in (b"", b" ", b"-")):
            raise aiosmtplib.SMTPResponseException(
                -1, f"malformed reply line: {line[:80].decode('utf-8', 'replace')}")
        lines.append(line[4:].strip(b" \t").decode("utf-8", "replace"))
        if separator != b"-":
            del buffer[:offset]
            return int(code), "\n".join(lines)
    return None
