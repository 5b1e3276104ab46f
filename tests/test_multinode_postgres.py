"""Two relay nodes on one PostgreSQL queue: every message delivered, exactly once,
and none lost when one node is killed (SIGKILL) in the middle of the run.

Each node is a ``mailhub serve`` process with ``server.processes = 1`` (front end
and delivery worker in one process), its own home and ``server.hostname``, and
the same database. Both relay to one aiosmtpd next hop, which tells them apart
by their EHLO names. Clients submit 5,000 messages over 20 STARTTLS + AUTH
sessions, half to each node; each message carries an ``X-Test-Seq`` marker.
"""
from __future__ import annotations

import re
import time
from collections import Counter, defaultdict

import pytest
from sqlalchemy import create_engine

from mailhub.config import DeliveryConfig
from mailhub.delivery.results import MAX_BATCH
from tests.multinode import (
    Node, TrackingHandler, account, queue_states, start_tracking_next_hop, stored_message_ids, submit, wait_until)
from tests.support import make_config, provision, provisioned_copy, write_config_file

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TOTAL = 5000
SESSIONS = 20  # 250 messages each, 10 sessions to each node
NODES = ("node-a.test", "node-b.test")
LEASE_SECONDS = 10.0  # node B takes over node A's claims this long after A's death
CONCURRENCY = DeliveryConfig().concurrency  # the nodes run with the default
FINAL = {"delivered", "bounced"}  # nothing more happens to such a row




@pytest.fixture
def tracking_next_hop():
    controller = start_tracking_next_hop()
    yield controller
    controller.stop()


class Cluster:
    """Two running nodes, the next hop that both relay to, and an engine on their queue."""

    def __init__(self, next_hop, url: str) -> None:
        self.handler: TrackingHandler = next_hop.handler
        self.next_hop_port: int = next_hop.port
        self.url = url
        self.engine = create_engine(url)
        self.nodes: dict[str, Node] = {}

    def start(self, tmp_path, ca, provisioned_home) -> None:
        homes = {name: provisioned_copy(provisioned_home, tmp_path / name) for name in NODES}
        # what `mailhub init` and `mailhub user add` do, once, in the shared database
        provision(make_config(homes[NODES[0]], ca, database={"url": self.url}))
        for name, home in homes.items():
            config = write_config_file(
                home, self.next_hop_port, server={"hostname": name, "processes": 1},
                database={"url": self.url},
                limits={"per_hour": 0, "per_day": 0},  # one sender submits all 5,000
                delivery={"lease_seconds": LEASE_SECONDS})
            self.nodes[name] = Node(name, config, tmp_path / f"{name}.log")
        for node in self.nodes.values():  # both start at the same time
            node.wait_ready()

    @property
    def a(self) -> Node:
        return self.nodes[NODES[0]]

    @property
    def b(self) -> Node:
        return self.nodes[NODES[1]]

    def account(self, expected: set[int]) -> str:
        return account(self.handler.snapshot(), expected, self.engine, list(self.nodes.values()))

    def wait_for_submissions(self, tally, submitting, expected: set[int]) -> None:
        wait_until(submitting.done, lambda: len(tally.accepted) + len(tally.unanswered),
                   lambda: f"{len(tally.accepted)} accepted so far\n{self.account(expected)}",
                   "the clients to submit every message")
        submitting.result()  # a client's failure, with its SMTP reply

    def wait_until_all_delivered(self, expected: set[int]) -> float:
        """Until every expected marker has arrived and no queue row can change any more."""
        def done() -> bool:
            seen = {d.seq for d in self.handler.snapshot()}
            return expected <= seen and queue_states(self.engine).keys() <= FINAL

        def progress() -> object:
            return len(self.handler.deliveries), sorted(queue_states(self.engine).items())

        return wait_until(done, progress, lambda: self.account(expected), "every message to arrive")

    def close(self) -> None:
        for node in self.nodes.values():
            node.stop()
        self.engine.dispose()


@pytest.fixture
def cluster(tmp_path, ca, provisioned_home, pg_schema_url, tracking_next_hop):
    running = Cluster(tracking_next_hop, pg_schema_url)
    try:
        running.start(tmp_path, ca, provisioned_home)
        yield running
    finally:
        running.close()


def report(record_property, **figures) -> None:
    for name, value in figures.items():
        record_property(name, value)
    print("\n" + ", ".join(f"{name}={value}" for name, value in figures.items()))


def test_two_nodes_deliver_every_message_exactly_once(cluster, ca, record_property):
    expected = set(range(TOTAL))
    started = time.monotonic()
    tally, submitting = submit(ca, [cluster.a.submission_port, cluster.b.submission_port], range(TOTAL), SESSIONS)
    cluster.wait_for_submissions(tally, submitting, expected)
    submit_seconds = time.monotonic() - started
    cluster.wait_until_all_delivered(expected)
    total_seconds = time.monotonic() - started

    deliveries = cluster.handler.snapshot()
    assert len(tally.accepted) == TOTAL and not tally.unanswered
    counts = Counter(d.seq for d in deliveries)
    assert not {seq: n for seq, n in counts.items() if n != 1}, "delivered more than once"
    assert counts.keys() == expected
    queue_ids = {d.queue_id for d in deliveries}
    assert queue_ids == set(tally.accepted.values()) == stored_message_ids(cluster.engine)
    assert len({d.message_id for d in deliveries}) == TOTAL
    assert queue_states(cluster.engine) == {"delivered": TOTAL}
    # both workers took their share of the one queue
    by_node = Counter(d.node for d in deliveries)
    assert by_node.keys() == set(NODES), by_node
    assert min(by_node.values()) > TOTAL // 10, by_node
    report(record_property, submit_seconds=round(submit_seconds, 1), total_seconds=round(total_seconds, 1),
           **{f"delivered_by_{name.split('.')[0]}": by_node[name] for name in NODES})


def test_a_node_killed_mid_run_loses_nothing(cluster, ca, record_property):
    a, b = cluster.a, cluster.b
    expected = set(range(TOTAL))

    def replacement(port: int) -> int | None:
        # clients of the killed node go on at the other one; any other failure fails the test
        return b.submission_port if port == a.submission_port and a.killed.is_set() else None

    started = time.monotonic()
    tally, submitting = submit(ca, [a.submission_port, b.submission_port], range(TOTAL), SESSIONS, replacement)
    handler = cluster.handler
    wait_until(lambda: len(handler.deliveries) >= TOTAL // 3 or submitting.done(),
               lambda: len(handler.deliveries), lambda: cluster.account(expected), "a third to be delivered")
    if submitting.done():
        submitting.result()  # a client failed before the kill
    # Make sure A dies with claims in flight: its messages wait in DATA at the next hop.
    handler.hold(a.name)
    wait_until(lambda: handler.held > 0, lambda: handler.held, lambda: cluster.account(expected),
               "node A to have a message in the middle of DATA")
    a.kill()
    at_kill = len(handler.snapshot())
    handler.release()
    cluster.wait_for_submissions(tally, submitting, expected)
    submit_seconds = time.monotonic() - started
    cluster.wait_until_all_delivered(set(tally.accepted))
    total_seconds = time.monotonic() - started

    deliveries = handler.snapshot()
    accepted = set(tally.accepted)
    # every message was either answered 250 or in flight at node A when it died
    assert accepted | tally.unanswered == expected and not accepted & tally.unanswered
    assert len(tally.unanswered) <= SESSIONS // 2  # at most one per session of node A
    counts = Counter(d.seq for d in deliveries)
    lost = sorted(accepted - counts.keys())
    assert not lost, f"{len(lost)} messages answered 250 never arrived: {lost[:20]}"
    assert counts.keys() <= expected, "the next hop got messages nobody sent"
    # everything in the queue arrived, including what A stored but did not answer for
    stored = stored_message_ids(cluster.engine)
    assert set(tally.accepted.values()) <= stored
    assert {d.queue_id for d in deliveries} == stored
    assert queue_states(cluster.engine) == {"delivered": len(stored)}

    # the kill really came in the middle: A had delivered, B delivered A's share after it
    by_node = Counter(d.node for d in deliveries)
    assert by_node[a.name] > 0 and at_kill < len(accepted) and by_node[b.name] > 0, (by_node, at_kill)
    taken_over = sum(int(m.group(1)) for line in b.log_lines("took over")
                     if (m := re.search(r"took over (\d+) recipient", line)))
    assert taken_over > 0, "node B never took over a claim of node A after its lease expired"

    # duplicates: only what A had sent but not yet recorded, each resent once by B
    copies: dict[int, list] = defaultdict(list)
    for d in deliveries:
        copies[d.seq].append(d)
    duplicates = {seq: ds for seq, ds in copies.items() if len(ds) > 1}
    wrong = {seq: [d.node for d in ds] for seq, ds in duplicates.items() if [d.node for d in ds] != list(NODES)}
    assert not wrong, f"duplicates not of the form (first A, then B once): {wrong}"
    assert all(len({(d.queue_id, d.message_id) for d in ds}) == 1 for ds in duplicates.values()), \
        "a duplicate is not a resend of the same queued message"
    # A's sends in progress (at most `concurrency`) plus one batch of results not yet written
    bound = CONCURRENCY + MAX_BATCH
    assert len(duplicates) <= bound, f"{len(duplicates)} duplicates, more than A could have had in flight"
    report(record_property, duplicates_after_sigkill=len(duplicates), delivered_at_kill=at_kill,
           unanswered_at_kill=len(tally.unanswered), taken_over_by_b=taken_over,
           submit_seconds=round(submit_seconds, 1), total_seconds=round(total_seconds, 1),
           **{f"delivered_by_{name.split('.')[0]}": by_node[name] for name in NODES})
