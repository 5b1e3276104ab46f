"""Delivery: the worker that empties the queue, and the outbound channels.

- :mod:`.transport`  the seam (:class:`Transport`, :class:`RecipientResult`)
- :mod:`.routing`    which destination each recipient's mail goes to, and its transport
- :mod:`.dispatch`   concurrency per destination and overall, dead destinations
- :mod:`.outbox`     the development channel: a local Maildir
- :mod:`.smtp_relay` one next hop over SMTP or LMTP (:mod:`.lmtp`)
- :mod:`.smtp_pool`  opening sessions, and keeping them for the next message
- :mod:`.mx`         mail exchangers from DNS (direct delivery)
- :mod:`.notices`    failure notices and delay warnings to senders (:mod:`.dsn` builds them)
- :mod:`.claims`     all SQL of claiming due recipients (leases)
- :mod:`.records`    all SQL of recording attempts and giving claims back
- :mod:`.schedule`   the retry rule: backoff with jitter, maximum age
- :mod:`.results`    recording attempts in batches
- :mod:`.worker`     the loop
"""
from __future__ import annotations

from mailhub.delivery.claims import Claim, ClaimedRecipient, Outcome, claim
from mailhub.delivery.records import mark_results, release
from mailhub.delivery.schedule import RetrySchedule, retry_delay
from mailhub.delivery.outbox import MaildirOutbox
from mailhub.delivery.routing import Router
from mailhub.delivery.smtp_relay import SmtpRelay
from mailhub.delivery.transport import RecipientResult, Transport
from mailhub.delivery.worker import DeliveryWorker

__all__ = [
    "Claim", "ClaimedRecipient", "DeliveryWorker", "MaildirOutbox", "Outcome", "RecipientResult",
    "RetrySchedule", "Router", "SmtpRelay", "Transport", "claim", "mark_results", "release",
    "retry_delay",
]
