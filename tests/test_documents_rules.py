"""Which submissions are document submissions, and the signed_documents rule."""
from __future__ import annotations

import pytest

from mailhub.config import DocumentRuleConfig, config_from_mapping
from mailhub.errors import ConfigError
from mailhub.signatures.outcome import DocumentCheck, Signature
from mailhub.signatures.rules import document_mode
from policies.context import PolicyContext
from policies.documents import signed_documents

RULES = (DocumentRuleConfig(("vanban@ubnd.hanoi.gov.vn",), "require"),
         DocumentRuleConfig(("@ubnd.hanoi.gov.vn", "chutich@hanoi.gov.vn"), "record"))


@pytest.mark.parametrize("rcpts, mode", [
    (["vanban@ubnd.hanoi.gov.vn"], "require"),
    (["VanBan@UBND.Hanoi.gov.vn "], "require"),          # case and spaces ignored
    (["phong@ubnd.hanoi.gov.vn"], "record"),              # the domain's rule
    (["chutich@hanoi.gov.vn"], "record"),
    (["phong@ubnd.hanoi.gov.vn", "vanban@ubnd.hanoi.gov.vn"], "require"),  # the strictest wins
    (["an@hanoi.gov.vn"], None),                          # a parent domain is another domain
    (["x@sub.ubnd.hanoi.gov.vn"], None),                  # and so is a subdomain
    ([], None),
])
def test_document_mode(rcpts, mode):
    assert document_mode(RULES, rcpts) == mode


def config(**documents):
    return config_from_mapping({"domains": {"official": ["hanoi.gov.vn"]}, "documents": documents}, "t.toml")


@pytest.mark.parametrize("documents, message", [
    ({"rules": [{"recipients": []}]}, "documents.rules[0].recipients: at least one"),
    ({"rules": [{"recipients": ["VanBan@ubnd.hanoi.gov.vn"]}]}, "documents.rules[0].recipients: 'VanBan@"),
    ({"rules": [{"recipients": ["ubnd.hanoi.gov.vn"]}]}, "not a lower-case address or @domain"),
    ({"rules": [{"recipients": ["a@b.vn"]}, {"recipients": ["@vn"]}]}, "documents.rules[1].recipients: '@vn'"),
    ({"rules": [{"recipients": ["a@b.vn"], "mode": "refuse"}]}, "documents.rules[0].mode: expected one of"),
    ({"rules": [{"recipients": ["a@b.vn"], "mods": "require"}]}, "unknown key documents.rules[0].mods"),
])
def test_bad_rules_name_the_key(documents, message):
    with pytest.raises(ConfigError, match="t.toml: ") as caught:
        config(**documents)
    assert message in str(caught.value)


def test_require_without_the_rule_in_the_data_stage_is_refused_at_load():
    with pytest.raises(ConfigError, match="policies.data: a documents rule says \"require\""):
        config_from_mapping({"domains": {"official": ["hanoi.gov.vn"]},
                             "policies": {"data": ["message_size"]},
                             "documents": {"rules": [{"recipients": ["a@hanoi.gov.vn"], "mode": "require"}]}},
                            "t.toml")
    assert config(rules=[{"recipients": ["a@hanoi.gov.vn"]}]).documents.rules[0].mode == "record"


def signature(**kw) -> Signature:
    fields = dict(kind="pdf", where="cv.pdf", intact=True, trusted=True, valid_at_signing=True,
                  signer="CN=Nguyễn Văn An", signed_at="2026-11-21T08:00:00+00:00", problem="")
    return Signature(**(fields | kw))


def ctx(mode, check) -> PolicyContext:
    return PolicyContext(stage="data", sender=None, client_ip="127.0.0.1", mail_from="an@hanoi.gov.vn",
                         documents_mode=mode, documents=check)


BAD = signature(intact=False, problem="the document was changed after signing")


@pytest.mark.parametrize("mode, check, refused, text", [
    ("require", DocumentCheck((signature(),)), False, ""),
    ("require", DocumentCheck((BAD, signature())), False, ""),  # one valid signature is enough
    ("require", DocumentCheck(()), True, "must be digitally signed"),
    ("require", DocumentCheck((BAD,)), True, "the document was changed after signing"),
    ("record", DocumentCheck(()), False, ""),
    (None, None, False, ""),
])
def test_signed_documents_rule(mode, check, refused, text):
    verdict = signed_documents(ctx(mode, check))
    assert (verdict is not None and verdict.refused) is refused
    if refused:
        reply = verdict.smtp_reply()
        assert reply.startswith("550 5.7.1 ") and text in reply and reply.isascii()
        assert "chu ky so" in reply.lower()


def test_the_outcome_and_signer_of_a_check():
    assert DocumentCheck(()).outcome.value == "unsigned" and DocumentCheck(()).signer == ""
    assert DocumentCheck((BAD,)).outcome.value == "signed-invalid"
    mixed = DocumentCheck((signature(signer="CN=Other", trusted=False), signature()))
    assert (mixed.outcome.value, mixed.signer) == ("signed-valid", "CN=Nguyễn Văn An")


def test_every_problem_the_checkers_name_has_its_vietnamese_text():
    import re
    from pathlib import Path

    from policies.documents import _VI

    source = "".join(p.read_text(encoding="utf-8") for p in (Path(__file__).parents[1] / "mailhub" / "signatures").glob("*.py"))
    problems = set(re.findall(r'^[A-Z_]+ = "((?:the|a) [^"]+)"$', source, flags=re.M))
    assert len(problems) >= 10 and problems <= set(_VI), problems - set(_VI)
