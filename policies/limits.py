"""Numeric limits: sending rate, message size, recipients per message.

Every limit read from ``[limits]`` means "no limit" when set to 0.
"""
from __future__ import annotations

from policies.context import PolicyContext
from policies.verdict import Verdict, defer, reject


def rate_limit(ctx: PolicyContext) -> Verdict | None:
    """At ``MAIL FROM``: the official has not yet reached ``limits.per_hour`` /
    ``limits.per_day`` accepted messages. Trusts ``ctx.usage`` (counted by the ledger).

    A temporary refusal, 451 4.7.1 (RFC 3463 X.7.1 "delivery not authorized"; 4xx so the
    client retries once the window has moved on).
    """
    limits = ctx.settings.limits
    if limits.per_hour and ctx.usage.sent_last_hour >= limits.per_hour:
        return defer(
            451, "4.7.1",
            f"Bạn đã gửi tới giới hạn {limits.per_hour} thư mỗi giờ; vui lòng thử lại sau.",
            f"Hourly limit of {limits.per_hour} messages reached; try again later.",
        )
    if limits.per_day and ctx.usage.sent_last_day >= limits.per_day:
        return defer(
            451, "4.7.1",
            f"Bạn đã gửi tới giới hạn {limits.per_day} thư mỗi ngày; vui lòng thử lại sau.",
            f"Daily limit of {limits.per_day} messages reached; try again later.",
        )
    return None


def _too_big(limit: int) -> Verdict:
    # 552 5.3.4: message too big for system (RFC 1870, RFC 3463)
    return reject(
        552, "5.3.4",
        f"Thư vượt quá kích thước tối đa {limit} byte.",
        f"Message exceeds the maximum size of {limit} bytes.",
    )


def declared_size(ctx: PolicyContext) -> Verdict | None:
    """At ``MAIL FROM``: the ``SIZE=`` the client declared (RFC 1870) is within
    ``limits.max_message_bytes``, so a message too big is refused before it is sent."""
    limit = ctx.settings.limits.max_message_bytes
    if limit and ctx.declared_size is not None and ctx.declared_size > limit:
        return _too_big(limit)
    return None


def message_size(ctx: PolicyContext) -> Verdict | None:
    """At end of ``DATA``: the received size (``ctx.size``) is within
    ``limits.max_message_bytes``; a client may declare no SIZE, or a false one."""
    limit = ctx.settings.limits.max_message_bytes
    if limit and ctx.size > limit:
        return _too_big(limit)
    return None


def recipient_count(ctx: PolicyContext) -> Verdict | None:
    """At ``RCPT TO``: fewer than ``limits.max_recipients`` are already accepted.

    452 4.5.3, as RFC 5321 §4.5.3.1.10 asks: the client sends the message to the
    recipients accepted so far, then the rest in another transaction.
    """
    limit = ctx.settings.limits.max_recipients
    if limit and len(ctx.rcpt_tos) >= limit:
        return defer(
            452, "4.5.3",
            f"Quá nhiều người nhận: tối đa {limit} người nhận mỗi thư.",
            f"Too many recipients: at most {limit} per message.",
        )
    return None
