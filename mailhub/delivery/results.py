"""Recording delivery results in batches: one write transaction for many messages.

Each write transaction on SQLite is an fsync, and most of its CPU is the same
whether it records one result or a hundred. The worker hands every outcome to a
:class:`ResultWriter` and goes on sending; the writer records them with one
:func:`~mailhub.delivery.claims.mark_results` call when ``max_batch`` outcomes
are waiting or when the oldest has waited ``max_delay`` seconds, whichever
comes first, and at :meth:`ResultWriter.flush`. One write runs at a time; what
arrives meanwhile waits for the next.

Crash safety is unchanged in kind: at least once. An outcome still waiting here
when the process dies is lost, its rows stay ``sending`` and the message is sent
again when the lease runs out, although the next hop already has it. The window
is ``max_delay`` plus one write (tens of milliseconds).
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Callable

from sqlalchemy.engine import Engine

from mailhub.delivery.claims import Outcome
from mailhub.delivery.records import mark_results
from mailhub.delivery.schedule import RetrySchedule

log = logging.getLogger("mailhub.delivery")

MAX_BATCH = 64
MAX_DELAY = 0.025  # seconds: short next to a send, long enough to gather a busy worker's results


class ResultWriter:
    """Collect :class:`Outcome` objects on the event loop; write them in batches
    from a worker thread. ``clock`` gives the time recorded with each batch."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime], node_id: str,
                 max_batch: int = MAX_BATCH, max_delay: float = MAX_DELAY,
                 schedule: RetrySchedule = RetrySchedule()) -> None:
        self.engine = engine
        self.schedule = schedule
        self.clock = clock
        self.node_id = node_id
        self.max_batch = max_batch
        self.max_delay = max_delay
        self._pending: list[Outcome] = []
        self._oldest = 0.0  # event loop time of the first pending outcome
        self._timer: asyncio.TimerHandle | None = None
        self._writing: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, outcomes: list[Outcome]) -> None:
        """Queue outcomes for the next write; never blocks."""
        if not outcomes:
            return
        if not self._pending:
            self._oldest = asyncio.get_running_loop().time()
        self._pending.extend(outcomes)
        self._schedule()

    async def flush(self) -> None:
        """Write everything waiting now, and return once it is written (or failed)."""
        while self._pending or self._writing is not None:
            if self._writing is None:
                self._start()
            writing = self._writing
            assert writing is not None
            await asyncio.shield(writing)  # a cancelled flush must not cancel the write itself

    def _schedule(self) -> None:
        if self._writing is not None or not self._pending:
            return  # the write in progress calls back here when it is done
        if len(self._pending) >= self.max_batch:
            self._start()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_at(self._oldest + self.max_delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._writing is None and self._pending:
            self._start()

    def _start(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        self._writing = asyncio.get_running_loop().create_task(self._write(batch))

    async def _write(self, batch: list[Outcome]) -> None:
        try:
            await asyncio.to_thread(mark_results, self.engine, batch, self.clock(),
                                    schedule=self.schedule, node=self.node_id)
        except Exception:
            retry_at = max(o.lease_until for o in batch)
            log.exception("node %s: recording the results of %d recipient(s) failed; they are tried again "
                          "after their lease (by %s UTC)", self.node_id, len(batch),
                          retry_at.isoformat(" ", "seconds"))
        finally:
            self._writing = None
            self._schedule()
