"""Delivery: the worker that empties the queue, and the outbound channels.

- :mod:`.transport`  the seam (:class:`Transport`, :class:`RecipientResult`)
- :mod:`.outbox`     the development channel: a local Maildir
- :mod:`.smtp_relay` the production channel: one relay host over SMTP
- :mod:`.smtp_pool`  the relay's open sessions, reused from message to message
- :mod:`.claims`     all SQL of claiming and recording attempts
- :mod:`.results`    recording attempts in batches
- :mod:`.worker`     the loop
"""
from __future__ import annotations

from mailhub.config import Config
from mailhub.delivery.claims import (Claim, ClaimedRecipient, Outcome, claim, mark_results, release,
                                     retry_delay)
from mailhub.delivery.outbox import MaildirOutbox
from mailhub.delivery.smtp_relay import DEFAULT_TIMEOUT, SmtpRelay
from mailhub.delivery.transport import RecipientResult, Transport
from mailhub.delivery.worker import DeliveryWorker

__all__ = [
    "Claim", "ClaimedRecipient", "DeliveryWorker", "MaildirOutbox", "Outcome", "RecipientResult",
    "SmtpRelay", "Transport", "build_transport", "claim", "mark_results", "release", "retry_delay",
]


def build_transport(config: Config) -> Transport:
    """The channel ``[delivery] mode`` names: ``outbox`` (Maildir) or ``relay`` (SMTP)."""
    delivery = config.delivery
    if delivery.mode == "relay":
        return SmtpRelay(delivery.relay_host, delivery.relay_port, delivery.relay_tls,
                         delivery.relay_username, delivery.relay_password, DEFAULT_TIMEOUT,
                         local_hostname=config.server.hostname, max_connections=delivery.concurrency)
    if delivery.mode == "outbox":
        return MaildirOutbox(config.outbox_dir)
    raise ValueError(f"delivery.mode: expected outbox or relay, got {delivery.mode!r}")
