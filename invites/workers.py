"""The emails of a large send made by worker processes, one per core.

An invitation to 10,000 attendees is 10,000 personal messages, each built, checked
and DKIM-signed (RSA-2048 alone costs 0.25-1 ms a signature depending on the
machine): one Python process uses one core, so a large send is shared out to
``[invites] build_processes`` worker processes (0: one per core), in batches, and
the caller writes the outcomes to the database in order as they come back. Small
sends (fewer than :data:`PARALLEL_FROM` emails) stay in the caller's process, where
starting workers would cost more than it saves.

Workers are forked from the caller when it runs one thread only (``mailhub invite
send``); from a multi-threaded process (``mailhub serve``: the API, the reminders)
they come from a fork server (``multiprocessing``'s ``forkserver``), since forking
a process whose other threads may hold locks is unsafe; the fork server is started
once per process and loads the keys in each worker.
"""
from __future__ import annotations

import gc
import multiprocessing
import os
import threading
from collections.abc import Generator, Sequence
from concurrent.futures import ProcessPoolExecutor

from invites.letters import EmailFactory, LetterJob, Outcome

PARALLEL_FROM = 200
BATCH = 50  # attendees per task: large enough to pay for the round trip, small enough to share evenly

_factory: EmailFactory | None = None  # in a worker: the send's factory


def outcomes(factory: EmailFactory, jobs: Sequence[LetterJob], processes: int) -> Generator[Outcome, None, None]:
    """The outcome of each job, in the order of ``jobs``; ``processes`` 0 is one per core.
    Close the generator when done with it (``contextlib.closing``): that stops the workers."""
    processes = processes or os.cpu_count() or 1
    if processes <= 1 or len(jobs) < PARALLEL_FROM:
        return (factory.make(job) for job in jobs)
    return _in_workers(factory, jobs, processes)


def _in_workers(factory: EmailFactory, jobs: Sequence[LetterJob], processes: int) -> Generator[Outcome, None, None]:
    context = _context()
    forked = context.get_start_method() == "fork"
    if forked:
        gc.freeze()  # what the workers inherit stays out of their collector: fewer copied pages
    try:
        with ProcessPoolExecutor(processes, mp_context=context, initializer=_start, initargs=(factory,)) as pool:
            for batch in pool.map(_make, (jobs[i:i + BATCH] for i in range(0, len(jobs), BATCH))):
                yield from batch
    finally:
        if forked:
            gc.unfreeze()


def _context() -> multiprocessing.context.BaseContext:
    if threading.active_count() == 1:
        return multiprocessing.get_context("fork")  # the factory, keys included, is inherited as it is
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["invites.letters", "mailhub.app"])  # imported once, in the server
    return context


def _start(factory: EmailFactory) -> None:
    global _factory
    _factory = factory


def _make(jobs: Sequence[LetterJob]) -> list[Outcome]:
    assert _factory is not None, "not a worker started by invites.workers"
    return [_factory.make(job) for job in jobs]
