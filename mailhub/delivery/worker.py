"""The delivery worker: claim due recipients, send through the transport, record.

It shares nothing with the SMTP front end but the queue tables, so it can run
in the same process (the front end calls :meth:`DeliveryWorker.wake` after a
commit) or in another process or node (it then finds new mail by polling).

Throughput comes from doing the database work in batches, not per message:

- claims: when fewer than ``concurrency`` claimed messages wait to start, the
  worker claims up to ``concurrency × 4`` in all (started or waiting) in one
  transaction. The read-ahead shrinks when sends are slow, so that a claimed
  message waits at most about ``READ_AHEAD_SECONDS`` (or a quarter of the
  send budget, if that is shorter) before its send starts; with no measured
  pace yet, only free slots are claimed;
- results: each outcome goes to a :class:`~.results.ResultWriter`, which records
  many with one write; the slot is free for the next message at once.

Each claimed message is split by destination (:mod:`.routing`); the parts are
scheduled by :class:`~.dispatch.Dispatch`: at most ``concurrency`` sends in
all and ``per_destination`` to one destination, destinations in turn, a dead
destination suspended for a while. Parts that wait for a saturated destination
beyond ``per_destination × CLAIM_AHEAD_FACTOR`` go back to the queue for ``POSTPONE_SECONDS``.

Each claim is a lease; a send must end within ``SEND_SHARE_OF_LEASE`` of the
lease counted from the claim, so that its result lands before the lease runs
out. A claimed message that waited so long that less than half of that time
is left is given back unsent (:func:`~.claims.release`) rather than started
with too little time.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
from datetime import datetime, timedelta
from typing import Callable, NamedTuple

from sqlalchemy.engine import Engine

from mailhub.delivery.claims import Claim, ClaimedRecipient, claim
from mailhub.delivery.dispatch import Dispatch
from mailhub.delivery.records import release
from mailhub.delivery.results import MAX_BATCH, MAX_DELAY, ResultWriter
from mailhub.delivery.routing import OneRoute, Routes
from mailhub.delivery.schedule import RetrySchedule
from mailhub.delivery.transport import RecipientResult, Transport, for_all, one_line, temporary
from mailhub.metrics import DELIVERY_ATTEMPT
from mailhub.models import utcnow

log = logging.getLogger("mailhub.delivery")

SEND_SHARE_OF_LEASE = 0.8  # a send is stopped after this share of the lease, so its result lands in time
CLAIM_AHEAD_FACTOR = 4  # claimed messages (started or waiting) at most: concurrency × this
READ_AHEAD_SECONDS = 10.0  # claimed messages wait at most about this long before they start
POSTPONE_SECONDS = 30.0  # parts given back for a saturated destination are due again after this


class _Job(NamedTuple):
    claim: Claim  # the recipients of one message that go to `destination`
    deadline: float  # event loop time by which its send must be over
    destination: str


class DeliveryWorker:
    """Deliver queued mail through ``routes`` (or one plain transport), at most
    ``concurrency`` sends at once and ``per_destination`` to one destination.

    ``poll_seconds``: how long to sleep when there is nothing to do (unless woken).
    ``dead_seconds``: how long a destination that did not answer is suspended.
    ``schedule``: retries and maximum age.
    ``node_id``: names this worker in the log. ``lease_seconds``: how long a claim
    lasts; a crashed worker's recipients are retried after it. ``stop_grace_seconds``:
    how long a clean stop waits for sends in flight before leaving them to lease expiry.
    ``mark_batch``, ``mark_delay``: see :class:`~.results.ResultWriter`.
    """

    def __init__(self, engine: Engine, routes: Routes | Transport, concurrency: int, poll_seconds: float,
                 node_id: str, lease_seconds: float = 300, *, per_destination: int | None = None,
                 dead_seconds: float = 60.0, schedule: RetrySchedule = RetrySchedule(),
                 stop_grace_seconds: float = 5.0, clock: Callable[[], datetime] = utcnow,
                 mark_batch: int = MAX_BATCH, mark_delay: float = MAX_DELAY) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.engine = engine
        self.routes: Routes = routes if hasattr(routes, "destination") else OneRoute(routes)  # type: ignore[arg-type]
        self.concurrency = concurrency
        self.per_destination = min(per_destination or concurrency, concurrency)
        self.dead_seconds = dead_seconds
        self.poll_seconds = poll_seconds
        self.node_id = node_id
        self.lease_seconds = lease_seconds
        self.stop_grace_seconds = stop_grace_seconds
        self.clock = clock
        self.results = ResultWriter(engine, clock, node_id, mark_batch, mark_delay, schedule)
        self._changed = asyncio.Event()  # something for the loop to look at
        self._maybe_due = True  # the queue may hold due mail: claim when there is room
        self._send_seconds: float | None = None  # moving average of one send
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    @property
    def send_budget(self) -> float:
        return self.lease_seconds * SEND_SHARE_OF_LEASE

    def wake(self) -> None:
        """Look at the queue now instead of at the next poll. Safe from any thread."""
        if self._loop is not None and threading.get_ident() != self._loop_thread:
            self._loop.call_soon_threadsafe(self._on_wake)
        else:
            self._on_wake()

    def _on_wake(self) -> None:
        self._maybe_due = True
        self._changed.set()

    async def run(self, stop_event: asyncio.Event) -> None:
        """Deliver until ``stop_event`` is set; then finish (or abandon) sends in flight,
        give back claimed messages not started, record every result, close the transports."""
        loop = self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        ready: Dispatch[_Job] = Dispatch(self.per_destination, self.dead_seconds,
                                         self.per_destination * CLAIM_AHEAD_FACTOR, READ_AHEAD_SECONDS)
        probe_after = 0.0  # claims only to fill free slots are not tried again before this
        inflight: set[asyncio.Task[None]] = set()
        claiming: asyncio.Task[list[_Job]] | None = None
        stopping = asyncio.ensure_future(stop_event.wait())
        stopping.add_done_callback(lambda _: self._changed.set())
        log.info("delivery worker %s started: %r, concurrency %d (%d per destination)", self.node_id,
                 self.routes, self.concurrency, self.per_destination)
        next_poll = loop.time()
        try:
            while not stop_event.is_set():
                self._changed.clear()  # first: whatever happens from here on is looked at
                if claiming is not None and claiming.done():
                    jobs, startable_before = claiming.result(), ready.startable(loop.time())
                    for job in jobs:
                        ready.add(job)
                    claiming = None
                    if jobs and ready.startable(loop.time()) == startable_before:
                        # Nothing claimed could start: all for busy destinations. Do not
                        # claim merely to fill free slots again until the next poll.
                        probe_after = loop.time() + self.poll_seconds
                    await self._release([job.claim for job in ready.overflow()], "their destination is saturated",
                                        logging.INFO, postpone=POSTPONE_SECONDS)
                stale = self._start_ready(ready, inflight)
                if stale:
                    await self._release([job.claim for job in stale], "they waited too long for a slot",
                                        logging.WARNING)
                now = loop.time()
                if now >= next_poll:  # unwoken, look at the queue every poll_seconds all the same
                    self._maybe_due = True
                startable = ready.startable(now)
                # Claim up to concurrency + read-ahead waiting or running; and, when free
                # slots have nothing startable (all waiting mail is for saturated
                # destinations), enough to fill them with mail for other destinations.
                fill = self.concurrency - len(inflight) - startable if now >= probe_after else 0
                want = max(self.concurrency + self._read_ahead() - len(inflight) - len(ready), fill)
                if claiming is None and self._maybe_due and startable < self.concurrency and want > 0:
                    self._maybe_due = False  # before the claim: a wake during it is not lost
                    next_poll = now + self.poll_seconds
                    claiming = loop.create_task(self._claim_jobs(want))
                    claiming.add_done_callback(lambda _: self._changed.set())
                    continue
                # Due mail but no room: the next finished send or claim brings us back,
                # or the end of the pause in claiming for free slots.
                wake_at = next_poll if not self._maybe_due else (
                    probe_after if probe_after > now and len(inflight) < self.concurrency else None)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(wake_at):
                        await self._changed.wait()
        finally:
            stopping.cancel()
            if claiming is not None:
                for job in await claiming:
                    ready.add(job)
            await self._release([job.claim for job in ready.take_all()], "not started at stop", logging.INFO)
            await self._finish(inflight)
            await self.results.flush()
            await self._close_transport()
            log.info("delivery worker %s stopped", self.node_id)

    async def drain_once(self) -> int:
        """Claim once (up to ``concurrency`` messages), deliver them all, record them,
        close the transport's connections; return the count."""
        jobs = await self._claim_jobs(self.concurrency)
        try:
            await asyncio.gather(*(self._deliver(job, Dispatch(len(jobs) or 1, 0, 0)) for job in jobs))
        finally:
            await self.results.flush()
            await self._close_transport()
        return len(jobs)

    def _read_ahead(self) -> int:
        """How many claimed messages may wait for a slot, from the recent pace."""
        if self._send_seconds is None:
            return 0
        horizon = min(READ_AHEAD_SECONDS, self.send_budget / 4)  # far from the give-back threshold
        paced = int(horizon * self.concurrency / max(self._send_seconds, 1e-6))
        return min(paced, (CLAIM_AHEAD_FACTOR - 1) * self.concurrency)

    def _start_ready(self, ready: Dispatch[_Job], inflight: set[asyncio.Task[None]]) -> list[_Job]:
        """Start waiting jobs in the free slots; return those too late to start.
        A job for a suspended destination is deferred at once, without a slot."""
        now = asyncio.get_running_loop().time()
        stale = []
        while len(inflight) < self.concurrency:
            job = ready.next(now)
            if job is None:
                break
            why = ready.suspended(job.destination, now)
            if why is not None:
                self._record(job, for_all(self._rcpts(job), temporary(
                    f"451 4.4.1 delivery to {job.destination} temporarily suspended: {why}", answered=False)))
                continue
            if job.deadline - now < self.send_budget / 2:
                stale.append(job)
                continue
            ready.started(job.destination)
            task = asyncio.create_task(self._deliver(job, ready), name=f"deliver {job.claim.message_id}")
            inflight.add(task)
            task.add_done_callback(lambda t: self._sent(t, inflight))
        return stale

    def _sent(self, task: asyncio.Task[None], inflight: set[asyncio.Task[None]]) -> None:
        inflight.discard(task)
        self._changed.set()
        if not task.cancelled() and task.exception() is not None:  # a bug in _deliver
            log.error("delivery task %s failed", task.get_name(), exc_info=task.exception())

    async def _claim_jobs(self, limit: int) -> list[_Job]:
        """Claim up to ``limit`` messages; a failure is logged and claims nothing."""
        loop = asyncio.get_running_loop()
        started = loop.time()  # the lease starts no earlier than this
        try:
            claims = await asyncio.to_thread(claim, self.engine, self.node_id, limit,
                                             self.lease_seconds, self.clock())
        except Exception:
            log.exception("delivery worker %s: claiming from the queue failed; retrying after %g s",
                          self.node_id, self.poll_seconds)
            return []
        if sum(len(c.recipients) for c in claims) >= limit:
            self._maybe_due = True  # the claim was full: there is probably more
        deadline = started + self.send_budget
        jobs = []
        for whole in claims:
            parts: dict[str, list[ClaimedRecipient]] = {}
            for rcpt in whole.recipients:
                parts.setdefault(self.routes.destination(rcpt.rcpt), []).append(rcpt)
            if len(parts) == 1:
                jobs.append(_Job(whole, deadline, next(iter(parts))))
            else:
                jobs.extend(_Job(whole.part(rs), deadline, dest) for dest, rs in parts.items())
        return jobs

    async def _release(self, claims: list[Claim], why: str, level: int, postpone: float = 0.0) -> None:
        """Give back claimed messages not sent: due again at once, or after ``postpone`` seconds."""
        if not claims:
            return
        until = self.clock() + timedelta(seconds=postpone) if postpone else None
        try:
            count = await asyncio.to_thread(release, self.engine, claims, self.clock(), postpone_until=until)
        except Exception:
            log.exception("delivery worker %s: giving back %d unsent message(s) failed; they are "
                          "retried when their lease expires", self.node_id, len(claims))
            return
        if postpone:
            log.log(level, "delivery worker %s put back %d recipient(s) for %g s: %s",
                    self.node_id, count, postpone, why)
            return
        log.log(level, "delivery worker %s gave back %d recipient(s) of %d message(s): %s",
                self.node_id, count, len(claims), why)
        self._maybe_due = True  # they are due again at once

    async def _finish(self, inflight: set[asyncio.Task[None]]) -> None:
        if not inflight:
            return
        pending: set[asyncio.Task[None]] = set(inflight)
        try:
            _, pending = await asyncio.wait(pending, timeout=self.stop_grace_seconds)
        finally:  # also when run() itself is cancelled: no send outlives the worker
            unfinished = [task for task in pending if not task.done()]
            if unfinished:
                log.warning("delivery worker %s: %d send(s) still running at stop; their recipients "
                            "are retried when the lease expires", self.node_id, len(unfinished))
                for task in unfinished:
                    task.cancel()
                await asyncio.gather(*unfinished, return_exceptions=True)

    async def _close_transport(self) -> None:
        try:
            await self.routes.close()
        except Exception:
            log.exception("delivery worker %s: closing %r failed", self.node_id, self.routes)

    @staticmethod
    def _rcpts(job: _Job) -> list[str]:
        return list(dict.fromkeys(r.rcpt for r in job.claim.recipients))

    async def _deliver(self, job: _Job, ready: Dispatch[_Job]) -> None:
        """One attempt for one message's recipients at one destination; its
        outcomes go to the result writer. Never raises (except cancellation)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        results: dict[str, RecipientResult] = {}
        try:
            results = await self._send(job, self._rcpts(job), job.deadline - started)
        finally:
            answered = [r for r in results.values() if r.answered]
            why = next(iter(results.values())).reply if results and not answered else ""
            ready.finished(job.destination, bool(answered) or not results, why, loop.time(),
                           loop.time() - started)
        elapsed = loop.time() - started
        DELIVERY_ATTEMPT.observe(elapsed)
        self._send_seconds = elapsed if self._send_seconds is None else 0.8 * self._send_seconds + 0.2 * elapsed
        self._record(job, results)

    def _record(self, job: _Job, results: dict[str, RecipientResult]) -> None:
        claimed = job.claim
        outcomes = claimed.outcomes(results)
        for rcpt, outcome in zip((r.rcpt for r in claimed.recipients), outcomes):
            result = outcome.result
            log.log(logging.INFO if result.ok else logging.WARNING,
                    "attempt message=%s rcpt=%s result=%s reply=%s remote=%s node=%s",
                    claimed.message_id, one_line(rcpt), result.outcome, one_line(result.reply),
                    result.remote or "-", self.node_id)
        self.results.add(outcomes)

    async def _send(self, job: _Job, rcpts: list[str], budget: float) -> dict[str, RecipientResult]:
        claimed = job.claim
        deadline: asyncio.Timeout | None = None
        try:
            transport = self.routes.transport(job.destination)
            async with asyncio.timeout(budget) as deadline:
                return await transport.send(claimed.mail_from, rcpts, claimed.data)
        except Exception as exc:
            if isinstance(exc, TimeoutError) and deadline is not None and deadline.expired():
                return for_all(rcpts, temporary(f"451 4.4.7 the attempt took more than {budget:.3g} s "
                                                "and was stopped before the lease ran out"))
            error_id = secrets.token_hex(4)
            log.exception("message=%s: delivery to %s failed unexpectedly (error %s)",
                          claimed.message_id, job.destination, error_id)
            return for_all(rcpts, temporary(f"451 4.3.0 internal error {error_id} in delivery, see the log"))
