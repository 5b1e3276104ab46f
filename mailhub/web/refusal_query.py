"""Refused attempts read from the usage ledger (``usage_event`` rows of kind ``refused``), for
the console's refused-mail page. SQLAlchemy Core, SQLite and PostgreSQL; reads only.

Each refusal row was written by :func:`mailhub.ledger.refused_event` with the name of the
policy that refused and the reply the client got. The official's name and the unit's name
come from the directory when the address and the unit are still there.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from mailhub.models import Official, Unit, UsageEvent, UsageKind

_ev, _off, _unit = UsageEvent.__table__, Official.__table__, Unit.__table__


@dataclass(frozen=True)
class RefusalFilter:
    """Which refusals: ``start`` <= at < ``end`` (aware), and when given, one policy and one
    official (their address, lower-case)."""

    start: datetime
    end: datetime
    policy: str | None = None
    official: str | None = None


@dataclass(frozen=True)
class Refusal:
    at: datetime
    official: str | None  # None: not signed in
    official_name: str | None
    unit: str | None
    unit_name: str | None
    policy: str
    reason: str
    client_ip: str | None


def _where(f: RefusalFilter, with_policy: bool = True) -> list:
    conds = [_ev.c.kind == UsageKind.REFUSED.value, _ev.c.at >= f.start, _ev.c.at < f.end]
    if f.official is not None:
        conds.append(_ev.c.official_email == f.official)  # stored lower-case (the directory's address)
    if with_policy and f.policy is not None:
        conds.append(_ev.c.policy == f.policy)
    return conds


def counts_by_policy(engine: Engine, f: RefusalFilter) -> list[tuple[str, int]]:
    """Refusals per policy in the period (and of the official, when given), most first.
    The policy filter is left out: the counts show how the refusals are spread."""
    with engine.connect() as conn:
        rows = conn.execute(select(_ev.c.policy, func.count()).where(*_where(f, with_policy=False))
                            .group_by(_ev.c.policy)).all()
    return sorted(((p or "unknown", int(n)) for p, n in rows), key=lambda r: (-r[1], r[0]))


def refusals(engine: Engine, f: RefusalFilter, offset: int, limit: int) -> tuple[list[Refusal], int]:
    """One page of the matching refusals, newest first, and how many match in all."""
    where = _where(f)
    query = (select(_ev.c.at, _ev.c.official_email, _off.c.full_name, _ev.c.unit_code, _unit.c.name,
                    _ev.c.policy, _ev.c.reason, _ev.c.client_ip)
             .select_from(_ev.outerjoin(_off, _off.c.email == _ev.c.official_email)
                          .outerjoin(_unit, _unit.c.code == _ev.c.unit_code))
             .where(*where).order_by(_ev.c.at.desc(), _ev.c.id.desc()).offset(offset).limit(limit))
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(_ev).where(*where)).scalar_one()
        rows = conn.execute(query).all()
    return [Refusal(r.at, r.official_email, r.full_name, r.unit_code, r.name, r.policy or "unknown", r.reason or "",
                    r.client_ip) for r in rows], total
