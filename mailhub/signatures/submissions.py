"""Recent document submissions and their signature outcome, from the usage ledger
(what ``mailhub documents list`` shows the IT department)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Engine

from mailhub.models import QueueRecipient, UsageEvent
from mailhub.signatures.outcome import SignatureOutcome


@dataclass(frozen=True)
class Submission:
    at: datetime
    official: str | None
    unit: str | None
    outcome: str            # signed-valid, signed-invalid, unsigned
    signer: str             # "" when unsigned
    accepted: bool          # False: refused (the reason says why)
    queue_id: str | None    # the queued message, when accepted
    recipients: tuple[str, ...]  # while the queue still holds the message ([queue] retention_days)
    reason: str             # the refusal's reply, "" when accepted


def recent_submissions(engine: Engine, since: datetime, *, outcome: str | None = None,
                       official: str | None = None, limit: int = 200) -> list[Submission]:
    """Document submissions since ``since``, newest first, at most ``limit``."""
    ev = UsageEvent.__table__.c
    query = select(ev.at, ev.kind, ev.official_email, ev.unit_code, ev.signature, ev.signer, ev.message_id,
                   ev.reason).where(ev.signature.is_not(None), ev.at >= since)
    if outcome:
        query = query.where(ev.signature == outcome)
    if official:
        query = query.where(ev.official_email == official.lower())
    query = query.order_by(ev.at.desc(), ev.id.desc()).limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        ids = [r.message_id for r in rows if r.message_id]
        rc = QueueRecipient.__table__.c
        recipients: dict[str, list[str]] = {}
        for start in range(0, len(ids), 500):
            for message_id, rcpt in conn.execute(select(rc.message_id, rc.rcpt)
                                                 .where(rc.message_id.in_(ids[start:start + 500]))):
                recipients.setdefault(message_id, []).append(rcpt)
    return [Submission(at=r.at, official=r.official_email, unit=r.unit_code, outcome=r.signature,
                       signer=r.signer or "", accepted=r.kind != "refused", queue_id=r.message_id,
                       recipients=tuple(sorted(recipients.get(r.message_id, ()))),
                       reason="" if r.kind != "refused" else (r.reason or "")) for r in rows]


def outcome_counts(submissions: list[Submission]) -> dict[str, int]:
    counts = Counter(s.outcome for s in submissions)
    return {o.value: counts.get(o.value, 0) for o in SignatureOutcome}
