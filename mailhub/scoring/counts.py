"""Per-official counts for one scoring period, from the usage ledger and the meetings.

Days are Vietnam days (UTC+7, no daylight saving): a period ``[start, end]`` is the instants
from ``start`` 00:00 to ``end`` + 1 day 00:00 in Asia/Ho_Chi_Minh, both ends inclusive as days.
All counting is done by the database (``GROUP BY``): a year of the ledger may hold tens of
millions of events, so no event row is ever loaded into Python.

What counts (the HR model, :data:`policies.scoring.model.DEFAULT_MODEL`):

- I1 ``sent / (sent + refused_outside)``: ``sent`` is accepted mail of kind ``email`` that is
  neither only to the sender's own addresses (``to_self``) nor automatic; ``refused_outside``
  is attempts refused by :data:`OUTSIDE_RULES` (sending from a non-official address or from
  someone else's). Invitations (``invite_email``) count under I3, not here.
- I2 active days: Vietnam days with at least one counted ``sent`` message, capped at the
  working days of the period.
- I3 ``meetings_electronic / meetings``: meetings created in the period with the official as
  secretary. Electronic: status ``sent``, or ``cancelled`` with at least one attendee whose
  email or SMS state is set — the invitation went out before the cancellation (a draft
  cancelled before issuing never touches those states). Drafts are not electronic.
- I4 ``documents_valid / documents``: document submissions (a ledger event with a signature
  outcome), accepted or refused; valid is ``signed-valid``.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import Date, and_, case, cast, exists, func, literal_column, or_, select, type_coerce
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from mailhub.models import (ChannelState, Meeting, MeetingAttendee, MeetingStatus, MessageKind, UsageEvent,
                            UsageKind)
from mailhub.scoring.results import Activity
from mailhub.signatures.outcome import SignatureOutcome
from mailhub.templating import VIETNAM  # Vietnam's wall clock, UTC+7 without daylight saving
from policies.scoring.formula import Counts

# Refusals that mean "tried to send as someone this login may not be": the attempt was real
# mail that did not go through the city system as the official (I1's denominator).
OUTSIDE_RULES = ("sender_domain_official", "sender_owned")

SIGNED_VALID = SignatureOutcome.VALID.value
_NOTHING = Counts(0, 0)  # an indicator with nothing counted: it does not apply

_ev = UsageEvent.__table__.c
_mt = Meeting.__table__.c
_at = MeetingAttendee.__table__.c


@dataclass(frozen=True)
class OfficialCounts:
    """What one official did in one period; see the module docstring for what each counts."""

    official: str
    sent: int = 0
    refused_outside: int = 0
    active_days: frozenset[date] = field(default_factory=frozenset)
    documents: int = 0
    documents_valid: int = 0
    meetings: int = 0
    meetings_electronic: int = 0


def period_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """The aware instants ``[from, until)`` covering Vietnam days ``start`` to ``end``."""
    if end < start:
        raise ValueError(f"period ends {end} before it starts {start}")
    return (datetime.combine(start, time(), VIETNAM),
            datetime.combine(end + timedelta(days=1), time(), VIETNAM))


def vietnam_day(column: ColumnElement, dialect: str) -> ColumnElement[date]:
    """SQL for the Vietnam calendar day of a stored UTC datetime.

    SQLite keeps SQLAlchemy's ``DateTime`` as UTC text without an offset
    (``2026-11-21 16:59:59.999999``, see sqlmodel's ``UTCDateTime``), which ``date()`` reads
    as UTC. Only the first 19 characters (whole seconds) are given to ``date()``: it rounds
    the fraction to milliseconds, which would move 16:59:59.9995 and later to the next day
    while the period's bounds, compared as text, keep the event in this one. PostgreSQL has
    ``timestamptz``. Zone and modifier are literals, not bound parameters, so PostgreSQL
    sees the same expression in ``SELECT`` and ``GROUP BY``.
    """
    if dialect == "sqlite":
        day = func.date(func.substr(column, 1, 19), literal_column("'+7 hours'"))
    elif dialect == "postgresql":
        day = cast(func.timezone(literal_column("'Asia/Ho_Chi_Minh'"), column), Date)
    else:
        raise ValueError(f"scoring counts support SQLite and PostgreSQL, not {dialect}")
    # Date's result processing turns SQLite's 'YYYY-MM-DD' text into a date.
    return type_coerce(day, Date)


def daily_counts(conn: Connection, start: date, end: date) -> list[tuple[str, date, int, int, int, int]]:
    """``(official, day, sent, refused_outside, documents, documents_valid)`` for every
    official and Vietnam day from ``start`` to ``end`` with anything to count (what each
    field counts: the module docstring). One ``GROUP BY``; events without an official
    (unauthenticated refusals) count for nobody."""
    since, until = period_bounds(start, end)
    counted = and_(_ev.kind == MessageKind.EMAIL.value, _ev.to_self.is_(False), _ev.automatic.is_(False))
    refused = and_(_ev.kind == UsageKind.REFUSED.value, _ev.policy.in_(OUTSIDE_RULES))
    day = vietnam_day(_ev.at, conn.dialect.name).label("day")
    query = (select(_ev.official_email, day,
                    func.count().filter(counted), func.count().filter(refused),
                    func.count().filter(_ev.signature.is_not(None)),
                    func.count().filter(_ev.signature == SIGNED_VALID))
             .where(_ev.at >= since, _ev.at < until, _ev.official_email.is_not(None),
                    counted | refused | _ev.signature.is_not(None))
             .group_by(_ev.official_email, day))
    return [tuple(row) for row in conn.execute(query)]


def meetings_by_secretary(conn: Connection, start: date, end: date) -> dict[str, tuple[int, int]]:
    """Meetings created in Vietnam days ``start`` to ``end``, per secretary: (organised,
    with electronic invitations)."""
    since, until = period_bounds(start, end)
    electronic = or_(
        _mt.status == MeetingStatus.SENT.value,
        and_(_mt.status == MeetingStatus.CANCELLED.value,
             exists().where(_at.meeting_id == _mt.id,
                            or_(_at.email_state != ChannelState.NONE.value,
                                _at.sms_state != ChannelState.NONE.value))))
    query = (select(_mt.secretary_email, func.count(), func.sum(case((electronic, 1), else_=0)))
             .where(_mt.created_at >= since, _mt.created_at < until).group_by(_mt.secretary_email))
    return {secretary: (count, int(electronic_count or 0))
            for secretary, count, electronic_count in conn.execute(query)}


def counts_for_period(engine: Engine, start: date, end: date) -> dict[str, OfficialCounts]:
    """Counts for every official with something counted, or a meeting created as secretary,
    in Vietnam days ``start`` to ``end`` (inclusive), keyed by official address: the plain
    per-official form of :func:`daily_counts` and :func:`meetings_by_secretary` (the scoring
    engine reads the same figures through the monthly rollup)."""
    found: dict[str, dict] = defaultdict(lambda: {"active_days": set(), "sent": 0, "refused_outside": 0,
                                                  "documents": 0, "documents_valid": 0})
    with engine.connect() as conn:
        for official, on_day, sent, refused, documents, valid in daily_counts(conn, start, end):
            values = found[official]
            values["sent"] += sent
            values["refused_outside"] += refused
            values["documents"] += documents
            values["documents_valid"] += valid
            if sent:
                values["active_days"].add(on_day)
        for secretary, (count, electronic) in meetings_by_secretary(conn, start, end).items():
            found[secretary].update(meetings=count, meetings_electronic=electronic)
    return {official: OfficialCounts(official, **{**values, "active_days": frozenset(values["active_days"])})
            for official, values in sorted(found.items())}


def indicator_counts(c: OfficialCounts | Activity, active_days: int, working_days: int,
                     codes: frozenset[str] | None = None) -> dict[str, Counts]:
    """The counts behind I1..I4 for :func:`policies.scoring.formula.score`, from ``c``'s mail,
    refusals, documents and meetings (what each counts: the module docstring) and the
    official's ``active_days`` out of their ``working_days`` counted; only the indicators in
    ``codes`` if given (a model may weigh fewer).

    A zero denominator gives ``Counts(0, 0)`` (the indicator does not apply). Active days
    above ``working_days`` are capped, so I2 stays a share; ``working_days`` comes from
    :func:`policies.scoring.calendar.working_days`. Called once per official of the city, so
    it builds nothing it does not return.
    """
    if working_days < 0:
        raise ValueError(f"working_days must not be negative, got {working_days}")
    asked = c.sent + c.refused_outside
    counts = {"I1": Counts(c.sent, asked) if asked else _NOTHING,
              "I2": Counts(min(active_days, working_days), working_days) if working_days else _NOTHING,
              "I3": Counts(c.meetings_electronic, c.meetings) if c.meetings else _NOTHING,
              "I4": Counts(c.documents_valid, c.documents) if c.documents else _NOTHING}
    return counts if codes is None or len(codes) == len(counts) else {
        code: n for code, n in counts.items() if code in codes}
