"""Each process of a node leaves a snapshot of its values in ``<home>/run/metrics/``;
the process that answers ``/metrics`` adds its live values to the others'."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Iterable

from mailhub.metrics.core import REGISTRY, Registry

log = logging.getLogger("mailhub.metrics")


class MetricsDir:
    """The folder where a node's processes leave their snapshots (``<pid>.json``)."""

    def __init__(self, path: Path, registry: Registry = REGISTRY) -> None:
        self.path = Path(path)
        self.registry = registry
        self._failing = False

    @classmethod
    def under(cls, home: Path) -> "MetricsDir":
        return cls(Path(home) / "run" / "metrics")

    def clear(self) -> None:
        """Forget earlier runs: at ``serve`` start, before any process writes."""
        self.path.mkdir(parents=True, exist_ok=True)
        for entry in self.path.iterdir():
            if entry.suffix in (".json", ".tmp"):
                entry.unlink(missing_ok=True)

    def write(self) -> None:
        """This process's snapshot, atomically (a reader sees the old file or the new)."""
        pid = os.getpid()
        data = {"pid": pid, "written_at": time.time(), "metrics": self.registry.snapshot()}
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / f".{pid}.json.tmp"
        tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, self.path / f"{pid}.json")

    async def run(self, stop: asyncio.Event, interval: float = 5.0) -> None:
        """Write every ``interval`` seconds until ``stop`` is set, then once more."""
        try:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), interval)
                except TimeoutError:
                    await asyncio.to_thread(self._write_logged)
        finally:
            self._write_logged()

    def _write_logged(self) -> None:
        try:
            self.write()
        except OSError as exc:
            if not self._failing:  # once per run of failures, not every few seconds
                log.warning("cannot write metrics snapshot to %s: %s", self.path, exc)
            self._failing = True
        else:
            self._failing = False

    def _others(self) -> Iterable[dict[str, dict]]:
        own = os.getpid()
        for entry in self.path.glob("*.json"):
            try:
                data = json.loads(entry.read_bytes())
                pid, metrics = int(data["pid"]), data["metrics"]
            except (OSError, ValueError, KeyError, TypeError):
                continue  # removed meanwhile, or not ours: nothing to add
            if pid == own:
                continue  # our live values are newer
            if not _alive(pid):  # what it counted stays; its gauges ended with it
                metrics = {n: d for n, d in metrics.items() if d.get("type") != "gauge"}
            yield metrics

    def render(self) -> str:
        """This process's live values plus every other snapshot in the folder."""
        return self.registry.render([self.registry.snapshot(), *self._others()])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
