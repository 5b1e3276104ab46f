"""Rules on the envelope sender, at ``MAIL FROM`` (RFC 5321 §4.1.1.2).

The city's rule (letter 2033/UBND-CNN): officials use only the city mail system, so an
official sends only as their own address, in an official domain.
"""
from __future__ import annotations

from policies.addresses import (AddressError, canonical_domain, canonical_set, official_mailbox,
                                parse_mailbox)
from policies.context import PolicyContext
from policies.verdict import Verdict, reject


def _not_official(domains_cfg) -> Verdict:
    # A-label form: SMTP replies are ASCII (RFC 5321 §4.2), and the folded U-label of
    # a Vietnamese domain would be another domain.
    shown = ", ".join(canonical_domain(d) for d in domains_cfg.official[:3])
    # 553: mailbox name not allowed (RFC 5321 §4.2.2); 5.7.1: not authorised (RFC 3463)
    return reject(
        553, "5.7.1",
        f"Cán bộ chỉ được gửi thư từ địa chỉ thuộc tên miền chính thức của thành phố ({shown}).",
        f"Officials may send only from an official city domain ({shown}).",
    )


def sender_domain_official(ctx: PolicyContext) -> Verdict | None:
    """The envelope sender is a valid address in an official domain.

    Trusts nothing about ``ctx.mail_from``: parsed by :func:`policies.addresses.parse_mailbox`
    (refuses ``<>``, source routes, ``%``/``!`` hacks, quoted local parts, IP literals,
    trailing dots, several ``@``) and compared in IDNA A-label form, so look-alike
    domains (``evilhochiminhcity.gov.vn``, ``hochiminhcity.gov.vn.evil.com``, Cyrillic
    letters) are not official.
    """
    domains = ctx.settings.domains
    if official_mailbox(ctx.mail_from, domains) is None:
        return _not_official(domains)
    return None


def sender_owned(ctx: PolicyContext) -> Verdict | None:
    """The authenticated official may use this envelope sender.

    Trusts ``ctx.sender`` (built by the front end from a successful AUTH and the
    directory); checks that the canonical ``ctx.mail_from`` is one of
    ``ctx.sender.may_send_as`` (own address, aliases, unit mailboxes granted).
    """
    if ctx.sender is None:
        # 530 5.7.0: authentication required (RFC 4954 §6)
        return reject(530, "5.7.0", "Cần đăng nhập (xác thực) trước khi gửi thư.",
                      "Authentication required.")
    try:
        address = parse_mailbox(ctx.mail_from).address
    except AddressError:
        address = None
    if address is None or address not in canonical_set(ctx.sender.may_send_as):
        return reject(
            553, "5.7.1",
            "Bạn chỉ được gửi thư bằng địa chỉ của chính mình hoặc hộp thư đã được cấp quyền.",
            "You may send only as your own address or a mailbox granted to you.",
        )
    return None
