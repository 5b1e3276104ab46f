"""Which submissions are document submissions: ``[[documents.rules]]`` matched against
the recipients. Pure functions."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from mailhub.errors import ConfigError

if TYPE_CHECKING:
    from mailhub.config import DocumentRuleConfig

_STRICTER = {"record": 1, "require": 2}


def document_mode(rules: Sequence[DocumentRuleConfig], rcpts: Iterable[str]) -> str | None:
    """The mode for a message to ``rcpts``: the strictest of the rules that name one of
    them (an address, or ``@domain`` for every address of that domain; case ignored),
    ``None`` when no rule does (the message is not checked)."""
    mode = None
    for rcpt in rcpts:
        address = rcpt.strip().lower()
        domain = "@" + address.rpartition("@")[2]
        for rule in rules:
            if address in rule.recipients or domain in rule.recipients:
                if mode is None or _STRICTER[rule.mode] > _STRICTER[mode]:
                    mode = rule.mode
    return mode


def check_rule_recipients(recipients: Sequence[str], key: str) -> None:
    """``ConfigError`` naming ``key`` unless every entry is a lower-case ``local@domain``
    or ``@domain`` and there is at least one."""
    if not recipients:
        raise ConfigError(f"{key}: at least one address or @domain is required")
    for entry in recipients:
        local, at, domain = entry.rpartition("@")
        if not at or "." not in domain or entry != entry.strip().lower() or " " in entry or "@" in local:
            raise ConfigError(f"{key}: {entry!r} is not a lower-case address or @domain "
                              "(e.g. \"vanban@ubnd.hanoi.gov.vn\" or \"@ubnd.hanoi.gov.vn\")")
