"""Relay benchmark: sustained throughput and accept latency of ``mailhub serve``.

Prints figures and ratios; it is not a test and asserts nothing about them.

What it does (see bench/README.md for the long form):

1. makes a throw-away data folder (schema, RSA-2048 DKIM key, directory with the test
   officials, a TLS certificate from a private CA) and a config with the durable SQLite
   queue, delivery mode ``relay`` to a sink, no pre-greeting wait and rate limits raised;
2. starts three kinds of processes, each on its own so their CPU can be told apart:
   the next-hop sink (``bench/sink.py``, counts messages), ``mailhub serve`` with
   ``server.processes = P`` front ends, and ``--client-procs`` load generators;
3. for each level of concurrent sessions: the load generators open the sessions (TLS,
   EHLO, AUTH PLAIN once), then every session sends MAIL / RCPT / DATA of a 5 KB message
   back to back, waiting for each reply (no pipelining), for a warm-up and then the
   measured window; then the queue is left to drain into the sink;
4. prints a table: accepted msg/s and p50/p99 accept latency (DATA terminator sent ->
   250 received) in the window, delivered msg/s (sink counter over the same window),
   the backlog when the load stopped and the time to drain it, CPU used by each
   process group, and the ratio to Postfix + OpenDKIM on this machine.

Run: ``.venv/bin/python bench/relay.py [--seconds 15] [--sessions 1,10,50] [--starttls]
[--processes 2] [--client-procs 1] [--json]``.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import queue
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import deque
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent

# Postfix 3 + OpenDKIM on this 2-core machine (docs: /work/shared/FIELD-NOTES.md):
REF_PLAIN = 400.0  # msg/s, 10-50 sessions, no TLS/AUTH (380-440): the target at 50 sessions
REF_TLS_AUTH = 355.0  # msg/s, STARTTLS + SASL AUTH, 50 sessions

SENDER = "an@hcm.gov.vn"
SENDER_NAME = "Nguyễn Văn An"
RCPT = "binh@hcm.gov.vn"
RCPT_NAME = "Trần Thị Bình"
MESSAGE_BYTES = 5 * 1024
REPLY_TIMEOUT = 60.0  # seconds any one SMTP reply may take before the session is dropped

# The start of a child that dies with its parent: PR_SET_PDEATHSIG (1) survives execve;
# a child whose parent is already gone (adopted by init) exits at once.
_DIE_WITH_PARENT = """
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))
except Exception:
    pass
if os.getppid() == 1:
    sys.exit(1)
"""
_EXEC_WITH_PDEATHSIG = _DIE_WITH_PARENT + """
os.execv(sys.argv[1], sys.argv[1:])
"""
# For mailhub, which forks and may not stop on SIGTERM: a guard process (the leader of
# the child's process group) that, when the benchmark dies or asks it to stop, sends
# SIGTERM to mailhub, waits a bounded time, then SIGKILLs the whole group.
_GUARD = _DIE_WITH_PARENT + """
import subprocess, time
child = subprocess.Popen(sys.argv[1:])
asked = []
def on_term(*_):
    if not asked:
        asked.append(time.monotonic())
        try:
            child.terminate()
        except OSError:
            pass
signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    try:
        code = child.wait(timeout=0.2)
        break
    except subprocess.TimeoutExpired:
        if asked and time.monotonic() - asked[0] > 10:
            os.killpg(0, signal.SIGKILL)  # mailhub did not stop: everything in the group
def others():
    me, left = os.getpid(), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(pid) != me and int(fields[2]) == me and fields[0] != b"Z":
            left.append(int(pid))
    return left
deadline = time.monotonic() + 5
while others() and time.monotonic() < deadline:  # forked front ends still stopping
    time.sleep(0.1)
if others():
    os.killpg(0, signal.SIGKILL)
sys.exit(code)
"""


# =====================================================================================
# The message
# =====================================================================================
_PARAGRAPHS = [
    "Kính gửi các đồng chí Trưởng phòng, Chánh Văn phòng Sở Thông tin và Truyền thông,",
    ("Thực hiện Kế hoạch số 125/KH-UBND của Ủy ban nhân dân Thành phố về chuyển đổi số "
     "năm 2026, Sở Thông tin và Truyền thông báo cáo tình hình thực hiện nhiệm vụ trong "
     "tuần như sau. Hệ thống thư điện tử công vụ đã được nâng cấp, bảo đảm an toàn thông "
     "tin và đáp ứng yêu cầu gửi nhận văn bản điện tử giữa các cơ quan, đơn vị."),
    ("1. Về hạ tầng: hoàn thành việc lắp đặt máy chủ dự phòng tại Trung tâm dữ liệu "
     "Thành phố; kiểm tra sao lưu định kỳ hằng ngày; rà soát cấu hình tường lửa và "
     "chứng thư số của các cổng giao tiếp điện tử."),
    ("2. Về ứng dụng: triển khai chữ ký số cho 1.250 cán bộ, công chức tại 24 quận, "
     "huyện và thành phố Thủ Đức; tổ chức tập huấn sử dụng hệ thống quản lý văn bản "
     "và điều hành cho Ủy ban nhân dân phường, xã, thị trấn."),
    ("3. Về an toàn thông tin: phát hiện và ngăn chặn 37 lượt thư giả mạo địa chỉ của "
     "cơ quan nhà nước; đề nghị các đơn vị nhắc nhở cán bộ không mở tệp đính kèm và "
     "đường liên kết lạ, không cung cấp mật khẩu qua thư điện tử hay điện thoại."),
    ("4. Kiến nghị: đề nghị Văn phòng Ủy ban nhân dân Thành phố bố trí kinh phí duy "
     "trì hệ thống trong quý III; đề nghị Sở Nội vụ cập nhật danh sách cán bộ nghỉ "
     "hưu, chuyển công tác để thu hồi tài khoản kịp thời."),
    "Sở Thông tin và Truyền thông kính báo cáo để các đồng chí biết và chỉ đạo.",
]
_SIGNATURE = [
    "Trân trọng,",
    "Nguyễn Văn An",
    "Phòng Công nghệ thông tin - Sở Thông tin và Truyền thông",
    "Thành phố Hồ Chí Minh - Điện thoại: (028) 3520 2727",
]


def _encoded_word(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="


def _subject_prefix() -> bytes:
    from email.header import Header

    return Header("Báo cáo tuần 12 - tình hình chuyển đổi số", "utf-8",
                  header_name="Subject").encode(linesep="\r\n").encode("ascii")


_SUBJECT = _subject_prefix()


def _per_message(tag: str, seq: int) -> bytes:
    return (b"Message-ID: <%s.%d@may-tram.hcm.gov.vn>\r\nSubject: %s [%d]\r\n"
            % (tag.encode("ascii"), seq, _SUBJECT, seq))


def message_parts(size: int = MESSAGE_BYTES) -> tuple[bytes, bytes, bytes]:
    """(head before the per-message fields, head after them, body): a realistic
    Thunderbird-like text message of about ``size`` bytes in all (exactly, for a
    6-digit sequence number): Vietnamese UTF-8 8bit format=flowed body with a
    signature and a quoted earlier report, CRLF line ends, no line starting with a
    dot (so no dot-stuffing is needed)."""
    head1 = (
        f"From: {_encoded_word(SENDER_NAME)} <{SENDER}>\r\n"
        f"To: {_encoded_word(RCPT_NAME)} <{RCPT}>\r\n"
        "Date: Mon, 16 Mar 2026 09:15:00 +0700\r\n"
    ).encode("ascii")
    head2 = (
        "MIME-Version: 1.0\r\n"
        "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 "
        "Thunderbird/128.8.0\r\n"
        "Content-Language: vi\r\n"
        "Content-Type: text/plain; charset=UTF-8; format=flowed\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
    ).encode("ascii")
    fixed = len(head1) + len(head2) + len(_per_message("c1234567", 100000))
    lines: list[str] = []
    for para in _PARAGRAPHS:
        # format=flowed (RFC 3676), as Thunderbird sends: a soft line break is a
        # trailing space; the signature starts with the "-- " delimiter line
        wrapped = textwrap.wrap(para, 72)
        lines += [w + " " for w in wrapped[:-1]] + wrapped[-1:] + [""]
    lines += ["-- ", *_SIGNATURE]
    body_lines = list(lines)
    while True:
        body = ("\r\n".join(body_lines) + "\r\n").encode("utf-8")
        if fixed + len(body) >= size:
            break
        body_lines += ["", "Vào lúc 09:00 ngày 09/03/2026, Nguyễn Văn An đã viết:",
                       *("> " + line if line else ">" for line in lines)]  # the earlier report, quoted
    body = body[: max(0, size - fixed - 4)]
    body = body[: body.rfind(b"\r\n") + 2]  # whole lines only
    pad = size - fixed - len(body)
    if pad >= 2:
        body += b"-" * (pad - 2) + b"\r\n"
    assert not any(line.startswith(b".") for line in body.split(b"\r\n"))
    body.decode("utf-8")  # no character cut in two
    return head1, head2, body


def make_message(parts: tuple[bytes, bytes, bytes], tag: str, seq: int) -> bytes:
    head1, head2, body = parts
    return head1 + _per_message(tag, seq) + head2 + body


# =====================================================================================
# Load generator (its own process): raw asyncio SMTP client, TLS, AUTH PLAIN once
# =====================================================================================
class SmtpError(Exception):
    def __init__(self, stage: str, code: int, text: bytes) -> None:
        super().__init__(f"{stage}: {code} {text[:200]!r}")
        self.stage, self.code = stage, code


class ClientSession(asyncio.Protocol):
    """One SMTP session. Replies are parsed in data_received and time-stamped there,
    so the latency does not include the time the coroutine waits to be scheduled."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.lines: list[bytes] = []
        self.replies: deque = deque()
        self.waiter: asyncio.Future | None = None
        self.closed: BaseException | None = None
        self.sent_at = 0.0

    # ---- asyncio.Protocol ----
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buf = self.buf + data if self.buf else data
        while True:
            i = buf.find(b"\r\n")
            if i < 0:
                break
            line, buf = buf[:i], buf[i + 2:]
            if line[3:4] == b"-":
                self.lines.append(line)
                continue
            code = int(line[:3]) if line[:3].isdigit() else 0
            if self.lines:
                self.lines.append(line)
                line, self.lines = b"\n".join(self.lines), []
            reply = (code, line, now)
            waiter, self.waiter = self.waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result(reply)
            else:
                self.replies.append(reply)
        self.buf = buf

    def connection_lost(self, exc) -> None:
        self.closed = exc or ConnectionResetError("connection closed by the server")
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(self.closed)

    # ---- use ----
    def reply(self) -> asyncio.Future:
        if self.replies:
            fut = self.loop.create_future()
            fut.set_result(self.replies.popleft())
            return fut
        fut = self.loop.create_future()
        if self.closed is not None:
            fut.set_exception(self.closed)
        else:
            self.sent_at = time.monotonic()
            self.waiter = fut
        return fut

    def command(self, line: bytes) -> asyncio.Future:
        self.transport.write(line)
        return self.reply()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def _expect(fut, code: int, stage: str) -> tuple:
    reply = await fut
    if reply[0] != code:
        raise SmtpError(stage, reply[0], reply[1])
    return reply


class LoadClient:
    def __init__(self, spec: dict) -> None:
        self.port: int = spec["port"]
        self.starttls: bool = spec["starttls"]
        self.password: str = spec["password"]
        self.tag = f"c{os.getpid()}"
        self.ctx = ssl.create_default_context(cafile=spec["cafile"])
        self.parts = message_parts()
        self.sessions: list[ClientSession] = []
        self.errors: dict[str, int] = {}
        self.ehlo_8bit = False
        self.seq = 0

    def _error(self, key: str) -> None:
        self.errors[key] = self.errors.get(key, 0) + 1

    async def open_one(self) -> ClientSession:
        loop = asyncio.get_running_loop()
        s = ClientSession(loop)
        if self.starttls:
            await loop.create_connection(lambda: s, "127.0.0.1", self.port)
        else:
            await loop.create_connection(lambda: s, "127.0.0.1", self.port, ssl=self.ctx,
                                         server_hostname="localhost")
        self.sessions.append(s)  # the watchdog sees it from now on
        await _expect(s.reply(), 220, "greeting")
        _code, text, _ = await _expect(s.command(b"EHLO may-tram.hcm.gov.vn\r\n"), 250, "EHLO")
        if self.starttls:
            await _expect(s.command(b"STARTTLS\r\n"), 220, "STARTTLS")
            s.transport = await loop.start_tls(s.transport, s, self.ctx, server_hostname="localhost")
            _code, text, _ = await _expect(s.command(b"EHLO may-tram.hcm.gov.vn\r\n"), 250, "EHLO")
        self.ehlo_8bit = b"8BITMIME" in text.upper()
        blob = base64.b64encode(f"\0{SENDER}\0{self.password}".encode()).decode("ascii")
        await _expect(s.command(f"AUTH PLAIN {blob}\r\n".encode("ascii")), 235, "AUTH")
        return s

    async def open(self, count: int) -> dict:
        self.sessions = []
        started = time.monotonic()
        results = await asyncio.gather(*(self.open_one() for _ in range(count)), return_exceptions=True)
        opened = [r for r in results if isinstance(r, ClientSession)]
        for r in results:
            if isinstance(r, BaseException):
                self._error(f"open: {r}"[:120])
        for s in self.sessions:
            if s not in opened:
                s.abort()
        self.sessions = opened
        return {"opened": len(opened), "open_seconds": time.monotonic() - started}

    async def _watchdog(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass
            now = time.monotonic()
            for s in self.sessions:
                if s.waiter is not None and now - s.sent_at > REPLY_TIMEOUT:
                    self._error("reply timeout")
                    s.abort()

    async def drive(self, s: ClientSession, t0: float, t1: float, lat: list[float],
                    counts: list[int]) -> None:
        opts = b" BODY=8BITMIME" if self.ehlo_8bit else b""
        mail = b"MAIL FROM:<" + SENDER.encode() + b">" + opts
        rcpt = f"RCPT TO:<{RCPT}>\r\n".encode()
        monotonic = time.monotonic
        try:
            while monotonic() < t1:
                self.seq += 1
                msg = make_message(self.parts, self.tag, self.seq)
                code, text, _ = await s.command(mail + b" SIZE=%d\r\n" % len(msg))
                if code != 250:
                    self._error(f"MAIL {code}")
                    await s.command(b"RSET\r\n")
                    await asyncio.sleep(0.05)
                    continue
                code, text, _ = await s.command(rcpt)
                if code != 250:
                    self._error(f"RCPT {code}")
                    await s.command(b"RSET\r\n")
                    await asyncio.sleep(0.05)
                    continue
                code, text, _ = await s.command(b"DATA\r\n")
                if code != 354:
                    self._error(f"DATA {code}")
                    await asyncio.sleep(0.05)
                    continue
                sent = monotonic()
                code, text, got = await s.command(msg + b".\r\n")
                if code != 250:
                    self._error(f"end of DATA {code} {text[:60].decode('ascii', 'replace')}")
                    await asyncio.sleep(0.05)
                    continue
                counts[0] += 1
                if t0 <= got <= t1:
                    counts[1] += 1
                    lat.append(got - sent)
            try:
                await asyncio.wait_for(s.command(b"QUIT\r\n"), 10)
            except (TimeoutError, OSError):
                pass
        except (OSError, ConnectionError) as exc:
            self._error(f"session lost: {type(exc).__name__}")
        finally:
            if s.transport is not None and s.closed is None:
                s.transport.close()

    async def run(self, start: float, t0: float, t1: float) -> dict:
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        stop = asyncio.Event()
        watchdog = asyncio.ensure_future(self._watchdog(stop))
        lat: list[float] = []
        counts = [0, 0]  # accepted in all, accepted inside [t0, t1]
        await asyncio.gather(*(self.drive(s, t0, t1, lat, counts) for s in self.sessions))
        stopped = time.monotonic()
        stop.set()
        await watchdog
        self.sessions = []
        errors, self.errors = self.errors, {}
        return {"accepted_total": counts[0], "accepted_window": counts[1],
                "latencies": lat, "errors": errors, "stopped": stopped}


async def client_main(spec: dict) -> None:
    client = LoadClient(spec)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout
    out.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    out.flush()
    while True:
        line = await reader.readline()
        if not line:
            return
        cmd = json.loads(line)
        if cmd["cmd"] == "open":
            answer = await client.open(cmd["sessions"])
        elif cmd["cmd"] == "run":
            answer = await client.run(cmd["start"], cmd["t0"], cmd["t1"])
        else:
            return
        out.write(json.dumps(answer) + "\n")
        out.flush()


# =====================================================================================
# The orchestrator
# =====================================================================================
def log(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class Child:
    """A child process in its own process group, with a thread reading its stdout
    lines into a queue (so the pipe never fills and reads can time out)."""

    def __init__(self, name: str, argv: list[str], *, stderr_path: Path, stdin: bool = True,
                 env: dict | None = None, cwd: Path | None = None, guard: bool = False) -> None:
        self.name = name
        self._err = open(stderr_path, "wb")  # noqa: SIM115  (open for the child's lifetime)
        self.stderr_path = stderr_path
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _GUARD if guard else _EXEC_WITH_PDEATHSIG, *argv],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self._err, text=True, bufsize=1, start_new_session=True, env=env, cwd=cwd)
        self.pid = self.proc.pid
        self.lines: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def readline(self, timeout: float) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"{self.name}: no answer within {timeout:g} s{self._tail()}") from None
        if line is None:
            raise RuntimeError(f"{self.name} exited (code {self.proc.poll()}){self._tail()}")
        return line

    def send(self, text: str) -> None:
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def _tail(self) -> str:
        try:
            tail = self.stderr_path.read_text(errors="replace").splitlines()[-15:]
        except OSError:
            return ""
        return ("; its stderr ends:\n    " + "\n    ".join(tail)) if tail else ""

    def stop(self, sig: int = signal.SIGTERM, wait: float = 15.0) -> None:
        """Ask it to stop (close stdin, then ``sig``), then kill its whole group."""
        if self.proc.poll() is None:
            try:
                if self.proc.stdin:
                    self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(1.0 if self.proc.stdin else 0)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
                self.proc.wait(wait)  # a guard gives up on its child after 10 s
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
        try:  # anything left in its group (e.g. forked front ends): by the group id we made
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._err.close()


# ---- CPU accounting from /proc ----------------------------------------------------------
_TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0.0


def descendants(root: int) -> list[int]:
    """``root`` and every process below it."""
    parent_of: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                parent_of[int(entry)] = int(fh.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += [child for child, parent in parent_of.items() if parent == pid]
    return found


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return (total - idle) / _TICK, total / _TICK


def machine_info() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {"nproc": affinity, "cpu_count": os.cpu_count(), "cpu_model": model,
            "python": platform.python_version(), "implementation": platform.python_implementation(),
            "kernel": platform.release(), "openssl": ssl.OPENSSL_VERSION}


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


# ---- setting up the relay ---------------------------------------------------------------
def write_config(home: Path, args, sink_port: int) -> Path:
    from tests.support import write_config_file

    delivery = {"concurrency": args.delivery_concurrency} if args.delivery_concurrency else {}
    return write_config_file(home, sink_port, server={"hostname": "mailhub.bench",
                                                      "processes": args.processes},
                             limits={"per_hour": 10**9, "per_day": 10**9}, delivery=delivery)


def prepare_home(home: Path) -> tuple[Path, str]:
    """Provision ``home`` (schema, DKIM keys, directory) and a TLS certificate; return
    (CA certificate file for the clients, the officials' password)."""
    sys.path.insert(0, str(REPO))
    import trustme

    from mailhub.config import load_config
    from tests.support import PASSWORD, provision

    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1", "mailhub.bench")
    cert.private_key_and_cert_chain_pem.write_to_path(str(home / "server.pem"))
    ca_file = home / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    probe = home / "provision.toml"
    probe.write_text(f'[server]\nhome = "{home}"\n[domains]\nofficial = ["hcm.gov.vn"]\n'
                     f'subdomains_of = ["hcm.gov.vn"]\n', encoding="utf-8")
    provision(load_config(probe, {}))
    return ca_file, PASSWORD


class Bench:
    def __init__(self, args) -> None:
        self.args = args
        self.children: list[Child] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="mailhub-bench-"))
        self.home = self.tmp / "home"
        self.home.mkdir()
        self.delivered_base = 0
        self.accepted_cumulative = 0

    # ---- processes ----
    def start(self) -> None:
        args = self.args
        log(f"data folder {self.home}; provisioning (argon2 hashes, RSA-2048 DKIM key)")
        ca_file, password = prepare_home(self.home)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILHUB_")}

        self.sink = self._spawn("sink", [sys.executable, str(BENCH / "sink.py"), "--impl", args.sink],
                                env=env)
        m = re.match(r"port (\d+)", self.sink.readline(30))
        if not m:
            raise RuntimeError("the sink did not report its port")
        sink_port = int(m.group(1))

        config = write_config(self.home, args, sink_port)
        serve = [sys.executable, "-m", "mailhub", "--config", str(config), "serve"]
        self.delivery = None
        if args.split_delivery:
            self.delivery = self._spawn("mailhub delivery", [*serve, "--only", "delivery"],
                                        stdin=False, env=env, cwd=REPO, guard=True)
            deadline = time.monotonic() + 60
            while True:
                line = self.delivery.readline(max(0.1, deadline - time.monotonic()))
                m = re.search(r"mailhub\[(\d+)\]: delivery worker running", line)
                if m:
                    self.roles = {int(m.group(1)): "delivery"}
                    break
            serve += ["--only", "submission"]
        else:
            self.roles = {}
        self.server = self._spawn("mailhub serve", serve, stdin=False, env=env, cwd=REPO, guard=True)
        ports: dict[int, dict[str, int]] = {}
        worker = bool(args.split_delivery)
        deadline = time.monotonic() + 60
        seen: list[str] = []
        while time.monotonic() < deadline:
            ready = [p for p in ports.values() if len(p) == 2]
            if len(ready) >= args.processes and worker:
                break
            try:
                line = self.server.readline(max(0.1, deadline - time.monotonic()))
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}\n  its stdout so far: {seen}") from None
            seen.append(line.strip())
            m = re.search(r"mailhub\[(\d+)\]: (submissions?) listening on port (\d+)", line)
            if m:
                ports.setdefault(int(m.group(1)), {})[m.group(2)] = int(m.group(3))
            m = re.search(r"mailhub\[(\d+)\]: delivery worker running", line)
            if m:
                worker = True
                self.roles[int(m.group(1))] = "delivery"
        else:
            raise RuntimeError(f"mailhub serve did not report its ports and delivery worker; "
                               f"its stdout so far: {seen}")
        any_ports = next(iter(ports.values()))
        self.ports = any_ports
        self.server_pids = sorted(ports)
        for pid in ports:  # a process with ports that also delivers runs both roles
            self.roles[pid] = "front end + delivery" if self.roles.get(pid) == "delivery" else "front end"
        if self.delivery:
            log(f"mailhub serve --only delivery: pid {next(iter(self.roles))} "
                f"(guard {self.delivery.pid})")
        log(f"mailhub serve: pids {self.server_pids} (guard {self.server.pid}), "
            f"submission {any_ports['submission']}, submissions {any_ports['submissions']}; "
            f"sink pid {self.sink.pid} port {sink_port}")

        port = any_ports["submission" if args.starttls else "submissions"]
        spec = json.dumps({"port": port, "starttls": args.starttls, "cafile": str(ca_file),
                           "password": password})
        self.clients = []
        for i in range(args.client_procs):
            c = self._spawn(f"client {i}", [sys.executable, str(Path(__file__).resolve()),
                                           "--client-worker", spec], env=env)
            self.clients.append(c)
        for c in self.clients:
            json.loads(c.readline(30))
        log(f"load generator pids {[c.pid for c in self.clients]}")

    def _spawn(self, name: str, argv: list[str], **kw) -> Child:
        slug = re.sub(r"\W+", "-", name)
        child = Child(name, argv, stderr_path=self.tmp / f"{slug}.log", **kw)
        self.children.append(child)
        return child

    def stop(self) -> None:
        for child in reversed(self.children):
            started = time.monotonic()
            try:
                child.stop()
            except Exception as exc:  # noqa: BLE001  (keep stopping the others)
                log(f"stopping {child.name}: {exc}")
            took = time.monotonic() - started
            if took > 5:
                log(f"{child.name} took {took:.0f} s to stop (exit code {child.proc.returncode})")
        self.children = []
        if self.args.keep:
            log(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- measuring ----
    def sink_count(self) -> int:
        self.sink.send("count")
        return int(self.sink.readline(10).split()[0])

    def cpu_sample(self) -> dict:
        pids = descendants(self.server.pid)
        if self.delivery:
            pids += descendants(self.delivery.pid)
        server = {pid: proc_cpu_seconds(pid) for pid in pids}
        return {"t": time.monotonic(), "machine": machine_cpu(), "server": server,
                "clients": sum(proc_cpu_seconds(c.pid) for c in self.clients),
                "sink": proc_cpu_seconds(self.sink.pid)}

    def cpu_share(self, a: dict, b: dict) -> dict:
        roles = self.roles
        wall = b["t"] - a["t"]

        def pct(seconds: float) -> float:  # % of one core
            return round(100.0 * seconds / wall, 1)

        per_pid = {pid: pct(b["server"][pid] - a["server"].get(pid, 0.0)) for pid in b["server"]}
        server = sum(per_pid.values())
        per_proc = {f"{pid} {roles.get(pid, 'other')}": v for pid, v in per_pid.items()
                    if pid in roles or v >= 0.5}
        busy = (b["machine"][0] - a["machine"][0]) / wall * 100
        clients = pct(b["clients"] - a["clients"])
        sink = pct(b["sink"] - a["sink"])
        return {"server": round(server, 1), "server_per_process": per_proc, "client": clients,
                "sink": sink, "machine_busy": round(busy, 1),
                "other": round(max(0.0, busy - server - clients - sink), 1)}

    def run_level(self, sessions: int) -> dict:
        args = self.args
        n = len(self.clients)
        split = [sessions // n + (1 if i < sessions % n else 0) for i in range(n)]
        active = [(c, k) for c, k in zip(self.clients, split) if k]
        for c, k in active:
            c.send(json.dumps({"cmd": "open", "sessions": k}))
        opened = 0
        for c, _ in active:
            answer = json.loads(c.readline(180))
            opened += answer["opened"]
        if opened < sessions:
            log(f"only {opened} of {sessions} sessions could be opened")
        start = time.monotonic() + 0.3
        t0 = start + args.warmup
        t1 = t0 + args.seconds
        for c, _ in active:
            c.send(json.dumps({"cmd": "run", "start": start, "t0": t0, "t1": t1}))
        time.sleep(max(0.0, t0 - time.monotonic()))
        d0, cpu0 = self.sink_count(), self.cpu_sample()
        time.sleep(max(0.0, t1 - time.monotonic()))
        d1, cpu1 = self.sink_count(), self.cpu_sample()
        window = cpu1["t"] - cpu0["t"]
        accepted_total = accepted_window = 0
        latencies: list[float] = []
        errors: dict[str, int] = {}
        stopped = t1
        for c, _ in active:
            r = json.loads(c.readline(REPLY_TIMEOUT + 60))
            accepted_total += r["accepted_total"]
            accepted_window += r["accepted_window"]
            latencies += r["latencies"]
            stopped = max(stopped, r["stopped"])
            for k, v in r["errors"].items():
                errors[k] = errors.get(k, 0) + v
        self.accepted_cumulative += accepted_total
        target = self.accepted_cumulative
        # drain: until the sink has every message accepted so far (bounded)
        delivered = self.sink_count()
        backlog = max(0, target - delivered)
        deadline = time.monotonic() + args.drain_timeout
        while delivered < target and time.monotonic() < deadline:
            time.sleep(0.05)
            delivered = self.sink_count()
        drained_at = time.monotonic()
        drain = drained_at - stopped if delivered >= target else None
        cpu = self.cpu_share(cpu0, cpu1)
        latencies.sort()
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        result = {
            "sessions": sessions, "sessions_opened": opened, "window_seconds": round(window, 3),
            "accepted_per_s": round(accepted_window / args.seconds, 1),
            "accepted_in_window": accepted_window,
            "p50_ms": round(p50 * 1000, 2) if p50 is not None else None,
            "p99_ms": round(p99 * 1000, 2) if p99 is not None else None,
            "max_ms": round(latencies[-1] * 1000, 2) if latencies else None,
            "delivered_per_s": round((d1 - d0) / window, 1),
            "delivered_in_window": d1 - d0,
            "accepted_in_level": accepted_total,
            "backlog_at_stop": backlog,
            "drain_seconds": round(drain, 2) if drain is not None else None,
            "undelivered_after_drain_timeout": max(0, target - delivered),
            "errors": errors,
            "drain_per_s": round(backlog / drain, 1) if drain and backlog >= 20 else None,
            "cpu_percent_of_one_core": cpu,
            # all mailhub processes' CPU in the window per message accepted in it (includes
            # whatever delivery work was done in the window)
            "server_cpu_ms_per_accepted": (round(cpu["server"] * 10 * window / accepted_window, 2)
                                           if accepted_window else None),
        }
        result["ratio_vs_400"] = round(result["accepted_per_s"] / REF_PLAIN, 2)
        result["ratio_vs_355_tls_auth"] = round(result["accepted_per_s"] / REF_TLS_AUTH, 2)
        if delivered < target:
            log(f"queue did not drain within {args.drain_timeout:g} s: {target - delivered} left")
        return result


# ---- reporting -------------------------------------------------------------------------
def _fmt(v, spec: str = "") -> str:
    return "-" if v is None else format(v, spec)


def print_report(report: dict) -> None:
    m, cfg = report["machine"], report["setup"]
    print()
    print("mailhub relay benchmark")
    print(f"  machine : {m['nproc']} CPU(s) usable ({m['cpu_count']} online), {m['cpu_model']}; "
          f"Linux {m['kernel']}; {m['implementation']} {m['python']}; {m['openssl']}")
    print(f"  command : {report['command']}")
    where = ("a separate `serve --only delivery` process runs the delivery worker"
             if cfg["split_delivery"] else
             "plain `serve`: with processes > 1 its parent process runs the delivery worker, "
             "with 1 the single process does both")
    print(f"  relay   : mailhub serve, {cfg['processes']} SMTP process(es) sharing the sockets "
          f"({where}), SQLite WAL synchronous=FULL queue, "
          f"DKIM RSA-2048, delivery by SMTP relay to a sink ({cfg['sink']}) in its own process")
    print(f"  client  : {cfg['client_procs']} load-generator process(es), raw asyncio SMTP, "
          f"{'STARTTLS on 587-style port' if cfg['starttls'] else 'implicit TLS (submissions)'}, "
          f"AUTH PLAIN once per session, then MAIL/RCPT/DATA back to back without pipelining, "
          f"{cfg['message_bytes']}-byte Vietnamese UTF-8 message")
    print(f"  window  : {cfg['warmup']:g} s warm-up then {cfg['seconds']:g} s measured per level; "
          f"latency = DATA terminator sent -> 250 received")
    print()
    head = (f"{'sessions':>8} {'accepted/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'delivered/s':>11} "
            f"{'backlog':>7} {'drain s':>7} {'vs 400':>6} {'vs 355':>6}  "
            f"{'CPU% srv':>8} {'cli':>5} {'sink':>5} {'other':>5} {'ms/msg':>6}  errors")
    print(head)
    print("-" * len(head))
    for r in report["levels"]:
        cpu = r["cpu_percent_of_one_core"]
        errs = ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "0"
        print(f"{r['sessions']:>8} {r['accepted_per_s']:>10.1f} {_fmt(r['p50_ms'], '.1f'):>8} "
              f"{_fmt(r['p99_ms'], '.1f'):>8} {r['delivered_per_s']:>11.1f} {r['backlog_at_stop']:>7} "
              f"{_fmt(r['drain_seconds'], '.1f'):>7} {r['ratio_vs_400']:>6.2f} "
              f"{r['ratio_vs_355_tls_auth']:>6.2f}  {cpu['server']:>8.0f} {cpu['client']:>5.0f} "
              f"{cpu['sink']:>5.0f} {cpu['other']:>5.0f} "
              f"{_fmt(r['server_cpu_ms_per_accepted'], '.2f'):>6}  {errs}")
    print()
    print("  accepted/s : 250 replies received inside the window / window length")
    print("  delivered/s: messages the sink received inside the same window / its length")
    print("  backlog    : accepted but not yet delivered when the load stopped; drain s: time "
          "from the load stopping until the sink had every accepted message")
    drains = [f"{r['sessions']} sessions: {r['drain_per_s']:.0f} msg/s" for r in report["levels"]
              if r.get("drain_per_s")]
    if drains:
        print("               delivery rate while draining (no load): " + "; ".join(drains))
    print(f"  vs 400     : ratio to Postfix+OpenDKIM on this machine at 10-50 sessions "
          f"(~{REF_PLAIN:g} msg/s, the target at 50 sessions); vs 355: ratio to Postfix+OpenDKIM "
          f"with STARTTLS + SASL AUTH at 50 sessions (~{REF_TLS_AUTH:g} msg/s), the like-for-like one")
    print("  CPU%       : per cent of one core over the window (machine total is "
          f"{100 * m['nproc']}%); srv = all mailhub processes, other = everything else on the "
          "machine (e.g. other jobs): noise; ms/msg = mailhub CPU-milliseconds per message "
          "accepted in the window")
    for r in report["levels"]:
        per = r["cpu_percent_of_one_core"]["server_per_process"]
        print(f"  mailhub CPU% per process at {r['sessions']} sessions: "
              + ", ".join(f"pid {name}: {v:.0f}" for name, v in per.items()))
    last = report["levels"][-1] if report["levels"] else None
    if last:
        verdict = "meets" if last["accepted_per_s"] >= REF_PLAIN else "does NOT meet"
        sustained = min(last["accepted_per_s"], last["delivered_per_s"])
        print(f"\n  at {last['sessions']} sessions: {last['accepted_per_s']:.0f} msg/s accepted, "
              f"{last['delivered_per_s']:.0f} msg/s delivered (sustained = the lower: "
              f"{sustained:.0f}): {verdict} the target of >= {REF_PLAIN:g} msg/s accepted"
              + ("" if sustained >= REF_PLAIN else "; delivery "
                 + ("keeps up" if last["delivered_per_s"] >= 0.95 * last["accepted_per_s"]
                    else "does NOT keep up: the queue grows under this load")))


def parse_args(argv: list[str] | None = None):
    p = argparse.ArgumentParser(
        description="Benchmark mailhub serve: accepted/delivered msg/s and accept latency "
                    "at several session counts (see bench/README.md).")
    p.add_argument("--sessions", default="1,10,50",
                   help="comma-separated concurrent authenticated sessions per level (default 1,10,50)")
    p.add_argument("--seconds", type=float, default=15.0, help="measured window per level (default 15)")
    p.add_argument("--warmup", type=float, default=3.0, help="warm-up per level before the window (default 3)")
    p.add_argument("--processes", type=int, default=2, help="[server] processes of mailhub (default 2)")
    p.add_argument("--client-procs", type=int, default=1, help="load generator processes (default 1)")
    p.add_argument("--starttls", action="store_true",
                   help="use STARTTLS on the submission port instead of implicit TLS on submissions")
    p.add_argument("--sink", choices=("raw", "aiosmtpd"), default="raw",
                   help="next-hop sink: bare asyncio protocol (default, cheapest) or aiosmtpd")
    p.add_argument("--split-delivery", action="store_true",
                   help="run the delivery worker from a second `mailhub serve --only delivery` "
                        "command (default: plain `serve`, which with --processes > 1 already runs "
                        "the worker in its own parent process)")
    p.add_argument("--delivery-concurrency", type=int, default=0,
                   help="[delivery] concurrency (default: mailhub's own default)")
    p.add_argument("--drain-timeout", type=float, default=120.0,
                   help="seconds to wait for the queue to drain after each level (default 120)")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout instead of a table")
    p.add_argument("--json-file", metavar="PATH", help="also write the JSON results to PATH")
    p.add_argument("--keep", action="store_true", help="keep the temporary data folder and logs")
    p.add_argument("--client-worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.client_worker is None:
        try:
            args.levels = [int(x) for x in args.sessions.split(",") if x.strip()]
        except ValueError:
            p.error("--sessions: expected numbers separated by commas, e.g. 1,10,50")
        if not args.levels or min(args.levels) < 1 or max(args.levels) > 1000:
            p.error("--sessions: each level must be between 1 and 1000")
        if args.seconds <= 0 or args.warmup < 0:
            p.error("--seconds must be positive and --warmup not negative")
        if args.processes < 1 or args.client_procs < 1:
            p.error("--processes and --client-procs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.client_worker is not None:
        try:
            asyncio.run(client_main(json.loads(args.client_worker)))
        except KeyboardInterrupt:
            pass
        return 0

    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    bench = Bench(args)
    report = {"command": command, "machine": machine_info(),
              "setup": {"processes": args.processes, "client_procs": args.client_procs,
                        "starttls": args.starttls, "sink": args.sink,
                        "split_delivery": args.split_delivery, "seconds": args.seconds,
                        "warmup": args.warmup, "message_bytes": len(make_message(message_parts(), f"c{os.getpid()}", 100000)),
                        "delivery_concurrency": args.delivery_concurrency or "default",
                        "durable_queue": "SQLite WAL, synchronous=FULL, group commit",
                        "dkim": "RSA-2048"},
              "reference": {"postfix_opendkim_msg_per_s": REF_PLAIN,
                            "postfix_opendkim_starttls_sasl_50_sessions_msg_per_s": REF_TLS_AUTH,
                            "target_at_50_sessions": REF_PLAIN},
              "levels": []}
    try:
        bench.start()
        for level in args.levels:
            log(f"level {level} session(s): opening, {args.warmup:g} s warm-up, "
                f"{args.seconds:g} s measured, then drain")
            result = bench.run_level(level)
            report["levels"].append(result)
            log(f"  {result['accepted_per_s']:.1f} accepted/s, p50 {_fmt(result['p50_ms'])} ms, "
                f"p99 {_fmt(result['p99_ms'])} ms, {result['delivered_per_s']:.1f} delivered/s, "
                f"drain {_fmt(result['drain_seconds'])} s, CPU {result['cpu_percent_of_one_core']}")
    except KeyboardInterrupt:
        log("interrupted; stopping every process")
        bench.stop()
        return 130
    except Exception as exc:  # noqa: BLE001  (report it, then clean up)
        log(f"failed: {exc}")
        bench.stop()
        return 1
    bench.stop()
    if args.json_file:
        Path(args.json_file).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n",
                                        encoding="utf-8")
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
