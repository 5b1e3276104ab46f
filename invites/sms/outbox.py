"""The development SMS gateway: every SMS becomes one JSON line in a local file.

Nothing leaves the machine (the default for ``make run``). ``<path>/sms.jsonl``
gets one line per SMS: ``{"to", "text", "reference", "unicode", "time"}``, time
in UTC (ISO 8601), written with ``O_APPEND`` and fsynced before the receipt says
ok, so a line that was acknowledged survives a power cut. The folder is 0700 and
the file 0600: phone numbers are personal data.

One process writes the file (the one running the SMS worker): the receipt's
``outbox-<n>`` is the line number, counted once and then kept in memory.
"""
from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from invites.sms.gateway import SmsReceipt, accepted, refused
from mailhub.durable import fsync_dir

FILE_NAME = "sms.jsonl"


class SmsOutbox:
    """Append each SMS to ``<path>/sms.jsonl`` (folder created with mode 0700)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.file = self.path / FILE_NAME
        self._lock = asyncio.Lock()
        self._lines: int | None = None  # counted on the first write, in the worker thread

    def __repr__(self) -> str:
        return f"SmsOutbox({str(self.path)!r})"

    async def send(self, to: str, text: str, *, reference: str, unicode: bool = False) -> SmsReceipt:
        record = {"to": to, "text": text, "reference": reference, "unicode": unicode,
                  "time": datetime.now(UTC).isoformat(timespec="milliseconds")}
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        # The lock keeps line numbers and lines in step; the write itself runs in
        # a thread so that fsync does not stall the event loop.
        async with self._lock:
            try:
                number = await asyncio.to_thread(self._append, line)
            except OSError as exc:
                return refused(f"cannot write to the SMS outbox {self.file}: {exc.strerror or exc}",
                               permanent=False)
        return accepted(f"outbox-{number}", "stored")

    def _append(self, line: bytes) -> int:
        created = not self.file.exists()
        fd = os.open(self.file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.fchmod(fd, 0o600)  # also tightens a file created by hand or by an older version
            if self._lines is None:
                self._lines, torn = _count_lines(self.file)
                if torn:  # a line cut short by a crash: end it, so ours stays parseable
                    os.write(fd, b"\n")
                    self._lines += 1
            _write_all(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.path)
        self._lines += 1
        return self._lines


def _count_lines(path: Path) -> tuple[int, bool]:
    """Lines in ``path``, and whether the last one lacks its newline."""
    data = path.read_bytes()
    return data.count(b"\n"), bool(data) and not data.endswith(b"\n")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
