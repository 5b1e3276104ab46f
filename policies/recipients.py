"""Rules on each recipient, at ``RCPT TO`` (RFC 5321 §4.1.1.3)."""
from __future__ import annotations

from policies.addresses import AddressError, official_mailbox, parse_mailbox
from policies.context import PolicyContext
from policies.verdict import Verdict, defer, reject


def recipient_syntax(ctx: PolicyContext) -> Verdict | None:
    """The recipient is a plain valid address (:func:`policies.addresses.parse_mailbox`):
    no source route, ``%``, ``!``, quoted local part, IP literal, control character;
    the domain valid after IDNA. 553 5.1.3: bad destination mailbox address syntax
    (RFC 5321 §4.2.2, RFC 3463). The reason given is a fixed phrase, never the input."""
    try:
        parse_mailbox(ctx.rcpt or "")
    except AddressError as exc:
        return reject(553, "5.1.3", "Địa chỉ người nhận không hợp lệ.",
                      f"Invalid recipient address: {exc}.")
    return None


def _is_external(address: str, domains_cfg) -> bool:
    # An address that does not parse counts as external: fail closed even when
    # recipient_syntax is not in the list.
    return official_mailbox(address, domains_cfg) is None


def external_recipients(ctx: PolicyContext) -> Verdict | None:
    """Recipients outside the official domains, by ``limits.external_recipients``:
    ``"deny"`` refuses every one (550 5.7.1); ``"allow"`` accepts up to
    ``limits.max_external_recipients`` per message (0: no limit), then 452 4.5.3 so the
    client sends to the rest in another transaction (RFC 5321 §4.5.3.1.10)."""
    domains, limits = ctx.settings.domains, ctx.settings.limits
    if not _is_external(ctx.rcpt or "", domains):
        return None
    if limits.external_recipients == "deny":
        return reject(
            550, "5.7.1",
            "Không được gửi thư tới địa chỉ ngoài hệ thống thư điện tử của thành phố.",
            "Recipients outside the official city domains are not allowed.",
        )
    limit = limits.max_external_recipients
    count = 1 + sum(_is_external(r, domains) for r in ctx.rcpt_tos)
    if limit and count > limit:
        return defer(
            452, "4.5.3",
            f"Quá nhiều người nhận ngoài thành phố: tối đa {limit} mỗi thư.",
            f"Too many external recipients: at most {limit} per message.",
        )
    return None
