"""Which policies exist, per SMTP stage, and the ordered lists built from ``[policies]``.

Like a Postfix restriction list: the configuration names the rules of each stage in
order; :func:`build_stage` turns the names into functions for
:func:`policies.runner.evaluate`. Adding a rule is one function plus one line here.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from mailhub.errors import ConfigError
from policies.classification import classification
from policies.context import PolicyContext
from policies.documents import signed_documents
from policies.headers import header_from_matches, no_impersonation
from policies.limits import declared_size, message_size, rate_limit, recipient_count
from policies.recipients import external_recipients, recipient_syntax
from policies.sender import sender_domain_official, sender_owned
from policies.verdict import Verdict

if TYPE_CHECKING:
    from mailhub.config import PoliciesConfig

Policy = Callable[[PolicyContext], "Verdict | None"]

STAGES = ("mail", "rcpt", "data")

POLICIES: dict[str, dict[str, Policy]] = {
    # MAIL FROM (RFC 5321 §4.1.1.2)
    "mail": {
        "sender_domain_official": sender_domain_official,
        "sender_owned": sender_owned,
        "rate_limit": rate_limit,
        "declared_size": declared_size,
    },
    # RCPT TO (RFC 5321 §4.1.1.3), once per recipient
    "rcpt": {
        "recipient_syntax": recipient_syntax,
        "recipient_count": recipient_count,
        "external_recipients": external_recipients,
    },
    # end of DATA (RFC 5321 §4.1.1.4), with the header section parsed
    "data": {
        "message_size": message_size,
        "header_from_matches": header_from_matches,
        "no_impersonation": no_impersonation,
        "classification": classification,
        "signed_documents": signed_documents,
    },
}


def check_policy_names(policies_cfg: "PoliciesConfig", source: str) -> None:
    """Raise ConfigError naming the file and key for an unknown or repeated policy name.

    A rule configured in the wrong stage is unknown there: each rule reads what its stage
    provides (a data rule at ``mail`` would see no headers).
    """
    for stage in STAGES:
        seen: set[str] = set()
        for name in getattr(policies_cfg, stage):
            if name not in POLICIES[stage]:
                known = ", ".join(POLICIES[stage])
                hint = "".join(f"; '{name}' is a {other} policy" for other in STAGES
                               if name in POLICIES[other])
                raise ConfigError(
                    f"{source}: policies.{stage}: unknown policy '{name}' (known: {known}){hint}")
            if name in seen:
                raise ConfigError(f"{source}: policies.{stage}: policy '{name}' is listed twice")
            seen.add(name)


def build_stage(policies_cfg: "PoliciesConfig", stage: str) -> list[tuple[str, Policy]]:
    """The ordered (name, function) list of ``stage`` (``"mail"``, ``"rcpt"``, ``"data"``).

    Trusts that the config was checked by :func:`check_policy_names` at load.
    """
    if stage not in POLICIES:
        raise ValueError(f"unknown SMTP stage {stage!r} (known: {', '.join(STAGES)})")
    return [(name, POLICIES[stage][name]) for name in getattr(policies_cfg, stage)]
