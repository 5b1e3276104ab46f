"""``mailhub serve`` as a child process, as an operator starts it, for the tests that need the
real command: durability (killed mid-burst) and the browser tests of the console."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path


class ServeProcess:
    """``mailhub serve`` as a child process; ``want`` is how many processes must
    report in (front ends with their ports, the delivery worker) before tests go on."""

    def __init__(self, config: Path, *args: str, want: int = 1) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILHUB_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailhub", "--config", str(config), "serve", *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        self.ports: dict[str, int] = {}
        self.roles: dict[int, set[str]] = {}  # pid -> what it reported running
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self._reported() < want:
            line = self.proc.stdout.readline()
            if not line:
                break
            if m := re.search(r"mailhub\[(\d+)\]: (submissions?|http) listening on port (\d+)", line):
                self.ports[m.group(2)] = int(m.group(3))
                self.roles.setdefault(int(m.group(1)), set()).add(m.group(2))
            if m := re.search(r"mailhub\[(\d+)\]: delivery worker running", line):
                self.roles.setdefault(int(m.group(1)), set()).add("delivery")
        assert {"submission", "submissions"} <= set(self.ports), "mailhub serve did not report its ports"

    def _reported(self) -> int:
        """Processes that are fully up: both listeners, or the delivery worker (the main process
        of a node also serves HTTP)."""
        return sum(1 for r in self.roles.values()
                   if {"submission", "submissions"} <= r or r - {"http"} == {"delivery"})

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc.stdout.close()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        finally:
            self.proc.stdout.close()
