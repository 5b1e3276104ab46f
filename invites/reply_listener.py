"""The reply listener (``[listen] replies``): an SMTP port where the city's mail
server forwards copies of mail to meeting organizers, so that answers from
outside the relay (external guests' calendar replies) are taken in too.

It relays nothing and stores nothing but the answers: every message is read by
:class:`invites.replies.ReplyIntake` and answered ``250``, a reply or not, so
the forwarding server never bounces or retries a copy. Only hosts in
``[invites] reply_intake_networks`` (default: this machine) may connect; there
is no login. Forwarding changes the envelope, so the checks use the headers the
city's server has vetted (SPF/DKIM/DMARC): the calendar's ATTENDEE must be the
From address, and the organizer must be in To or Cc.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
from email.headerregistry import Address
from email.parser import BytesHeaderParser
from email.policy import default
from email.utils import getaddresses

from aiosmtpd.smtp import SMTP

from invites.replies import ReplyIntake

log = logging.getLogger("mailhub.invites")
MAX_BYTES = 5 * 1024 * 1024  # a calendar reply is a few kilobytes


class ReplyListenerHandler:
    def __init__(self, intake: ReplyIntake, networks: tuple[str, ...]) -> None:
        self.intake = intake
        self.networks = [ipaddress.ip_network(n, strict=False) for n in networks]

    def allowed(self, peer) -> bool:
        try:
            address = ipaddress.ip_address(peer[0]) if isinstance(peer, tuple) else None
        except ValueError:
            return False
        return address is not None and any(address in network for network in self.networks)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if not self.allowed(session.peer):
            log.warning("reply listener: refused %s (not in invites.reply_intake_networks)", session.peer)
            return "554 5.7.1 Khong duoc phep / not allowed from this address"
        envelope.mail_from = address
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or b""
        head = BytesHeaderParser(policy=default).parsebytes(data.split(b"\r\n\r\n", 1)[0] + b"\r\n")
        senders = getaddresses([str(v) for v in head.get_all("From", [])])
        recipients = [a for _, a in getaddresses([str(v) for k in ("To", "Cc") for v in head.get_all(k, [])]) if a]
        if len(senders) != 1 or not senders[0][1]:
            return "250 2.0.0 OK (no single From: nothing taken in)"
        try:
            answerer = Address(addr_spec=senders[0][1]).addr_spec
        except (ValueError, IndexError):
            return "250 2.0.0 OK (unreadable From: nothing taken in)"
        results = await asyncio.to_thread(self.intake.observe, answerer, recipients, data)
        taken = sum(r.outcome != "ignored" for r in results)
        return f"250 2.0.0 OK ({taken} answer(s) taken in)"


def reply_listener(intake: ReplyIntake, networks: tuple[str, ...], hostname: str) -> SMTP:
    return SMTP(ReplyListenerHandler(intake, networks), hostname=hostname, ident="mailhub replies",
                data_size_limit=MAX_BYTES, decode_data=False, enable_SMTPUTF8=False, timeout=60)
