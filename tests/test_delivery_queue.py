"""The delivery queue side against real parts: SQLite (and PostgreSQL when
MAILHUB_TEST_DATABASE_URL is set), claims and leases, batched results, the
worker loop, the Maildir outbox.

No mock of mailhub code: the queue is a real database; plain test classes stand
behind the Transport seam. The SMTP relay has its own file,
``test_delivery_relay.py``, which uses the queue helpers defined here.
"""
from __future__ import annotations

import asyncio
import logging
import os
import stat
import threading
import uuid
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event, text
from sqlmodel import Session, SQLModel, create_engine, select

import mailhub.models  # noqa: F401  (registers the tables)
from mailhub.db import make_engine
from mailhub.delivery import (DeliveryWorker, MaildirOutbox, RecipientResult, RetrySchedule, claim, mark_results,
                              release, retry_delay)
from mailhub.models import DeliveryAttempt, QueuedMessage, QueueRecipient, utcnow

SENDER = "vanthu@hochiminhcity.gov.vn"
BODY = (b"From: Van thu <vanthu@hochiminhcity.gov.vn>\r\n"
        b"To: a@example.org\r\n"
        b"Subject: Giay moi hop\r\n"
        b"\r\n"
        b"Kinh gui anh chi,\r\n"
        b".dot line stays\r\n"
        b"Tran trong.\r\n")


# ---- queue helpers ------------------------------------------------------------

@contextmanager
def sqlite_engine(folder):
    eng = make_engine(f"sqlite:///{folder / 'queue.db'}")
    SQLModel.metadata.create_all(eng)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def engine(tmp_path):
    with sqlite_engine(tmp_path) as eng:
        yield eng


@contextmanager
def postgres_engine():
    """An engine on a fresh schema of MAILHUB_TEST_DATABASE_URL, dropped afterwards."""
    url = os.environ.get("MAILHUB_TEST_DATABASE_URL")
    if not url:
        pytest.skip("MAILHUB_TEST_DATABASE_URL is not set")
    schema = f"test_delivery_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    eng = create_engine(url, connect_args={"options": f"-csearch_path={schema}"}, pool_size=10)
    try:
        SQLModel.metadata.create_all(eng)
        yield eng
    finally:
        eng.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_engine(request, tmp_path):
    """The claims tests run on both databases the queue supports."""
    with sqlite_engine(tmp_path) if request.param == "sqlite" else postgres_engine() as eng:
        yield eng


def enqueue(engine, rcpts, *, data=BODY, mail_from=SENDER, state="queued", lease_until=None,
            next_attempt_at=None, attempts=0, created_at=None) -> str:
    mid = uuid.uuid4().hex
    due = next_attempt_at or utcnow() - timedelta(seconds=1)
    with Session(engine) as s:
        s.add(QueuedMessage(id=mid, mail_from=mail_from, size=len(data), data=data,
                            created_at=created_at or utcnow()))
        s.flush()
        for rcpt in rcpts:
            s.add(QueueRecipient(message_id=mid, rcpt=rcpt, state=state, lease_until=lease_until,
                                 next_attempt_at=due, attempts=attempts))
        s.commit()
    return mid


def rows(engine, mid) -> dict[str, QueueRecipient]:
    with Session(engine, expire_on_commit=False) as s:
        found = s.exec(select(QueueRecipient).where(QueueRecipient.message_id == mid)).all()
    return {r.rcpt: r for r in found}


def worker(engine, transport, **kw) -> DeliveryWorker:
    kw.setdefault("concurrency", 4)
    kw.setdefault("poll_seconds", 0.05)
    return DeliveryWorker(engine, transport, node_id="test-node", **kw)


# ---- the retry rule -----------------------------------------------------------

@pytest.mark.parametrize("attempts, rand, seconds", [
    (0, 0.5, 300), (1, 0.5, 300), (2, 0.5, 600), (3, 0.5, 1200), (4, 0.5, 2400),
    (5, 0.5, 3600), (500, 0.5, 3600),           # capped at the maximum
    (1, 0.0, 240), (1, 0.999999, 360),          # ±20 % jitter around the base
    (6, 0.0, 2880), (6, 0.75, 3960),
])
def test_retry_delay(attempts, rand, seconds):
    got = retry_delay(attempts, minimum=300, maximum=3600, jitter=0.2, rand=rand)
    assert got.total_seconds() == pytest.approx(seconds, abs=0.01)


def test_retry_delay_without_jitter_is_plain_doubling():
    assert [retry_delay(n, minimum=60, maximum=1000, jitter=0, rand=0.3).total_seconds()
            for n in range(1, 7)] == [60, 120, 240, 480, 960, 1000]


@pytest.mark.parametrize("age_hours, attempts, expected_hours", [
    (1, 1, 1 + 300 / 3600),        # young: now + delay
    (119.99, 9, 120),              # the next try would fall after the deadline: at the deadline
    (120, 9, None),                # old enough: give up
    (200, 1, None),
])
def test_next_attempt_and_giving_up(age_hours, attempts, expected_hours):
    schedule = RetrySchedule(min_seconds=300, max_seconds=3600, jitter=0.0, max_age=timedelta(hours=120))
    queued = utcnow() - timedelta(days=30)
    now = queued + timedelta(hours=age_hours)
    got = schedule.next_attempt(attempts, queued, now, rand=0.5)
    if expected_hours is None:
        assert got is None
    else:
        assert (got - queued).total_seconds() == pytest.approx(expected_hours * 3600, abs=0.01)


# ---- Maildir outbox -----------------------------------------------------------

async def test_outbox_writes_one_file_into_new_with_envelope_lines(tmp_path):
    box = MaildirOutbox(tmp_path / "outbox")
    results = await box.send(SENDER, ["a@example.org", "b@quan1.hochiminhcity.gov.vn"], BODY)

    assert all(r.ok for r in results.values()) and set(results) == {"a@example.org", "b@quan1.hochiminhcity.gov.vn"}
    for sub in ("", "tmp", "new", "cur"):
        assert stat.S_IMODE(os.stat(tmp_path / "outbox" / sub).st_mode) == 0o700
    assert os.listdir(tmp_path / "outbox" / "tmp") == []
    [name] = os.listdir(tmp_path / "outbox" / "new")
    path = tmp_path / "outbox" / "new" / name
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    prefix = (b"Return-Path: <vanthu@hochiminhcity.gov.vn>\r\n"
              b"X-Original-To: a@example.org\r\nDelivered-To: a@example.org\r\n"
              b"X-Original-To: b@quan1.hochiminhcity.gov.vn\r\nDelivered-To: b@quan1.hochiminhcity.gov.vn\r\n")
    assert path.read_bytes() == prefix + BODY
    assert name in results["a@example.org"].reply


async def test_outbox_names_are_unique_and_header_lines_cannot_be_injected(tmp_path):
    box = MaildirOutbox(tmp_path / "outbox")
    await asyncio.gather(*(box.send(SENDER, ["a@example.org"], b"Subject: x\n\nbody\n") for _ in range(20)))
    await box.send("evil@x\r\nBcc: victim@y", ["a@example.org"], b"Subject: y\n\nbody\n")
    names = os.listdir(tmp_path / "outbox" / "new")
    assert len(names) == 21
    texts = [(tmp_path / "outbox" / "new" / n).read_bytes() for n in names]
    assert sum(t.startswith(b"Return-Path: <evil@xBcc: victim@y>\n") for t in texts) == 1
    assert all(b"\r" not in t for t in texts)  # LF messages get LF envelope lines


async def test_worker_with_outbox_marks_delivered(engine, tmp_path):
    mid = enqueue(engine, ["a@example.org"])
    assert await worker(engine, MaildirOutbox(tmp_path / "outbox")).drain_once() == 1
    row = rows(engine, mid)["a@example.org"]
    assert (row.state, row.attempts, row.lease_until) == ("delivered", 1, None)
    assert row.last_reply.startswith("250 2.0.0 Ok: stored in the outbox")
    assert len(os.listdir(tmp_path / "outbox" / "new")) == 1


# ---- claims, leases, results -------------------------------------------------

def test_claim_groups_by_message_and_respects_limit_and_states(any_engine):
    now = utcnow()
    first = enqueue(any_engine, ["a@x.vn", "b@x.vn"], next_attempt_at=now - timedelta(minutes=3))
    second = enqueue(any_engine, ["c@x.vn"], state="deferred", next_attempt_at=now - timedelta(minutes=2))
    enqueue(any_engine, ["d@x.vn"], next_attempt_at=now - timedelta(minutes=1))
    enqueue(any_engine, ["later@x.vn"], next_attempt_at=now + timedelta(minutes=1))
    enqueue(any_engine, ["held@x.vn"], state="held")

    [whole] = claim(any_engine, "n1", limit=1, lease_seconds=60, now=now)  # one message, all its rows
    assert (whole.message_id, [r.rcpt for r in whole.recipients]) == (first, ["a@x.vn", "b@x.vn"])
    assert (whole.data, whole.mail_from, whole.lease_until) == (BODY, SENDER, now + timedelta(seconds=60))
    assert rows(any_engine, first)["a@x.vn"].lease_until == now + timedelta(seconds=60)
    claims = claim(any_engine, "n2", limit=5, lease_seconds=60, now=now)
    assert [(c.message_id, [r.rcpt for r in c.recipients]) for c in claims][0] == (second, ["c@x.vn"])
    assert [r.rcpt for c in claims for r in c.recipients] == ["c@x.vn", "d@x.vn"]
    assert claim(any_engine, "n3", 10, 60, now) == []


def test_results_of_a_lost_lease_are_not_written(any_engine):
    now = utcnow()
    mid = enqueue(any_engine, ["a@x.vn"])
    [old] = claim(any_engine, "n1", 1, 60, now)
    [new] = claim(any_engine, "n2", 1, 60, now + timedelta(seconds=61))  # n1 looked dead
    ok = RecipientResult(ok=True, permanent=False, reply="250 ok")
    assert mark_results(any_engine, old.outcomes({"a@x.vn": ok}), now) == 0
    assert rows(any_engine, mid)["a@x.vn"].state == "sending"
    assert mark_results(any_engine, new.outcomes({"a@x.vn": ok}), now) == 1
    assert rows(any_engine, mid)["a@x.vn"].state == "delivered"


def test_long_reply_is_truncated(any_engine):
    mid = enqueue(any_engine, ["a@x.vn"])
    [job] = claim(any_engine, "n1", 1, 60, utcnow())
    mark_results(any_engine, job.outcomes({"a@x.vn": RecipientResult(False, False, "451 " + "x" * 5000)}), utcnow())
    assert len(rows(any_engine, mid)["a@x.vn"].last_reply) == 1000


def test_release_gives_back_unattempted_rows_under_the_same_lease(any_engine):
    now = utcnow()
    fresh = enqueue(any_engine, ["a@x.vn", "b@x.vn"])
    retried = enqueue(any_engine, ["c@x.vn"], state="deferred", attempts=2)
    jobs = claim(any_engine, "n1", 10, 60, now)
    assert {r.state for mid in (fresh, retried) for r in rows(any_engine, mid).values()} == {"sending"}

    assert release(any_engine, jobs, now) == 3
    got = {**rows(any_engine, fresh), **rows(any_engine, retried)}
    assert {rcpt: (r.state, r.attempts, r.lease_until) for rcpt, r in got.items()} == {
        "a@x.vn": ("queued", 0, None), "b@x.vn": ("queued", 0, None), "c@x.vn": ("deferred", 2, None)}
    assert len(claim(any_engine, "n2", 10, 60, now)) == 2  # due again at once, for any worker


def test_release_leaves_a_row_taken_over_alone(any_engine):
    now = utcnow()
    mid = enqueue(any_engine, ["a@x.vn"])
    old = claim(any_engine, "n1", 1, 60, now)
    claim(any_engine, "n2", 1, 60, now + timedelta(seconds=61))  # n1 looked dead
    assert release(any_engine, old, now) == 0
    assert rows(any_engine, mid)["a@x.vn"].state == "sending"


def test_mark_results_records_a_mixed_batch(any_engine):
    """Delivered, bounced and deferred rows of several claims in one call, with the retry rule."""
    now = utcnow()
    mids = [enqueue(any_engine, [f"r{i}@x.vn"], attempts=i % 3) for i in range(9)]
    jobs = claim(any_engine, "n1", 20, 60, now)
    replies = [RecipientResult(True, False, "250 ok"), RecipientResult(False, True, "550 no"),
               RecipientResult(False, False, "451 later")]
    outcomes = [o for i, job in enumerate(sorted(jobs, key=lambda j: j.recipients[0].rcpt))
                for o in job.outcomes({job.recipients[0].rcpt: replies[i % 3]})]
    schedule = RetrySchedule(min_seconds=300, max_seconds=3600, jitter=0.2)
    assert mark_results(any_engine, outcomes, now, schedule=schedule, node="n1", rand=lambda: 0.5) == 9
    for i, mid in enumerate(mids):
        row = rows(any_engine, mid)[f"r{i}@x.vn"]
        state = ("delivered", "bounced", "deferred")[i % 3]
        assert (row.state, row.attempts, row.lease_until) == (state, i % 3 + 1, None)
        if state == "deferred":
            assert row.next_attempt_at == now + retry_delay(i % 3 + 1, minimum=300, maximum=3600,
                                                           jitter=0.2, rand=0.5)
        else:
            assert row.next_attempt_at < now
    with Session(any_engine) as s:
        log = s.exec(select(DeliveryAttempt).order_by(DeliveryAttempt.id)).all()
    assert sorted((a.message_id, a.outcome, a.reply, a.node) for a in log) == sorted(
        (mid, ("delivered", "bounced", "deferred")[i % 3], ("250 ok", "550 no", "451 later")[i % 3], "n1")
        for i, mid in enumerate(mids))


def test_a_temporary_failure_after_the_maximum_age_bounces(any_engine):
    now = utcnow()
    old = enqueue(any_engine, ["old@x.vn"], created_at=now - timedelta(days=5, minutes=1))
    young = enqueue(any_engine, ["young@x.vn"], created_at=now - timedelta(days=4))
    jobs = claim(any_engine, "n1", 10, 60, now)
    later = RecipientResult(False, False, "451 4.3.0 try later", remote="mx.x.vn[127.0.0.1]:25")
    outcomes = [o for job in jobs for o in job.outcomes({r.rcpt: later for r in job.recipients})]
    assert mark_results(any_engine, outcomes, now, schedule=RetrySchedule(max_age=timedelta(days=5))) == 2
    gone, kept = rows(any_engine, old)["old@x.vn"], rows(any_engine, young)["young@x.vn"]
    assert gone.state == "bounced"
    assert gone.last_reply.startswith("554 5.4.7 delivery time expired: no success in 5 days")
    assert gone.last_reply.endswith("last answer: 451 4.3.0 try later")
    assert kept.state == "deferred" and kept.next_attempt_at > now
    with Session(any_engine) as s:
        attempt = s.exec(select(DeliveryAttempt).where(DeliveryAttempt.recipient_id == gone.id)).one()
    assert (attempt.outcome, attempt.remote) == ("bounced", "mx.x.vn[127.0.0.1]:25")


def test_release_can_postpone(any_engine):
    now = utcnow()
    mid = enqueue(any_engine, ["a@x.vn"])
    jobs = claim(any_engine, "n1", 10, 60, now)
    assert release(any_engine, jobs, now, postpone_until=now + timedelta(seconds=30)) == 1
    assert claim(any_engine, "n2", 10, 60, now) == []
    assert rows(any_engine, mid)["a@x.vn"].state == "queued"
    assert len(claim(any_engine, "n2", 10, 60, now + timedelta(seconds=31))) == 1


# ---- several claimers at once -------------------------------------------------------

def test_concurrent_claimers_never_share_a_row(any_engine):
    """PostgreSQL: FOR UPDATE SKIP LOCKED. SQLite: BEGIN IMMEDIATE. Four claimers, one queue."""
    for i in range(60):
        enqueue(any_engine, [f"r{i}a@x.vn", f"r{i}b@x.vn"])
    now = utcnow()
    taken: list[list[int]] = []
    barrier = threading.Barrier(4)

    def claimer(node: str) -> None:
        barrier.wait()
        mine: list[int] = []
        while batch := claim(any_engine, node, 3, 60, now):
            mine.extend(r.id for c in batch for r in c.recipients)
        taken.append(mine)

    threads = [threading.Thread(target=claimer, args=(f"n{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    every = [rid for mine in taken for rid in mine]
    assert len(every) == len(set(every)) == 120


# ---- the loop -----------------------------------------------------------------

class FlakyTransport:
    """A plain Transport: raises for one sender, delivers the rest."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, mail_from, rcpts, data):
        if mail_from == "broken@hochiminhcity.gov.vn":
            raise RuntimeError("boom")
        self.sent.extend(rcpts)
        return {r: RecipientResult(ok=True, permanent=False, reply="250 2.0.0 Ok") for r in rcpts}


async def wait_for_state(engine, mid, rcpt, state, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while rows(engine, mid)[rcpt].state != state:
        assert asyncio.get_running_loop().time() < deadline, f"{rcpt} never became {state}"
        await asyncio.sleep(0.02)


async def test_run_wakes_at_once_and_survives_a_failing_message(engine, caplog):
    caplog.set_level(logging.INFO, logger="mailhub.delivery")
    transport = FlakyTransport()
    w = worker(engine, transport, poll_seconds=60)  # only wake() can make it look again
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    await asyncio.sleep(0.1)

    bad = enqueue(engine, ["x@example.org"], mail_from="broken@hochiminhcity.gov.vn")
    good = enqueue(engine, ["y@example.org"])
    await asyncio.to_thread(w.wake)  # from another thread, as a front end's commit thread would
    await wait_for_state(engine, good, "y@example.org", "delivered")
    await wait_for_state(engine, bad, "x@example.org", "deferred")
    assert "internal error" in rows(engine, bad)["x@example.org"].last_reply

    later = enqueue(engine, ["z@example.org"])
    w.wake()
    await wait_for_state(engine, later, "z@example.org", "delivered")
    stop.set()
    await asyncio.wait_for(task, 5)

    attempts = [r for r in caplog.records if r.getMessage().startswith("attempt ")]
    assert len(attempts) == 3
    assert any(f"message={good} rcpt=y@example.org result=delivered reply=250 2.0.0 Ok" in r.getMessage()
               for r in attempts)
    assert any(f"message={bad}" in r.getMessage() and r.exc_info for r in caplog.records)
    assert b"Kinh gui" not in caplog.text.encode()


class StuckTransport:
    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def send(self, mail_from, rcpts, data):
        self.started.set()
        await asyncio.sleep(3600)


async def test_clean_stop_leaves_unfinished_sends_to_the_lease(engine):
    transport = StuckTransport()
    w = worker(engine, transport, stop_grace_seconds=0.1)
    stop = asyncio.Event()
    mid = enqueue(engine, ["a@example.org"])
    task = asyncio.create_task(w.run(stop))
    await asyncio.wait_for(transport.started.wait(), 5)
    stop.set()
    await asyncio.wait_for(task, 5)
    row = rows(engine, mid)["a@example.org"]
    assert (row.state, row.attempts) == ("sending", 0) and row.lease_until > utcnow()


async def test_a_send_longer_than_the_lease_is_stopped_and_deferred(engine):
    mid = enqueue(engine, ["a@example.org"])
    await worker(engine, StuckTransport(), lease_seconds=0.2).drain_once()
    row = rows(engine, mid)["a@example.org"]
    assert row.state == "deferred" and "took more than" in row.last_reply


class InstantTransport:
    """A plain Transport that accepts everything at once and counts."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, mail_from, rcpts, data):
        self.sent.extend(rcpts)
        return {r: RecipientResult(ok=True, permanent=False, reply="250 2.0.0 Ok") for r in rcpts}


def states(engine) -> dict[str, int]:
    with engine.connect() as conn:
        found = conn.execute(text("SELECT state, COUNT(*) FROM queue_recipient GROUP BY state")).all()
    return dict(found)


async def wait_until(predicate, timeout=10.0, what="condition"):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"{what} never came true"
        await asyncio.sleep(0.02)


async def test_results_are_written_in_batches_and_flushed_at_stop(engine):
    """64 outcomes make a batch; the rest waits for the delay (long here) or the stop."""
    for i in range(100):
        enqueue(engine, [f"r{i}@example.org"])
    transport = InstantTransport()
    w = worker(engine, transport, mark_batch=64, mark_delay=30)
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    await wait_until(lambda: len(transport.sent) == 100, what="100 sends")
    await wait_until(lambda: states(engine).get("delivered") == 64, what="the first batch")
    assert states(engine) == {"delivered": 64, "sending": 36}  # the other 36 wait in the writer
    stop.set()
    await asyncio.wait_for(task, 5)
    assert states(engine) == {"delivered": 100}
    with Session(engine) as s:
        assert set(s.exec(select(QueueRecipient.attempts)).all()) == {1}
        assert set(s.exec(select(QueueRecipient.lease_until)).all()) == {None}


async def test_a_backlog_is_drained_with_few_write_transactions(engine):
    """The worker claims many messages at a time and records many results at a time:
    far fewer write transactions (each an fsync on SQLite) than messages."""
    for i in range(120):
        enqueue(engine, [f"r{i}@example.org"])
    transactions = 0

    def count(conn, cursor, statement, *args):
        nonlocal transactions
        transactions += statement.startswith("BEGIN IMMEDIATE")

    event.listen(engine, "before_cursor_execute", count)
    transport = InstantTransport()
    w = worker(engine, transport, concurrency=4)
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    await wait_until(lambda: len(transport.sent) == 120, what="120 sends")
    stop.set()
    await asyncio.wait_for(task, 5)
    event.remove(engine, "before_cursor_execute", count)
    assert states(engine) == {"delivered": 120}
    assert sorted(transport.sent) == sorted(f"r{i}@example.org" for i in range(120))  # each exactly once
    assert transactions <= 40, transactions  # one claim and one mark per message would be 240


class GateTransport:
    """Delivers the first ``fast`` messages at once, then every send hangs."""

    def __init__(self, fast: int) -> None:
        self.fast = fast
        self.calls = 0

    async def send(self, mail_from, rcpts, data):
        self.calls += 1
        if self.calls > self.fast:
            await asyncio.sleep(3600)
        return {r: RecipientResult(ok=True, permanent=False, reply="250 2.0.0 Ok") for r in rcpts}


async def test_stop_gives_back_claimed_messages_not_started(engine, caplog):
    """Claimed ahead but not started: queued again at stop, not left to the lease."""
    caplog.set_level(logging.INFO, logger="mailhub.delivery")
    for i in range(20):
        enqueue(engine, [f"r{i}@example.org"])
    transport = GateTransport(fast=4)
    w = worker(engine, transport, concurrency=2, stop_grace_seconds=0.1)
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    await wait_until(lambda: transport.calls == 6, what="two hanging sends")
    await wait_until(lambda: states(engine).get("delivered") == 4, what="the fast results")
    held = states(engine)["sending"]
    assert held > 2  # read ahead: more claimed than the two slots
    stop.set()
    await asyncio.wait_for(task, 5)
    assert states(engine) == {"delivered": 4, "sending": 2, "queued": 14}
    assert f"gave back {held - 2} recipient(s)" in caplog.text
    with Session(engine) as s:
        queued = s.exec(select(QueueRecipient).where(QueueRecipient.state == "queued")).all()
    assert {(r.attempts, r.lease_until) for r in queued} == {(0, None)}


class SlowSecondTransport:
    """The first send is instant, the second takes ``slow`` seconds, the rest are instant."""

    def __init__(self, slow: float) -> None:
        self.slow = slow
        self.sent: list[str] = []

    async def send(self, mail_from, rcpts, data):
        if len(self.sent) == 1:
            await asyncio.sleep(self.slow)
        self.sent.extend(rcpts)
        return {r: RecipientResult(ok=True, permanent=False, reply="250 2.0.0 Ok") for r in rcpts}


async def test_a_claim_that_waited_too_long_is_given_back_not_sent(engine, caplog):
    """Lease 1 s: a send must end 0.8 s after the claim. Messages claimed ahead that
    waited 0.6 s behind a slow send are given back, then claimed again and sent."""
    caplog.set_level(logging.INFO, logger="mailhub.delivery")
    mids = [enqueue(engine, [f"r{i}@example.org"]) for i in range(6)]
    transport = SlowSecondTransport(slow=0.6)
    w = worker(engine, transport, concurrency=1, lease_seconds=1)
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    await wait_until(lambda: len(transport.sent) == 6, what="six sends")
    stop.set()
    await asyncio.wait_for(task, 5)
    assert "gave back" in caplog.text
    assert sorted(transport.sent) == sorted(f"r{i}@example.org" for i in range(6))
    for i, mid in enumerate(mids):
        row = rows(engine, mid)[f"r{i}@example.org"]
        assert (row.state, row.attempts) == ("delivered", 1)  # giving back is no attempt


# ---- retention ------------------------------------------------------------------

def test_only_finished_mail_older_than_the_retention_is_removed(any_engine):
    from mailhub.delivery.retention import purge_finished

    now = utcnow()
    old = now - timedelta(days=31)
    done = enqueue(any_engine, ["a@x.vn", "b@x.vn"], state="delivered", created_at=old)
    told = enqueue(any_engine, ["c@x.vn"], state="bounced", created_at=old)
    untold = enqueue(any_engine, ["d@x.vn"], state="bounced", created_at=old)  # notice not queued yet
    mixed = enqueue(any_engine, ["e@x.vn"], state="delivered", created_at=old)
    held = enqueue(any_engine, ["f@x.vn"], state="held", created_at=old)
    recent = enqueue(any_engine, ["g@x.vn"], state="delivered", created_at=now - timedelta(days=29))
    with Session(any_engine) as s:
        s.add(QueueRecipient(message_id=mixed, rcpt="e2@x.vn", state="deferred"))
        for row in s.exec(select(QueueRecipient).where(QueueRecipient.message_id == told)):
            row.notified = "final"
            s.add(row)
            s.add(DeliveryAttempt(recipient_id=row.id, message_id=told, outcome="bounced", reply="550 no"))
        s.commit()
    assert purge_finished(any_engine, now - timedelta(days=30)) == 2
    with Session(any_engine) as s:
        left = set(s.exec(select(QueuedMessage.id)).all())
        assert s.exec(select(DeliveryAttempt)).all() == []
    assert left == {untold, mixed, held, recent}
    assert done not in left and told not in left
