"""The queue gauges, computed from the database at scrape time.

The queue is shared by every node, so these are cluster-wide: each node reports
the same numbers (aggregate them with ``max``, not ``sum``).
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from mailhub.metrics import Gauge, Registry
from mailhub.models import QueuedMessage, QueueRecipient, RecipientState

WAITING = (RecipientState.QUEUED.value, RecipientState.SENDING.value, RecipientState.DEFERRED.value)


def queue_gauges(engine: Engine, now: datetime | None = None) -> str:
    """Exposition text of ``mailhub_queue_recipients{state}`` and
    ``mailhub_queue_oldest_age_seconds``. Raises SQLAlchemyError when the
    database does not answer. Runs two queries; call it off the event loop."""
    with engine.connect() as conn:
        counts = dict(conn.execute(
            select(QueueRecipient.state, func.count()).group_by(QueueRecipient.state)).all())
        oldest = conn.execute(
            select(func.min(QueuedMessage.created_at))
            .join(QueueRecipient, QueueRecipient.message_id == QueuedMessage.id)
            .where(QueueRecipient.state.in_(WAITING))).scalar()
    registry = Registry()
    recipients = Gauge("mailhub_queue_recipients",
                       "Recipients in the queue by state, cluster-wide (every node reports the same).",
                       ["state"], registry=registry)
    for state in RecipientState:  # every state, also at zero; other values are not ours to show
        recipients.labels(state=state.value).set(counts.get(state.value, 0))
    age = Gauge("mailhub_queue_oldest_age_seconds",
                "Seconds since the oldest message with a recipient still waiting "
                "(queued, sending or deferred) was accepted; 0 when none waits. Cluster-wide.",
                registry=registry)
    if oldest is not None:
        if oldest.tzinfo is None:  # stored as UTC (mailhub.models.utcnow)
            oldest = oldest.replace(tzinfo=timezone.utc)
        age.set(max(0.0, ((now or datetime.now(timezone.utc)) - oldest).total_seconds()))
    return registry.render()
