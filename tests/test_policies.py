"""The policy rules, table-driven: hostile cases refused, ordinary mail passes."""
from __future__ import annotations

import email
import re
import email.policy
from dataclasses import replace
from email.message import Message

import pytest

from mailhub.config import ClassificationConfig, DomainsConfig, LimitsConfig, PolicySettings
from mailhub.errors import ConfigError
from policies.addresses import AddressError, check_domains, is_official, parse_mailbox
from policies.context import PolicyContext, Sender, Usage
from policies.registry import POLICIES
from policies.verdict import Action, Verdict

ME = "an.nguyen@hochiminhcity.gov.vn"
UNIT_BOX = "vanphong@sotttt.hochiminhcity.gov.vn"
BOSS = "giamdoc@hochiminhcity.gov.vn"
SENDER = Sender(login=ME, full_name="Nguyễn Văn An", unit="STTTT",
                may_send_as=frozenset({ME, UNIT_BOX}))
DIRECTORY = {
    ME: "Nguyễn Văn An",
    UNIT_BOX: "Văn phòng Sở TTTT",
    BOSS: "Trần Thị Bình",
    # a namesake in another unit: sharing a name is not impersonation
    "an.nguyen2@q1.hochiminhcity.gov.vn": "Nguyễn Văn An",
}
SETTINGS = PolicySettings(DomainsConfig(), LimitsConfig(), ClassificationConfig())


def message(*fields: str, parse_policy=email.policy.SMTP) -> Message:
    """A parsed header section from raw field lines (bytes on the wire are UTF-8)."""
    raw = ("\r\n".join(fields) + "\r\n\r\nbody\r\n").encode("utf-8")
    return email.message_from_bytes(raw, policy=parse_policy)


GOOD_HEADERS = (f"From: =?utf-8?b?{'Tmd1eeG7hW4gVsSDbiBBbg=='}?= <{ME}>",
                "To: someone@example.org", "Subject: Giấy mời họp giao ban")


def make_ctx(stage: str = "mail", *, settings: PolicySettings = SETTINGS, **kw) -> PolicyContext:
    """A context for a good submission by SENDER; override any field by keyword."""
    defaults = dict(stage=stage, sender=SENDER, client_ip="192.0.2.10", mail_from=ME,
                    directory_names=DIRECTORY, settings=settings)
    if stage in ("rcpt", "data"):
        defaults["rcpt_tos"] = ("b@hochiminhcity.gov.vn",)
    if stage == "rcpt":
        defaults["rcpt"] = "c@quan1.hochiminhcity.gov.vn"
    if stage == "data":
        defaults["headers"] = message(*GOOD_HEADERS)
        defaults["size"] = 2048
    defaults.update(kw)
    return PolicyContext(**defaults)


def with_limits(**kw) -> PolicySettings:
    return replace(SETTINGS, limits=replace(SETTINGS.limits, **kw))


def assert_refused(verdict: Verdict | None, code: int, status: str) -> None:
    assert verdict is not None, "expected a refusal"
    assert verdict.refused
    assert (verdict.code, verdict.status) == (code, status)
    reply = verdict.smtp_reply()
    assert reply.isascii() and reply.startswith(f"{code} {status} ")
    assert len(reply.encode()) + 2 <= 512  # RFC 5321 §4.5.3.1.5 reply line
    assert verdict.text_vi != verdict.text_en


# ---- a good submission passes every rule ---------------------------------------------

@pytest.mark.parametrize("stage,name", [(s, n) for s in POLICIES for n in POLICIES[s]])
def test_good_submission_passes_every_rule(stage, name):
    assert POLICIES[stage][name](make_ctx(stage)) is None


# ---- sender_domain_official -------------------------------------------------------------

HOSTILE_SENDERS = [
    "",  # null sender <>
    "<>",
    "an@hochiminhcity.gov.vn.evil.com",
    "an@evilhochiminhcity.gov.vn",
    "an@hochiminhcity.gov.vn.",
    "an@sotttt.hochiminhcity.gov.vn.",
    "an@hоchiminhcity.gov.vn",  # Cyrillic о
    "an@hochiminhcitу.gov.vn",  # Cyrillic у
    "an@ｈochiminhcity.gov.vn",  # full-width h
    "an@xn--hchiminhcity-4fk.gov.vn",  # the A-label of the Cyrillic look-alike
    "a%b@hochiminhcity.gov.vn",
    "user%evil.com@hochiminhcity.gov.vn",
    "@a.example,@b.example:user@hochiminhcity.gov.vn",
    "@evil.com:an@hochiminhcity.gov.vn",
    "evil.com!an@hochiminhcity.gov.vn",
    '"an@evil.com"@hochiminhcity.gov.vn',
    '"an"@hochiminhcity.gov.vn',
    "an@[1.2.3.4]",
    "an@[IPv6:2001:db8::1]",
    "an@1.2.3.4",
    "an@evil.com@hochiminhcity.gov.vn",
    "an@hochiminhcity.gov.vn@evil.com",
    "an@@hochiminhcity.gov.vn",
    "anhochiminhcity.gov.vn",
    "@hochiminhcity.gov.vn",
    "an@",
    "an@hochiminhcity..gov.vn",
    "an@-sotttt.hochiminhcity.gov.vn",
    "an@so_tttt.hochiminhcity.gov.vn",
    ".an@hochiminhcity.gov.vn",
    "an.@hochiminhcity.gov.vn",
    "a..n@hochiminhcity.gov.vn",
    "an @hochiminhcity.gov.vn",
    "an\r\n@hochiminhcity.gov.vn",
    "an\x00@hochiminhcity.gov.vn",
    "ân@hochiminhcity.gov.vn",  # UTF-8 local part without SMTPUTF8
    "an@gov.vn",
    "an@hochiminhcity.gov",
    "an@hanoi.gov.vn",
    "an@gmail.com",
    "a" * 65 + "@hochiminhcity.gov.vn",
    "an@" + "x" * 64 + ".hochiminhcity.gov.vn",
    "an@hochiminhcity.gov.vn\u200b",  # zero-width space
]


@pytest.mark.parametrize("mail_from", HOSTILE_SENDERS)
def test_sender_domain_official_refuses(mail_from):
    verdict = POLICIES["mail"]["sender_domain_official"](make_ctx(mail_from=mail_from))
    assert_refused(verdict, 553, "5.7.1")
    assert "official city domain" in verdict.text_en


@pytest.mark.parametrize("mail_from", [
    ME,
    f"<{ME}>",
    "AN.Nguyen@HoChiMinhCity.Gov.VN",
    "vanphong@sotttt.hochiminhcity.gov.vn",
    "x@a.b.quan1.hochiminhcity.gov.vn",
    "first.last+tag@hochiminhcity.gov.vn",
])
def test_sender_domain_official_accepts(mail_from):
    assert POLICIES["mail"]["sender_domain_official"](make_ctx(mail_from=mail_from)) is None


def test_sender_domain_official_compares_idna_forms():
    domains = DomainsConfig(official=("sở.vn",), subdomains_of=("thànhphố.vn",))
    settings = replace(SETTINGS, domains=domains)
    rule = POLICIES["mail"]["sender_domain_official"]
    for ok in ("a@sở.vn", "a@SỞ.vn", "a@xn--s-lym.vn", "a@q1.thànhphố.vn"):
        assert rule(make_ctx(mail_from=ok, settings=settings)) is None, ok
    for bad in ("a@so.vn", "a@thànhphố.vn", "a@sở.vn.evil.vn", "a@thanhpho.vn"):
        assert_refused(rule(make_ctx(mail_from=bad, settings=settings)), 553, "5.7.1")


# ---- sender_owned -------------------------------------------------------------------------

@pytest.mark.parametrize("mail_from", [ME, ME.upper(), UNIT_BOX, f"<{UNIT_BOX}>"])
def test_sender_owned_accepts_own_and_granted(mail_from):
    assert POLICIES["mail"]["sender_owned"](make_ctx(mail_from=mail_from)) is None


@pytest.mark.parametrize("mail_from", [
    BOSS, "", "an.nguyen@hochiminhcity.gov.vn.", "an.nguyen%x@hochiminhcity.gov.vn",
    "@x.vn:an.nguyen@hochiminhcity.gov.vn", "an.nguyen@sotttt.hochiminhcity.gov.vn",
])
def test_sender_owned_refuses_other_addresses(mail_from):
    verdict = POLICIES["mail"]["sender_owned"](make_ctx(mail_from=mail_from))
    assert_refused(verdict, 553, "5.7.1")
    assert "granted" in verdict.text_en


def test_sender_owned_needs_authentication():
    assert_refused(POLICIES["mail"]["sender_owned"](make_ctx(sender=None)), 530, "5.7.0")


# ---- rate_limit, declared_size, message_size ---------------------------------------------

@pytest.mark.parametrize("hour,day,limits,expected", [
    (0, 0, {}, None),
    (199, 999, {}, None),
    (200, 0, {}, "Hourly limit of 200"),
    (5, 1000, {}, "Daily limit of 1000"),
    (3, 3, {"per_hour": 3, "per_day": 10}, "Hourly limit of 3"),
    (10**6, 10**6, {"per_hour": 0, "per_day": 0}, None),  # 0: no limit
    (10**6, 3, {"per_hour": 0}, None),
])
def test_rate_limit(hour, day, limits, expected):
    ctx = make_ctx(usage=Usage(sent_last_hour=hour, sent_last_day=day), settings=with_limits(**limits))
    verdict = POLICIES["mail"]["rate_limit"](ctx)
    if expected is None:
        assert verdict is None
    else:
        assert_refused(verdict, 451, "4.7.1")
        assert verdict.action is Action.DEFER and expected in verdict.text_en


@pytest.mark.parametrize("declared,limit,refused", [
    (None, 1000, False), (1000, 1000, False), (1001, 1000, True), (10**12, 0, False), (0, 1000, False),
])
def test_declared_size(declared, limit, refused):
    ctx = make_ctx(declared_size=declared, settings=with_limits(max_message_bytes=limit))
    verdict = POLICIES["mail"]["declared_size"](ctx)
    if refused:
        assert_refused(verdict, 552, "5.3.4")
    else:
        assert verdict is None


@pytest.mark.parametrize("size,limit,refused", [
    (1000, 1000, False), (1001, 1000, True), (26214401, 26214400, True), (10**12, 0, False),
])
def test_message_size(size, limit, refused):
    ctx = make_ctx("data", size=size, settings=with_limits(max_message_bytes=limit))
    verdict = POLICIES["data"]["message_size"](ctx)
    if refused:
        assert_refused(verdict, 552, "5.3.4")
    else:
        assert verdict is None


# ---- recipient_syntax, recipient_count, external_recipients ------------------------------

# valid syntax, just not official: fine as recipients
NOT_OFFICIAL = {
    "an@hochiminhcity.gov.vn.evil.com", "an@evilhochiminhcity.gov.vn", "an@hоchiminhcity.gov.vn",
    "an@hochiminhcitу.gov.vn", "an@xn--hchiminhcity-4fk.gov.vn", "an@gov.vn",
    "an@hochiminhcity.gov", "an@hanoi.gov.vn", "an@gmail.com"}
INVALID = [h for h in HOSTILE_SENDERS if h not in NOT_OFFICIAL]


@pytest.mark.parametrize("rcpt", INVALID + [None, "postmaster"])
def test_recipient_syntax_refuses(rcpt):
    verdict = POLICIES["rcpt"]["recipient_syntax"](make_ctx("rcpt", rcpt=rcpt))
    assert_refused(verdict, 553, "5.1.3")


@pytest.mark.parametrize("rcpt", [
    "someone@example.org", "<someone@example.org>", "x@bộ-công-an.vn", "x@xn--b-cng-an-63a1467e.vn", ME,
])
def test_recipient_syntax_accepts(rcpt):
    assert POLICIES["rcpt"]["recipient_syntax"](make_ctx("rcpt", rcpt=rcpt)) is None


@pytest.mark.parametrize("accepted,limit,refused", [
    (0, 100, False), (99, 100, False), (100, 100, True), (3, 3, True), (500, 0, False),
])
def test_recipient_count(accepted, limit, refused):
    rcpts = tuple(f"r{i}@hochiminhcity.gov.vn" for i in range(accepted))
    ctx = make_ctx("rcpt", rcpt_tos=rcpts, settings=with_limits(max_recipients=limit))
    verdict = POLICIES["rcpt"]["recipient_count"](ctx)
    if refused:
        assert_refused(verdict, 452, "4.5.3")
        assert verdict.action is Action.DEFER
    else:
        assert verdict is None


EXTERNAL = ("x@gmail.com", "y@example.org")
INTERNAL = ("a@hochiminhcity.gov.vn", "b@q1.hochiminhcity.gov.vn")


@pytest.mark.parametrize("rcpt,already,limits,expected", [
    ("z@example.net", EXTERNAL + INTERNAL, {}, None),
    ("c@hochiminhcity.gov.vn", INTERNAL, {"external_recipients": "deny"}, None),
    ("z@example.net", (), {"external_recipients": "deny"}, (550, "5.7.1")),
    ("z@hochiminhcity.gov.vn.evil.com", (), {"external_recipients": "deny"}, (550, "5.7.1")),
    ("bad%route@hochiminhcity.gov.vn", (), {"external_recipients": "deny"}, (550, "5.7.1")),
    ("z@example.net", EXTERNAL, {"max_external_recipients": 2}, (452, "4.5.3")),
    ("z@example.net", EXTERNAL[:1] + INTERNAL, {"max_external_recipients": 2}, None),
    ("c@hochiminhcity.gov.vn", EXTERNAL, {"max_external_recipients": 1}, None),  # internal: no count
    ("z@example.net", EXTERNAL * 50, {"max_external_recipients": 0}, None),  # 0: no limit
])
def test_external_recipients(rcpt, already, limits, expected):
    ctx = make_ctx("rcpt", rcpt=rcpt, rcpt_tos=already, settings=with_limits(**limits))
    verdict = POLICIES["rcpt"]["external_recipients"](ctx)
    if expected is None:
        assert verdict is None
    else:
        assert_refused(verdict, *expected)


# ---- the address parser itself ------------------------------------------------------------

@pytest.mark.parametrize("text", INVALID)
def test_parse_mailbox_reason_never_echoes_input(text):
    with pytest.raises(AddressError) as info:
        parse_mailbox(text)
    reason = str(info.value)
    assert reason.isascii() and "hochiminhcity" not in reason and "evil" not in reason


@pytest.mark.parametrize("text,address", [
    ("An.Nguyen@HOCHIMINHCITY.gov.vn", "an.nguyen@hochiminhcity.gov.vn"),
    ("<x@Sở.Hochiminhcity.gov.vn>", "x@xn--s-lym.hochiminhcity.gov.vn"),
])
def test_parse_mailbox_canonical_form(text, address):
    assert parse_mailbox(text).address == address


@pytest.mark.parametrize("domain,official", [
    ("hochiminhcity.gov.vn", True), ("a.b.hochiminhcity.gov.vn", True),
    ("evilhochiminhcity.gov.vn", False), ("hochiminhcity.gov.vn.evil.com", False),
    ("gov.vn", False), ("vn", False),
])
def test_is_official_by_labels(domain, official):
    assert is_official(domain, DomainsConfig()) is official


@pytest.mark.parametrize("domains,key", [
    (DomainsConfig(official=("hochiminhcity.gov.vn.",)), "domains.official[0]"),
    (DomainsConfig(subdomains_of=("ok.vn", "bad_name.vn")), "domains.subdomains_of[1]"),
    (DomainsConfig(official=("[10.0.0.1]",)), "domains.official[0]"),
])
def test_check_domains_names_the_key(domains, key):
    with pytest.raises(ConfigError, match=rf"^cfg\.toml: {re.escape(key)}: "):
        check_domains(domains, "cfg.toml")
    check_domains(DomainsConfig(), "cfg.toml")
