"""Which claimed delivery starts next: concurrency per destination and overall.

The worker splits each claimed message by destination (:mod:`.routing`) into
jobs and hands them here. A job starts when the worker has a free slot and its
destination has fewer than ``per_destination`` sends in flight; destinations
take turns (round robin), so one busy destination cannot hold the others back.

A destination whose last send got no SMTP answer at all (refused, timed out,
TLS failed) is *suspended* for ``dead_seconds``: its jobs are deferred without
a connection attempt, as Postfix does with a dead destination ("delivery
temporarily suspended"), so a dead next hop costs no slots and no timeouts.

Jobs waiting for a destination beyond what it can start within ``horizon``
seconds at its recent pace (and at least ``backlog``) are handed back as
overflow: the worker returns them to the queue for a little while instead of
holding their leases while it cannot start them. A fast destination that is
merely busy keeps its waiting jobs; a stuck one keeps ``backlog``.
"""
from __future__ import annotations

from collections import OrderedDict, deque
from typing import Generic, Protocol, TypeVar


class _HasDestination(Protocol):
    @property
    def destination(self) -> str: ...


J = TypeVar("J", bound=_HasDestination)


class Dispatch(Generic[J]):
    def __init__(self, per_destination: int, dead_seconds: float, backlog: int, horizon: float = 10.0) -> None:
        if per_destination < 1:
            raise ValueError("per_destination must be at least 1")
        self.per_destination = per_destination
        self.dead_seconds = dead_seconds
        self.backlog = backlog
        self.horizon = horizon
        self._pace: dict[str, float] = {}  # destination → moving average of one send, seconds
        self._ready: OrderedDict[str, deque[J]] = OrderedDict()  # turn order: front goes next
        self._busy: dict[str, int] = {}
        self._dead: dict[str, tuple[float, str]] = {}  # destination → (until, why)

    def __len__(self) -> int:
        return sum(len(jobs) for jobs in self._ready.values())

    def busy(self, destination: str) -> int:
        return self._busy.get(destination, 0)

    def add(self, job: J) -> None:
        self._ready.setdefault(job.destination, deque()).append(job)

    def startable(self, now: float) -> int:
        """Waiting jobs that could start now if the worker had slots for them."""
        count = 0
        for destination, jobs in self._ready.items():
            if self.suspended(destination, now) is not None:
                count += len(jobs)
            else:
                count += min(len(jobs), max(self.per_destination - self.busy(destination), 0))
        return count

    def next(self, now: float) -> J | None:
        """The next job whose destination has room (or is suspended: it ends at
        once), taking destinations in turn; ``None`` when none can start."""
        for destination in list(self._ready):
            if self.busy(destination) < self.per_destination or self.suspended(destination, now) is not None:
                jobs = self._ready.pop(destination)
                job = jobs.popleft()
                if jobs:
                    self._ready[destination] = jobs  # to the back of the turn order
                return job
        return None

    def started(self, destination: str) -> None:
        self._busy[destination] = self.busy(destination) + 1

    def finished(self, destination: str, answered: bool, why: str, now: float, seconds: float | None = None) -> None:
        """A send to ``destination`` ended after ``seconds``; ``answered``: some SMTP server answered."""
        if seconds is not None:
            pace = self._pace.get(destination)
            self._pace[destination] = seconds if pace is None else 0.8 * pace + 0.2 * seconds
        left = self.busy(destination) - 1
        if left > 0:
            self._busy[destination] = left
        else:
            self._busy.pop(destination, None)
        if answered:
            self._dead.pop(destination, None)
        elif self.dead_seconds > 0:
            self._dead[destination] = (now + self.dead_seconds, why)

    def suspended(self, destination: str, now: float) -> str | None:
        """Why ``destination`` is not being tried now, or ``None``."""
        dead = self._dead.get(destination)
        if dead is None:
            return None
        if now >= dead[0]:
            del self._dead[destination]
            return None
        return dead[1]

    def limit(self, destination: str) -> int:
        """How many jobs may wait for ``destination``: what it starts within
        ``horizon`` at its pace, at least ``backlog`` (also when the pace is unknown)."""
        pace = self._pace.get(destination)
        if pace is None:
            return self.backlog
        return max(self.backlog, int(self.per_destination * self.horizon / max(pace, 1e-3)))

    def overflow(self) -> list[J]:
        """Jobs beyond :meth:`limit` waiting for one destination (the newest ones)."""
        extra: list[J] = []
        for destination, jobs in self._ready.items():
            limit = self.limit(destination)
            while len(jobs) > limit:
                extra.append(jobs.pop())
        return extra

    def take_all(self) -> list[J]:
        jobs = [job for queue in self._ready.values() for job in queue]
        self._ready.clear()
        return jobs
