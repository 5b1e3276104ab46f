"""A read-only snapshot of the directory's names, refreshed in the background.

The impersonation policy compares display names with every official's name;
reading the whole directory per message would be wasteful, so each process
keeps this snapshot, at most ``refresh_seconds`` old.
"""
from __future__ import annotations

import asyncio
import logging
import types
from typing import Mapping

from sqlalchemy.engine import Engine

from mailhub.directory import directory_names
from policies.headers import index_directory

log = logging.getLogger("mailhub.directory")


class DirectoryNames:
    def __init__(self, engine: Engine, refresh_seconds: float = 60.0) -> None:
        self._engine = engine
        self._refresh = refresh_seconds
        self._names: Mapping[str, str] = types.MappingProxyType({})

    def __call__(self) -> Mapping[str, str]:
        return self._names

    def load(self) -> None:
        names = types.MappingProxyType(directory_names(self._engine))
        index_directory(names)  # build the policy's name index here, off the hot path
        self._names = names

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self._refresh)
            except asyncio.TimeoutError:
                pass
            if stop.is_set():
                return
            try:
                await asyncio.to_thread(self.load)
            except Exception:  # keep the old snapshot; the next refresh may work
                log.exception("could not refresh the directory snapshot")
