"""MX resolution against a real authoritative DNS server on 127.0.0.1 (tests.dns_server).

No mock: dnspython's resolver sends real UDP and TCP queries to the test server.
"""
from __future__ import annotations

import random
import re
import time

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from mailhub.delivery.mx import MAX_MX_TARGETS, MailHost, MxAnswer, MxResolver
from tests.dns_server import DnsServer


@pytest.fixture
def server():
    with DnsServer() as running:
        yield running


def resolver(server: DnsServer, **options) -> MxResolver:
    options.setdefault("timeout", 2.0)
    options.setdefault("rng", random.Random(0))
    return MxResolver([server.address], **options)


def fill(server: DnsServer, records: dict[tuple[str, str], list[str]]) -> None:
    for (name, rdtype), rdatas in records.items():
        server.add(name, rdtype, *rdatas)


# ---- the test server itself ------------------------------------------------------

SERVER_ZONE = {
    ("example.org", "A"): ["127.0.0.1"],
    ("example.org", "TXT"): ["hello"],
    ("alias.example.org", "CNAME"): ["example.org"],
}


@pytest.mark.parametrize("qname, rdtype, rcode, answers", [
    ("example.org", "A", dns.rcode.NOERROR, 1),
    ("EXAMPLE.Org.", "A", dns.rcode.NOERROR, 1),           # case-insensitive, trailing dot
    ("example.org", "MX", dns.rcode.NOERROR, 0),           # NODATA
    ("nowhere.example.org", "A", dns.rcode.NXDOMAIN, 0),
    ("alias.example.org", "A", dns.rcode.NOERROR, 2),      # the CNAME, then the A it leads to
    ("alias.example.org", "MX", dns.rcode.NOERROR, 1),     # the CNAME, then NODATA
    ("broken.example.org", "A", dns.rcode.SERVFAIL, 0),
])
def test_server_answers_like_an_authoritative_server(server, qname, rdtype, rcode, answers):
    fill(server, SERVER_ZONE)
    server.servfail("broken.example.org")
    response = dns.query.udp(dns.message.make_query(qname, rdtype), server.host, timeout=2, port=server.port)
    assert response.rcode() == rcode
    assert sum(len(rrset) for rrset in response.answer) == answers
    assert response.flags & dns.flags.AA
    assert server.queries == [(qname.lower().rstrip("."), rdtype)]


def test_server_truncates_big_udp_answers_and_answers_them_over_tcp(server):
    fill(server, big_zone())
    query = dns.message.make_query("big.example", "MX")
    over_udp = dns.query.udp(query, server.host, timeout=2, port=server.port)
    assert over_udp.flags & dns.flags.TC and not over_udp.answer
    over_tcp = dns.query.tcp(query, server.host, timeout=2, port=server.port)
    assert not over_tcp.flags & dns.flags.TC
    assert len(over_tcp.answer[0]) == 30


# ---- lookups that find hosts -----------------------------------------------------

FOUND = [
    pytest.param("example.org", {
        ("example.org", "MX"): ["30 c.example.org", "10 a.example.org", "20 b.example.org"],
        ("a.example.org", "A"): ["127.0.0.1"], ("b.example.org", "A"): ["127.0.0.2"],
        ("c.example.org", "A"): ["127.0.0.3"],
    }, [("a.example.org", "127.0.0.1", 10), ("b.example.org", "127.0.0.2", 20),
        ("c.example.org", "127.0.0.3", 30)], id="preference-order"),
    pytest.param("example.org", {
        ("example.org", "MX"): ["10 mx.example.org"],
        ("mx.example.org", "AAAA"): ["2001:db8::25"], ("mx.example.org", "A"): ["127.0.0.1"],
    }, [("mx.example.org", "127.0.0.1", 10), ("mx.example.org", "2001:db8::25", 10)], id="ipv4-before-ipv6"),
    pytest.param("example.org", {
        ("example.org", "MX"): ["10 mx.example.org"],
        ("mx.example.org", "A"): ["0.0.0.0", "127.0.0.5"], ("mx.example.org", "AAAA"): ["::"],
    }, [("mx.example.org", "127.0.0.5", 10)], id="unspecified-addresses-dropped"),
    pytest.param("example.org", {
        ("example.org", "MX"): ["10 gone.example.org", "20 nodata.example.org", "30 mx.example.org"],
        ("nodata.example.org", "TXT"): ["no address here"], ("mx.example.org", "A"): ["127.0.0.1"],
    }, [("mx.example.org", "127.0.0.1", 30)], id="targets-without-address-skipped"),
    pytest.param("example.org", {
        ("example.org", "MX"): ["10 broken.example.org", "20 mx.example.org"],
        ("broken.example.org", "A"): ["127.0.0.66"], ("mx.example.org", "A"): ["127.0.0.1"],
    }, [("mx.example.org", "127.0.0.1", 20)], id="servfailing-target-skipped"),
    pytest.param("example.org", {
        ("example.org", "MX"): ["10 alias.example.org"],
        ("alias.example.org", "CNAME"): ["real.example.net"], ("real.example.net", "A"): ["127.0.0.7"],
    }, [("alias.example.org", "127.0.0.7", 10)], id="cnamed-target"),
    pytest.param("example.org", {
        ("example.org", "A"): ["127.0.0.8"], ("example.org", "AAAA"): ["::1"], ("example.org", "TXT"): ["x"],
    }, [("example.org", "127.0.0.8", 0), ("example.org", "::1", 0)], id="implicit-mx"),
    pytest.param("EXAMPLE.org.", {
        ("example.org", "MX"): ["10 MX.Example.ORG"], ("mx.example.org", "A"): ["127.0.0.1"],
    }, [("mx.example.org", "127.0.0.1", 10)], id="upper-case-and-trailing-dot"),
    pytest.param("example.org", {
        ("example.org", "MX"): ["10 127.0.0.9", "20 [127.0.0.10]", "25 odd\\032name.example.org",
                                "30 mx.example.org"],
        ("127.0.0.9", "A"): ["127.0.0.9"], ("[127.0.0.10]", "A"): ["127.0.0.10"],
        ("odd\\032name.example.org", "A"): ["127.0.0.11"], ("mx.example.org", "A"): ["127.0.0.1"],
    }, [("mx.example.org", "127.0.0.1", 30)], id="targets-not-host-names-skipped"),
    pytest.param("example.org", {
        ("example.org", "MX"): ["0 .", "10 mx.example.org"],
        (".", "A"): ["127.0.0.66"], ("mx.example.org", "A"): ["127.0.0.1"],
    }, [("mx.example.org", "127.0.0.1", 10)], id="root-target-beside-others-skipped"),
    pytest.param("example.org", {
        ("example.org", "MX"): ["10 mx.example.org", "20 mx.example.org", "30 other.example.org"],
        ("mx.example.org", "A"): ["127.0.0.1"], ("other.example.org", "A"): ["127.0.0.1", "127.0.0.2"],
    }, [("mx.example.org", "127.0.0.1", 10), ("other.example.org", "127.0.0.2", 30)],
        id="each-target-and-address-once"),
]


@pytest.mark.parametrize("domain, records, expected", FOUND)
async def test_lookup_finds_hosts(server, domain, records, expected):
    fill(server, records)
    server.servfail("broken.example.org")
    answer = await resolver(server).lookup(domain)
    assert answer == MxAnswer(tuple(MailHost(*host) for host in expected))


async def test_equal_preferences_are_shuffled_by_the_rng(server):
    fill(server, {
        ("example.org", "MX"): ["10 a.example.org", "10 b.example.org", "20 c.example.org"],
        ("a.example.org", "A"): ["127.0.0.1"], ("b.example.org", "A"): ["127.0.0.2"],
        ("c.example.org", "A"): ["127.0.0.3"],
    })

    async def order(seed: int) -> tuple[str, ...]:
        answer = await resolver(server, rng=random.Random(seed)).lookup("example.org")
        return tuple(host.name for host in answer.hosts)

    orders = {await order(seed) for seed in range(20)}
    assert orders == {("a.example.org", "b.example.org", "c.example.org"),
                      ("b.example.org", "a.example.org", "c.example.org")}
    assert await order(7) == await order(7)


@pytest.mark.parametrize("domain, a_label", [
    ("Bücher.example", "xn--bcher-kva.example"),
    ("straße.example", "xn--strae-oqa.example"),   # UTS 46 non-transitional, not IDNA 2003's "strasse"
])
async def test_idn_domain_is_queried_as_a_label(server, domain, a_label):
    fill(server, {(a_label, "MX"): [f"10 mx.{a_label}"], (f"mx.{a_label}", "A"): ["127.0.0.1"]})
    answer = await resolver(server).lookup(domain)
    assert answer.hosts == (MailHost(f"mx.{a_label}", "127.0.0.1", 10),)
    assert server.queries[0] == (a_label, "MX")


def big_zone() -> dict[tuple[str, str], list[str]]:
    """30 MX records with long names: about 1,400 bytes, far over UDP's 512."""
    zone = {("big.example", "MX"): [f"{n} mail-exchanger-number-{n:02}.big.example" for n in range(1, 31)]}
    zone.update({(f"mail-exchanger-number-{n:02}.big.example", "A"): [f"127.0.1.{n}"] for n in range(1, 31)})
    return zone


async def test_truncated_answer_is_fetched_over_tcp(server):
    fill(server, big_zone())
    answer = await resolver(server).lookup("big.example")
    assert answer.hosts == tuple(MailHost(f"mail-exchanger-number-{n:02}.big.example", f"127.0.1.{n}", n)
                                 for n in range(1, MAX_MX_TARGETS + 1))
    assert server.queries.count(("big.example", "MX")) == 2  # over UDP (truncated), then TCP


# ---- lookups that fail -----------------------------------------------------------

E = re.escape
FAILED = [
    pytest.param("nowhere.example", {}, True,
                 E("550 5.1.2 recipient domain nowhere.example does not exist (DNS: NXDOMAIN)"), id="nxdomain"),
    pytest.param("example.org", {("example.org", "MX"): ["0 ."], (".", "A"): ["127.0.0.66"]}, True,
                 E("556 5.1.10 recipient domain example.org accepts no mail (null MX, RFC 7505)"), id="null-mx"),
    pytest.param("example.org", {("example.org", "TXT"): ["v=spf1 -all"]}, True,
                 E("550 5.1.2 recipient domain example.org has no MX, A or AAAA record"), id="no-mx-no-address"),
    pytest.param("broken.example.org", {("broken.example.org", "MX"): ["10 mx.example.org"]}, False,
                 E("451 4.4.3 DNS lookup of broken.example.org failed: broken.example.org/MX: ") + ".*SERVFAIL",
                 id="servfail"),
    pytest.param("example.org", {
        ("example.org", "MX"): ["10 gone.example.org", "20 nodata.example.org"],
        ("nodata.example.org", "TXT"): ["x"]}, False,
        E("451 4.4.4 no address for any mail exchanger of example.org"), id="no-target-has-address"),
    pytest.param("example.org", {
        ("example.org", "MX"): ["10 127.0.0.9"], ("127.0.0.9", "A"): ["127.0.0.9"]}, False,
        E("451 4.4.4 no address for any mail exchanger of example.org"), id="only-ip-literal-target"),
    pytest.param("example.org", {
        ("example.org", "MX"): ["10 broken.example.org", "20 gone.example.org"]}, False,
        E("451 4.4.3 DNS lookup of example.org failed: broken.example.org/A: ") + ".*SERVFAIL",
        id="only-target-servfails"),
    pytest.param("broken.example.org", {}, False,
                 E("451 4.4.3 DNS lookup of broken.example.org failed: broken.example.org/MX: ") + ".*SERVFAIL",
                 id="servfail-without-records"),
]


@pytest.mark.parametrize("domain, records, is_permanent, reply", FAILED)
async def test_lookup_fails(server, domain, records, is_permanent, reply):
    fill(server, records)
    server.servfail("broken.example.org")
    answer = await resolver(server).lookup(domain)
    assert answer.hosts == ()
    assert answer.error is not None and answer.error.permanent is is_permanent
    assert re.fullmatch(reply, answer.error.reply), answer.error.reply


@pytest.mark.parametrize("domain", ["ex ample.org", "", ".", "a..example", "-x.example", "x" * 64 + ".example",
                                    "foo_bar.example", "127.0.0.1", "[127.0.0.1]", "exa\nmple.org"])
async def test_bad_domain_is_permanent_and_not_queried(server, domain):
    answer = await resolver(server).lookup(domain)
    assert answer.hosts == () and answer.error is not None and answer.error.permanent
    assert answer.error.reply.startswith("553 5.1.2 recipient domain ")
    assert "\n" not in answer.error.reply
    assert server.queries == []


async def test_dropped_query_is_temporary_within_the_timeout(server):
    server.drop("example.org")
    started = time.monotonic()
    answer = await resolver(server, timeout=0.5).lookup("example.org")
    elapsed = time.monotonic() - started
    assert answer.error is not None and not answer.error.permanent
    assert answer.error.reply == "451 4.4.3 DNS lookup of example.org failed: example.org/MX: timed out"
    assert 0.4 < elapsed < 1.5


async def test_dropped_target_does_not_lose_the_others(server):
    fill(server, {("example.org", "MX"): ["10 slow.example.org", "20 mx.example.org"],
                  ("mx.example.org", "A"): ["127.0.0.1"]})
    server.drop("slow.example.org")
    started = time.monotonic()
    answer = await resolver(server, timeout=0.5).lookup("example.org")
    assert answer == MxAnswer((MailHost("mx.example.org", "127.0.0.1", 20),))
    assert time.monotonic() - started < 1.5
    assert ("slow.example.org", "A") in server.queries


# ---- cache ---------------------------------------------------------------------

CACHE_ZONE = {
    ("example.org", "MX"): ["10 mx.example.org"], ("mx.example.org", "A"): ["127.0.0.1"],
    ("implicit.example", "A"): ["127.0.0.2"],
}


@pytest.mark.parametrize("domain", ["example.org", "implicit.example", "nowhere.example"])
@pytest.mark.parametrize("cache", [True, False])
async def test_second_lookup_comes_from_the_cache(server, domain, cache):
    fill(server, CACHE_ZONE)
    mx = resolver(server, cache=cache)
    first = await mx.lookup(domain)
    asked = len(server.queries)
    assert asked >= 1
    assert await mx.lookup(domain) == first
    assert len(server.queries) == (asked if cache else 2 * asked)


async def test_cache_honours_a_zero_ttl(server):
    server.add("example.org", "MX", "10 mx.example.org", ttl=0)
    server.add("mx.example.org", "A", "127.0.0.1", ttl=0)
    mx = resolver(server)
    await mx.lookup("example.org")
    asked = len(server.queries)
    await mx.lookup("example.org")
    # asked again for the records with TTL 0; the AAAA NODATA stays cached for the SOA's 60 s
    assert server.queries[asked:] == [("example.org", "MX"), ("mx.example.org", "A")]


# ---- configuration ---------------------------------------------------------------

@pytest.mark.parametrize("entry", ["dns.example", "1.2.3.4:99999", "1.2.3.4:", "1.2.3.4:x", "[::1",
                                   "[::1]x", "[::1]:", "[dns.example]:53", "1.2.3.4:0", ""])
def test_bad_nameserver_entry_is_named(entry):
    with pytest.raises(ValueError, match=E(f"nameserver {entry!r}")):
        MxResolver(["127.0.0.1", entry])


@pytest.mark.parametrize("entry", ["192.0.2.53", "192.0.2.53:5353", "[2001:db8::53]:53", "[::1]", "2001:db8::53"])
def test_good_nameserver_entries(entry):
    MxResolver([entry])


@pytest.mark.parametrize("options", [{"nameservers": "127.0.0.1"}, {"timeout": 0}, {"timeout": -1.0}])
def test_bad_options_raise(options):
    with pytest.raises(ValueError):
        MxResolver(**options)
