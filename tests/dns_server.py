"""A small real authoritative DNS server on 127.0.0.1 for tests.

It answers on UDP and TCP on one ephemeral port, each in a background thread,
from records the test gives it::

    with DnsServer({("example.org", "MX"): ["10 mx1.example.org."],
                    ("mx1.example.org", "A"): ["127.0.0.1"]}) as server:
        resolver = MxResolver([server.address])

It claims authority for every name (the AA flag, and the root's SOA in negative
answers so resolvers cache them for 60 s as RFC 2308 §5 says). A name with records
of other types answers NODATA, a name with none NXDOMAIN; ``servfail`` and ``drop``
make a name fail or go unanswered. UDP answers over 512 bytes (RFC 1035 §4.2.1;
dnspython sends no EDNS by default) come back empty with TC, so clients retry over TCP.
Like many real servers it sends the records of a set in random order (dnspython's
default when rendering), so tests must not rely on the order within one set.
"""
from __future__ import annotations

import errno
import socket
import socketserver
import struct
import threading

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

UDP_LIMIT = 512
MAX_CNAME_CHAIN = 8  # a CNAME loop in a test zone must not hang the server
_SOA = dns.rrset.from_text(dns.name.root, 60, "IN", "SOA", "ns.test. hostmaster.test. 1 3600 600 86400 60")


def _name(name: str) -> dns.name.Name:
    # Absolute with or without the trailing dot; dns.name.Name compares and hashes
    # case-insensitively, so keys need no lower-casing.
    return dns.name.from_text(name)


class DnsServer:
    """The server. ``queries`` lists every question received, as (lower-case name
    without trailing dot, type), e.g. ``("example.org", "MX")``, UDP and TCP alike."""

    def __init__(self, records: dict[tuple[str, str], list[str]] | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.queries: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._rrsets: dict[tuple[dns.name.Name, int], dns.rrset.RRset] = {}
        self._servfail: set[dns.name.Name] = set()
        self._drop: set[dns.name.Name] = set()
        self._stopping = threading.Event()
        self._servers: list[socketserver.BaseServer] = []
        self._threads: list[threading.Thread] = []
        for (name, rdtype), rdatas in (records or {}).items():
            self.add(name, rdtype, *rdatas)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def add(self, name: str, rdtype: str, *rdatas: str, ttl: int = 60) -> None:
        """Add records in zone-file syntax; names in them may omit the trailing dot."""
        rrset = dns.rrset.from_text_list(_name(name), ttl, "IN", rdtype, rdatas,
                                         origin=dns.name.root, relativize=False)
        with self._lock:
            key = (rrset.name, rrset.rdtype)
            if key in self._rrsets:
                self._rrsets[key].update(rrset)
            else:
                self._rrsets[key] = rrset

    def servfail(self, name: str) -> None:
        """Answer every question about ``name`` with SERVFAIL."""
        with self._lock:
            self._servfail.add(_name(name))

    def drop(self, name: str) -> None:
        """Never answer a question about ``name`` (the client times out)."""
        with self._lock:
            self._drop.add(_name(name))

    def start(self) -> DnsServer:
        self._stopping.clear()
        # UDP first on port 0, then TCP on the same port; another process may hold
        # that TCP port, so try again with a new one.
        for _ in range(50):
            udp = socketserver.UDPServer((self.host, 0), _UdpHandler)
            port = udp.server_address[1]
            try:
                tcp = _TcpServer((self.host, port), _TcpHandler)
            except OSError as exc:
                udp.server_close()
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue
            break
        else:
            raise RuntimeError("no port free for both UDP and TCP on 127.0.0.1")
        self.port = port
        for server in (udp, tcp):
            server.dns = self  # type: ignore[attr-defined]
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01},
                                      name=f"dns-{type(server).__name__}-{port}", daemon=True)
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopping.set()  # ends TCP connections left open (dropped questions)
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join()
        self._servers.clear()
        self._threads.clear()

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def reply(self, wire: bytes, tcp: bool) -> bytes | None:
        """The answer to one query in wire format, or None for no answer at all."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None  # not a DNS query: nothing a test needs answered
        if len(query.question) != 1:
            return None
        qname, rdtype = query.question[0].name, query.question[0].rdtype
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        with self._lock:
            self.queries.append((qname.to_text(omit_final_dot=True).lower(), dns.rdatatype.to_text(rdtype)))
            if qname in self._drop:
                return None
            if qname in self._servfail:
                response.set_rcode(dns.rcode.SERVFAIL)
            else:
                self._answer(response, qname, rdtype)
        wire = response.to_wire()
        if not tcp and len(wire) > UDP_LIMIT:
            # RFC 2181 §9: set TC only when the answer does not fit; an empty
            # truncated answer makes the client ask again over TCP.
            response.answer = []
            response.authority = []
            response.additional = []
            response.flags |= dns.flags.TC
            wire = response.to_wire()
        return wire

    def _answer(self, response: dns.message.Message, qname: dns.name.Name, rdtype: int) -> None:
        """Fill ``response`` (lock held): the records, CNAMEs followed inside the zone
        (RFC 1034 §4.3.2), NODATA or NXDOMAIN with the SOA (RFC 2308 §3)."""
        name = qname
        for _ in range(MAX_CNAME_CHAIN):
            rrset = self._rrsets.get((name, rdtype))
            if rrset is not None:
                response.answer.append(rrset)
                return
            cname = self._rrsets.get((name, dns.rdatatype.CNAME))
            if cname is None:
                break
            response.answer.append(cname)
            name = cname[0].target
        if not any(owner == name for owner, _ in self._rrsets):
            response.set_rcode(dns.rcode.NXDOMAIN)  # RFC 6604 §2: the rcode of the chain's end
        response.authority.append(_SOA)


class _UdpHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        reply = self.server.dns.reply(data, tcp=False)  # type: ignore[attr-defined]
        if reply is not None:
            sock.sendto(reply, self.client_address)


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True


class _TcpHandler(socketserver.BaseRequestHandler):
    """RFC 1035 §4.2.2: each message after a two-byte length; several per connection
    (RFC 7766 §6.2.1). A dropped question keeps the connection open and silent."""

    def handle(self) -> None:
        dns_server: DnsServer = self.server.dns  # type: ignore[attr-defined]
        sock: socket.socket = self.request
        sock.settimeout(0.05)
        buffer = b""
        while not dns_server._stopping.is_set():
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while len(buffer) >= 2 and len(buffer) >= 2 + (size := struct.unpack("!H", buffer[:2])[0]):
                message, buffer = buffer[2:2 + size], buffer[2 + size:]
                reply = dns_server.reply(message, tcp=True)
                if reply is not None:
                    sock.sendall(struct.pack("!H", len(reply)) + reply)
