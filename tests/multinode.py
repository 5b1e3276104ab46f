"""Helpers for tests with several ``mailhub serve`` processes on one PostgreSQL queue.

- :class:`TrackingHandler`: a next hop that notes, for every message it accepts,
  which relay node sent it (the EHLO name, set from ``server.hostname``), the
  test's ``X-Test-Seq`` marker, the Message-ID and mailhub's queue id;
- :class:`Node`: one ``mailhub serve`` child process in a process group of its
  own, its log in a file, killable with SIGKILL;
- :func:`submit`: many messages over several concurrent STARTTLS + AUTH sessions,
  counting what each node answered ``250`` for;
- :func:`wait_until`: waits while something makes progress, and fails with a
  readable account (arrivals, missing markers, queue states, node log) when it stalls.
"""
from __future__ import annotations

import asyncio
import os
import queue
import re
import signal
import smtplib
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

import trustme
from aiosmtpd.controller import Controller
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from mailhub.models import QueuedMessage, QueueRecipient
from tests.support import PASSWORD, RecordingHandler, free_port, message

SENDER = "an@hcm.gov.vn"
RECIPIENT = "binh@hcm.gov.vn"

_SEQ = re.compile(rb"^X-Test-Seq:[ \t]*(\d+)\r?$", re.MULTILINE | re.IGNORECASE)
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)\r?$", re.MULTILINE | re.IGNORECASE)
_QUEUE_ID = re.compile(rb"with ESMTPSA id (\w+)")  # mailhub's Received header (mailhub.cleanup)
_QUEUED_AS = re.compile(r"queued as (\w+)")  # mailhub's 250 reply to DATA


class Delivery(NamedTuple):
    """One message as the next hop received it."""

    node: str  # the EHLO name of the relay that sent it
    seq: int  # the test's X-Test-Seq marker
    message_id: str
    queue_id: str


class TrackingHandler(RecordingHandler):
    """A next hop that answers 250 and notes who delivered what, in arrival order."""

    def __init__(self) -> None:
        super().__init__()
        self.deliveries: list[Delivery] = []
        self.hold_node: str | None = None  # DATA from this relay waits until release()
        self.held = 0  # DATA commands waiting now
        self._released = threading.Event()

    def hold(self, node: str) -> None:
        """Keep ``node``'s messages in the middle of DATA (its claims stay in flight)."""
        self._released.clear()
        self.hold_node = node

    def release(self) -> None:
        self.hold_node = None
        self._released.set()

    async def handle_DATA(self, server, session, envelope):
        if self.hold_node is not None and session.host_name == self.hold_node:
            with self.arrived:
                self.held += 1
            await asyncio.get_running_loop().run_in_executor(None, self._released.wait, 60)
            with self.arrived:
                self.held -= 1
            if server.transport is None or server.transport.is_closing():
                return "421 4.3.0 the client is gone"  # never delivered: its sender died meanwhile
        data = envelope.original_content
        head = data.split(b"\r\n\r\n", 1)[0]
        seq, mid, qid = _SEQ.search(head), _MESSAGE_ID.search(head), _QUEUE_ID.search(head)
        with self.arrived:
            self.deliveries.append(Delivery(session.host_name or "", int(seq.group(1)) if seq else -1,
                                            mid.group(1).decode() if mid else "",
                                            qid.group(1).decode() if qid else ""))
        return await super().handle_DATA(server, session, envelope)

    def snapshot(self) -> list[Delivery]:
        with self.arrived:
            return list(self.deliveries)


def start_tracking_next_hop() -> Controller:
    """An aiosmtpd next hop on loopback; its ``handler`` is a :class:`TrackingHandler`."""
    controller = Controller(TrackingHandler(), hostname="127.0.0.1", port=free_port())
    controller.start()
    return controller


class Node:
    """``mailhub serve`` as a child process in a session (process group) of its own,
    so that :meth:`kill` reaches every process it may have forked and nothing else.
    Its log (stderr) goes to ``log_path``; its stdout is read in a thread, which
    reports the listening ports and keeps the pipe from filling."""

    def __init__(self, name: str, config: Path, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.killed = threading.Event()  # set *before* the SIGKILL, so clients expect failures
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILHUB_")}
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mailhub", "--config", str(config), "serve"],
                stdout=subprocess.PIPE, stderr=log, env=env, start_new_session=True)
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read_stdout, name=f"{name} stdout", daemon=True).start()
        self.ports: dict[str, int] = {}

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until the node has reported both listeners and its delivery worker."""
        worker = False
        deadline = time.monotonic() + timeout
        while not (worker and len(self.ports) == 2):
            try:
                line = self._lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                line = None
            if line is None:
                raise AssertionError(f"{self.name}: mailhub serve did not start within {timeout:g} s "
                                     f"(exit code {self.proc.poll()}):\n{self.log_tail()}")
            if m := re.search(r"mailhub\[\d+\]: (submissions?) listening on port (\d+)", line):
                self.ports[m.group(1)] = int(m.group(2))
            worker = worker or "delivery worker running" in line

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._lines.put(raw.decode("utf-8", "replace"))
        self._lines.put(None)

    @property
    def submission_port(self) -> int:
        return self.ports["submission"]

    def kill(self) -> None:
        self.killed.set()
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def log_lines(self, pattern: str) -> list[str]:
        text = self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""
        return [line for line in text.splitlines() if re.search(pattern, line)]

    def log_tail(self, lines: int = 15) -> str:
        """The last warnings and errors of the node's log, for failure messages."""
        found = self.log_lines(r" (WARNING|ERROR|CRITICAL) |Traceback|Error")[-lines:]
        return "\n".join(f"  {self.name}: {line}" for line in found) or f"  {self.name}: (no warnings)"


@dataclass
class Submissions:
    """What the clients sent and what they were told."""

    accepted: dict[int, str] = field(default_factory=dict)  # marker -> queue id from the 250
    unanswered: set[int] = field(default_factory=set)  # in flight when the node died: no 250
    switched: int = 0  # sessions that moved to another node after theirs died
    lock: threading.Lock = field(default_factory=threading.Lock)


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def submit(ca: trustme.CA, ports: list[int], markers: range, sessions: int,
           replacement: Callable[[int], int | None] = lambda port: None) -> tuple[Submissions, Future]:
    """Send one message per marker, ``sessions`` sessions at once in background threads,
    session ``n`` to ``ports[n % len(ports)]``; return the tally and a future that
    completes when all sessions are done (and re-raises the first failure).

    A session whose node stops answering goes on at ``replacement(port)`` if that
    gives a port (the test killed that node), else the failure is raised. A
    message in flight at that moment is counted as unanswered, not resent: the
    client got no 250, so the relay owes nothing for it.
    """
    tally = Submissions()
    ctx = client_context(ca)
    share = len(markers) // sessions
    blocks = [markers[n * share:(n + 1) * share if n < sessions - 1 else len(markers)] for n in range(sessions)]

    def one_session(n: int) -> None:
        pending = list(blocks[n])
        port = ports[n % len(ports)]
        while pending:
            in_flight: int | None = None
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
                    client.starttls(context=ctx)
                    client.login(SENDER, PASSWORD)
                    while pending:
                        in_flight = pending[0]
                        queue_id = send_one(client, in_flight)
                        with tally.lock:
                            tally.accepted[in_flight] = queue_id
                        pending.pop(0)
                        in_flight = None
            except (OSError, smtplib.SMTPException):
                other = replacement(port)
                if other is None:
                    raise
                if in_flight is not None:
                    pending.pop(0)
                with tally.lock:
                    if in_flight is not None:
                        tally.unanswered.add(in_flight)
                    tally.switched += 1
                port = other

    pool = ThreadPoolExecutor(sessions, thread_name_prefix="submit")
    futures = [pool.submit(one_session, n) for n in range(sessions)]
    pool.shutdown(wait=False)
    done: Future = Future()

    def wait_all() -> None:
        try:
            for f in futures:
                f.result()
        except BaseException as exc:
            done.set_exception(exc)
        else:
            done.set_result(None)

    threading.Thread(target=wait_all, name="submit all", daemon=True).start()
    return tally, done


def send_one(client: smtplib.SMTP, seq: int) -> str:
    """One transaction; return the queue id from the 250 (raise on any other answer)."""
    code, reply = client.mail(SENDER)
    if code != 250:
        raise smtplib.SMTPSenderRefused(code, reply, SENDER)
    code, reply = client.rcpt(RECIPIENT)
    if code != 250:
        raise smtplib.SMTPRecipientsRefused({RECIPIENT: (code, reply)})
    code, reply = client.data(message(subject=f"Thư số {seq}", extra=f"X-Test-Seq: {seq}\r\n"))
    text = reply.decode("utf-8", "replace")
    found = _QUEUED_AS.search(text)
    assert found, f"250 without a queue id: {text}"
    return found.group(1)


def queue_states(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(select(QueueRecipient.state, func.count())
                                 .group_by(QueueRecipient.state)).all())


def stored_message_ids(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(QueuedMessage.id)).scalars())


def wait_until(done: Callable[[], bool], progress: Callable[[], object], describe: Callable[[], str],
               what: str, stall_seconds: float = 120.0, limit_seconds: float = 900.0) -> float:
    """Poll ``done`` until true; return the seconds it took. Fail, with ``describe()``,
    when ``progress()`` has not changed for ``stall_seconds`` (the machine may be busy
    with other tests: only a standstill is an error) or after ``limit_seconds``."""
    start = last_change = time.monotonic()
    seen = progress()
    while not done():
        now = time.monotonic()
        current = progress()
        if current != seen:
            seen, last_change = current, now
        if now - last_change > stall_seconds or now - start > limit_seconds:
            raise AssertionError(f"waiting for {what}: no progress for {now - last_change:.0f} s "
                                 f"({now - start:.0f} s in all)\n{describe()}")
        time.sleep(0.5)
    return time.monotonic() - start


def account(deliveries: list[Delivery], expected: set[int], engine: Engine, nodes: list[Node]) -> str:
    """How far delivery got: for failure messages."""
    counts = Counter(d.seq for d in deliveries)
    missing = sorted(expected - counts.keys())
    by_node = Counter(d.node for d in deliveries)
    try:
        states = queue_states(engine)
    except Exception as exc:  # the account must not hide the failure it explains
        states = {"(query failed)": str(exc)}
    return (f"{len(deliveries)} deliveries of {len(counts)} distinct markers; {len(missing)} of "
            f"{len(expected)} expected markers missing (first: {missing[:10]}); by node: {dict(by_node)}; "
            f"queue states: {states}; node exit codes: "
            f"{ {n.name: n.proc.poll() for n in nodes} }\n" + "\n".join(n.log_tail() for n in nodes))
