"""Test helpers: a real mailhub on loopback ports, real TLS, a real next hop.

Nothing here replaces our own code: the relay under test is the real
:class:`mailhub.app.Mailhub`, started on ephemeral ports in a background thread
with its own event loop, so tests can drive it with blocking smtplib clients.
"""
from __future__ import annotations

import asyncio
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import trustme
from aiosmtpd.controller import Controller

from mailhub import directory
from mailhub.app import Mailhub, new_event_loop
from mailhub.config import Config, config_from_mapping
from mailhub.dkimkeys import ensure_domain_keys
from mailhub.schema import upgrade

DOMAIN = "hcm.gov.vn"
PASSWORD = "mat-khau-rat-dai-2026"


@dataclass
class Official:
    email: str
    name: str
    unit: str


OFFICIALS = [
    Official("an@hcm.gov.vn", "Nguyễn Văn An", "STTTT"),
    Official("binh@hcm.gov.vn", "Trần Thị Bình", "STTTT"),
    Official("chau@q1.hcm.gov.vn", "Lê Minh Châu", "Q1"),
]
SHARED = "vanphong@hcm.gov.vn"  # granted to an@, not to binh@


def make_config(home: Path, ca: trustme.CA, **overrides) -> Config:
    """A test config whose data folder is ``home``; TLS certificate issued by ``ca``."""
    if not (home / "server.pem").exists():
        cert = ca.issue_cert("localhost", "127.0.0.1", "mailhub.test")
        cert.private_key_and_cert_chain_pem.write_to_path(str(home / "server.pem"))
    data = {
        "server": {"hostname": "mailhub.test", "home": str(home), "pregreet_wait_seconds": 0.0},
        "listen": {"submission": "127.0.0.1:0", "submissions": "127.0.0.1:0", "http": "127.0.0.1:0"},
        "tls": {"cert_file": str(home / "server.pem"), "key_file": str(home / "server.pem")},
        "domains": {"official": [DOMAIN], "subdomains_of": [DOMAIN]},
        "delivery": {"mode": "outbox", "poll_seconds": 0.2},
    }
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    return config_from_mapping(data, "test-config")


def write_config_file(home: Path, next_hop_port: int, **sections: dict) -> Path:
    """``<home>/mailhub.toml`` for a ``mailhub serve`` child process: loopback ports
    chosen by the kernel, the test certificate in ``home``, delivery by SMTP to
    ``next_hop_port``. ``sections`` add or replace keys, e.g. ``server={"processes": 2}``."""
    import json

    data: dict[str, dict] = {
        "server": {"hostname": "mailhub.test", "home": str(home), "pregreet_wait_seconds": 0.0},
        "listen": {"submission": "127.0.0.1:0", "submissions": "127.0.0.1:0", "http": "127.0.0.1:0"},
        "tls": {"cert_file": str(home / "server.pem"), "key_file": str(home / "server.pem")},
        "domains": {"official": [DOMAIN], "subdomains_of": [DOMAIN]},
        "delivery": {"mode": "relay", "relay_host": "127.0.0.1", "relay_port": next_hop_port,
                     "relay_tls": "none", "poll_seconds": 0.2},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    # JSON strings, numbers, booleans and arrays are valid TOML values.
    text = "".join(f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()) + "\n"
                   for name, values in data.items())
    path = home / "mailhub.toml"
    path.write_text(text, encoding="utf-8")
    return path


def provisioned_copy(template: Path, home: Path) -> Path:
    """A fresh copy of a provisioned data folder (provisioning hashes passwords and
    makes RSA keys: done once per test session, copied per test)."""
    import shutil

    shutil.copytree(template, home)
    return home


def provision(config: Config) -> None:
    """What `mailhub init` + a few `user add` do: schema, keys, directory."""
    upgrade(config.database_url)
    for domain in config.domains.official:
        ensure_domain_keys(config.dkim_keys_dir, domain, config.dkim.selector, config.dkim.ed25519)
    from mailhub.db import make_engine

    engine = make_engine(config.database_url)
    try:
        directory.add_unit(engine, "HCM", "Thành phố Hồ Chí Minh", kind="city")
        directory.add_unit(engine, "STTTT", "Sở Thông tin và Truyền thông", parent="HCM", kind="department")
        directory.add_unit(engine, "Q1", "Ủy ban nhân dân Quận 1", parent="HCM", kind="district")
        for o in OFFICIALS:
            directory.add_official(engine, config.domains, o.email, o.name, o.unit,
                                   ["official"], None, PASSWORD)
        directory.add_shared_mailbox(engine, config.domains, SHARED, "STTTT", "Văn phòng Sở",
                                     grant_to=["an@hcm.gov.vn"])
    finally:
        engine.dispose()


@dataclass
class RunningHub:
    hub: Mailhub
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    ca: trustme.CA
    config: Config

    @property
    def submission_port(self) -> int:
        return self.hub.ports["submission"]

    @property
    def submissions_port(self) -> int:
        return self.hub.ports["submissions"]

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        return ctx

    def connect(self, login: str | None = "an@hcm.gov.vn", password: str = PASSWORD,
                implicit: bool = False) -> smtplib.SMTP:
        """An smtplib client, TLS on, logged in unless ``login`` is None."""
        if implicit:
            client = smtplib.SMTP_SSL("127.0.0.1", self.submissions_port, timeout=10,
                                      context=self.client_context())
        else:
            client = smtplib.SMTP("127.0.0.1", self.submission_port, timeout=10)
            client.starttls(context=self.client_context())
        client.ehlo("client.test")
        if login:
            client.login(login, password)
        return client

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.hub.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def start_hub(config: Config, ca: trustme.CA, only: str | None = None) -> RunningHub:
    loop = new_event_loop(config)  # uvloop, as in production, unless the config says asyncio
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    hub = Mailhub(config, only=only)
    asyncio.run_coroutine_threadsafe(hub.start(), loop).result(30)
    return RunningHub(hub, loop, thread, ca, config)


class RecordingHandler:
    """A next hop that answers 250 and keeps what it received."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.arrived = threading.Condition()

    async def handle_DATA(self, server, session, envelope):
        with self.arrived:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                  envelope.original_content))
            self.arrived.notify_all()
        return "250 2.0.0 Ok"

    def wait_for(self, count: int, timeout: float = 15.0) -> list[tuple[str, list[str], bytes]]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.messages) >= count, timeout)
        return list(self.messages)


@dataclass
class NextHop:
    controller: Controller
    handler: RecordingHandler = field(default_factory=RecordingHandler)

    @property
    def port(self) -> int:
        return self.controller.port


def free_port() -> int:
    """A port that was free a moment ago (aiosmtpd's Controller cannot take port 0)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_next_hop() -> NextHop:
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    return NextHop(controller, handler)


def message(sender: str = "an@hcm.gov.vn", to: str = "binh@hcm.gov.vn",
            subject: str = "Báo cáo tuần", body: str = "Kính gửi anh chị,\r\nNội dung báo cáo.\r\n",
            extra: str = "") -> bytes:
    from email.header import Header

    head = (f"From: {sender}\r\nTo: {to}\r\nSubject: {Header(subject, 'utf-8').encode()}\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n{extra}\r\n")
    return head.encode() + body.encode("utf-8")


def wait_until(check, timeout: float = 20.0, what: str = "condition", every: float = 0.05):
    """``check()``'s first true value, polled every ``every`` seconds; AssertionError naming
    ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"{what} never came true")
