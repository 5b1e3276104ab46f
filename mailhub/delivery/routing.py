"""Where each recipient's mail goes: a destination, and the transport that reaches it.

A destination is a name the worker schedules by (its own concurrency limit, its
own "dead for a while" state):

- ``route:<host>:<port>`` — a ``[[delivery.routes]]`` entry matched the
  recipient's domain (exact name, or a ``.parent`` entry for its subdomains; the
  longest match wins), e.g. the city's own domains to the mailbox servers by
  SMTP or LMTP;
- otherwise the default of ``delivery.mode``: ``outbox`` (the development
  Maildir), ``relay`` (one smarthost) or ``mx:<domain>`` (the recipient domain's
  mail exchangers, looked up in DNS).

TLS to the next hop: a route or the relay uses its configured mode; direct MX
delivery uses opportunistic STARTTLS (``may``, RFC 7435) except for the domains
in ``delivery.tls_required_domains``, whose exchangers must offer STARTTLS with
a certificate valid for the exchanger's name (else the mail is deferred, never
sent in clear).
"""
from __future__ import annotations

import asyncio
import logging
import ssl
from collections import OrderedDict
from typing import Protocol, Sequence

from mailhub.config import Config, RouteConfig
from mailhub.delivery.mx import MailHost, MxResolver
from mailhub.delivery.outbox import MaildirOutbox
from mailhub.delivery.smtp_relay import SmtpRelay
from mailhub.delivery.smtp_session import verified_context
from mailhub.delivery.transport import RecipientResult, Transport, for_all

log = logging.getLogger("mailhub.delivery")

MX_DESTINATIONS_KEPT = 1000  # MX transports (each with its open sessions) kept, least recently used dropped
MX_ADDRESSES_TRIED = 5  # addresses tried per attempt (Postfix smtp_mx_address_limit)


class Routes(Protocol):
    """What the worker needs: a destination per recipient, a transport per destination."""

    def destination(self, rcpt: str) -> str: ...

    def transport(self, destination: str) -> Transport: ...

    async def close(self) -> None: ...


class OneRoute:
    """Every recipient through one transport (tests, and tools that need no routing)."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def __repr__(self) -> str:
        return repr(self._transport)

    def destination(self, rcpt: str) -> str:
        return "default"

    def transport(self, destination: str) -> Transport:
        return self._transport

    async def close(self) -> None:
        close = getattr(self._transport, "close", None)
        if close is not None:
            await close()


def domain_of(rcpt: str) -> str:
    return rcpt.rpartition("@")[2].lower().rstrip(".")


class MxDelivery:
    """Deliver to one recipient domain's mail exchangers, in MX order (RFC 5321 §5.1).

    The next address is tried only when the previous one gave no SMTP answer at
    all (refused, timed out, TLS failed): an answer, even 4xx, is the domain's
    answer for this attempt.
    """

    def __init__(self, domain: str, resolver: MxResolver, *, port: int, tls_mode: str,
                 tls_context: ssl.SSLContext | None, timeout: float, local_hostname: str,
                 connections: int) -> None:
        self.domain = domain
        self.resolver = resolver
        self.port, self.tls_mode, self.tls_context = port, tls_mode, tls_context
        self.timeout, self.local_hostname, self.connections = timeout, local_hostname, connections
        self._relays: dict[tuple[str, str], SmtpRelay] = {}

    def __repr__(self) -> str:
        return f"MxDelivery({self.domain!r}, tls_mode={self.tls_mode!r})"

    async def send(self, mail_from: str, rcpts: Sequence[str], data: bytes) -> dict[str, RecipientResult]:
        answer = await self.resolver.lookup(self.domain)
        if answer.error is not None:
            return for_all(rcpts, answer.error)
        results: dict[str, RecipientResult] = {}
        for host in answer.hosts[:MX_ADDRESSES_TRIED]:
            results = await self._relay(host).send(mail_from, rcpts, data)
            if any(result.answered for result in results.values()):
                break
        return results

    def _relay(self, host: MailHost) -> SmtpRelay:
        key = (host.name, host.address)
        relay = self._relays.get(key)
        if relay is None:
            relay = self._relays[key] = SmtpRelay(
                host.name, self.port, self.tls_mode, "", "", self.timeout, self.tls_context,
                local_hostname=self.local_hostname, max_connections=self.connections, address=host.address)
        return relay

    async def close(self) -> None:
        relays, self._relays = list(self._relays.values()), {}
        await asyncio.gather(*(relay.close() for relay in relays), return_exceptions=True)


class Router:
    """The destinations of ``[delivery]``: routes first, then the mode's default."""

    def __init__(self, config: Config, *, resolver: MxResolver | None = None) -> None:
        d = config.delivery
        self.config = config
        self.mode = d.mode
        self._exact: dict[str, int] = {}
        self._suffix: dict[str, int] = {}
        for i, route in enumerate(d.routes):
            for name in route.domains:
                name = name.lower().rstrip(".")
                (self._suffix if name.startswith(".") else self._exact)[name.lstrip(".")] = i
        self._verified = verified_context(d.tls_ca_file)
        self._required = frozenset(n.lower().rstrip(".") for n in d.tls_required_domains)
        self._fixed: dict[str, Transport] = {}
        for i, route in enumerate(d.routes):
            self._fixed[self._route_key(route)] = self._smtp(route.host, route.port, route.tls, route.username,
                                                             route.password, protocol=route.protocol)
        if d.mode == "relay":
            self._fixed["relay"] = self._smtp(d.relay_host, d.relay_port, d.relay_tls, d.relay_username,
                                              d.relay_password)
        elif d.mode == "outbox":
            self._fixed["outbox"] = MaildirOutbox(config.outbox_dir)
        self._resolver = resolver
        if d.mode == "mx" and resolver is None:
            self._resolver = MxResolver(d.dns_servers, timeout=min(d.timeout_seconds, 30.0))
        self._mx: OrderedDict[str, MxDelivery] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        routes = len(self.config.delivery.routes)
        return f"Router(mode={self.mode!r}, routes={routes})"

    @staticmethod
    def _route_key(route: RouteConfig) -> str:
        return f"route:{route.host}:{route.port}"

    def _smtp(self, host: str, port: int, tls: str, username: str, password: str, *,
              protocol: str = "smtp") -> SmtpRelay:
        d = self.config.delivery
        return SmtpRelay(host, port, tls, username, password, d.timeout_seconds,
                         None if tls in ("none", "may") else self._verified,
                         local_hostname=self.config.server.hostname,
                         max_connections=d.per_destination_concurrency, protocol=protocol)

    def _route_for(self, domain: str) -> RouteConfig | None:
        routes = self.config.delivery.routes
        if not routes:
            return None
        if domain in self._exact:
            return routes[self._exact[domain]]
        labels = domain.split(".")
        for i in range(1, len(labels)):  # longest parent first
            index = self._suffix.get(".".join(labels[i:]))
            if index is not None:
                return routes[index]
        return None

    def destination(self, rcpt: str) -> str:
        domain = domain_of(rcpt)
        route = self._route_for(domain)
        if route is not None:
            return self._route_key(route)
        if self.mode == "mx":
            return f"mx:{domain}"
        return self.mode

    def transport(self, destination: str) -> Transport:
        fixed = self._fixed.get(destination)
        if fixed is not None:
            return fixed
        if not destination.startswith("mx:") or self._resolver is None:
            raise KeyError(f"no transport for destination {destination!r}")
        domain = destination[3:]
        mx = self._mx.get(domain)
        if mx is None:
            d = self.config.delivery
            required = domain in self._required
            mx = self._mx[domain] = MxDelivery(
                domain, self._resolver, port=d.mx_port, tls_mode="require-starttls" if required else "may",
                tls_context=self._verified if required else None, timeout=d.timeout_seconds,
                local_hostname=self.config.server.hostname, connections=d.per_destination_concurrency)
            while len(self._mx) > MX_DESTINATIONS_KEPT:
                _, old = self._mx.popitem(last=False)
                task = asyncio.get_running_loop().create_task(old.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        else:
            self._mx.move_to_end(domain)
        return mx

    async def close(self) -> None:
        transports = [*self._fixed.values(), *self._mx.values()]
        self._mx.clear()
        closes = [t.close() for t in transports if hasattr(t, "close")]
        await asyncio.gather(*closes, *self._closing, return_exceptions=True)
