"""Direct delivery's first step: which hosts accept mail for a domain (RFC 5321 §5.1).

:class:`MxResolver` turns a recipient domain into the addresses to try, in order, or
into a :class:`RecipientResult` that says why there are none. It never raises for a
DNS problem: a name that does not exist, a domain that refuses mail (null MX) or a
bad domain is a permanent result; a resolver that fails or does not answer is a
temporary one, because DNS outages end.

One whole :meth:`MxResolver.lookup` takes at most ``timeout`` seconds: the MX query
and then the A/AAAA queries of all exchangers (run concurrently) share one deadline.
"""
from __future__ import annotations

import asyncio
import ipaddress
import random
from dataclasses import dataclass
from typing import Sequence

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
import idna

from mailhub.delivery.transport import RecipientResult, permanent, temporary

# Exchangers looked up per domain, best first. RFC 5321 §5.1 sets no limit; this one
# stops a hostile zone with thousands of MX records from making us send thousands
# of queries (Postfix caps addresses the same way with smtp_mx_address_limit).
MAX_MX_TARGETS = 10
CACHE_SIZE = 10_000  # answers kept by the resolver cache; each expires with its TTL


@dataclass(frozen=True)
class MailHost:
    """One address to try. ``name``: the MX target (lower-case A-label, no trailing dot),
    or the domain itself for an implicit MX; use it for TLS server names and logs."""

    name: str
    address: str
    preference: int


@dataclass(frozen=True)
class MxAnswer:
    """``hosts`` in the order to try; empty exactly when ``error`` says why."""

    hosts: tuple[MailHost, ...]
    error: RecipientResult | None = None


def _failed(error: RecipientResult) -> MxAnswer:
    return MxAnswer((), error)


class MxResolver:
    """Finds the mail hosts of recipient domains with dnspython's asyncio resolver.

    ``nameservers``: ``"192.0.2.53"``, ``"192.0.2.53:5353"``, ``"[2001:db8::53]:53"``
    or a bare IPv6 address; empty means the system's ``/etc/resolv.conf``.
    ``timeout``: seconds one :meth:`lookup` may take in all. ``rng`` orders MX
    records of equal preference. ``cache``: keep answers (including NXDOMAIN and
    NODATA) for their TTL, so a busy queue does not ask again for every message.
    """

    def __init__(self, nameservers: Sequence[str] = (), *, timeout: float = 10.0,
                 rng: random.Random | None = None, cache: bool = True) -> None:
        """Checks every nameserver entry and the timeout; raises ValueError naming a bad one."""
        if isinstance(nameservers, str):  # a lone string would be read as a list of characters
            raise ValueError(f"nameservers: expected a list of addresses, got the string {nameservers!r}")
        if not timeout > 0:
            raise ValueError(f"timeout: expected a positive number of seconds, got {timeout!r}")
        parsed = [_nameserver(entry) for entry in nameservers]
        if parsed:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = parsed
        else:
            try:
                resolver = dns.asyncresolver.Resolver()  # reads /etc/resolv.conf
            except dns.resolver.NoResolverConfiguration as exc:
                raise ValueError(f"nameservers: none given and the system has none ({exc})") from None
        resolver.lifetime = timeout
        resolver.cache = dns.resolver.LRUCache(CACHE_SIZE) if cache else None
        self._resolver = resolver
        self._timeout = timeout
        self._rng = rng if rng is not None else random.Random()

    async def lookup(self, domain: str) -> MxAnswer:
        """The hosts to try for ``domain`` (any Unicode or ASCII spelling, trailing dot allowed).

        Trusts nothing in the answers: targets that are IP literals, the root or
        unspecified addresses are skipped. Never raises for a DNS failure.
        """
        deadline = asyncio.get_running_loop().time() + self._timeout
        try:
            ascii_domain = _a_label(domain)
        except ValueError as exc:
            return _failed(permanent(f"553 5.1.2 recipient domain {domain!r} is not a domain name: {exc}"))
        name = dns.name.from_text(ascii_domain)
        try:
            answer = await self._resolve(name, dns.rdatatype.MX, deadline)
        except dns.resolver.NXDOMAIN:  # RFC 5321 §5.1: "MUST be reported as an error"; retrying won't help
            return _failed(permanent(
                f"550 5.1.2 recipient domain {ascii_domain} does not exist (DNS: NXDOMAIN)"))
        except dns.exception.DNSException as exc:  # RFC 5321 §5.1: a temporary error "MUST be ... retried"
            return _failed(temporary(
                f"451 4.4.3 DNS lookup of {ascii_domain} failed: {_reason(name, 'MX', exc)}"))
        records = list(answer)
        if not records:
            # RFC 5321 §5.1: no MX records → the domain is its own implicit MX, preference 0.
            targets = [(0, name)]
        elif len(records) == 1 and records[0].exchange == dns.name.root:
            # RFC 7505 §3: a lone MX whose exchange is "." (null MX; the RFC says
            # preference 0, a lone "." at another preference can mean nothing else).
            return _failed(permanent(
                f"556 5.1.10 recipient domain {ascii_domain} accepts no mail (null MX, RFC 7505)"))
        else:
            targets = self._order(records)
        found = await asyncio.gather(*(self._host(pref, target, deadline) for pref, target in targets))
        hosts: list[MailHost] = []
        seen: set[str] = set()
        failures: list[str] = []
        for host_list, failure in found:
            failures += failure
            for host in host_list:
                if host.address not in seen:  # two exchangers on one address: try it once
                    seen.add(host.address)
                    hosts.append(host)
        if hosts:
            return MxAnswer(tuple(hosts))  # a target that failed to resolve is skipped
        if failures:
            return _failed(temporary(f"451 4.4.3 DNS lookup of {ascii_domain} failed: {failures[0]}"))
        if not records:
            # RFC 5321 §5.1: the implicit MX is unusable (no MX, A or AAAA): the domain
            # has no way to receive mail, and says so authoritatively, so bounce.
            return _failed(permanent(
                f"550 5.1.2 recipient domain {ascii_domain} has no MX, A or AAAA record"))
        # MX records exist, so the domain means to receive mail: an exchanger without
        # an address is most likely a zone being changed. Retry rather than bounce.
        return _failed(temporary(f"451 4.4.4 no address for any mail exchanger of {ascii_domain}"))

    def _order(self, records: list) -> list[tuple[int, dns.name.Name]]:
        """RFC 5321 §5.1: by preference, equal preferences in random order; usable targets only.

        Skips the root (a "." next to other MX records, which RFC 7505 §3 forbids)
        and what is not a host name (§5.1: the exchange is a domain name, RFC 1035
        §3.3.9 a host): IP literals, bytes DNS text must escape. Keeps each target
        once, at its best preference.
        """
        best: dict[dns.name.Name, int] = {}
        for record in records:
            target = record.exchange
            if target == dns.name.root or not _is_host_name(target):
                continue
            best[target] = min(record.preference, best.get(target, record.preference))
        # Servers shuffle records: start from a fixed order so the result depends on rng alone.
        canonical = sorted(best.items(), key=lambda item: (item[1], item[0]))
        ordered = sorted(canonical, key=lambda item: (item[1], self._rng.random()))
        return [(pref, target) for target, pref in ordered[:MAX_MX_TARGETS]]

    async def _host(self, preference: int, target: dns.name.Name,
                    deadline: float) -> tuple[list[MailHost], list[str]]:
        """The A then AAAA addresses of one target, and the failures. RFC 5321 §5.1:
        a host's addresses are tried "in the order presented" by DNS; which family
        comes first it leaves to us: IPv4, as most receivers are best reached there.

        A target CNAME'd elsewhere is followed (RFC 2181 §10.3 forbids it, but
        refusing would only lose mail). NXDOMAIN or no data is no address, not a failure.
        """
        results = await asyncio.gather(self._addresses(target, dns.rdatatype.A, deadline),
                                       self._addresses(target, dns.rdatatype.AAAA, deadline))
        name = target.to_text(omit_final_dot=True).lower()
        hosts = [MailHost(name, address, preference) for addresses, _ in results for address in addresses]
        return hosts, [failure for _, failure in results if failure]

    async def _addresses(self, target: dns.name.Name, rdtype: dns.rdatatype.RdataType,
                         deadline: float) -> tuple[list[str], str | None]:
        try:
            answer = await self._resolve(target, rdtype, deadline)
        except dns.resolver.NXDOMAIN:
            return [], None
        except dns.exception.DNSException as exc:
            return [], _reason(target, dns.rdatatype.to_text(rdtype), exc)
        # 0.0.0.0 and :: mean "this host" to the connecting side: never a mail server.
        return [rd.address for rd in answer if not ipaddress.ip_address(rd.address).is_unspecified], None

    async def _resolve(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType,
                       deadline: float) -> dns.resolver.Answer:
        """One query with what is left of the lookup's deadline; NODATA is an empty answer.

        Raises dnspython's exceptions (NXDOMAIN, NoNameservers, LifetimeTimeout...).
        """
        left = max(deadline - asyncio.get_running_loop().time(), 0.0)
        return await self._resolver.resolve(name, rdtype, raise_on_no_answer=False, search=False,
                                            lifetime=left)


def _a_label(domain: str) -> str:
    """The lower-case A-label form of ``domain`` without the trailing dot (UTS 46, IDNA 2008).

    Raises ValueError for anything that is not a host name: empty or too-long
    labels, characters outside letters, digits and hyphens, IP addresses.
    """
    try:
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii").removesuffix(".")
    except UnicodeError as exc:  # idna.IDNAError is one
        raise ValueError(str(exc) or "cannot be converted to an A-label") from None
    try:
        ipaddress.ip_address(ascii_domain)
    except ValueError:
        return ascii_domain
    # RFC 5321 §4.1.3: an address is written as a bracketed literal, never as a domain.
    raise ValueError("an IP address is not a domain")


def _is_host_name(target: dns.name.Name) -> bool:
    text = target.to_text(omit_final_dot=True)
    if "\\" in text:  # a space, quote, control or non-ASCII byte: never in a host name
        return False
    try:
        ipaddress.ip_address(text.removeprefix("[").removesuffix("]"))
    except ValueError:
        return True
    return False


def _nameserver(entry: str) -> dns.nameserver.Do53Nameserver:
    """Parses ``"addr"``, ``"addr:port"``, ``"[v6]:port"`` or a bare IPv6 address.

    Checks that the address is an IP address (a name would need a resolver to find
    the resolver) and the port is 1-65535; raises ValueError naming the entry.
    """
    host, port = entry, "53"
    if entry.startswith("["):
        host, bracket, rest = entry[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"nameserver {entry!r}: expected [IPv6 address]:port")
        port = rest[1:] if rest else "53"
    elif entry.count(":") == 1:
        host, port = entry.split(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"nameserver {entry!r}: {host!r} is not an IP address") from None
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"nameserver {entry!r}: port {port!r} is not a number from 1 to 65535")
    return dns.nameserver.Do53Nameserver(host, int(port))


def _reason(name: dns.name.Name, rdtype: str, exc: dns.exception.DNSException) -> str:
    """One short phrase for a failed query, without dnspython's long sentences."""
    what = f"{name.to_text(omit_final_dot=True)}/{rdtype}"
    if isinstance(exc, dns.exception.Timeout):
        return f"{what}: timed out"
    if isinstance(exc, dns.resolver.NoNameservers):
        said = "; ".join(f"{server} answered {error}" for server, _tcp, _port, error, _response
                         in exc.kwargs.get("errors") or ())
        return f"{what}: {said or 'no nameserver answered'}"
    return f"{what}: {exc}"
