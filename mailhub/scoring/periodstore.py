"""Open and closed scoring periods: a period's scores are recomputed on every request until HR
closes it; closing stores the results exactly as shown then, with the model and the holiday
calendar used, and who closed it and when. A closed period is read back from that snapshot,
whatever the configuration or the ledger say later.
"""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from mailhub.config import Config
from mailhub.db import write_transaction
from mailhub.errors import InputError
from mailhub.models import ScorePeriod, utcnow
from mailhub.scoring import engine as scoring_engine
from mailhub.scoring.modelfile import Holidays, ModelSet, load_holidays, load_model
from mailhub.scoring.results import PeriodScores
from mailhub.templating import VIETNAM
from policies.scoring.periods import Period, parse_period

_sp = ScorePeriod.__table__.c


def closed_scores(engine: Engine, period: Period) -> PeriodScores | None:
    with engine.connect() as conn:
        row = conn.execute(select(_sp.snapshot).where(_sp.label == period.label)).first()
    return PeriodScores.from_dict(json.loads(row[0])["scores"]) if row else None


def scores_for(engine: Engine, config: Config, period_text: str, *,
               now: datetime | None = None) -> PeriodScores:
    """The scores of the period ``period_text`` names: its snapshot if closed, else computed
    now with the model and holidays in force. A period that has not begun is an InputError."""
    now = now or utcnow()
    period = parse_period(period_text, today=now.astimezone(VIETNAM).date())
    frozen = closed_scores(engine, period)
    if frozen is not None:
        return frozen
    return _compute(engine, config, period, now)[0]


def close_period(engine: Engine, config: Config, period_text: str, closed_by: str, *,
                 now: datetime | None = None) -> PeriodScores:
    """Compute the period's scores one last time and freeze them. Only a period that is over
    can be closed, and only once (an InputError says who closed it and when)."""
    now = now or utcnow()
    today = now.astimezone(VIETNAM).date()
    period = parse_period(period_text, today=today)
    if not period.is_over(today):
        raise InputError(f"period {period.label}: ends {period.end:%d/%m/%Y}; it can be closed from "
                         f"{period.end + timedelta(days=1):%d/%m/%Y}")
    if not closed_by.strip():
        raise InputError("closed by: say who closes the period")
    existing = _closed_row(engine, period)
    if existing is not None:
        raise InputError(_already(period, *existing))
    scores, models, holidays = _compute(engine, config, period, now)
    scores = replace(scores, closed_at=now, closed_by=closed_by.strip())
    snapshot = {"scores": scores.to_dict(), "model": models.text,
                "holidays": {d.isoformat(): name for d, name in sorted(holidays.days.items())}}
    try:
        with write_transaction(engine) as conn:
            conn.execute(insert(ScorePeriod), [{
                "label": period.label, "start": period.start, "end": period.end, "closed_at": now,
                "closed_by": scores.closed_by, "model_version": scores.model_version,
                "snapshot": json.dumps(snapshot, ensure_ascii=False)}])
    except IntegrityError:  # closed by someone else meanwhile
        raise InputError(_already(period, *_closed_row(engine, period))) from None
    return scores


def _compute(engine: Engine, config: Config, period: Period,
             now: datetime) -> tuple[PeriodScores, ModelSet, Holidays]:
    """The period's scores now, with the model and holidays in force (returned too: closing
    keeps them with the results)."""
    models, holidays = load_model(config.scoring_model_path), load_holidays(config.holidays_path)
    scores = scoring_engine.compute(engine, period, models, holidays, now=now,
                                    grace=timedelta(minutes=config.scoring.rollup_grace_minutes))
    return scores, models, holidays


def _closed_row(engine: Engine, period: Period) -> tuple[str, datetime] | None:
    with engine.connect() as conn:
        row = conn.execute(select(_sp.closed_by, _sp.closed_at).where(_sp.label == period.label)).first()
    return tuple(row) if row else None


def _already(period: Period, by: str, at: datetime) -> str:
    return (f"period {period.label} was closed by {by} on "
            f"{at.astimezone(VIETNAM):%d/%m/%Y %H:%M}; its scores are final")


def closed_periods(engine: Engine) -> list[tuple[str, date, date, str, datetime, str]]:
    """(label, start, end, closed_by, closed_at, model_version) of every closed period."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(_sp.label, _sp.start, _sp.end, _sp.closed_by, _sp.closed_at, _sp.model_version)
            .order_by(_sp.start))]
