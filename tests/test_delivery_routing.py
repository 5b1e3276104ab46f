"""Which destination a recipient's mail goes to, and the transport behind it."""
from __future__ import annotations

import pytest

from mailhub.config import config_from_mapping
from mailhub.delivery import MaildirOutbox, Router, SmtpRelay
from mailhub.delivery.dispatch import Dispatch
from mailhub.delivery.routing import MxDelivery

ROUTES = [
    {"domains": ["hcm.gov.vn", ".hcm.gov.vn"], "host": "store.hcm.gov.vn", "port": 24, "protocol": "lmtp",
     "tls": "none"},
    {"domains": [".q1.hcm.gov.vn"], "host": "q1-mail.hcm.gov.vn", "tls": "require-starttls"},
    {"domains": ["partner.vn"], "host": "gw.partner.vn", "port": 587, "username": "hub", "password": "pw-pw-pw"},
]


def router(tmp_path, mode: str, **delivery) -> Router:
    extra = {"relay_host": "relay.hcm.gov.vn"} if mode == "relay" else {}
    return Router(config_from_mapping({"server": {"home": str(tmp_path)},
                                       "delivery": {"mode": mode, "routes": ROUTES, **extra, **delivery}}, "t.toml"))


@pytest.mark.parametrize("rcpt, mode, destination", [
    ("an@hcm.gov.vn", "mx", "route:store.hcm.gov.vn:24"),
    ("an@HCM.gov.vn.", "mx", "route:store.hcm.gov.vn:24"),             # case and a trailing dot
    ("an@sotttt.hcm.gov.vn", "mx", "route:store.hcm.gov.vn:24"),       # ".hcm.gov.vn": subdomains
    ("an@phuong.q1.hcm.gov.vn", "mx", "route:q1-mail.hcm.gov.vn:25"),  # the longer match wins
    ("an@q1.hcm.gov.vn", "mx", "route:store.hcm.gov.vn:24"),           # ".q1..." is for its subdomains only
    ("an@evilhcm.gov.vn", "mx", "mx:evilhcm.gov.vn"),                  # not a subdomain: label boundaries
    ("x@partner.vn", "relay", "route:gw.partner.vn:587"),
    ("x@sub.partner.vn", "relay", "relay"),                            # exact entry: no subdomains
    ("x@example.org", "relay", "relay"),
    ("x@example.org", "outbox", "outbox"),
    ("x@Example.ORG", "mx", "mx:example.org"),
])
def test_destination(tmp_path, rcpt, mode, destination):
    assert router(tmp_path, mode).destination(rcpt) == destination


async def test_transports_behind_the_destinations(tmp_path):
    mx = router(tmp_path, "mx", tls_required_domains=["secure.vn"])
    try:
        store = mx.transport("route:store.hcm.gov.vn:24")
        assert isinstance(store, SmtpRelay) and (store.protocol, store.tls_mode) == ("lmtp", "none")
        gateway = mx.transport("route:gw.partner.vn:587")
        assert (gateway.tls_mode, gateway.username) == ("starttls", "hub") and "pw-pw-pw" not in repr(gateway)
        plain, secure = mx.transport("mx:example.org"), mx.transport("mx:secure.vn")
        assert isinstance(plain, MxDelivery) and plain.tls_mode == "may" and plain.tls_context is None
        assert secure.tls_mode == "require-starttls" and secure.tls_context is not None
        assert mx.transport("mx:example.org") is plain  # kept, with its open sessions
        with pytest.raises(KeyError):
            mx.transport("relay")
    finally:
        await mx.close()
    outbox = router(tmp_path, "outbox").transport("outbox")
    assert isinstance(outbox, MaildirOutbox) and outbox.path == tmp_path / "outbox"


class Job:
    def __init__(self, destination: str, n: int) -> None:
        self.destination, self.n = destination, n


def test_dispatch_takes_destinations_in_turn_within_their_limit():
    ready: Dispatch[Job] = Dispatch(per_destination=2, dead_seconds=60, backlog=8)
    for n in range(5):
        ready.add(Job("slow", n))
    for n in range(3):
        ready.add(Job("fast", n))
    started = []
    while (job := ready.next(now=0)) is not None:
        ready.started(job.destination)
        started.append((job.destination, job.n))
    assert started == [("slow", 0), ("fast", 0), ("slow", 1), ("fast", 1)]  # then both are at their limit
    assert ready.startable(now=0) == 0 and len(ready) == 4
    ready.finished("fast", answered=True, why="", now=1)
    assert ready.next(now=1).destination == "fast"


def test_dispatch_suspends_a_destination_that_did_not_answer():
    ready: Dispatch[Job] = Dispatch(per_destination=1, dead_seconds=60, backlog=8)
    ready.started("dead")
    ready.finished("dead", answered=False, why="connection refused by mx:25", now=100)
    assert ready.suspended("dead", now=159) == "connection refused by mx:25"
    ready.add(Job("dead", 1))
    ready.started("dead")  # busy, but a suspended destination's jobs end at once: they still come out
    assert ready.next(now=120).n == 1
    assert ready.suspended("dead", now=160.5) is None  # 60 s later it is tried again
    ready.finished("dead", answered=True, why="", now=161)


def test_dispatch_overflow_keeps_the_oldest():
    ready: Dispatch[Job] = Dispatch(per_destination=1, dead_seconds=60, backlog=3)
    for n in range(6):
        ready.add(Job("busy", n))
    assert sorted(job.n for job in ready.overflow()) == [3, 4, 5]
    assert ready.next(0).n == 0
