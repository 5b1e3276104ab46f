"""The SMS seam: every SMS gateway is an :class:`SmsGateway`.

The same shape as the email side (:mod:`mailhub.delivery.transport`): one async
``send`` that returns a :class:`SmsReceipt` and never raises for an expected
failure (a refusal, a rate limit, a refused connection, a timeout). An
exception that escapes a gateway is a bug; the caller retries the message.

A new gateway is one file with one small class. A gateway that keeps something
open between messages (an HTTP session, an SMPP bind) also has ``async close()``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mailhub.delivery.transport import one_line


@dataclass(frozen=True)
class SmsReceipt:
    """What the gateway said about one SMS.

    ``ok``: the gateway accepted it (queued or sent), which is not delivery: a
    delivery report (Twilio status callback, SMPP ``deliver_sm``) comes later.
    ``permanent``: refused for good (invalid number, opted out): never retry;
    meaningless when ``ok``. ``reason``: one line for the secretary and the log,
    in English, ``""`` when ok.
    """

    ok: bool
    permanent: bool
    gateway_id: str  # the gateway's message id (Twilio SID), "" when refused
    status: str  # the gateway's own status word ("queued", "accepted", "failed", ...)
    reason: str
    code: str = ""  # the gateway's error code, e.g. "21211"

    @property
    def outcome(self) -> str:
        """The state this receipt leads to: sent, failed or deferred."""
        if self.ok:
            return "sent"
        return "failed" if self.permanent else "deferred"


class SmsGateway(Protocol):
    """One SMS channel (outbox file, Twilio, SMPP)."""

    async def send(self, to: str, text: str, *, reference: str, unicode: bool = False) -> SmsReceipt:
        """Hand one SMS to the gateway.

        Trusts ``to`` to be E.164 (``+84912345678``, checked by
        :func:`invites.phones.normalise_phone`) and ``text`` to be what the
        recipient should read (diacritics already stripped unless ``unicode``).
        ``reference`` is our id for the message: the outbox records it, status
        callbacks are matched back to it through ``gateway_id``.
        """
        ...


def accepted(gateway_id: str, status: str) -> SmsReceipt:
    return SmsReceipt(ok=True, permanent=False, gateway_id=gateway_id, status=status, reason="")


def refused(reason: str, *, permanent: bool, status: str = "failed", code: str = "") -> SmsReceipt:
    """A receipt for an SMS the gateway did not take; ``reason`` is folded to one line."""
    return SmsReceipt(ok=False, permanent=permanent, gateway_id="", status=status,
                      reason=one_line(reason, 500), code=code)
