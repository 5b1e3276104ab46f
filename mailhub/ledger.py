"""The usage ledger: one event per accepted message and one per refused attempt.

Scoring and reports read only this ledger (table ``usage_event``), never the
policies or the queue. Events are written in the same transaction as the
message they describe (see :mod:`mailhub.queue`).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from email.message import Message
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from mailhub.models import UsageEvent, UsageKind, utcnow

if TYPE_CHECKING:
    from mailhub.queue import AcceptedMessage


def accepted_event(m: "AcceptedMessage", at: datetime) -> dict:
    """The ledger line for an accepted message (kind ``email`` or ``invite_email``)."""
    return dict(at=at, kind=m.kind, official_email=m.official_email, unit_code=m.unit_code,
                message_id=m.id, recipients_internal=m.recipients_internal,
                recipients_external=m.recipients_external, size=len(m.data),
                policy=None, reason=None, client_ip=m.client_ip, signature=m.signature,
                signer=m.signer[:400] if m.signer else m.signer, to_self=m.to_self, automatic=m.automatic)


def refused_event(*, official_email: str | None, unit_code: str | None, policy: str,
                  reason: str, client_ip: str | None, signature: str | None = None,
                  signer: str | None = None) -> dict:
    """The ledger line for an attempt a policy refused (with its signature outcome when
    it was a document submission)."""
    return dict(at=utcnow(), kind=UsageKind.REFUSED.value, official_email=official_email, unit_code=unit_code,
                message_id=None, recipients_internal=0, recipients_external=0, size=0,
                policy=policy[:64], reason=reason[:1000], client_ip=client_ip, signature=signature,
                signer=signer[:400] if signer else signer, to_self=False, automatic=False)


_AUTOMATIC_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})


def mail_nature(mail_from: str, rcpts: Sequence[str], own_addresses: Iterable[str],
                headers: Message | None) -> tuple[bool, bool]:
    """``(to_self, automatic)`` for the ledger: every recipient is one of the sender's own
    addresses (``own_addresses``: their address, aliases and granted mailboxes), and the
    message is automatic: a null reverse path (a bounce), ``Auto-Submitted`` other than
    ``no`` (RFC 3834 §5), or ``Precedence: bulk|junk|list|auto_reply``. Scoring counts
    neither; the rate limits and the queue treat them like any other mail."""
    own = {a.lower() for a in own_addresses}
    to_self = bool(rcpts) and all(r.strip().lower() in own for r in rcpts)
    automatic = mail_from.strip() in ("", "<>")
    if headers is not None and not automatic:
        submitted = (headers.get("Auto-Submitted") or "").split(";")[0].strip().lower()
        precedence = (headers.get("Precedence") or "").strip().lower()
        automatic = submitted not in ("", "no") or precedence in _AUTOMATIC_PRECEDENCE
    return to_self, automatic


def sent_counts(engine: Engine, official_email: str, now: datetime) -> tuple[int, int]:
    """Messages the official had accepted in the last hour and the last day."""
    hour, day = now - timedelta(hours=1), now - timedelta(days=1)
    sent = (UsageEvent.official_email == official_email) & UsageEvent.kind.in_(
        (UsageKind.EMAIL.value, UsageKind.INVITE_EMAIL.value))
    with engine.connect() as conn:
        row = conn.execute(select(
            func.count().filter(UsageEvent.at > hour),
            func.count(),
        ).where(sent, UsageEvent.at > day)).one()
    return int(row[0]), int(row[1])
