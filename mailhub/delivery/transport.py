"""The outbound seam: every delivery channel is a :class:`Transport`.

A transport takes one message and its envelope and returns one
:class:`RecipientResult` per recipient. It never raises for an expected
failure (a 4xx/5xx answer, a refused connection, a timeout): those are
results. The worker treats an exception that escapes a transport as a bug and
defers every recipient of that message.

A new channel is one file with one small class that has an async ``send``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Protocol, Sequence


@dataclass(frozen=True)
class RecipientResult:
    """What the next hop said about one recipient.

    ``ok``: accepted. ``permanent``: refused for good (bounce); meaningless when
    ``ok``. ``reply``: the remote answer on one line, e.g. ``"250 2.0.0 Ok"`` or
    ``"451 4.3.0 try later"``, or our own text when there was no answer
    (``"connection refused by 127.0.0.1:2525"``).

    ``remote``: the next hop the result is about, as ``name[address]:port``
    (``mx1.example.org[192.0.2.7]:25``), or ``""`` when there was none (the
    outbox, our own refusal before connecting). It says where the answer came
    from, not what it was, so it takes no part in ``==``.

    ``answered``: ``False`` only when no SMTP/LMTP server answered at all:
    connection refused, connection or greeting timed out, TLS handshake or
    certificate failure, connection lost before the greeting. The routing layer
    then tries the next host for the destination. Any reply, even a ``421``
    greeting, is ``True``; so is our own refusal, which says nothing about the host.
    """

    ok: bool
    permanent: bool
    reply: str
    remote: str = field(default="", compare=False)
    answered: bool = True

    @property
    def outcome(self) -> str:
        """The queue state this result leads to: delivered, bounced or deferred."""
        if self.ok:
            return "delivered"
        return "bounced" if self.permanent else "deferred"


class Transport(Protocol):
    """One outbound channel (Maildir outbox, SMTP relay, ...).

    A channel that keeps something open between messages (the relay's SMTP
    sessions) also has ``async close()``; the worker calls it when it stops.
    """

    async def send(self, mail_from: str, rcpts: Sequence[str], data: bytes) -> dict[str, RecipientResult]:
        """Deliver ``data`` once to all of ``rcpts``; return a result for each of them."""
        ...


def one_line(text: str, limit: int = 1000) -> str:
    """Fold a (possibly multi-line) reply into one printable line.

    Remote replies go into logs and the queue table: a CR or LF in them must not
    forge a log line, so every control character becomes a space.
    """
    if not text.isprintable():  # the usual reply is printable: skip the walk over each character
        text = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(text.split())[:limit]


def delivered(reply: str, *, remote: str = "") -> RecipientResult:
    return RecipientResult(ok=True, permanent=False, reply=one_line(reply), remote=remote)


def temporary(reply: str, *, remote: str = "", answered: bool = True) -> RecipientResult:
    """A deferral; ``answered=False`` when no server answered (see :class:`RecipientResult`)."""
    return RecipientResult(ok=False, permanent=False, reply=one_line(reply), remote=remote, answered=answered)


def permanent(reply: str, *, remote: str = "") -> RecipientResult:
    return RecipientResult(ok=False, permanent=True, reply=one_line(reply), remote=remote)


def from_reply(code: int, text: str, *, remote: str = "") -> RecipientResult:
    """Classify an SMTP reply by its first digit (RFC 5321 §4.2.1).

    2xx accepted, 5xx permanent, anything else (4xx, or a code that makes no
    sense at this point) temporary: when unsure, retry rather than bounce.
    A reply is an answer: the result is always ``answered``.
    """
    reply = f"{code} {text}"
    if 200 <= code < 300:
        return delivered(reply, remote=remote)
    if 500 <= code < 600:
        return permanent(reply, remote=remote)
    return temporary(reply, remote=remote)


def for_all(rcpts: Iterable[str], result: RecipientResult) -> dict[str, RecipientResult]:
    """The same result for every recipient (connection failure, DATA refused, ...)."""
    return {rcpt: result for rcpt in rcpts}
