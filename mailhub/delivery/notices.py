"""Telling senders: failure notices (bounces) and delay warnings, queued as mail.

Postfix's ``bounce`` daemon, as a loop next to the delivery worker. It looks
for recipients that need a notice — ``bounced`` ones whose sender was not told
yet, and ``deferred`` ones of messages older than the delay-warning time that
were not warned yet — builds one delivery status notification per message and
kind (:mod:`.dsn`), DKIM-signs it, and queues it with the null sender
(RFC 5321 §4.5.5: a notice is never answered by another notice) in the same
transaction that marks the recipients notified. So a crash never loses a
notice nor sends one twice, and on PostgreSQL two nodes never take the same
recipients (``FOR UPDATE SKIP LOCKED``).

No notice goes to the null sender (a notice that failed is dropped, RFC 3464
§2: never bounce a bounce), nor about a notice we generated ourselves.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine

from mailhub.cleanup import split_message
from mailhub.db import write_transaction
from mailhub.delivery.dsn import NoticeRequest, RecipientNotice, build_notice
from mailhub.delivery.routing import domain_of
from mailhub.delivery.schedule import RetrySchedule
from mailhub.dkimkeys import signing_domain
from mailhub.models import (DeliveryAttempt, MessageKind, NoticeState, QueuedMessage, QueueRecipient,
                            RecipientState, as_utc, utcnow)
from mailhub.queue import new_queue_id
from mailhub.signing import DkimSigner

log = logging.getLogger("mailhub.delivery")

_rcpt = QueueRecipient.__table__
_msg = QueuedMessage.__table__
_attempt = DeliveryAttempt.__table__

BATCH = 200  # recipients looked at per transaction


@dataclass(frozen=True)
class _Pending:
    recipient_id: int
    message_id: str
    rcpt: str
    reply: str
    action: str  # "failed" or "delayed"


class Notifier:
    """Queue the notices that are due, every ``interval`` seconds or when woken.

    ``on_queued`` is called after notices were queued (the worker's ``wake``).
    """

    def __init__(self, engine: Engine, signer: DkimSigner, *, reporting_mta: str, default_domain: str,
                 schedule: RetrySchedule, interval: float = 10.0,
                 on_queued: Callable[[], None] = lambda: None, clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.signer = signer
        self.reporting_mta = reporting_mta
        self.default_domain = default_domain
        self.schedule = schedule
        self.interval = interval
        self.on_queued = on_queued
        self.clock = clock
        self._woken = asyncio.Event()

    def wake(self) -> None:
        self._woken.set()

    async def run(self, stop_event: asyncio.Event) -> None:
        stopping = asyncio.ensure_future(stop_event.wait())
        try:
            while not stop_event.is_set():
                self._woken.clear()
                try:
                    queued = await asyncio.to_thread(self.run_once)
                except Exception:
                    log.exception("queuing delivery notices failed; trying again in %g s", self.interval)
                    queued = 0
                if queued:
                    self.on_queued()
                    if queued >= BATCH:
                        continue  # more may be waiting
                woken = asyncio.ensure_future(self._woken.wait())
                await asyncio.wait({stopping, woken}, timeout=self.interval, return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
        finally:
            stopping.cancel()

    def run_once(self) -> int:
        """One transaction: find due notices, queue them, mark their recipients.
        Returns the number of notices queued."""
        now = as_utc(self.clock())
        with write_transaction(self.engine) as conn:
            pending = self._due(conn, now)
            if not pending:
                return 0
            ids = list({p.message_id for p in pending})
            messages = {m.id: m for m in conn.execute(
                select(_msg.c.id, _msg.c.mail_from, _msg.c.kind, _msg.c.created_at, _msg.c.data)
                .where(_msg.c.id.in_(ids)))}
            remotes = self._last_remotes(conn, [p.recipient_id for p in pending])
            groups: dict[tuple[str, str], list[_Pending]] = {}
            for p in pending:
                groups.setdefault((p.message_id, p.action), []).append(p)
            notices = []
            for (message_id, action), rows in groups.items():
                original = messages[message_id]
                if original.mail_from and original.kind != MessageKind.NOTICE.value:
                    notices.append(self._notice(original, action, rows, remotes, now))
            if notices:
                conn.execute(insert(_msg), [n[0] for n in notices])
                conn.execute(insert(_rcpt), [n[1] for n in notices])
            for action, state in (("failed", NoticeState.FINAL.value), ("delayed", NoticeState.DELAY.value)):
                done = [p.recipient_id for p in pending if p.action == action]
                if done:
                    conn.execute(update(_rcpt).where(_rcpt.c.id.in_(done)).values(notified=state))
        for message, rcpt, (about, action) in notices:
            log.info("notice queued: message=%s about=%s kind=%s", message["id"], about, action)
        return len(notices)

    def _due(self, conn: Connection, now: datetime) -> list[_Pending]:
        lock = conn.dialect.name == "postgresql"
        failed = (select(_rcpt.c.id, _rcpt.c.message_id, _rcpt.c.rcpt, _rcpt.c.last_reply)
                  .where(_rcpt.c.state == RecipientState.BOUNCED.value,
                         _rcpt.c.notified.in_([NoticeState.NONE.value, NoticeState.DELAY.value]))
                  .order_by(_rcpt.c.id).limit(BATCH))
        if lock:
            failed = failed.with_for_update(skip_locked=True)
        pending = [_Pending(r.id, r.message_id, r.rcpt, r.last_reply, "failed") for r in conn.execute(failed)]
        warning = self.schedule.delay_warning
        if warning is not None and len(pending) < BATCH:
            delayed = (select(_rcpt.c.id, _rcpt.c.message_id, _rcpt.c.rcpt, _rcpt.c.last_reply)
                       .join_from(_rcpt, _msg, _msg.c.id == _rcpt.c.message_id)
                       .where(_rcpt.c.state == RecipientState.DEFERRED.value,
                              _rcpt.c.notified == NoticeState.NONE.value,
                              _msg.c.created_at <= now - warning)
                       .order_by(_rcpt.c.id).limit(BATCH - len(pending)))
            if lock:
                delayed = delayed.with_for_update(of=_rcpt, skip_locked=True)
            pending += [_Pending(r.id, r.message_id, r.rcpt, r.last_reply, "delayed") for r in conn.execute(delayed)]
        return pending

    @staticmethod
    def _last_remotes(conn: Connection, recipient_ids: list[int]) -> dict[int, tuple[str, datetime]]:
        """The remote host and time of each recipient's last attempt."""
        last: dict[int, tuple[str, datetime]] = {}
        rows = conn.execute(select(_attempt.c.recipient_id, _attempt.c.remote, _attempt.c.at)
                            .where(_attempt.c.recipient_id.in_(recipient_ids)).order_by(_attempt.c.id))
        for row in rows:
            last[row.recipient_id] = (row.remote, as_utc(row.at))
        return last

    def _notice(self, original, action: str, rows: list[_Pending], remotes: dict,
                now: datetime) -> tuple[dict, dict, tuple[str, str]]:
        """The notice's queue rows (message, recipient) and what it is about, for the log."""
        domain = signing_domain(domain_of(original.mail_from), self.signer.domains) or self.default_domain
        queue_id = new_queue_id()
        arrival = as_utc(original.created_at)
        recipients = []
        for p in rows:
            remote, at = remotes.get(p.recipient_id, ("", None))
            recipients.append(RecipientNotice(p.rcpt, action, p.reply, _host_of(remote), at))
        request = NoticeRequest(
            reporting_mta=self.reporting_mta, from_address=f"MAILER-DAEMON@{domain}",
            to_address=original.mail_from, queue_id=original.id, arrival=arrival,
            original=split_message(bytes(original.data))[0], recipients=tuple(recipients),
            will_retry_until=arrival + self.schedule.max_age if action == "delayed" else None)
        data = build_notice(request, now=now, message_id=f"{queue_id}@{domain}")
        if domain in self.signer.domains:
            data = self.signer.sign(data, domain)
        message = dict(id=queue_id, mail_from="", kind=MessageKind.NOTICE.value, official_email=None,
                       message_id_header=f"<{queue_id}@{domain}>", size=len(data), data=data, created_at=now)
        rcpt = dict(message_id=queue_id, rcpt=original.mail_from, state=RecipientState.QUEUED.value,
                    attempts=0, next_attempt_at=now, lease_until=None, last_reply="", updated_at=now,
                    notified=NoticeState.FINAL.value)
        return message, rcpt, (original.id, action)


def _host_of(remote: str) -> str:
    """``mx1.example.org[1.2.3.4]:25`` → ``mx1.example.org``."""
    return remote.split("[", 1)[0].rsplit(":", 1)[0] if remote else ""
