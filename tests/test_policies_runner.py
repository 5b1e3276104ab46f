"""The registry of policy names and the fail-closed runner."""
from __future__ import annotations

import logging
import threading
import tomllib
from concurrent.futures import ThreadPoolExecutor

import pytest

from mailhub.config import DEFAULT_CONFIG, PoliciesConfig, config_from_mapping, load_config
from mailhub.errors import ConfigError
from policies.registry import POLICIES, build_stage, check_policy_names
from policies.runner import evaluate, evaluate_async
from policies.verdict import Action, defer, permit, reject
from tests.test_policies import HOSTILE_SENDERS, make_ctx


# ---- registry -----------------------------------------------------------------------------

def test_shipped_config_names_every_policy_in_order():
    shipped = tomllib.loads(DEFAULT_CONFIG.read_text("utf-8"))["policies"]
    defaults = PoliciesConfig()
    for stage, names in POLICIES.items():
        assert tuple(shipped[stage]) == getattr(defaults, stage) == tuple(names)
    config = load_config(DEFAULT_CONFIG)
    assert [n for n, _ in build_stage(config.policies, "data")] == list(POLICIES["data"])


@pytest.mark.parametrize("stage,names,expected", [
    ("mail", ["sender_owned", "nope"], "x.toml: policies.mail: unknown policy 'nope' (known: "),
    ("rcpt", ["Recipient_Syntax"], "policies.rcpt: unknown policy 'Recipient_Syntax'"),
    ("mail", ["message_size"], "'message_size' is a data policy"),
    ("data", ["classification", "classification"], "policies.data: policy 'classification' is listed twice"),
])
def test_unknown_policy_names_the_key(stage, names, expected):
    with pytest.raises(ConfigError) as info:
        config_from_mapping({"policies": {stage: names}}, source="x.toml")
    assert expected in str(info.value)
    assert str(info.value).startswith("x.toml: ")


def test_check_policy_names_lists_known_names():
    with pytest.raises(ConfigError) as info:
        check_policy_names(PoliciesConfig(rcpt=("nope",)), "cfg")
    assert str(info.value) == ("cfg: policies.rcpt: unknown policy 'nope' (known: "
                               "recipient_syntax, recipient_count, external_recipients)")


def test_build_stage_follows_the_configured_order():
    cfg = PoliciesConfig(mail=("rate_limit", "sender_owned"), data=())
    assert build_stage(cfg, "mail") == [("rate_limit", POLICIES["mail"]["rate_limit"]),
                                        ("sender_owned", POLICIES["mail"]["sender_owned"])]
    assert build_stage(cfg, "data") == []
    with pytest.raises(ValueError):
        build_stage(cfg, "helo")


# ---- evaluate -----------------------------------------------------------------------------

def recorder(calls: list[str], name: str, verdict=None):
    def policy(ctx):
        calls.append(name)
        return verdict
    return (name, policy)


def boom(ctx):
    raise KeyError("secret internal detail")


REFUSE = reject(550, "5.7.1", "Từ chối", "Refused")
LATER = defer(451, "4.7.1", "Thử lại sau", "Later")


@pytest.mark.parametrize("plan,expected_calls,expected_name,expected_code", [
    ([None, None, None], ["a", "b", "c"], "", 250),
    ([None, REFUSE, LATER], ["a", "b"], "b", 550),
    ([LATER, REFUSE, None], ["a"], "a", 451),
    ([None, permit(), REFUSE], ["a", "b"], "b", 250),  # PERMIT ends the list
    ([], [], "", 250),
])
def test_evaluate_order_and_first_decision(plan, expected_calls, expected_name, expected_code):
    calls: list[str] = []
    policies = [recorder(calls, name, v) for name, v in zip("abc", plan)]
    verdict = evaluate(policies, make_ctx())
    assert calls == expected_calls
    assert (verdict.policy, verdict.code) == (expected_name, expected_code)


@pytest.mark.parametrize("bad", [boom, lambda ctx: "550 no", lambda ctx: 1 / 0])
def test_evaluate_fails_closed(bad, caplog):
    calls: list[str] = []
    policies = [recorder(calls, "first"), ("broken", bad), recorder(calls, "never")]
    with caplog.at_level(logging.ERROR, logger="mailhub.policies"):
        verdict = evaluate(policies, make_ctx())
    assert (verdict.action, verdict.code, verdict.status, verdict.policy) == (
        Action.DEFER, 451, "4.3.0", "broken")
    assert calls == ["first"]
    reply = verdict.smtp_reply()
    assert reply.isascii() and reply.startswith("451 4.3.0 ") and "try later" in reply
    assert "secret internal detail" not in reply and "KeyError" not in reply
    assert any(r.name == "mailhub.policies" and r.exc_info for r in caplog.records)


def test_evaluate_settings_missing_fails_closed():
    verdict = evaluate(build_stage(PoliciesConfig(), "mail"), make_ctx(settings=None))
    assert (verdict.code, verdict.status, verdict.policy) == (451, "4.3.0", "sender_domain_official")


@pytest.mark.parametrize("mail_from", HOSTILE_SENDERS)
def test_real_mail_stage_names_the_refusing_rule(mail_from):
    verdict = evaluate(build_stage(PoliciesConfig(), "mail"), make_ctx(mail_from=mail_from))
    assert (verdict.code, verdict.policy) == (553, "sender_domain_official")
    assert verdict.smtp_reply().isascii()


@pytest.mark.parametrize("stage", ["mail", "rcpt", "data"])
def test_real_stage_accepts_good_submission(stage):
    verdict = evaluate(build_stage(PoliciesConfig(), stage), make_ctx(stage))
    assert (verdict.action, verdict.policy) == (Action.PERMIT, "")


# ---- evaluate_async -----------------------------------------------------------------------

async def test_evaluate_async_answers():
    verdict = await evaluate_async(build_stage(PoliciesConfig(), "mail"),
                                   make_ctx(mail_from="x@evil.example"), timeout=5)
    assert (verdict.code, verdict.policy) == (553, "sender_domain_official")


async def test_evaluate_async_raising_policy_fails_closed():
    verdict = await evaluate_async([("broken", boom)], make_ctx(), timeout=5)
    assert (verdict.code, verdict.status, verdict.policy) == (451, "4.3.0", "broken")


async def test_evaluate_async_timeout_names_the_slow_policy(caplog):
    release = threading.Event()
    calls: list[str] = []

    def slow(ctx):
        release.wait(10)
        return None

    policies = [recorder(calls, "quick"), ("slow", slow), recorder(calls, "after")]
    try:
        with caplog.at_level(logging.ERROR, logger="mailhub.policies"):
            verdict = await evaluate_async(policies, make_ctx(), timeout=0.05)
    finally:
        release.set()
    assert (verdict.action, verdict.code, verdict.status, verdict.policy) == (
        Action.DEFER, 451, "4.3.0", "slow")
    assert verdict.smtp_reply().isascii() and verdict.smtp_reply().startswith("451 4.3.0 ")
    assert "timed out" in caplog.text


async def test_evaluate_async_timeout_before_any_policy_started():
    release = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as busy:
        busy.submit(release.wait, 10)
        try:
            verdict = await evaluate_async([("never", boom)], make_ctx(), timeout=0.05, executor=busy)
        finally:
            release.set()
    assert (verdict.code, verdict.status, verdict.policy) == (451, "4.3.0", "timeout")


async def test_evaluate_async_with_a_closed_executor_fails_closed():
    closed = ThreadPoolExecutor(max_workers=1)
    closed.shutdown()
    verdict = await evaluate_async([("a", lambda ctx: None)], make_ctx(), timeout=1, executor=closed)
    assert (verdict.code, verdict.status) == (451, "4.3.0")
