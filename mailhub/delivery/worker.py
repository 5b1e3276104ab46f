"""The delivery worker: claim due recipients, send through the transport, record.

It shares nothing with the SMTP front end but the queue tables, so it can run
in the same process (the front end calls :meth:`DeliveryWorker.wake` after a
commit) or in another process or node (it then finds new mail by polling).

Concurrency is bounded by claiming only as many messages as there are free
slots: a message is leased only when a slot is ready to send it, so no lease
runs out while a message waits its turn behind a semaphore.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from datetime import datetime
from typing import Callable

from sqlalchemy.engine import Engine

from mailhub.delivery.claims import Claim, claim, mark_results
from mailhub.delivery.transport import RecipientResult, Transport, for_all, one_line, temporary
from mailhub.models import utcnow

log = logging.getLogger("mailhub.delivery")

SEND_SHARE_OF_LEASE = 0.8  # a send is stopped after this share of the lease, so its result lands in time


class DeliveryWorker:
    """Deliver queued mail through ``transport``, at most ``concurrency`` messages at once.

    ``poll_seconds``: how long to sleep when there is nothing to do (unless woken).
    ``node_id``: names this worker in the log. ``lease_seconds``: how long a claim
    lasts; a crashed worker's recipients are retried after it. ``stop_grace_seconds``:
    how long a clean stop waits for sends in flight before leaving them to lease expiry.
    """

    def __init__(self, engine: Engine, transport: Transport, concurrency: int, poll_seconds: float,
                 node_id: str, lease_seconds: float = 300, *, stop_grace_seconds: float = 5.0,
                 clock: Callable[[], datetime] = utcnow) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.engine = engine
        self.transport = transport
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.node_id = node_id
        self.lease_seconds = lease_seconds
        self.stop_grace_seconds = stop_grace_seconds
        self.clock = clock
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    def wake(self) -> None:
        """Look at the queue now instead of at the next poll. Safe from any thread."""
        if self._loop is not None and threading.get_ident() != self._loop_thread:
            self._loop.call_soon_threadsafe(self._wake.set)
        else:
            self._wake.set()

    async def run(self, stop_event: asyncio.Event) -> None:
        """Deliver until ``stop_event`` is set; then finish (or abandon) sends in flight."""
        self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        inflight: set[asyncio.Task[None]] = set()
        stopping = asyncio.ensure_future(stop_event.wait())
        log.info("delivery worker %s started: %r, concurrency %d", self.node_id, self.transport, self.concurrency)
        try:
            while not stop_event.is_set():
                free = self.concurrency - len(inflight)
                if free > 0:
                    self._wake.clear()  # before the claim: a wake during it is not lost
                    jobs = await self._claim_logged(free)
                    for job in jobs:
                        inflight.add(asyncio.create_task(self._deliver(job), name=f"deliver {job.message_id}"))
                    if jobs and len(inflight) < self.concurrency:
                        continue  # a claim can bring fewer messages than asked: fill the free slots
                woken = asyncio.ensure_future(self._wake.wait())
                done, _ = await asyncio.wait({woken, stopping, *inflight}, timeout=self.poll_seconds,
                                             return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
                for task in done & inflight:
                    inflight.discard(task)
                    if not task.cancelled() and task.exception() is not None:  # a bug in _deliver
                        log.error("delivery task %s failed", task.get_name(), exc_info=task.exception())
        finally:
            stopping.cancel()
            await self._finish(inflight)
            log.info("delivery worker %s stopped", self.node_id)

    async def drain_once(self) -> int:
        """Claim once (up to ``concurrency`` messages), deliver them all, record; return the count."""
        jobs = await asyncio.to_thread(claim, self.engine, self.node_id, self.concurrency,
                                       self.lease_seconds, self.clock())
        await asyncio.gather(*(self._deliver(job) for job in jobs))
        return len(jobs)

    async def _claim_logged(self, limit: int) -> list[Claim]:
        try:
            return await asyncio.to_thread(claim, self.engine, self.node_id, limit,
                                           self.lease_seconds, self.clock())
        except Exception:
            log.exception("delivery worker %s: claiming from the queue failed; retrying after %g s",
                          self.node_id, self.poll_seconds)
            return []

    async def _finish(self, inflight: set[asyncio.Task[None]]) -> None:
        if not inflight:
            return
        pending: set[asyncio.Task[None]] = inflight
        try:
            _, pending = await asyncio.wait(inflight, timeout=self.stop_grace_seconds)
        finally:  # also when run() itself is cancelled: no send outlives the worker
            unfinished = [task for task in pending if not task.done()]
            if unfinished:
                log.warning("delivery worker %s: %d send(s) still running at stop; their recipients "
                            "are retried when the lease expires", self.node_id, len(unfinished))
                for task in unfinished:
                    task.cancel()
                await asyncio.gather(*unfinished, return_exceptions=True)

    async def _deliver(self, job: Claim) -> None:
        """One attempt for one message. Never raises (except cancellation)."""
        rcpts = list(dict.fromkeys(r.rcpt for r in job.recipients))
        results = await self._send(job, rcpts)
        outcomes = job.outcomes(results)
        for rcpt, outcome in zip((r.rcpt for r in job.recipients), outcomes):
            result = outcome.result
            log.log(logging.INFO if result.ok else logging.WARNING,
                    "attempt message=%s rcpt=%s result=%s reply=%s node=%s",
                    job.message_id, one_line(rcpt), result.outcome, one_line(result.reply), self.node_id)
        try:
            await asyncio.to_thread(mark_results, self.engine, outcomes, self.clock())
        except Exception:
            log.exception("message=%s: recording the results failed; the recipients are tried again "
                          "after the lease (%s UTC)", job.message_id, job.lease_until.isoformat(" ", "seconds"))

    async def _send(self, job: Claim, rcpts: list[str]) -> dict[str, RecipientResult]:
        budget = self.lease_seconds * SEND_SHARE_OF_LEASE
        try:
            async with asyncio.timeout(budget) as deadline:
                return await self.transport.send(job.mail_from, rcpts, job.data)
        except Exception as exc:
            if isinstance(exc, TimeoutError) and deadline.expired():
                return for_all(rcpts, temporary(f"451 4.4.7 the attempt took more than {budget:g} s "
                                                "and was stopped before the lease ran out"))
            error_id = secrets.token_hex(4)
            log.exception("message=%s: transport %r failed unexpectedly (error %s)",
                          job.message_id, self.transport, error_id)
            return for_all(rcpts, temporary(f"451 4.3.0 internal error {error_id} in delivery, see the log"))
