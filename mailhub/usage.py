"""How much each official sent recently, for the rate-limit policy.

Counts come from the usage ledger, read at most every ``refresh_seconds`` per
official, plus what this process accepted since that read. Several processes
or nodes therefore agree within one refresh interval; the limit can be
overshot by at most what the others accept in that interval.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from mailhub.ledger import sent_counts
from mailhub.models import utcnow
from policies.context import Usage


@dataclass
class _Entry:
    read_at: float
    hour: int
    day: int
    local: int = 0


class UsageCounter:
    def __init__(self, engine: Engine, refresh_seconds: float = 30.0) -> None:
        self._engine = engine
        self._refresh = refresh_seconds
        self._entries: dict[str, _Entry] = {}

    async def current(self, official_email: str) -> Usage:
        entry = self._entries.get(official_email)
        if entry is None or time.monotonic() - entry.read_at > self._refresh:
            hour, day = await asyncio.to_thread(sent_counts, self._engine, official_email, utcnow())
            entry = self._entries[official_email] = _Entry(time.monotonic(), hour, day)
        return Usage(sent_last_hour=entry.hour + entry.local, sent_last_day=entry.day + entry.local)

    def note_accepted(self, official_email: str) -> None:
        entry = self._entries.get(official_email)
        if entry is not None:
            entry.local += 1
