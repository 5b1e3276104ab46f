"""Delivery benchmark: draining a backlog into a local sink with one or more
``mailhub serve --only delivery`` processes on one queue.

Prints figures and ratios; it is not a test and asserts nothing about them.

For each run (see bench/README.md for the long form):

1. a fresh queue: a new PostgreSQL schema (or SQLite file) migrated with
   :func:`mailhub.schema.upgrade`, filled directly with ``--messages`` signed-looking
   messages of ``--size`` bytes, one recipient each, in batches of SQLAlchemy Core
   inserts, every recipient ``held`` (setup, timed but not measured);
2. a counting sink (this file with ``--sink-worker``, its own process) and K delivery
   processes, each with its own home folder, all on that queue, relaying to the sink
   without TLS;
3. once every worker reports running, one transaction releases the backlog
   (``held`` -> ``queued``); from that commit until the sink has every message and the
   database says every recipient is delivered is the drain time;
4. exactly once: the sink counts each message by the ``X-Bench-Id`` header (the queue
   id) it carries; duplicates and missing ones are reported, as are the attempts the
   database recorded per node.

Run: ``.venv/bin/python bench/delivery.py [--messages 20000] [--nodes 1 2] [--runs 2]
[--database postgres|sqlite] [--concurrency 20] [--per-destination 10] [--json-file F]``.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import ClassVar

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from sink import RawSink  # noqa: E402  (bench/ is on sys.path)
from relay import (
    Child,
    log,
    machine_info,
    make_message,
    message_parts,
    proc_cpu_seconds,
)

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DOMAIN = "hcm.gov.vn"  # the official domain: the workers sign their notices with its key
RCPT_DOMAIN = "ubnd.sink.test"
MARKER = b"X-Bench-Id: "
FILL_BATCH = 1000  # messages per insert transaction while filling
TAG = "delivery"  # in each Message-ID; 8 characters, as relay.py sizes its message for
CONTROL_APP = "mailhub-bench-control"  # application_name of this script's own connections


# =====================================================================================
# The sink (its own process): answers 250 at once, counts each message by its marker
# =====================================================================================
class TrackingSink(RawSink):
    """Just enough SMTP for aiosmtplib (as ``bench/sink.py``), and per message the
    ``X-Bench-Id`` value, which the benchmark puts on the first header line."""

    seen: ClassVar[dict[bytes, int]] = {}  # one sink per process: the counts are process-wide
    total = 0
    unmarked = 0
    first_at = 0.0
    expect = 0
    complete_at = 0.0  # CLOCK_MONOTONIC when the expect-th distinct id arrived

    def arrived(self, message: bytes) -> None:
        cls = TrackingSink
        cls.total += 1
        if cls.total == 1:
            cls.first_at = time.monotonic()
        if message.startswith(MARKER):
            key = message[len(MARKER):message.find(b"\r\n")]
        else:
            at = message.find(b"\r\n" + MARKER)
            if at < 0:
                cls.unmarked += 1
                return
            key = message[at + 2 + len(MARKER):message.find(b"\r\n", at + 2)]
        count = cls.seen.get(key, 0) + 1
        cls.seen[key] = count
        if count == 1 and len(cls.seen) == cls.expect:
            cls.complete_at = time.monotonic()


async def sink_main(expect: int) -> None:
    """Print ``port N``; then answer on stdin: ``count`` -> ``total distinct unmarked
    first_at complete_at`` (CLOCK_MONOTONIC, 0 = not yet); ``dump PATH`` -> writes
    {id: times received} as JSON, answers ``ok``; ``exit`` or end of input -> stops."""
    TrackingSink.expect = expect
    loop = asyncio.get_running_loop()
    server = await loop.create_server(TrackingSink, "127.0.0.1", 0, backlog=1024)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    s = TrackingSink
    while True:
        line = await reader.readline()
        cmd = line.decode().split()
        if not cmd or cmd[0] == "exit":
            break
        if cmd[0] == "count":
            print(f"{s.total} {len(s.seen)} {s.unmarked} {s.first_at:.6f} {s.complete_at:.6f}", flush=True)
        elif cmd[0] == "dump":
            Path(cmd[1]).write_text(json.dumps({k.decode(): v for k, v in s.seen.items()}))
            print("ok", flush=True)
    server.close()


# =====================================================================================
# The queue: a fresh schema, filled directly
# =====================================================================================
def signed_looking(parts, queue_id: str, seq: int, when: str) -> bytes:
    """A message as the front end would have stored it: the marker, a Received and a
    DKIM-Signature (random b=, nobody verifies it here) on the relay.py message."""
    sig = base64.b64encode(os.urandom(256)).decode()
    head = (f"X-Bench-Id: {queue_id}\r\n"
            f"Received: from may-tram.hcm.gov.vn (may-tram.hcm.gov.vn [10.1.2.3])\r\n"
            f"\tby mailhub.bench with ESMTPSA id {queue_id}; {when}\r\n"
            f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={DOMAIN}; s=mailhub;\r\n"
            f"\tt=1795000000; h=from:to:subject:date:message-id:mime-version:content-type;\r\n"
            f"\tbh={base64.b64encode(os.urandom(32)).decode()};\r\n"
            f"\tb={sig[:70]}\r\n\t{sig[70:140]}\r\n\t{sig[140:210]}\r\n\t{sig[210:280]}\r\n"
            f"\t{sig[280:]}\r\n").encode("ascii")
    return head + make_message(parts, TAG, 100000 + seq)


def prefix_bytes() -> int:
    """What :func:`signed_looking` adds to the relay.py message (fixed: a queue id is 32 characters)."""
    parts = message_parts(4096)
    return len(signed_looking(parts, "0" * 32, 0, format_datetime(datetime.now(UTC)))) \
        - len(make_message(parts, TAG, 100000))


def fill_queue(url: str, count: int, size: int) -> tuple[list[str], float, int]:
    """Store ``count`` messages with one ``held`` recipient each; return (queue ids,
    seconds, bytes stored). The recipients are released by :func:`release_all`.

    As if they had arrived 10 ms apart (a backlog built up during an outage): each
    has its own ``created_at`` and ``next_attempt_at``, in the past, in queue order."""
    from mailhub.db import make_engine, write_transaction
    from mailhub.models import QueuedMessage, QueueRecipient, RecipientState, utcnow
    from mailhub.queue import new_queue_id

    parts = message_parts(max(1024, size - prefix_bytes()))
    when = format_datetime(datetime.now(UTC))
    engine = make_engine(url)
    ids: list[str] = []
    stored = 0
    started = time.monotonic()
    arrived = utcnow() - timedelta(milliseconds=10 * count)
    try:
        for first in range(0, count, FILL_BATCH):
            rows, rcpts = [], []
            for seq in range(first, min(first + FILL_BATCH, count)):
                now = arrived + timedelta(milliseconds=10 * seq)
                qid = new_queue_id()
                data = signed_looking(parts, qid, seq, when)
                ids.append(qid)
                stored += len(data)
                rows.append({"id": qid, "mail_from": "an@hcm.gov.vn", "kind": "email",
                             "official_email": "an@hcm.gov.vn",
                             "message_id_header": f"<{TAG}.{100000 + seq}@may-tram.hcm.gov.vn>",
                             "size": len(data), "data": data, "created_at": now})
                rcpts.append({"message_id": qid, "rcpt": f"can-bo-{seq % 5000}@{RCPT_DOMAIN}",
                              "state": RecipientState.HELD.value, "attempts": 0, "next_attempt_at": now,
                              "lease_until": None, "last_reply": "", "updated_at": now, "notified": ""})
            with write_transaction(engine) as conn:
                conn.execute(QueuedMessage.__table__.insert(), rows)
                conn.execute(QueueRecipient.__table__.insert(), rcpts)
        with engine.connect() as conn:  # statistics, as autovacuum would have them by now
            conn.exec_driver_sql("ANALYZE queued_message")  # the recipients: at release
            conn.commit()
    finally:
        engine.dispose()
    return ids, time.monotonic() - started, stored


def release_all(engine) -> int:
    """held -> queued (each due since it arrived), in one transaction; return the rows released.

    The same transaction refreshes the planner's statistics of the recipients
    (``ANALYZE`` sees its own transaction's rows): gathered while every row was
    ``held``, they would tell the planner that nothing is due. A server with
    autovacuum (the default) would have them fresh by the time a backlog is drained."""
    from sqlalchemy import update

    from mailhub.db import write_transaction
    from mailhub.models import QueueRecipient, RecipientState, utcnow

    t = QueueRecipient.__table__
    with write_transaction(engine) as conn:
        released = conn.execute(update(t).where(t.c.state == RecipientState.HELD.value)
                                .values(state=RecipientState.QUEUED.value, updated_at=utcnow())).rowcount
        conn.exec_driver_sql("ANALYZE queue_recipient")
    return released


def queue_states(engine) -> dict[str, int]:
    from sqlalchemy import func, select

    from mailhub.models import QueueRecipient

    t = QueueRecipient.__table__
    with engine.connect() as conn:
        return {s: n for s, n in conn.execute(select(t.c.state, func.count()).group_by(t.c.state))}


def attempts_by_node(engine) -> dict[str, dict[str, int]]:
    from sqlalchemy import func, select

    from mailhub.models import DeliveryAttempt

    t = DeliveryAttempt.__table__
    out: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        for node, outcome, n in conn.execute(select(t.c.node, t.c.outcome, func.count())
                                             .group_by(t.c.node, t.c.outcome)):
            out.setdefault(node, {})[outcome] = n
    return out


def with_params(url: str, **params: str) -> str:
    sep = "&" if "?" in url else "?"
    return url + sep + "&".join(f"{k}={v}" for k, v in params.items())


# =====================================================================================
# CPU and memory from /proc
# =====================================================================================
def machine_seconds() -> dict[str, float]:
    """CPU-seconds of the whole machine since boot: busy (user, nice, system, irq,
    softirq), steal (taken by the hypervisor for other guests) and total."""
    with open("/proc/stat") as fh:
        v = [int(x) / os.sysconf("SC_CLK_TCK") for x in fh.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = v
    return {"busy": user + nice + system + irq + softirq, "steal": steal, "total": sum(v)}


def machine_load(seconds: float) -> float:
    """How busy the machine is over the next ``seconds``, in % of all its cores."""
    a = machine_seconds()
    time.sleep(seconds)
    b = machine_seconds()
    return 100 * (b["busy"] - a["busy"]) / max(1e-9, b["total"] - a["total"])


def wait_until_quiet(below: float, patience: float) -> float:
    """Wait (at most ``patience`` s) until the machine is less than ``below`` % busy
    over 3 s, so that a run does not start in the middle of someone else's job;
    return the last load seen."""
    deadline = time.monotonic() + patience
    load = machine_load(3.0)
    while below and load >= below and time.monotonic() < deadline:
        log(f"  machine {load:.0f} % busy (other jobs); waiting for it to fall below {below:g} %")
        time.sleep(10)
        load = machine_load(3.0)
    return load


def thread_cpu_seconds(pid: int, tid: int) -> float:
    fields = _stat_fields_path(f"/proc/{pid}/task/{tid}/stat")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") if fields else 0.0


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _stat_fields(pid: int) -> list[bytes] | None:
    return _stat_fields_path(f"/proc/{pid}/stat")


def _stat_fields_path(path: str) -> list[bytes] | None:
    try:
        with open(path, "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None


def postgres_cpu_seconds() -> float | None:
    """CPU of the whole PostgreSQL server on this machine: every process under the
    postmaster (a ``postgres`` process whose parent is not one), plus what the
    postmaster collected from backends that exited. None if there is no local server."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    comm: dict[int, str] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        fields = _stat_fields(int(entry))
        try:
            name = Path(f"/proc/{entry}/comm").read_text().strip()
        except OSError:
            continue
        if fields is not None:
            parent[int(entry)], comm[int(entry)] = int(fields[1]), name
    roots = [pid for pid, name in comm.items() if name == "postgres" and comm.get(parent[pid]) != "postgres"]
    total = 0.0
    for root in roots:
        fields = _stat_fields(root)
        if fields is None:
            continue
        total += (int(fields[13]) + int(fields[14])) / tick  # cutime + cstime: reaped backends
        todo = [root]
        while todo:
            pid = todo.pop()
            total += proc_cpu_seconds(pid)
            todo += [child for child, p in parent.items() if p == pid]
    return total if roots else None


class BackendCpu:
    """CPU of the PostgreSQL backends serving the benchmark's nodes (found by their
    ``application_name``), sampled now and then so that a backend closed before the
    end still counts up to its last sample."""

    def __init__(self, engine, prefix: str) -> None:
        self.engine, self.prefix = engine, prefix
        self.start: dict[int, float] = {}
        self.last: dict[int, float] = {}

    def _pids(self) -> list[int]:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(text(
                "SELECT pid FROM pg_stat_activity WHERE application_name LIKE :p"), {"p": self.prefix + "%"})]

    def sample(self, first: bool = False) -> None:
        for pid in self._pids():
            cpu = proc_cpu_seconds(pid)
            if first:
                self.start[pid] = cpu
            self.last[pid] = max(cpu, self.last.get(pid, 0.0))

    def used(self) -> float:
        return sum(cpu - self.start.get(pid, 0.0) for pid, cpu in self.last.items())


# =====================================================================================
# One run
# =====================================================================================
class Run:
    """One drain: a fresh queue, a sink, ``nodes`` delivery processes; :meth:`stop`
    ends every process it started and drops its schema."""

    def __init__(self, args, nodes: int, index: int, tmp: Path, keys: Path) -> None:
        self.args, self.k, self.index = args, nodes, index
        self.dir = tmp / f"run{index}-{args.database}-{nodes}node"
        self.dir.mkdir()
        self.keys = keys
        self.children: list[Child] = []
        self.schema = None
        self.admin = None
        self.tag = f"mailhub-bench-{os.getpid()}-{index}"
        self.spies: list = []  # py-spy processes, with --py-spy
        self.load_before = 0.0  # machine busy % just before the backlog was released

    def database_url(self) -> str:
        if self.args.database == "sqlite":
            return f"sqlite:///{self.dir / 'queue.db'}"
        from sqlalchemy import create_engine, text

        self.schema = f"bench_delivery_{uuid.uuid4().hex[:8]}"
        self.admin = create_engine(with_params(self.args.pg_url, application_name=CONTROL_APP))
        with self.admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{self.schema}"'))
        return with_params(self.args.pg_url, options=f"-csearch_path%3D{self.schema}")

    def node_config(self, n: int, url: str, sink_port: int) -> Path:
        from mailhub.config import DeliveryConfig
        from tests.support import write_config_file

        home = self.dir / f"node{n}"
        shutil.copytree(self.keys, home / "dkim")  # the notices a worker sends are signed
        if self.args.database == "postgres":
            url = with_params(url, application_name=f"{self.tag}-node{n}")
        delivery = {"concurrency": self.args.concurrency, "poll_seconds": DeliveryConfig().poll_seconds}
        if self.args.per_destination:
            delivery["per_destination_concurrency"] = self.args.per_destination
        return write_config_file(home, sink_port, server={"hostname": f"node{n}.bench", "processes": 1},
                                 database={"url": url}, delivery=delivery)

    def spawn(self, name: str, argv: list[str], **kw) -> Child:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILHUB_")}
        child = Child(name, argv, stderr_path=self.dir / f"{name}.log", env=env, **kw)
        self.children.append(child)
        return child

    def execute(self) -> dict:
        from mailhub.db import make_engine
        from mailhub.schema import upgrade

        args, n_msgs = self.args, self.args.messages
        url = self.database_url()
        upgrade(url)
        ids, fill_s, stored = fill_queue(url, n_msgs, args.size)
        log(f"  queue filled: {n_msgs} messages, {stored / 1e6:.1f} MB in {fill_s:.1f} s "
            f"({n_msgs / fill_s:.0f} msg/s; setup, not measured)")

        sink = self.spawn("sink", [sys.executable, str(Path(__file__).resolve()), "--sink-worker", str(n_msgs)])
        sink_port = int(re.match(r"port (\d+)", sink.readline(30)).group(1))
        pids: dict[int, str] = {}
        for n in range(1, self.k + 1):
            config = self.node_config(n, url, sink_port)
            self.spawn(f"node{n}", [sys.executable, "-m", "mailhub", "--config", str(config), "serve",
                                    "--only", "delivery"], stdin=False, cwd=REPO, guard=True)
        for n, child in enumerate(self.children[1:], 1):
            deadline = time.monotonic() + 60
            while True:
                line = child.readline(max(0.1, deadline - time.monotonic()))
                m = re.search(r"mailhub\[(\d+)\]: delivery worker running", line)
                if m:
                    pids[int(m.group(1))] = f"node{n}"
                    break
        log(f"  workers running: {', '.join(f'{v} pid {k}' for k, v in pids.items())}; sink pid {sink.pid}")
        if args.py_spy:
            self.profile(pids, Path(args.py_spy))

        engine = make_engine(with_params(url, application_name=CONTROL_APP) if args.database == "postgres" else url)
        backends = BackendCpu(self.admin, self.tag) if self.admin is not None else None
        try:
            return self.measure(engine, sink, pids, backends, ids, fill_s, stored)
        finally:
            engine.dispose()

    def sink_state(self, sink: Child) -> tuple[int, int, int, float, float]:
        sink.send("count")
        total, distinct, unmarked, first, complete = sink.readline(10).split()
        return int(total), int(distinct), int(unmarked), float(first), float(complete)

    def cpu(self, sink: Child, pids: dict[int, str]) -> dict:
        return {"t": time.monotonic(), "machine": machine_seconds(), "postgres": postgres_cpu_seconds(),
                "sink": proc_cpu_seconds(sink.pid), "bench": proc_cpu_seconds(os.getpid()),
                "nodes": {pid: proc_cpu_seconds(pid) for pid in pids},
                # the event loop's thread alone (the database calls run in other threads)
                "loops": {pid: thread_cpu_seconds(pid, pid) for pid in pids}}

    def measure(self, engine, sink: Child, pids: dict[int, str], backends: BackendCpu | None,
                ids: list[str], fill_s: float, stored: int) -> dict:
        args, n_msgs = self.args, self.args.messages
        self.load_before = wait_until_quiet(args.quiet_below, args.quiet_wait)
        if backends:
            backends.sample(first=True)
        cpu0 = self.cpu(sink, pids)
        released = release_all(engine)
        t0 = time.monotonic()  # the backlog is due from this commit on
        log(f"  released {released} recipients; draining")
        progress: list[tuple[float, int]] = []
        last_change, last_count, next_backend = t0, -1, t0 + 1
        sink_done = db_done = None
        states: dict[str, int] = {}
        while True:
            now = time.monotonic()
            total, distinct, unmarked, first_at, complete_at = self.sink_state(sink)
            progress.append((now - t0, distinct))
            if distinct != last_count:
                last_change, last_count = now, distinct
            if backends and now >= next_backend:
                backends.sample()
                next_backend = now + 1
            if sink_done is None and complete_at:
                sink_done = complete_at
            if sink_done is not None:
                states = queue_states(engine)
                if states.get("delivered", 0) >= n_msgs or not set(states) - {"delivered", "bounced"}:
                    db_done = time.monotonic()
                    break
            if now - last_change > args.stall_seconds:
                states = queue_states(engine)
                log(f"  no progress for {args.stall_seconds:g} s: sink {distinct}/{n_msgs}, queue {states}")
                break
            if now - t0 > args.timeout:
                states = queue_states(engine)
                log(f"  timeout after {args.timeout:g} s: sink {distinct}/{n_msgs}, queue {states}")
                break
            time.sleep(0.05 if sink_done is not None else 0.2)
        if backends:
            backends.sample()
        cpu1 = self.cpu(sink, pids)
        rss = {pids[pid]: peak_rss_mb(pid) for pid in pids}
        per_node = attempts_by_node(engine)
        dump = self.dir / "sink-ids.json"
        sink.send(f"dump {dump}")
        sink.readline(60)
        seen = json.loads(dump.read_text())
        expected = set(ids)
        duplicates = sum(c - 1 for c in seen.values() if c > 1)
        missing = len(expected - seen.keys())
        unknown = len(seen.keys() - expected)
        total, distinct, unmarked, first_at, complete_at = self.sink_state(sink)

        end = db_done or time.monotonic()
        wall = cpu1["t"] - cpu0["t"]
        drain = end - t0 if db_done else None
        node_of = {f"{socket.gethostname()}:{pid}": name for pid, name in pids.items()}
        share = {node_of.get(node, node): counts.get("delivered", 0) for node, counts in per_node.items()}
        node_cpu = {pids[pid]: cpu1["nodes"][pid] - cpu0["nodes"].get(pid, 0.0) for pid in pids}
        loop_cpu = {pids[pid]: cpu1["loops"][pid] - cpu0["loops"].get(pid, 0.0) for pid in pids}
        mailhub_cpu = sum(node_cpu.values())
        pg_all = (cpu1["postgres"] - cpu0["postgres"]) if cpu0["postgres"] is not None else None
        sink_cpu = cpu1["sink"] - cpu0["sink"]
        busy = cpu1["machine"]["busy"] - cpu0["machine"]["busy"]
        steal = cpu1["machine"]["steal"] - cpu0["machine"]["steal"]
        bench_cpu = cpu1["bench"] - cpu0["bench"]
        ours_pg = (pg_all or 0) if args.database == "postgres" else 0  # with SQLite: someone else's
        other = busy - mailhub_cpu - ours_pg - sink_cpu - bench_cpu
        delivered = states.get("delivered", 0)
        return {
            "nodes": self.k, "database": args.database, "messages": n_msgs,
            "message_bytes": stored // max(1, n_msgs), "fill_seconds": round(fill_s, 2),
            "drain_seconds": round(drain, 2) if drain else None,
            "msg_per_s": round(n_msgs / drain, 1) if drain else None,
            "steady_msg_per_s": steady_rate(progress, n_msgs),
            "first_delivery_seconds": round(first_at - t0, 3) if first_at else None,
            "sink_complete_seconds": round(sink_done - t0, 2) if sink_done else None,
            "delivered_per_node": share,
            "attempts_per_node": {node_of.get(k, k): v for k, v in per_node.items()},
            "queue_states": states,
            "exactly_once": {"sink_received": total, "distinct": distinct, "duplicates": duplicates,
                             "missing": missing, "unknown": unknown, "unmarked": unmarked,
                             "db_delivered": delivered,
                             "ok": duplicates == 0 and missing == 0 and unknown == 0 and delivered == n_msgs},
            "cpu_seconds": {"mailhub": round(mailhub_cpu, 2),
                            "mailhub_per_node": {k: round(v, 2) for k, v in node_cpu.items()},
                            "event_loop_thread_per_node": {k: round(v, 2) for k, v in loop_cpu.items()},
                            "postgres_bench_backends": round(backends.used(), 2) if backends else None,
                            "postgres_all": round(pg_all, 2) if pg_all is not None else None,
                            "sink": round(sink_cpu, 2), "bench": round(bench_cpu, 2),
                            "machine_busy": round(busy, 2), "steal": round(steal, 2),
                            "other": round(other, 2),
                            "window_seconds": round(wall, 2)},
            "mailhub_cpu_ms_per_msg": round(1000 * mailhub_cpu / n_msgs, 3),
            "sink_cpu_percent": round(100 * sink_cpu / wall, 1),
            "event_loop_percent": {k: round(100 * v / wall, 1) for k, v in loop_cpu.items()},
            "machine_busy_percent_of_all_cores": round(100 * busy / wall / machine_info()["nproc"], 1),
            "other_cpu_percent": round(100 * other / wall, 1),
            "load_before_percent_of_all_cores": round(self.load_before, 1),
            "peak_rss_mb": {k: round(v, 1) if v else None for k, v in rss.items()},
        }

    def profile(self, pids: dict[int, str], out: Path) -> None:
        """py-spy on every node from now until :meth:`stop`: collapsed stacks in ``out``
        (``flamegraph.pl`` or https://speedscope.app read them)."""
        import subprocess

        out.mkdir(parents=True, exist_ok=True)
        spy = Path(sys.executable).with_name("py-spy")
        for pid, name in pids.items():
            with open(self.dir / f"py-spy-{name}.log", "wb") as err:
                self.spies.append(subprocess.Popen(
                    [str(spy), "record", "--pid", str(pid), "--rate", "100", "--nonblocking",
                     "--format", "raw", "--output", str(out / f"{self.dir.name}-{name}.txt")], stdout=subprocess.DEVNULL, stderr=err))
        time.sleep(1.0)  # attached before the backlog is released

    def stop(self) -> None:
        for spy in self.spies:  # SIGINT: py-spy writes its flame graph and exits
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(60)
            except Exception:  # noqa: BLE001
                spy.kill()
        self.spies = []
        for child in reversed(self.children):
            try:
                child.stop()
            except Exception as exc:  # noqa: BLE001  (keep stopping the others)
                log(f"stopping {child.name}: {exc}")
        self.children = []
        if self.admin is not None:
            from sqlalchemy import text

            try:
                with self.admin.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
            finally:
                self.admin.dispose()
                self.admin = None


def steady_rate(progress: list[tuple[float, int]], total: int) -> float | None:
    """msg/s between the sink reaching 10 % and 90 % of the backlog: the rate
    without the start (first poll, connections) and the tail."""
    def when(fraction: float) -> float | None:
        goal = fraction * total
        return next((t for t, n in progress if n >= goal), None)

    a, b = when(0.1), when(0.9)
    if a is None or b is None or b <= a:
        return None
    return round(0.8 * total / (b - a), 1)


# =====================================================================================
# Report
# =====================================================================================
def code_digest(packages: tuple[str, ...] = ("mailhub",)) -> str:
    """A short digest of the Python sources of ``packages``: which code was measured (the
    tree changes under other people's work; the figures belong to this digest)."""
    import hashlib

    h = hashlib.sha256()
    for path in sorted(p for package in packages for p in (REPO / package).rglob("*.py")):
        h.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


def _f(v, spec: str = "") -> str:
    return "-" if v is None else format(v, spec)


def summarize(runs: list[dict]) -> dict:
    """Median and spread (min, max) of the main figures over the runs of one setup."""
    out = {}
    for key, get in (("drain_seconds", lambda r: r["drain_seconds"]), ("msg_per_s", lambda r: r["msg_per_s"]),
                     ("steady_msg_per_s", lambda r: r["steady_msg_per_s"]),
                     ("mailhub_cpu_ms_per_msg", lambda r: r["mailhub_cpu_ms_per_msg"]),
                     ("postgres_cpu_seconds", lambda r: r["cpu_seconds"]["postgres_all"]),
                     ("postgres_backends_cpu_seconds", lambda r: r["cpu_seconds"]["postgres_bench_backends"])):
        values = [v for v in map(get, runs) if v is not None]
        if values and (runs[0]["database"] == "postgres" or not key.startswith("postgres")):
            median = statistics.median(values)
            out[key] = {"median": round(median, 3), "min": min(values), "max": max(values),
                        "spread_percent": round(100 * (max(values) - min(values)) / median, 1) if median else None}
    return out


def print_report(report: dict) -> None:
    m, s = report["machine"], report["setup"]
    print()
    print("mailhub delivery benchmark: draining a backlog into a local sink")
    print(f"  machine : {m['nproc']} CPU(s) usable ({m['cpu_count']} online), {m['cpu_model']}; "
          f"Linux {m['kernel']}; {m['implementation']} {m['python']}")
    print(f"  date    : {report['date']}")
    print(f"  command : {report['command']}")
    print(f"  code    : mailhub/**/*.py sha256 {report['mailhub_code_digest']} (at the start; "
          f"{report.get('mailhub_code_digest_end')} at the end)")
    print(f"  setup   : {s['messages']} messages of {s['message_bytes']} bytes, 1 recipient each, "
          f"{s['database']} queue; `mailhub serve --only delivery` x K, concurrency {s['concurrency']}, "
          f"per destination {s['per_destination']}, relay (no TLS) to a raw asyncio sink")
    print()
    head = (f"{'K':>2} {'run':>3} {'drain s':>8} {'msg/s':>7} {'steady':>7} {'1st s':>5}  "
            f"{'delivered per node':<20} {'mailhub CPU s':<15} {'loop%':<9} {'ms/msg':>6} {'PG CPU s':>9} "
            f"{'sink%':>5} {'busy%':>5} {'other%':>6} {'RSS MB':<12} {'dup':>3} {'miss':>4}")
    print(head)
    print("-" * len(head))
    for r in report["runs"]:
        cpu = r["cpu_seconds"]
        share = "/".join(str(v) for _, v in sorted(r["delivered_per_node"].items()))
        node_cpu = "/".join(f"{v:.1f}" for _, v in sorted(cpu["mailhub_per_node"].items()))
        loops = "/".join(f"{v:.0f}" for _, v in sorted(r["event_loop_percent"].items()))
        pg = f"{_f(cpu['postgres_bench_backends'], '.1f')}/{_f(cpu['postgres_all'], '.1f')}" \
            if r["database"] == "postgres" else "-"
        rss = "/".join(f"{v:.0f}" for _, v in sorted(r["peak_rss_mb"].items()) if v)
        eo = r["exactly_once"]
        print(f"{r['nodes']:>2} {r['run']:>3} {_f(r['drain_seconds'], '.1f'):>8} {_f(r['msg_per_s'], '.0f'):>7} "
              f"{_f(r['steady_msg_per_s'], '.0f'):>7} {_f(r['first_delivery_seconds'], '.2f'):>5}  {share:<20} "
              f"{node_cpu:<15} {loops:<9} {r['mailhub_cpu_ms_per_msg']:>6.2f} {pg:>9} {r['sink_cpu_percent']:>5.0f} "
              f"{r['machine_busy_percent_of_all_cores']:>5.0f} {r['other_cpu_percent']:>6.0f} {rss:<12} {eo['duplicates']:>3} {eo['missing']:>4}")
    print()
    for key, summary in report["summary"].items():
        parts = [f"{name} median {v['median']:g} (min {v['min']:g}, max {v['max']:g}, spread {v['spread_percent']:g} %)"
                 for name, v in summary.items() if name in ("drain_seconds", "msg_per_s", "steady_msg_per_s",
                                                            "mailhub_cpu_ms_per_msg")]
        print(f"  {key}: " + "; ".join(parts))
    for name, value in report.get("ratios", {}).items():
        print(f"  ratio {name}: {value}")
    print()
    print("  drain s  : from the commit that makes the backlog due (workers already running) until the sink")
    print("             has every message and the queue says every recipient is delivered")
    print("  steady   : msg/s while the sink went from 10 % to 90 % of the backlog; 1st s: first arrival")
    print("  CPU      : CPU-seconds over the drain; PG = the nodes' own backends / the whole PostgreSQL "
          "server; ms/msg = mailhub CPU-ms per message;")
    print("             loop% = CPU of each node's event-loop thread (SMTP client, scheduling, logging) in % of "
          "one core; the rest of a node's CPU is its database threads")
    print(f"             sink% = sink CPU in % of one core; busy% = whole machine, % of all {m['nproc']} cores;")
    print("             other% = CPU of everything else (other jobs on the machine: noise), % of one core")
    print("  RSS MB   : peak resident memory (VmHWM) of each mailhub process; dup/miss: exactly-once check "
          "at the sink by queue id")
    bad = [r for r in report["runs"] if not r["exactly_once"]["ok"]]
    print("  exactly once: " + ("every message arrived once and is delivered in the queue, in every run"
                                if not bad else f"FAILED in {len(bad)} run(s), see the JSON"))


def parse_args(argv: list[str] | None = None):
    from mailhub.config import DeliveryConfig

    d = DeliveryConfig()
    p = argparse.ArgumentParser(description="Benchmark mailhub's delivery: drain a backlog into a local sink "
                                            "with 1 or more delivery processes (see bench/README.md).")
    p.add_argument("--messages", type=int, default=20000, help="backlog size (default 20000)")
    p.add_argument("--nodes", type=int, nargs="+", default=[1, 2],
                   help="delivery processes per run; one setup per value (default: 1 2)")
    p.add_argument("--runs", type=int, default=2, help="runs of each setup, interleaved (default 2)")
    p.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    p.add_argument("--pg-url", default=DEFAULT_PG_URL,
                   help=f"PostgreSQL database to make a throw-away schema in (default {DEFAULT_PG_URL})")
    p.add_argument("--concurrency", type=int, default=d.concurrency,
                   help=f"[delivery] concurrency (default {d.concurrency}, mailhub's default)")
    p.add_argument("--per-destination", type=int, default=0,
                   help=f"[delivery] per_destination_concurrency (default: mailhub's, "
                        f"{d.per_destination_concurrency})")
    p.add_argument("--size", type=int, default=5 * 1024, help="bytes per stored message (default 5120)")
    p.add_argument("--quiet-below", type=float, default=30.0,
                   help="before each drain, wait until the machine is less than this %% busy (of all "
                        "cores) from other jobs; 0: do not wait (default 30)")
    p.add_argument("--quiet-wait", type=float, default=300.0,
                   help="wait at most this many seconds for that (default 300), then run anyway")
    p.add_argument("--timeout", type=float, default=1800.0, help="give up a run after this many seconds")
    p.add_argument("--stall-seconds", type=float, default=120.0,
                   help="give up a run when nothing arrives for this long (default 120)")
    p.add_argument("--py-spy", metavar="DIR",
                   help="profile every node with py-spy (from .venv/bin) during the drain; "
                        "collapsed stacks to DIR (the sampling costs CPU: do not record these figures)")
    p.add_argument("--json-file", metavar="PATH", help="also write the results as JSON to PATH")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, homes, sink ids)")
    p.add_argument("--sink-worker", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.sink_worker is None:
        if args.messages < 1 or args.messages > 899_999:
            p.error("--messages must be between 1 and 899999")
        if min(args.nodes) < 1 or args.runs < 1 or args.concurrency < 1:
            p.error("--nodes, --runs and --concurrency must be at least 1")
        if args.database == "sqlite" and args.nodes != [1]:
            p.error("--database sqlite: only with --nodes 1 (SQLite is one machine's queue)")
        if args.size < 2048:
            p.error("--size must be at least 2048 bytes")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.sink_worker is not None:
        try:
            asyncio.run(sink_main(args.sink_worker))
        except KeyboardInterrupt:
            pass
        return 0

    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    from mailhub.config import DeliveryConfig
    from mailhub.dkimkeys import ensure_domain_keys

    d = DeliveryConfig()
    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    tmp = Path(tempfile.mkdtemp(prefix="mailhub-bench-delivery-"))
    keys = tmp / "dkim"
    ensure_domain_keys(keys, DOMAIN, "mailhub", False)
    report = {"command": command, "machine": machine_info(), "mailhub_code_digest": code_digest(),
              "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
              "setup": {"messages": args.messages, "message_bytes": args.size, "database": args.database,
                        "concurrency": args.concurrency,
                        "per_destination": args.per_destination or d.per_destination_concurrency,
                        "poll_seconds": d.poll_seconds, "runs": args.runs, "nodes": args.nodes},
              "runs": []}
    log(f"temporary folder {tmp}")
    index = 0
    current: Run | None = None
    try:
        for rep in range(1, args.runs + 1):
            for k in args.nodes:
                index += 1
                log(f"run {rep}/{args.runs}: {k} delivery process(es), {args.database}, {args.messages} messages")
                current = Run(args, k, index, tmp, keys)
                try:
                    result = current.execute()
                finally:
                    current.stop()
                    current = None
                result["run"] = rep
                report["runs"].append(result)
                eo = result["exactly_once"]
                log(f"  drain {_f(result['drain_seconds'])} s, {_f(result['msg_per_s'])} msg/s "
                    f"(steady {_f(result['steady_msg_per_s'])}), per node {result['delivered_per_node']}, "
                    f"CPU {result['cpu_seconds']}, RSS {result['peak_rss_mb']}, "
                    f"duplicates {eo['duplicates']}, missing {eo['missing']}")
    except KeyboardInterrupt:
        log(f"interrupted; every process stopped; the logs are in {tmp}")
        if current is not None:
            current.stop()
        return 130
    except Exception as exc:  # noqa: BLE001  (report it, then clean up)
        log(f"failed: {exc!r}; the logs are in {tmp}")
        if current is not None:
            current.stop()
        return 1
    if args.keep:
        log(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {}
    for k in args.nodes:
        runs = [r for r in report["runs"] if r["nodes"] == k]
        summary[f"{k} node(s)"] = summarize(runs)
    report["summary"] = summary
    report["mailhub_code_digest_end"] = code_digest()
    one, two = summary.get("1 node(s)"), summary.get("2 node(s)")
    if one and two and "msg_per_s" in one and "msg_per_s" in two:
        report["ratios"] = {
            "2 nodes / 1 node, msg/s (medians)": round(two["msg_per_s"]["median"] / one["msg_per_s"]["median"], 2),
            "2 nodes / 1 node, drain time (medians)":
                round(two["drain_seconds"]["median"] / one["drain_seconds"]["median"], 2),
            "2 nodes / 1 node, mailhub CPU ms per message (medians)":
                round(two["mailhub_cpu_ms_per_msg"]["median"] / one["mailhub_cpu_ms_per_msg"]["median"], 2),
        }
    if args.json_file:
        Path(args.json_file).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
