"""Direct MX delivery (``delivery.mode = "mx"``) through a real DNS server on loopback.

Every mail exchanger in the test zone resolves to a loopback address; the one
next hop listens on 127.0.0.1 only, so an exchanger at 127.0.0.2 refuses the
connection and the next one in MX order must be tried. The next hop offers
STARTTLS with a certificate for some exchanger names: opportunistic TLS uses it
for every domain, verified TLS is required for the domains configured so.
"""
from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from mailhub.db import make_engine
from mailhub.models import DeliveryAttempt, QueuedMessage, QueueRecipient
from tests.dns_server import DnsServer
from tests.nexthops import Hop, ScriptedHandler, server_tls
from tests.support import DOMAIN, make_config, message, provisioned_copy, start_hub

ZONE = {
    ("good.test", "MX"): ["10 mx1.good.test.", "20 mx2.good.test."],
    ("mx1.good.test", "A"): ["127.0.0.2"],  # nothing listens there: refused
    ("mx2.good.test", "A"): ["127.0.0.1"],
    ("nullmx.test", "MX"): ["0 ."],
    ("secure.test", "MX"): ["10 mx.secure.test."],
    ("mx.secure.test", "A"): ["127.0.0.1"],
    ("wrongname.test", "MX"): ["10 mx.wrongname.test."],  # the certificate does not name it
    ("mx.wrongname.test", "A"): ["127.0.0.1"],
    ("implicit.test", "A"): ["127.0.0.1"],  # no MX: the domain itself (RFC 5321 §5.1)
}


@pytest.fixture
def dns():
    with DnsServer(ZONE) as server:
        yield server


def wait_for_attempts(config, count: int, timeout: float = 20.0) -> dict[str, tuple[str, str, str]]:
    engine = make_engine(config.database_url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                rows = conn.execute(
                    select(QueueRecipient.rcpt, QueueRecipient.state, QueueRecipient.last_reply,
                           QueueRecipient.id)
                    .join(QueuedMessage, QueuedMessage.id == QueueRecipient.message_id)
                    .where(QueuedMessage.kind == "email", QueueRecipient.attempts > 0)).all()
                remotes = dict(conn.execute(select(DeliveryAttempt.recipient_id, DeliveryAttempt.remote)).all())
            if len(rows) >= count:
                return {r.rcpt: (r.state, r.last_reply, remotes.get(r.id, "")) for r in rows}
            time.sleep(0.05)
    finally:
        engine.dispose()
    raise AssertionError(f"fewer than {count} recipients were attempted")


def test_mx_delivery_follows_dns_and_the_tls_rules(tmp_path, ca, provisioned_home, dns):
    hop = Hop(ScriptedHandler(), tls_context=server_tls(ca, "mx2.good.test", "mx.secure.test", "implicit.test"))
    mailbox = Hop(ScriptedHandler())
    try:
        ca_file = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        home = provisioned_copy(provisioned_home, tmp_path / "home")
        config = make_config(home, ca, delivery={
            "mode": "mx", "dns_servers": [dns.address], "mx_port": hop.port, "timeout_seconds": 5.0,
            "tls_required_domains": ["secure.test", "wrongname.test"], "tls_ca_file": str(ca_file),
            "routes": [{"domains": [DOMAIN], "host": "127.0.0.1", "port": mailbox.port, "tls": "none"}]})
        rcpts = ["a@good.test", "b@nxdomain.test", "c@nullmx.test", "d@secure.test", "e@wrongname.test",
                 "f@implicit.test"]
        hub = start_hub(config, ca)
        try:
            with hub.connect() as client:
                assert client.sendmail("an@hcm.gov.vn", rcpts, message(to="a@good.test")) == {}
            got = wait_for_attempts(config, len(rcpts))
            delivered = hop.handler.wait_for(3)
        finally:
            hub.stop()
    finally:
        hop.stop()
        mailbox.stop()

    state = {rcpt: s for rcpt, (s, _, _) in got.items()}
    assert state == {"a@good.test": "delivered", "b@nxdomain.test": "bounced", "c@nullmx.test": "bounced",
                     "d@secure.test": "delivered", "e@wrongname.test": "deferred", "f@implicit.test": "delivered"}
    # mx1 refused the connection; mx2, the next in MX order, took the message.
    assert got["a@good.test"][2] == f"mx2.good.test[127.0.0.1]:{hop.port}"
    assert got["b@nxdomain.test"][1].startswith("550 5.1.2")
    assert got["c@nullmx.test"][1].startswith("556 5.1.10")
    assert "certificate" in got["e@wrongname.test"][1] or "not trusted" in got["e@wrongname.test"][1]
    assert sorted(r for _, rs, _ in delivered for r in rs) == ["a@good.test", "d@secure.test", "f@implicit.test"]
    assert hop.handler.tls_sessions == 3  # opportunistic TLS where offered, verified where required
    assert ("good.test", "MX") in dns.queries
