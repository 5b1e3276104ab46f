"""Metrics: the exposition format, sums over processes, queue gauges, the HTTP service.

Real parts throughout: uvicorn serving on 127.0.0.1 (under uvloop, as in
production, or in the test's own event loop), SQLite migrated by alembic, other
Python processes writing snapshots, a real relay session for the submission
metrics.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import uvloop
from sqlalchemy import insert

from mailhub import metrics
from mailhub.app import bind_socket
from mailhub.db import make_engine
from mailhub.delivery.transport import RecipientResult, from_reply, permanent, temporary
from mailhub.http import HttpService, create_app
from mailhub.metrics import Counter, Gauge, Histogram, MetricsDir, Registry, delivery_reason
from mailhub.models import QueuedMessage, QueueRecipient
from mailhub.schema import upgrade
from tests.support import SHARED, message

ROOT = Path(__file__).resolve().parent.parent

# ---- reading the exposition text -------------------------------------------------

_SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)\Z')
_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|\Z)')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, checking each line's syntax on the way."""
    assert text.endswith("\n")
    samples = {}
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            assert re.fullmatch(r"# HELP [a-zA-Z_:][a-zA-Z0-9_:]* [^\n]*", line), line
            continue
        if line.startswith("# TYPE "):
            assert re.fullmatch(r"# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram)", line), line
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, body, value = match.groups()
        labels = []
        pos = 0
        while body and pos < len(body):
            pair = _PAIR.match(body, pos)
            assert pair, f"bad labels in {line!r}"
            raw = re.sub(r'\\[\\"n]', lambda m: _UNESCAPE[m.group()], pair.group(2))
            labels.append((pair.group(1), raw))
            pos = pair.end()
        key = (name, tuple(labels))
        assert key not in samples, f"duplicate sample {line!r}"
        samples[key] = float(value)
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(labels.items())), 0.0)


# ---- the format ------------------------------------------------------------------

def test_exposition_format_of_each_kind():
    registry = Registry()
    sent = Counter("demo_sent_total", "Sent messages.\nSecond line with a \\ backslash.",
                   ["outcome", "reason"], registry=registry)
    Counter("demo_plain_total", "No labels.", registry=registry)
    temperature = Gauge("demo_temperature", "A gauge.", registry=registry)
    latency = Histogram("demo_latency_seconds", "A histogram.", [0.1, 1, 0.5], registry=registry)
    sent.labels(outcome="deferred", reason='say "hi"\\ or\nnot').inc()
    sent.labels("delivered", "ok").inc(2)
    temperature.set(-1.5)
    for observed in (0.05, 0.1, 0.3, 0.7, 2.0, 30.0):
        latency.observe(observed)

    assert registry.render() == textwrap.dedent('''\
        # HELP demo_sent_total Sent messages.\\nSecond line with a \\\\ backslash.
        # TYPE demo_sent_total counter
        demo_sent_total{outcome="deferred",reason="say \\"hi\\"\\\\ or\\nnot"} 1.0
        demo_sent_total{outcome="delivered",reason="ok"} 2.0
        # HELP demo_plain_total No labels.
        # TYPE demo_plain_total counter
        demo_plain_total 0.0
        # HELP demo_temperature A gauge.
        # TYPE demo_temperature gauge
        demo_temperature -1.5
        # HELP demo_latency_seconds A histogram.
        # TYPE demo_latency_seconds histogram
        demo_latency_seconds_bucket{le="0.1"} 2
        demo_latency_seconds_bucket{le="0.5"} 3
        demo_latency_seconds_bucket{le="1.0"} 4
        demo_latency_seconds_bucket{le="+Inf"} 6
        demo_latency_seconds_sum 33.15
        demo_latency_seconds_count 6
        ''')
    samples = parse(registry.render())  # and our reader gets the label value back intact
    assert value(samples, "demo_sent_total", outcome="deferred", reason='say "hi"\\ or\nnot') == 1.0


def test_histogram_with_labels_puts_le_last_and_inf_equals_count():
    registry = Registry()
    h = Histogram("demo_seconds", "h", [1, 2], ["kind"], registry=registry)
    for v in (0.5, 1.5, 1.5, 9):
        h.labels(kind="a").observe(v)
    samples = parse(registry.render())
    assert [value(samples, "demo_seconds_bucket", kind="a", le=le) for le in ("1.0", "2.0", "+Inf")] == [1, 3, 4]
    assert value(samples, "demo_seconds_count", kind="a") == 4
    assert value(samples, "demo_seconds_sum", kind="a") == 12.5


@pytest.mark.parametrize("make, error", [
    (lambda r: Counter("bad name", "x", registry=r), "invalid metric name"),
    (lambda r: Counter("c_total", "x", ["le"], registry=r), "invalid label name"),
    (lambda r: Counter("c_total", "x", ["__x"], registry=r), "invalid label name"),
    (lambda r: Counter("c_total", "x", ["a"], registry=r).labels(b="1"), "expected labels a"),
    (lambda r: Counter("c_total", "x", ["a", "b"], registry=r).labels("1"), "expected labels a, b"),
    (lambda r: Counter("c_total", "x", registry=r).labels("1"), "expected labels"),
    (lambda r: Counter("c_total", "x", registry=r).inc(-1), "only goes up"),
    (lambda r: Histogram("h", "x", [], registry=r), "buckets"),
    (lambda r: (Counter("c_total", "x", registry=r), Gauge("c_total", "y", registry=r)), "defined twice"),
])
def test_misuse_is_refused(make, error):
    with pytest.raises(ValueError, match=error):
        make(Registry())


def test_recording_from_many_threads_loses_nothing():
    registry = Registry()
    counter = Counter("c_total", "c", ["t"], registry=registry)
    histogram = Histogram("h_seconds", "h", [0.5], registry=registry)

    def work(n: int) -> None:
        for _ in range(20_000):
            counter.labels(t=str(n % 2)).inc()
            histogram.observe(0.25)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so that a missing lock shows
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    samples = parse(registry.render())
    assert value(samples, "c_total", t="0") + value(samples, "c_total", t="1") == 160_000
    assert value(samples, "h_seconds_count") == 160_000
    assert value(samples, "h_seconds_sum") == 40_000


def test_recording_is_cheap():
    """The relay accepts ~400 msg/s per process: recording must stay in microseconds."""
    import timeit

    registry = Registry()
    histogram = Histogram("h_seconds", "h", metrics.ACCEPT_LATENCY.bounds[:-1], registry=registry)
    counter = Counter("c_total", "c", ["outcome", "reason"], registry=registry)
    observe = min(timeit.repeat(lambda: histogram.observe(0.012), number=20_000, repeat=3)) / 20_000
    labelled = min(timeit.repeat(lambda: counter.labels(outcome="deferred", reason="timeout").inc(),
                                 number=20_000, repeat=3)) / 20_000
    assert observe < 10e-6, f"observe() took {observe * 1e6:.1f} µs"
    assert labelled < 20e-6, f"labels().inc() took {labelled * 1e6:.1f} µs"


# ---- delivery reasons ------------------------------------------------------------

@pytest.mark.parametrize("result, reason", [
    (from_reply(250, "2.0.0 Ok"), "ok"),
    (from_reply(451, "4.7.1 greylisted"), "4xx"),
    (from_reply(421, "4.4.2 timed out waiting for you"), "4xx"),  # the server's words, not ours
    (from_reply(550, "5.1.1 no such user"), "5xx"),
    (from_reply(354, "odd"), "4xx"),  # a code that makes no sense is retried, and counted so
    (temporary("421 4.3.2 shutting down (greeting of mx.example:25)"), "4xx"),
    (temporary("connection refused by 10.0.0.1:25", answered=False), "refused"),
    (temporary("connection to 10.0.0.1:25 timed out after 60 s", answered=False), "timeout"),
    (temporary("10.0.0.1:25 did not answer within 60 s"), "timeout"),  # answered: the greeting came
    (temporary("TLS certificate of relay:25 not trusted: self-signed", answered=False), "tls"),
    (temporary("TLS with relay:25 failed: WRONG_VERSION_NUMBER", answered=False), "tls"),
    (temporary("relay:25 does not offer STARTTLS and delivery.relay_tls is require-starttls"), "tls"),
    (temporary("delivery to relay.example:25 failed: [Errno -2] Name or service not known",
               answered=False), "dns"),
    (temporary("delivery to relay:25 failed: Connection lost", answered=False), "network"),
    (temporary("451 4.4.1 delivery to example.org temporarily suspended: 3 hosts refused",
               answered=False), "suspended"),
    (temporary("451 4.4.3 DNS lookup of example.org failed: SERVFAIL"), "dns"),
    (permanent("550 5.1.2 recipient domain nowhere.example does not exist (DNS: NXDOMAIN)"), "dns"),
    (permanent("556 5.1.10 recipient domain example.org accepts no mail (null MX, RFC 7505)"), "dns"),
    (temporary("451 4.4.4 no address for any mail exchanger of example.org"), "dns"),
    (temporary("451 4.4.7 the attempt took more than 240 s and was stopped"), "timeout"),
    (temporary("451 4.3.0 internal error 1a2b in delivery, see the log"), "internal"),
    (temporary("451 4.3.0 the transport gave no result"), "internal"),
    (temporary("451 4.3.0 cannot write to the outbox: No space left on device"), "internal"),
    (permanent("553 5.1.3 recipient address has characters not allowed in SMTP"), "5xx"),
    (RecipientResult(False, True, "554 5.4.7 delivery time expired: no success in 5 days"), "expired"),
])
def test_delivery_reason(result, reason):
    assert delivery_reason(result) == reason
    assert reason in metrics.REASONS


# ---- snapshots of several processes ------------------------------------------------

SNAPSHOT_SCRIPT = """
import sys
from mailhub import metrics
metrics.MESSAGES_ACCEPTED.inc(5)
metrics.ACCEPT_LATENCY.observe(0.003)
metrics.ACCEPT_LATENCY.observe(7.0)
metrics.DELIVERIES.labels(outcome="deferred", reason="timeout").inc(2)
metrics.MetricsDir(sys.argv[1]).write()
"""


def run_python(script: str, *args: str) -> None:
    subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, check=True, timeout=60)


def test_counters_of_other_processes_add_up(tmp_path):
    folder = MetricsDir(tmp_path / "metrics")
    folder.clear()
    before = parse(folder.render())
    metrics.MESSAGES_ACCEPTED.inc()  # this process, live
    folder.write()  # and its own snapshot, older than its live values: not counted again
    run_python(SNAPSHOT_SCRIPT, str(folder.path))  # two other processes, ended
    run_python(SNAPSHOT_SCRIPT, str(folder.path))
    after = parse(folder.render())

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("mailhub_messages_accepted_total") == 11
    assert delta("mailhub_deliveries_total", outcome="deferred", reason="timeout") == 4
    assert delta("mailhub_accept_latency_seconds_bucket", le="0.005") == 2
    assert delta("mailhub_accept_latency_seconds_bucket", le="5.0") == 2
    assert delta("mailhub_accept_latency_seconds_bucket", le="+Inf") == 4
    assert delta("mailhub_accept_latency_seconds_count") == 4
    assert delta("mailhub_accept_latency_seconds_sum") == pytest.approx(14.006)
    folder.clear()  # the next `serve`: ended processes no longer count
    assert value(parse(folder.render()), "mailhub_messages_accepted_total") == \
        value(before, "mailhub_messages_accepted_total") + 1


GAUGE_SCRIPT = """
import sys
from mailhub.metrics import Counter, Gauge, MetricsDir, Registry
registry = Registry()
Counter("demo_total", "c", registry=registry).inc(int(sys.argv[2]))
Gauge("demo_busy", "g", registry=registry).set(int(sys.argv[2]))
MetricsDir(sys.argv[1], registry).write()
if sys.argv[3] == "stay":
    print("written", flush=True)
    sys.stdin.read()
"""


def test_gauges_count_live_processes_only(tmp_path):
    registry = Registry()
    Counter("demo_total", "c", registry=registry).inc(1)
    Gauge("demo_busy", "g", registry=registry).set(1)
    folder = MetricsDir(tmp_path, registry)
    run_python(GAUGE_SCRIPT, str(tmp_path), "10", "exit")
    live = subprocess.Popen([sys.executable, "-c", GAUGE_SCRIPT, str(tmp_path), "100", "stay"], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout.readline() == "written\n"
        samples = parse(folder.render())
        assert value(samples, "demo_total") == 111
        assert value(samples, "demo_busy") == 101
    finally:
        live.communicate("", timeout=30)
    samples = parse(folder.render())
    assert value(samples, "demo_total") == 111  # what the ended process counted stays
    assert value(samples, "demo_busy") == 1


def test_snapshots_of_other_versions_or_garbage_are_left_out(tmp_path):
    registry = Registry()
    Histogram("demo_seconds", "h", [1, 2], registry=registry).observe(1.5)
    folder = MetricsDir(tmp_path, registry)
    (tmp_path / "999999.json").write_text('{"pid": 999999, "metrics": {"demo_seconds": '
                                          '{"type": "histogram", "buckets": [1, 3], "samples": [[[], [0, 5, 0], 9.0]]}}}')
    (tmp_path / "999998.json").write_text("{not json")
    assert value(parse(folder.render()), "demo_seconds_count") == 1


FORK_SCRIPT = """
import os, sys
from mailhub import metrics
metrics.MESSAGES_ACCEPTED.inc(7)
timeouts = metrics.DELIVERIES.labels(outcome="deferred", reason="timeout")  # kept across the fork
timeouts.inc(7)
pid = os.fork()
if pid == 0:
    metrics.MESSAGES_ACCEPTED.inc(1)
    timeouts.inc(1)
    metrics.MetricsDir(sys.argv[1]).write()
    os._exit(0)
os.waitpid(pid, 0)
metrics.MetricsDir(sys.argv[1]).write()
"""


def test_a_forked_child_starts_from_zero(tmp_path):
    """`serve` forks its front ends: they must not count their parent's values again."""
    run_python(FORK_SCRIPT, str(tmp_path))
    snapshots = [json.loads(p.read_text())["metrics"] for p in tmp_path.glob("*.json")]
    for name in ("mailhub_messages_accepted_total", "mailhub_deliveries_total"):
        assert sorted(s[name]["samples"][0][1] for s in snapshots) == [1.0, 7.0]


async def test_writer_task_writes_periodically_and_at_stop(tmp_path):
    registry = Registry()
    counter = Counter("demo_total", "c", registry=registry)
    folder = MetricsDir(tmp_path, registry)
    stop = asyncio.Event()
    task = asyncio.create_task(folder.run(stop, interval=0.05))
    counter.inc(3)
    own = tmp_path / f"{os.getpid()}.json"
    for _ in range(100):
        await asyncio.sleep(0.02)
        if own.exists() and json.loads(own.read_text())["metrics"]["demo_total"]["samples"] == [[[], 3.0]]:
            break
    else:
        pytest.fail("no periodic snapshot")
    counter.inc(4)
    stop.set()
    await task
    assert json.loads(own.read_text())["metrics"]["demo_total"]["samples"] == [[[], 7.0]]
    assert not list(tmp_path.glob("*.tmp"))


# ---- the HTTP service ------------------------------------------------------------------

@pytest.fixture
def database(tmp_path):
    url = f"sqlite:///{tmp_path / 'mailhub.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


@contextlib.contextmanager
def serving(engine, folder: MetricsDir):
    """The app under uvicorn on an ephemeral port, in a uvloop loop of its own thread
    (as ``mailhub serve`` runs it); yields the base URL."""
    loop = uvloop.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    app = create_app(engine=engine, metrics_dir=folder)
    service = HttpService(app, bind_socket("127.0.0.1", 0))
    asyncio.run_coroutine_threadsafe(service.start(), loop).result(10)
    try:
        yield f"http://127.0.0.1:{service.port}", app
    finally:
        asyncio.run_coroutine_threadsafe(service.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def get(url: str) -> tuple[int, dict[str, str], str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read().decode()


def add_message(engine, created_at: datetime, *states: str) -> None:
    msg_id = f"{time.time_ns():x}{len(states)}{created_at.timestamp():.0f}"
    with engine.begin() as conn:
        conn.execute(insert(QueuedMessage).values(id=msg_id, mail_from="an@hcm.gov.vn", size=3,
                                                  data=b"abc", created_at=created_at))
        for n, state in enumerate(states):
            conn.execute(insert(QueueRecipient).values(message_id=msg_id, rcpt=f"r{n}@example.org",
                                                       state=state))


def test_metrics_endpoint_serves_process_metrics_and_queue_gauges(database, tmp_path):
    now = datetime.now(timezone.utc)
    add_message(database, now - timedelta(days=3), "delivered", "bounced")  # old but done
    add_message(database, now - timedelta(hours=2), "deferred", "delivered", "held")
    add_message(database, now - timedelta(minutes=1), "queued", "queued", "sending")
    folder = MetricsDir(tmp_path / "metrics")
    with serving(database, folder) as (base, _app):
        status, headers, body = get(base + "/metrics")
        assert status == 200
        assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        samples = parse(body)
        assert "# TYPE mailhub_accept_latency_seconds histogram" in body
        assert "# TYPE mailhub_queue_recipients gauge" in body
        assert {state: value(samples, "mailhub_queue_recipients", state=state)
                for state in ("queued", "sending", "deferred", "delivered", "bounced", "held")} == \
            {"queued": 2, "sending": 1, "deferred": 1, "delivered": 2, "bounced": 1, "held": 1}
        age = value(samples, "mailhub_queue_oldest_age_seconds")
        assert 7200 <= age < 7200 + 60  # the deferred one; the 3-day-old message is done

        with database.begin() as conn:  # the deferred recipient is delivered now
            conn.execute(QueueRecipient.__table__.update().where(QueueRecipient.state == "deferred")
                         .values(state="delivered"))
        samples = parse(get(base + "/metrics")[2])
        assert value(samples, "mailhub_queue_recipients", state="delivered") == 3
        assert 60 <= value(samples, "mailhub_queue_oldest_age_seconds") < 120

        before = value(samples, "mailhub_messages_accepted_total")
        run_python(SNAPSHOT_SCRIPT, str(folder.path))  # a front-end process on this node
        after = parse(get(base + "/metrics")[2])
        assert value(after, "mailhub_messages_accepted_total") == before + 5


def test_empty_queue_has_zero_gauges(database, tmp_path):
    with serving(database, MetricsDir(tmp_path / "m")) as (base, _app):
        samples = parse(get(base + "/metrics")[2])
    assert value(samples, "mailhub_queue_oldest_age_seconds") == 0
    assert ("mailhub_queue_recipients", (("state", "held"),)) in samples
    assert sum(v for (name, _), v in samples.items() if name == "mailhub_queue_recipients") == 0


def test_healthz(database, tmp_path):
    with serving(database, MetricsDir(tmp_path / "m")) as (base, _app):
        assert get(base + "/healthz")[::2] == (200, "ok\n")
        request = urllib.request.Request(base + "/healthz", method="HEAD")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200


def broken_database_url(tmp_path: Path, case: str) -> str:
    if case == "sqlite path is a folder":
        (tmp_path / "a-folder").mkdir()
        return f"sqlite:///{tmp_path / 'a-folder'}"
    if case == "sqlite database without the schema":  # e.g. the file was replaced
        return f"sqlite:///{tmp_path / 'empty.db'}"
    pytest.importorskip("psycopg")
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"postgresql+psycopg://mailhub:pw@127.0.0.1:{port}/mailhub"


@pytest.mark.parametrize("case", ["sqlite path is a folder", "sqlite database without the schema",
                                  "postgresql not running"])
def test_database_down_gives_503_with_one_line(tmp_path, case):
    engine = make_engine(broken_database_url(tmp_path, case))
    try:
        with serving(engine, MetricsDir(tmp_path / "m")) as (base, _app):
            health = get(base + "/healthz")
            scrape = get(base + "/metrics")
    finally:
        engine.dispose()
    assert health[::2] == (503, "database unavailable\n")
    assert scrape[0] == 503
    assert scrape[2].count("\n") == 1 and scrape[2].endswith("\n")
    for body in (health[2], scrape[2]):
        assert "Traceback" not in body and "Error" not in body and "sqlite" not in body.lower()


def test_unexpected_error_answers_500_with_a_logged_reference(database, tmp_path, caplog):
    with serving(database, MetricsDir(tmp_path / "m")) as (base, app):
        @app.get("/boom")
        async def boom():
            raise RuntimeError("secret detail from /etc/mailhub")

        status, headers, body = get(base + "/boom")
        assert get(base + "/healthz")[0] == 200  # the server carries on
    assert status == 500
    match = re.fullmatch(r"internal error, reference ([0-9a-f]{12})\n", body)
    assert match, body
    logged = [r for r in caplog.records if r.name == "mailhub.http" and match.group(1) in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    # logged once: uvicorn does not log the same traceback a second time
    assert not [r for r in caplog.records if r.name.startswith("uvicorn") and r.exc_info]


def test_headers_and_openapi(database, tmp_path):
    with serving(database, MetricsDir(tmp_path / "m")) as (base, _app):
        status, headers, _body = get(base + "/healthz")
        assert headers.get("server") == "mailhub"
        assert "uvicorn" not in str(headers).lower()
        status, _headers, body = get(base + "/openapi.json")
        assert status == 200 and '"/metrics"' in body and '"/healthz"' in body
        status, _headers, body = get(base + "/nowhere")
        assert status == 404


async def test_service_runs_in_the_callers_loop_and_leaves_signals_alone(database, tmp_path):
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    sock = bind_socket("127.0.0.1", 0)
    service = HttpService(create_app(engine=database, metrics_dir=MetricsDir(tmp_path)), sock)
    await service.start()
    try:
        assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
        status, _h, body = await asyncio.to_thread(get, f"http://127.0.0.1:{service.port}/healthz")
        assert (status, body) == (200, "ok\n")
    finally:
        await service.stop()
    assert sock.fileno() == -1  # closed
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{service.port}/healthz", timeout=5)


async def test_start_fails_loudly_when_the_app_cannot_start(database, tmp_path):
    app = create_app(engine=database, metrics_dir=MetricsDir(tmp_path))

    @contextlib.asynccontextmanager
    async def broken(_app):
        raise RuntimeError("cannot start")
        yield

    app.router.lifespan_context = broken
    sock = bind_socket("127.0.0.1", 0)
    with pytest.raises(RuntimeError, match="did not start"):
        await HttpService(app, sock).start()
    assert sock.fileno() == -1


# ---- the submission path, through the real relay ---------------------------------------

def test_submission_counts_accepted_latency_and_refusals(hub):
    def read():
        return parse(metrics.REGISTRY.render())

    before = read()
    with hub.connect() as client:
        assert client.sendmail("an@hcm.gov.vn", ["binh@hcm.gov.vn"], message()) == {}
    with hub.connect(login="binh@hcm.gov.vn") as client:  # a shared mailbox not granted to binh
        code, _reply = client.docmd("MAIL", f"FROM:<{SHARED}>")
        assert code == 553
    after = read()

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("mailhub_messages_accepted_total") == 1
    assert delta("mailhub_accept_latency_seconds_count") == 1
    assert 0 < delta("mailhub_accept_latency_seconds_sum") < 10
    assert delta("mailhub_submissions_refused_total", policy="sender_owned") == 1
