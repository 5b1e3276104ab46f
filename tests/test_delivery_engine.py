"""The delivery engine end to end: the real relay, real next hops on loopback.

One message from an official goes to recipients whose domains are routed
(``[[delivery.routes]]``) to next hops that answer 250, 451 and 550, to a port
that refuses connections, to a hop that requires STARTTLS and to one that does
not offer it although TLS is required there. The sender's own domain is routed
to a "mailbox server" next hop, where the notices (bounce, delay warning)
arrive. A stuck next hop shows that one slow destination does not hold up
mail to the others.
"""
from __future__ import annotations

import email
import email.policy
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from mailhub.db import make_engine
from mailhub.dkimkeys import dns_records
from mailhub.models import QueuedMessage, QueueRecipient
from tests.dkimcheck import dkimpy_verify
from tests.nexthops import Hop, ScriptedHandler, server_tls
from tests.support import DOMAIN, free_port, make_config, message, provisioned_copy, start_hub, wait_until

SENDER = "an@hcm.gov.vn"


@pytest.fixture
def hops(ca, tmp_path):
    tls = server_tls(ca, "127.0.0.1")
    made = {
        "mailbox": Hop(ScriptedHandler()),
        "ok": Hop(ScriptedHandler()),
        "later": Hop(ScriptedHandler("451 4.3.0 mailbox busy, try later")),
        "reject": Hop(ScriptedHandler("550 5.1.1 no such user here")),
        "tls": Hop(ScriptedHandler(), tls_context=tls, require_starttls=True),
        "plain": Hop(ScriptedHandler()),
    }
    yield made
    for hop in made.values():
        hop.stop()


def routes(hops: dict[str, Hop], dead_port: int) -> list[dict]:
    plain = {"tls": "none", "host": "127.0.0.1"}
    return [
        {"domains": [DOMAIN, f".{DOMAIN}"], "port": hops["mailbox"].port, **plain},
        {"domains": ["ok.test"], "port": hops["ok"].port, **plain},
        {"domains": ["later.test"], "port": hops["later"].port, **plain},
        {"domains": ["reject.test"], "port": hops["reject"].port, **plain},
        {"domains": ["dead.test"], "port": dead_port, **plain},
        {"domains": ["tls.test"], "host": "127.0.0.1", "port": hops["tls"].port, "tls": "require-starttls"},
        {"domains": ["plain.test"], "host": "127.0.0.1", "port": hops["plain"].port, "tls": "require-starttls"},
    ]


def states(config) -> dict[str, tuple[str, str]]:
    engine = make_engine(config.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(QueueRecipient.rcpt, QueueRecipient.state, QueueRecipient.last_reply)
                                .join(QueuedMessage, QueuedMessage.id == QueueRecipient.message_id)
                                .where(QueuedMessage.kind == "email")).all()
    finally:
        engine.dispose()
    return {r.rcpt: (r.state, r.last_reply) for r in rows}


def report_fields(report: email.message.EmailMessage) -> list[dict[str, str]]:
    status = next(p for p in report.walk() if p.get_content_type() == "message/delivery-status")
    return [{k.lower(): str(v) for k, v in block.items()} for block in status.get_payload()]


def test_each_recipient_ends_in_the_right_state_and_the_sender_is_told(tmp_path, ca, provisioned_home, hops):
    home = provisioned_copy(provisioned_home, tmp_path / "home")
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    config = make_config(home, ca, delivery={
        "mode": "relay", "relay_host": "127.0.0.1", "relay_port": free_port(),  # unused: every domain is routed
        "routes": routes(hops, free_port()), "tls_ca_file": str(ca_file),
        "delay_warning_hours": 1 / 3600})  # warn after one second
    rcpts = ["x@ok.test", "x@later.test", "x@reject.test", "x@dead.test", "x@tls.test", "x@plain.test"]
    hub = start_hub(config, ca)
    try:
        with hub.connect() as client:
            assert client.sendmail(SENDER, rcpts, message(to=", ".join(rcpts), subject="Giấy mời họp")) == {}
        final = wait_until(lambda: (s := states(config)) and all(v[0] != "queued" and v[0] != "sending"
                                                                  for v in s.values()) and s, what="attempts")
        notices = hops["mailbox"].handler.wait_for(2, timeout=20)
        with urllib.request.urlopen(f"http://127.0.0.1:{hub.hub.ports['http']}/metrics", timeout=10) as reply:
            metrics = reply.read().decode()
    finally:
        hub.stop()

    assert {rcpt: state for rcpt, (state, _) in final.items()} == {
        "x@ok.test": "delivered", "x@tls.test": "delivered", "x@reject.test": "bounced",
        "x@later.test": "deferred", "x@dead.test": "deferred", "x@plain.test": "deferred"}
    assert final["x@reject.test"][1] == "550 5.1.1 no such user here"
    assert final["x@later.test"][1] == "451 4.3.0 mailbox busy, try later"
    assert "refused" in final["x@dead.test"][1]
    assert "STARTTLS" in final["x@plain.test"][1]
    assert hops["tls"].handler.tls_sessions == 1  # delivered, over TLS
    assert hops["plain"].handler.messages == []  # TLS required there: nothing sent in clear
    assert [m[1] for m in hops["ok"].handler.messages] == [["x@ok.test"]]

    assert len(notices) == 2
    for mail_from, to, _ in notices:
        assert (mail_from, to) == ("<>", [SENDER])  # MAIL FROM:<>, the null sender (aiosmtpd keeps "<>")
    by_action = {}
    for _, _, data in notices:
        report = email.message_from_bytes(data, policy=email.policy.default)
        assert report.get_content_type() == "multipart/report"
        assert report.get_param("report-type") == "delivery-status"
        assert report["Auto-Submitted"] == "auto-replied"
        blocks = report_fields(report)[1:]
        by_action[blocks[0]["action"]] = (report, blocks, data)
    failed, failed_blocks, failed_data = by_action["failed"]
    assert [b["final-recipient"] for b in failed_blocks] == ["rfc822; x@reject.test"]
    assert failed_blocks[0]["status"] == "5.1.1"
    assert "550 5.1.1 no such user here" in failed_blocks[0]["diagnostic-code"]
    human = failed.get_body(("plain",)).get_content()
    assert "x@reject.test" in human and "không" in human.lower() and "could not be delivered" in human.lower()
    returned = failed.get_payload()[2]
    assert returned.get_content_type() == "text/rfc822-headers"
    assert b"Message-ID: <" in returned.get_payload(decode=True)  # the original's headers ...
    assert "Nội dung báo cáo".encode() not in failed_data  # ... never its body
    records = dns_records(Path(config.dkim_keys_dir), DOMAIN, config.dkim.selector, config.dkim.ed25519)
    assert dkimpy_verify(failed_data, records)  # signed for the sender's own domain

    delayed, delayed_blocks, _ = by_action["delayed"]
    assert sorted(b["final-recipient"] for b in delayed_blocks) == [
        "rfc822; x@dead.test", "rfc822; x@later.test", "rfc822; x@plain.test"]
    assert all("will-retry-until" in b for b in delayed_blocks)

    # Prometheus: queue sizes from the database, results by outcome and reason.
    samples = dict(line.rsplit(" ", 1) for line in metrics.splitlines() if line and not line.startswith("#"))
    assert float(samples['mailhub_queue_recipients{state="deferred"}']) == 3
    assert float(samples['mailhub_queue_recipients{state="bounced"}']) == 1
    for outcome, reason in (("bounced", "5xx"), ("deferred", "4xx"), ("deferred", "refused"),
                            ("deferred", "tls"), ("delivered", "ok")):
        assert float(samples[f'mailhub_deliveries_total{{outcome="{outcome}",reason="{reason}"}}']) >= 1


def test_a_failed_notice_is_not_answered_by_another(tmp_path, ca, provisioned_home, hops):
    """The sender's mailbox server refuses the notice: it bounces, and nothing more is sent."""
    home = provisioned_copy(provisioned_home, tmp_path / "home")
    hops["mailbox"].handler.rcpt_reply = "550 5.2.1 mailbox disabled"
    config = make_config(home, ca, delivery={"mode": "relay", "relay_host": "127.0.0.1",
                                             "relay_port": free_port(), "routes": routes(hops, free_port())})
    hub = start_hub(config, ca)
    try:
        with hub.connect() as client:
            client.sendmail(SENDER, ["x@reject.test"], message(to="x@reject.test"))
        engine = make_engine(config.database_url)

        def notice_states():
            with engine.connect() as conn:
                return conn.execute(select(QueueRecipient.state, QueueRecipient.notified)
                                    .join(QueuedMessage, QueuedMessage.id == QueueRecipient.message_id)
                                    .where(QueuedMessage.kind == "notice")).all()

        wait_until(lambda: [tuple(r) for r in notice_states()] == [("bounced", "final")], what="notice bounced")
        time.sleep(2.5)  # two more notifier rounds
        assert len(notice_states()) == 1
        engine.dispose()
    finally:
        hub.stop()


def test_a_stuck_next_hop_does_not_hold_up_the_others(tmp_path, ca, provisioned_home, hops):
    gate = threading.Event()
    stuck = Hop(ScriptedHandler(gate=gate))
    try:
        home = provisioned_copy(provisioned_home, tmp_path / "home")
        config = make_config(home, ca, delivery={
            "mode": "relay", "relay_host": "127.0.0.1", "relay_port": stuck.port, "relay_tls": "none",
            "concurrency": 4, "per_destination_concurrency": 2,
            "routes": [{"domains": ["ok.test"], "host": "127.0.0.1", "port": hops["ok"].port, "tls": "none"}]})
        hub = start_hub(config, ca)
        try:
            with hub.connect() as client:
                for i in range(6):
                    client.sendmail(SENDER, [f"s{i}@slow.example"], message(to=f"s{i}@slow.example"))
                for i in range(10):
                    client.sendmail(SENDER, [f"o{i}@ok.test"], message(to=f"o{i}@ok.test"))
            # Without a per-destination limit the six stuck messages would take all four slots.
            assert len(hops["ok"].handler.wait_for(10, timeout=10)) == 10
            assert stuck.handler.messages == []
            gate.set()
            assert len(stuck.handler.wait_for(6, timeout=20)) == 6
        finally:
            hub.stop()
    finally:
        stuck.stop()


def test_a_next_hop_slower_than_the_timeout_is_deferred(tmp_path, ca, provisioned_home, hops):
    """A server that takes the message but never answers the end of DATA: after
    delivery.timeout_seconds the recipient is deferred; the other is delivered."""
    stuck = Hop(ScriptedHandler(gate=threading.Event()))
    try:
        home = provisioned_copy(provisioned_home, tmp_path / "home")
        config = make_config(home, ca, delivery={
            "mode": "relay", "relay_host": "127.0.0.1", "relay_port": stuck.port, "relay_tls": "none",
            "timeout_seconds": 1.0,
            "routes": [{"domains": ["ok.test"], "host": "127.0.0.1", "port": hops["ok"].port, "tls": "none"}]})
        hub = start_hub(config, ca)
        try:
            with hub.connect() as client:
                client.sendmail(SENDER, ["x@slow.example", "x@ok.test"], message(to="x@slow.example, x@ok.test"))
            final = wait_until(lambda: (s := states(config)) and s.get("x@slow.example", ("",))[0] == "deferred"
                               and s, what="the slow recipient deferred")
        finally:
            hub.stop()
    finally:
        stuck.stop()
    assert final["x@ok.test"][0] == "delivered"
    assert "did not answer within 1 s" in final["x@slow.example"][1]


class LmtpHop(Hop):
    """The same scripted handler behind aiosmtpd's LMTP server (LHLO; EHLO is refused)."""

    def __init__(self, handler: ScriptedHandler) -> None:
        from aiosmtpd.lmtp import LMTP

        class Lmtp(Controller):
            def factory(self):
                return LMTP(self.handler, **self.SMTP_kwargs)

        self.handler = handler
        self.controller = Lmtp(handler, hostname="127.0.0.1", port=free_port())
        self.controller.start()


def test_the_citys_own_domain_goes_to_the_mailbox_server_by_lmtp(tmp_path, ca, provisioned_home, hops):
    store = LmtpHop(ScriptedHandler())
    try:
        home = provisioned_copy(provisioned_home, tmp_path / "home")
        config = make_config(home, ca, delivery={
            "mode": "relay", "relay_host": "127.0.0.1", "relay_port": hops["ok"].port, "relay_tls": "none",
            "routes": [{"domains": [DOMAIN, f".{DOMAIN}"], "host": "127.0.0.1", "port": store.port,
                        "protocol": "lmtp", "tls": "none"}]})
        hub = start_hub(config, ca)
        try:
            with hub.connect() as client:
                rcpts = ["binh@hcm.gov.vn", "chau@q1.hcm.gov.vn", "x@example.org"]
                client.sendmail(SENDER, rcpts, message(to=", ".join(rcpts)))
            local = store.handler.wait_for(1)
            outside = hops["ok"].handler.wait_for(1)
        finally:
            hub.stop()
    finally:
        store.stop()
    assert [sorted(m[1]) for m in local] == [["binh@hcm.gov.vn", "chau@q1.hcm.gov.vn"]]  # one LMTP transaction
    assert [m[1] for m in outside] == [["x@example.org"]]  # the rest through the relay
