"""Database engines: SQLite in WAL mode by default, PostgreSQL when the URL says so,
and :func:`write_transaction`, the one way hot paths write."""
from __future__ import annotations

import fcntl
import os
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlmodel import create_engine


class WriteLock:
    """Serialises write transactions on one SQLite database, across the threads of a
    process and across processes.

    SQLite allows one writer at a time; when several wait, its busy handler sleeps
    and retries (1, 2, 5, 10, ... 100 ms) in no particular order, which under load
    made accept latency jump to hundreds of milliseconds and starved the delivery
    worker. An ``flock`` on ``<database>-writelock`` hands the lock to the next
    waiter as soon as it is released. ``flock`` belongs to an open file, which a
    forked child shares with its parent, so each process opens its own.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._threads = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        return self._fd

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self._threads:
            fd = self._file()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)


def make_engine(url: str) -> Engine:
    """Create an engine for ``url``.

    SQLite: the parent folder is created, the journal is WAL with
    ``synchronous=FULL`` (a commit survives power loss, 0.2 ms here), foreign keys
    are on, writers wait up to 30 s for the lock instead of failing at once, and
    hot-path writers take a :class:`WriteLock` first.
    """
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        lock = None
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            lock = WriteLock(Path(path + "-writelock"))
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        engine.mailhub_write_lock = lock  # type: ignore[attr-defined]

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that commits on exit (rolls back on an error).

    SQLite: the engine's process-shared :class:`WriteLock` is taken first, so
    writers queue instead of sleeping in SQLite's busy handler, and the
    transaction is ``BEGIN IMMEDIATE``: it holds SQLite's write lock from its
    first statement. (pysqlite would open a deferred transaction only at the
    first INSERT/UPDATE, after a SELECT that chose the rows: another process
    could change them in between.) PostgreSQL needs neither: row locks
    (``FOR UPDATE``) do that job.
    """
    lock = getattr(engine, "mailhub_write_lock", None)
    with lock.hold() if lock is not None else nullcontext(), engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        yield conn
