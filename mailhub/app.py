"""``mailhub serve``: the running platform in one or more processes.

:class:`Mailhub` is one process's set of services (SMTP listeners, queue
writer, delivery worker) on one event loop; tests start it in-process on
ephemeral ports. :func:`serve` is the blocking entry point: it prepares the
database, binds the sockets, forks ``server.processes - 1`` extra SMTP front-end
processes that share them, and runs until SIGTERM or SIGINT.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import ssl
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from mailhub.config import Config
from mailhub.db import make_engine
from mailhub.directory import load_sender
from mailhub.directory_cache import DirectoryNames
from mailhub.dkimkeys import load_domain_keys
from mailhub.errors import ConfigError
from mailhub.queue import QueueWriter
from mailhub.signing import DkimSigner
from mailhub.smtp.auth import Authenticator
from mailhub.smtp.handler import SubmissionHandler
from mailhub.smtp.protocol import SubmissionSMTP
from mailhub.submission import SubmissionPipeline
from mailhub.tlscert import server_context
from mailhub.usage import UsageCounter

log = logging.getLogger("mailhub")

ROLES = ("submission", "delivery")


def new_event_loop(config: Config) -> asyncio.AbstractEventLoop:
    """The event loop ``server.event_loop`` names: uvloop (libuv, faster sockets and
    TLS plumbing: 400 against 350 msg/s at 50 sessions in bench/relay.py) or asyncio's."""
    if config.server.event_loop == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def _run(config: Config, main) -> None:
    with asyncio.Runner(loop_factory=lambda: new_event_loop(config)) as runner:
        runner.run(main)


def bind_socket(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=1024, reuse_port=reuse_port)
    sock.setblocking(False)
    return sock


def load_signer(config: Config) -> DkimSigner:
    keys = {}
    for domain in config.domains.official:
        keys[domain] = load_domain_keys(config.dkim_keys_dir, domain, config.dkim.selector,
                                        config.dkim.ed25519)
    return DkimSigner(keys)


class Mailhub:
    """The services of one process. ``sockets`` maps listener name → bound socket;
    missing ones are bound from the config (port 0 picks a free port)."""

    def __init__(self, config: Config, *, only: str | None = None,
                 sockets: dict[str, socket.socket] | None = None, node_id: str | None = None,
                 serve_http: bool = True) -> None:
        self.config = config
        self.only = only
        self._sockets = dict(sockets or {})
        self.serve_http = serve_http  # metrics and health: the main process of a node, not a forked front end
        self.http = None
        self.node_id = node_id or f"{socket.gethostname()}:{os.getpid()}"
        self.ports: dict[str, int] = {}
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: list[asyncio.Task] = []
        self._stop = asyncio.Event()
        self.worker = None
        self.notifier = None
        self.sms_worker = None
        self.queue: QueueWriter | None = None
        self._policy_executor: ThreadPoolExecutor | None = None
        self._dkim: DkimSigner | None = None

    @property
    def runs_submission(self) -> bool:
        return self.only in (None, "submission")

    @property
    def runs_delivery(self) -> bool:
        return self.only in (None, "delivery")

    async def start(self) -> None:
        from mailhub.metrics import MetricsDir

        config = self.config
        self.engine = make_engine(config.database_url)
        self.metrics_dir = MetricsDir.under(config.home)
        self._tasks.append(asyncio.get_running_loop().create_task(self.metrics_dir.run(self._stop, interval=5.0)))
        if self.runs_delivery:
            await self._start_delivery()
            await self._start_reminders()
        if self.runs_submission:
            await self._start_submission()
        if self.serve_http:
            await self._start_http()
            if self.config.listen.replies:
                await self._start_reply_listener()

    async def _signer(self) -> DkimSigner:
        """The DKIM keys, loaded once per process (35 ms per RSA key) for the front
        end and the notices alike."""
        if self._dkim is None:
            self._dkim = await asyncio.to_thread(load_signer, self.config)
        return self._dkim

    async def _start_http(self) -> None:
        from invites.api import meetings_api_router
        from invites.api_changes import meeting_changes_router
        from invites.rsvp import ensure_key
        from invites.rsvp_pages import rsvp_router
        from mailhub.http import HttpService, create_app
        from mailhub.scoring.api import scores_router
        from mailhub.web.console import console_router

        sock = self._sockets.get("http")
        if sock is None:
            address = self.config.listen_address("http")
            sock = bind_socket(address.host, address.port)
        rsvp_key = await asyncio.to_thread(ensure_key, self.config.rsvp_key_path)
        routers = [rsvp_router(self.engine, rsvp_key),
                   meetings_api_router(self.engine, self.config, self._signer, rsvp_key),
                   meeting_changes_router(self.engine, self.config, self._signer, rsvp_key),
                   scores_router(self.engine, self.config),
                   console_router(self.engine, self.config, self._signer, rsvp_key)]
        if self.config.sms.gateway == "twilio":
            from invites.webhooks import twilio_router

            routers.append(twilio_router(self.engine, self.config))
        self.http = HttpService(create_app(engine=self.engine, metrics_dir=self.metrics_dir, routers=routers), sock,
                                trusted_proxies=self.config.listen.http_trusted_proxies)
        await self.http.start()
        self.ports["http"] = self.http.port

    async def _start_delivery(self) -> None:
        from invites.sms import build_gateway
        from invites.sms.queue import SmsWorker
        from invites.sms.reports import ReportsFromThread
        from mailhub.delivery.notices import Notifier
        from mailhub.delivery.retention import run_retention
        from mailhub.delivery.routing import Router
        from mailhub.delivery.schedule import RetrySchedule
        from mailhub.delivery.worker import DeliveryWorker
        from mailhub.scoring.rollup import run_rollup

        config, d = self.config, self.config.delivery
        schedule = RetrySchedule.from_config(d)
        self.worker = DeliveryWorker(self.engine, Router(config), concurrency=d.concurrency,
                                     poll_seconds=d.poll_seconds, node_id=self.node_id,
                                     lease_seconds=d.lease_seconds, per_destination=d.per_destination_concurrency,
                                     dead_seconds=d.dead_destination_seconds, schedule=schedule)
        self.notifier = Notifier(self.engine, await self._signer(),
                                 reporting_mta=config.server.hostname, default_domain=config.domains.official[0],
                                 schedule=schedule, interval=max(1.0, 5 * d.poll_seconds),
                                 on_queued=self.worker.wake)
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self.worker.run(self._stop)))
        self._tasks.append(loop.create_task(self.notifier.run(self._stop)))
        self._tasks.append(loop.create_task(run_retention(self.engine, config.queue.retention_days, self._stop)))
        self._tasks.append(loop.create_task(run_rollup(
            self.engine, timedelta(minutes=config.scoring.rollup_grace_minutes), self._stop)))
        reports = ReportsFromThread(self.engine, loop, self._stop)
        gateway = build_gateway(config, on_report=reports.on_report)
        if hasattr(gateway, "start"):
            gateway.start()  # bind now: receipts of SMS sent before a restart need no new SMS to arrive
        self.sms_worker = SmsWorker(self.engine, gateway, gateway_name=config.sms.gateway,
                                    concurrency=config.sms.concurrency, poll_seconds=d.poll_seconds)
        self._tasks.append(loop.create_task(self.sms_worker.run(self._stop)))

    async def _start_reply_listener(self) -> None:
        """Answers forwarded by the city's mail server (invites.reply_listener)."""
        from invites.replies import ReplyIntake
        from invites.reply_listener import reply_listener

        config, loop = self.config, asyncio.get_running_loop()
        sock = self._sockets.get("replies")
        if sock is None:
            address = config.listen_address("replies")
            sock = bind_socket(address.host, address.port)
        intake = ReplyIntake(self.engine)
        server = await loop.create_server(
            lambda: reply_listener(intake, config.invites.reply_intake_networks, config.server.hostname), sock=sock)
        self._servers.append(server)
        self.ports["replies"] = server.sockets[0].getsockname()[1]

    async def _start_reminders(self) -> None:
        """Meeting reminders, from their rows (so they survive restarts)."""
        from invites.reminders import ReminderRunner
        from invites.rsvp import ensure_key

        key = await asyncio.to_thread(ensure_key, self.config.rsvp_key_path)
        runner = ReminderRunner(self.engine, self.config, await self._signer(), key,
                                interval=max(1.0, 5 * self.config.delivery.poll_seconds), on_queued=self.worker.wake)
        self._tasks.append(asyncio.get_running_loop().create_task(runner.run(self._stop)))

    async def _start_submission(self) -> None:
        from invites.replies import ReplyIntake

        config, loop = self.config, asyncio.get_running_loop()
        tls = server_context(config.tls_cert_path, config.tls_key_path)
        self.queue = QueueWriter(self.engine, config.queue.group_commit_max)
        self.queue.start()
        names = DirectoryNames(self.engine)
        await asyncio.to_thread(names.load)
        self._tasks.append(loop.create_task(names.run(self._stop)))
        self._policy_executor = ThreadPoolExecutor(4, thread_name_prefix="policy")
        pipeline = SubmissionPipeline(
            config, queue=self.queue, signer=await self._signer(),
            usage=UsageCounter(self.engine), directory_names=names,
            executor=self._policy_executor,
            on_stored=self.worker.wake if self.worker else (lambda: None),
            observers=[ReplyIntake(self.engine).observe])  # officials' iMIP answers to meeting organizers
        handler = SubmissionHandler(pipeline)
        authenticator = Authenticator(self.engine, config.auth, load_sender)
        common = dict(authenticator=authenticator, hostname=config.server.hostname,
                      ident="ESMTP mailhub", data_size_limit=config.limits.max_message_bytes,
                      timeout=config.server.session_timeout_seconds,
                      pregreet_wait=config.server.pregreet_wait_seconds,
                      session_max_auth_failures=config.auth.session_max_failures, loop=loop)
        for name, implicit in (("submission", False), ("submissions", True)):
            sock = self._sockets.get(name)
            if sock is None:
                address = config.listen_address(name)
                sock = bind_socket(address.host, address.port)
            factory = (lambda implicit=implicit: SubmissionSMTP(
                handler, implicit_tls=implicit, tls_context=None if implicit else tls, **common))
            server = await loop.create_server(factory, sock=sock, ssl=tls if implicit else None,
                                              ssl_handshake_timeout=30 if implicit else None)
            self._servers.append(server)
            self.ports[name] = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._stop.set()
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()
        if self.queue is not None:
            await self.queue.stop()
        for task in self._tasks:
            try:
                await asyncio.wait_for(task, 10)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass
        if self.http is not None:
            await self.http.stop()
        if self._policy_executor is not None:
            self._policy_executor.shutdown(wait=False)
        self.engine.dispose()

    async def run_until_signalled(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        for name, port in sorted(self.ports.items()):
            print(f"mailhub[{os.getpid()}]: {name} listening on port {port}", flush=True)
        if self.worker:
            print(f"mailhub[{os.getpid()}]: delivery worker running", flush=True)
        await stop.wait()
        await self.stop()


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")
    # aiosmtpd logs every command line at INFO: too much, and it includes addresses.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def preflight(config: Config, only: str | None) -> None:
    """Fail before forking, with one clear line, if the database is not at the
    current schema or the TLS certificate or DKIM keys cannot be loaded."""
    from mailhub.schema import require_current

    engine = make_engine(config.database_url)
    try:
        require_current(engine)
    finally:
        engine.dispose()
    if only in (None, "submission"):
        server_context(config.tls_cert_path, config.tls_key_path)
    load_signer(config)  # the front end signs mail, delivery signs the notices it sends
    if only in (None, "delivery"):
        check_delivery_settings(config)
        from invites.sms import build_gateway

        build_gateway(config)  # an SMS gateway this version cannot run fails here, with one line


def check_delivery_settings(config: Config) -> None:
    """The delivery settings that need more than the config file to check: the
    DNS server list and the CA file. Raises ConfigError naming the key."""
    from mailhub.delivery.mx import MxResolver
    from mailhub.delivery.smtp_session import verified_context

    d = config.delivery
    if d.mode == "mx" and d.dns_servers:
        try:
            MxResolver(d.dns_servers)
        except ValueError as exc:
            raise ConfigError(f"{config.source}: delivery.dns_servers: {exc}") from None
    if d.tls_ca_file:
        try:
            verified_context(d.tls_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"{config.source}: delivery.tls_ca_file: cannot load {d.tls_ca_file}: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None


def _die_with_parent() -> None:
    """Linux: a front-end child gets SIGTERM if the parent process dies (even by SIGKILL)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _run_front_end(config: Config, sockets: dict[str, socket.socket]) -> None:
    """In a forked child: an SMTP front end on listening sockets of its own."""
    try:
        _die_with_parent()
        sockets.pop("http").close()  # the parent serves HTTP for the node
        own = {}
        for name, inherited in sockets.items():
            host, port = inherited.getsockname()[:2]
            own[name] = bind_socket(host, port, reuse_port=True)
            inherited.close()
        _run(config, Mailhub(config, only="submission", sockets=own, serve_http=False).run_until_signalled())
    finally:
        os._exit(0)


def serve(config: Config, only: str | None = None) -> None:
    """Run until SIGTERM/SIGINT.

    Process layout: with ``server.processes = 1`` one process runs everything.
    With ``processes = N > 1`` the parent runs the delivery side (worker,
    notices, SMS queue) and the HTTP server, and forks N SMTP front ends, each with its own
    SO_REUSEPORT socket so the kernel spreads sessions evenly. (Measured: a
    worker sharing a busy front end's event loop gets too few turns and the
    queue grows under load; in its own process it keeps up.)
    ``only`` runs one role in this process and forks nothing for the other.
    """
    if only not in (None, *ROLES):
        raise ValueError(f"--only must be one of {', '.join(ROLES)}")
    _setup_logging()
    preflight(config, only)
    fronts = 0 if only == "delivery" else config.server.processes
    split = only is None and fronts > 1
    from mailhub.metrics import MetricsDir

    MetricsDir.under(config.home).clear()  # counters of an earlier run must not add up with this one's
    sockets: dict[str, socket.socket] = {}
    for name in ("submission", "submissions") if fronts else ():
        address = config.listen_address(name)
        sockets[name] = bind_socket(address.host, address.port, reuse_port=fronts > 1)
    http = config.listen_address("http")
    sockets["http"] = bind_socket(http.host, http.port)  # here: a taken port fails before any fork
    children: list[int] = []
    for _ in range(fronts if split else max(fronts - 1, 0)):
        pid = os.fork()
        if pid == 0:
            _run_front_end(config, sockets)
        children.append(pid)
    if split:  # the parent only delivers: its sockets must not take a share of sessions
        for name in ("submission", "submissions"):
            sockets.pop(name).close()
    try:
        _run(config, Mailhub(config, only="delivery" if split else only,
                             sockets=sockets).run_until_signalled())
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for pid in children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
