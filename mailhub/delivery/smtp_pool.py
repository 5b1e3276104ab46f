"""Open SMTP/LMTP sessions to one next hop, kept for the next message
(:class:`SessionPool`, Postfix's connection cache, ``smtp_connection_cache_on_demand``).
Opening them is :mod:`.smtp_session`.

Opening a session costs a TCP handshake, the greeting, EHLO and, in production,
a TLS handshake, a second EHLO and AUTH: most of the time and CPU of sending one
message. A session that finished a transaction cleanly is put back here and the
next message goes out on it with only MAIL, RCPT and DATA.

The pool trusts the caller to give back only sessions that are between
transactions (after a complete transaction, or after RSET). It checks that a
session is still connected before handing it out; one that the server closed
while it waited is dropped without a word.

Limits, so that a session neither outstays the server's patience nor lives
forever:

- at most ``size`` idle sessions (the worker's concurrency: no more are ever
  busy at once);
- a session idle for ``idle_seconds`` is closed with QUIT (RFC 5321 §4.5.3.2.7
  gives a server 5 minutes before it may drop an idle client; leaving first is
  polite and frees its slot);
- a session that carried ``reuse_limit`` transactions is closed with QUIT
  (Postfix ``smtp_connection_reuse_count_limit``): it spreads load when the
  relay name has several addresses and bounds what one session accumulates.
"""
from __future__ import annotations

import asyncio

from mailhub.delivery.smtp_session import PooledSession, quit_session

IDLE_SECONDS = 30.0
REUSE_LIMIT = 100


class SessionPool:
    """Idle sessions, the most recently used handed out first (the others then
    age out when traffic drops)."""

    def __init__(self, size: int, idle_seconds: float = IDLE_SECONDS, reuse_limit: int = REUSE_LIMIT) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        self.idle_seconds = idle_seconds
        self.reuse_limit = reuse_limit
        self._idle: list[PooledSession] = []  # oldest first
        self._quitting: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._idle)

    def take(self) -> PooledSession | None:
        """An idle session that is still connected, or ``None``."""
        now = asyncio.get_running_loop().time()
        while self._idle:
            session = self._idle.pop()
            if not session.smtp.is_connected:
                session.smtp.close()  # the server hung up while it waited
            elif now - session.idle_since >= self.idle_seconds:
                self._retire(session)
            else:
                return session
        return None

    def give_back(self, session: PooledSession) -> None:
        """Keep a session that is between transactions, or close it if it is
        worn out or the pool is full."""
        if not session.smtp.is_connected:
            session.smtp.close()
        elif session.transactions >= self.reuse_limit or len(self._idle) >= self.size:
            self._retire(session)
        else:
            loop = asyncio.get_running_loop()
            session.idle_since = loop.time()
            self._idle.append(session)
            if self._timer is None:
                self._timer = loop.call_at(self._idle[0].idle_since + self.idle_seconds, self._expire)

    @staticmethod
    def discard(session: PooledSession) -> None:
        """Drop a session in an unknown state (error, timeout, cancelled): no QUIT,
        it could be taken for the answer to something else."""
        session.smtp.close()

    async def close(self) -> None:
        """QUIT every idle session and wait (briefly) for all QUITs to finish."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._idle:
            self._retire(self._idle.pop())
        if self._quitting:
            await asyncio.gather(*self._quitting, return_exceptions=True)

    def _expire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() - self.idle_seconds
        while self._idle and self._idle[0].idle_since <= deadline:
            self._retire(self._idle.pop(0))
        if self._idle:
            self._timer = loop.call_at(self._idle[0].idle_since + self.idle_seconds, self._expire)

    def _retire(self, session: PooledSession) -> None:
        if not session.smtp.is_connected:
            session.smtp.close()
            return
        task = asyncio.get_running_loop().create_task(quit_session(session.smtp))
        self._quitting.add(task)
        task.add_done_callback(self._quitting.discard)
