"""Which claimed delivery starts next: concurrency per destination and overall.

The worker splits each claimed message by destination (:mod:`.routing`) into
jobs and hands them here. A job starts when the worker has a free slot and its
destination has fewer than ``per_destination`` sends in flight; destinations
take turns (round robin), so one busy destination cannot hold the others back.

A destination whose last send got no SMTP answer at all (refused, timed out,
TLS failed) is *suspended* for ``dead_seconds``: its jobs are deferred without
a connection attempt, as Postfix does with a dead destination ("delivery
temporarily suspended"), so a dead next hop costs no slots and no timeouts.

Jobs waiting for a saturated destination beyond ``backlog`` are handed back as
overflow: the worker returns them to the queue for a little while instead of
holding their leases while it cannot start them.
"""
from __future__ import annotations

from collections import OrderedDict, deque
from typing import Generic, Protocol, TypeVar


class _HasDestination(Protocol):
    @property
    def destination(self) -> str: ...


J = TypeVar("J", bound=_HasDestination)


class Dispatch(Generic[J]):
    def __init__(self, per_destination: int, dead_seconds: float, backlog: int) -> None:
        if per_destination < 1:
            raise ValueError("per_destination must be at least 1")
        self.per_destination = per_destination
        self.dead_seconds = dead_seconds
        self.backlog = backlog
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

    def finished(self, destination: str, answered: bool, why: str, now: float) -> None:
        """A send to ``destination`` ended; ``answered``: some SMTP server answered."""
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

    def overflow(self) -> list[J]:
        """Jobs beyond ``backlog`` waiting for one destination (the newest ones)."""
        extra: list[J] = []
        for jobs in self._ready.values():
            while len(jobs) > self.backlog:
                extra.append(jobs.pop())
        return extra

    def take_all(self) -> list[J]:
        jobs = [job for queue in self._ready.values() for job in queue]
        self._ready.clear()
        return jobs
