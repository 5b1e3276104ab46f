"""When to try a deferred recipient again, and when to give up.

The rule is one pure function of the attempt count (:func:`retry_delay`); the
randomness it needs comes in as an argument, so a test can pin it. The
defaults follow Postfix: first retry after 5 minutes, doubling up to an hour,
give up after 5 days (``maximal_queue_lifetime``), warn the sender after 4
hours (``delay_warning_time``).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from mailhub.config import DeliveryConfig


def retry_delay(attempts: int, *, minimum: float, maximum: float, jitter: float, rand: float) -> timedelta:
    """The wait after the ``attempts``-th failed attempt.

    ``base = min(maximum, minimum × 2^(attempts − 1))`` seconds, then spread by
    ``± jitter × base``: ``delay = base × (1 + jitter × (2 × rand − 1))`` with
    ``rand`` in [0, 1). The spread keeps a burst of mail that failed together
    (a next hop restarting) from coming back together. ``attempts`` below 1
    counts as 1; the result is never shorter than ``minimum × (1 − jitter)``.
    """
    attempts = max(attempts, 1)
    base = min(maximum, minimum * 2.0 ** min(attempts - 1, 60))
    return timedelta(seconds=base * (1.0 + jitter * (2.0 * rand - 1.0)))


@dataclass(frozen=True)
class RetrySchedule:
    """The retry settings of ``[delivery]``, and the decision after a temporary failure."""

    min_seconds: float = 300.0
    max_seconds: float = 3600.0
    jitter: float = 0.2
    max_age: timedelta = timedelta(days=5)
    delay_warning: timedelta | None = timedelta(hours=4)

    @classmethod
    def from_config(cls, delivery: DeliveryConfig) -> "RetrySchedule":
        warning = delivery.delay_warning_hours
        return cls(delivery.retry_min_seconds, delivery.retry_max_seconds, delivery.retry_jitter,
                   timedelta(hours=delivery.max_age_hours),
                   timedelta(hours=warning) if warning > 0 else None)

    def next_attempt(self, attempts: int, queued_at: datetime, now: datetime, rand: float) -> datetime | None:
        """After the ``attempts``-th temporary failure at ``now`` of mail queued at
        ``queued_at``: when to try again, or ``None`` to give up (bounce).

        Gives up once the message is ``max_age`` old. A retry that would fall after
        that moment is moved to it, so the last attempt happens at the deadline
        rather than up to ``max_seconds`` before it.
        """
        deadline = queued_at + self.max_age
        if now >= deadline:
            return None
        delay = retry_delay(attempts, minimum=self.min_seconds, maximum=self.max_seconds,
                            jitter=self.jitter, rand=rand)
        return min(now + delay, deadline)

    def give_up_text(self) -> str:
        hours = self.max_age.total_seconds() / 3600
        span = f"{hours / 24:g} days" if hours >= 48 else f"{hours:g} hours"
        return f"554 5.4.7 delivery time expired: no success in {span}"
