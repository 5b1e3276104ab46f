"""A small, hand-made :class:`~mailhub.scoring.results.PeriodScores` for the output tests
(table, CSV, XLSX, JSON, report): built with the real scoring functions, no database.

Three groups of units (a department, two districts, a ward), officials with full, partial and
insufficient data, a transfer between the districts, a burst, a deduction, and a unit register.
"""
from __future__ import annotations

from datetime import date, datetime, timezone

from mailhub.templating import VIETNAM
from mailhub.scoring.results import Activity, IndicatorInfo, OfficialResult, PeriodScores, UnitResult
from policies.scoring.bursts import BurstFlag
from policies.scoring.formula import Counts, score
from policies.scoring.model import DEFAULT_MODEL, Indicator, ScoringModel
from policies.scoring.periods import parse_period
from policies.scoring.units import MemberScore, rank_within_groups, unit_score

UNIT_MODEL = ScoringModel(version=DEFAULT_MODEL.version, min_days=0, indicators=(
    Indicator("U1", "Tỷ lệ văn bản phát hành điện tử", "Documents issued electronically", 100.0, 0.6),))

WORKING_DAYS = 64
UNITS = {  # code: (name, kind, parent)
    "STTTT": ("Sở Thông tin và Truyền thông", "department", None),
    "Q1": ("UBND Quận 1", "district", None),
    "Q3": ("UBND Quận 3", "district", None),
    "P-BN": ("UBND Phường Bến Nghé", "ward", "Q1"),
}
REGISTER = {"STTTT": (200, 150), "Q1": (120, 60)}  # issued, issued electronically

# email, name, {unit: days}, activity
OFFICIALS = [
    ("an.nguyen@hcm.gov.vn", "Nguyễn Văn An", {"STTTT": 64},
     Activity(sent=400, refused_outside=20, active_days=60, documents=10, documents_valid=9)),
    ("binh.tran@hcm.gov.vn", "Trần Thị Bình", {"STTTT": 64},
     Activity(sent=250, refused_outside=0, active_days=50, meetings=8, meetings_electronic=8,
              deduction_cases=1)),
    ("cuong.le@hcm.gov.vn", "Lê Văn Cường", {"Q1": 30, "Q3": 34},  # transferred mid-quarter
     Activity(sent=300, refused_outside=5, active_days=55)),
    ("dung.pham@hcm.gov.vn", "Phạm Thị Dung", {"Q1": 64},
     Activity(sent=90, refused_outside=30, active_days=30, documents=4, documents_valid=2)),
    ("=cmd@hcm.gov.vn", "=HYPERLINK(\"x\")", {"Q3": 64},  # formula-looking text must stay text
     Activity(sent=120, active_days=45)),
    ("em.vo@hcm.gov.vn", "Võ Văn Em", {"P-BN": 12},  # joined late: insufficient data
     Activity(sent=40, active_days=10)),
]


def _counts(a: Activity) -> dict[str, Counts]:
    def share(n: int, d: int) -> Counts:
        return Counts(n, d) if d else Counts(0, 0)
    return {"I1": share(a.sent, a.sent + a.refused_outside), "I2": share(a.active_days, WORKING_DAYS),
            "I3": share(a.meetings_electronic, a.meetings), "I4": share(a.documents_valid, a.documents)}


def sample_scores(*, closed: bool = False) -> PeriodScores:
    period = parse_period("2026-Q3")
    officials: list[OfficialResult] = []
    members: dict[str, list[MemberScore]] = {code: [] for code in UNITS}
    for email, name, days, activity in OFFICIALS:
        s = score(DEFAULT_MODEL, _counts(activity), sum(days.values()), activity.deduction_cases)
        last_unit = list(days)[-1]
        bursts = ()
        if email.startswith("dung"):
            bursts = (BurstFlag(email, date(2026, 9, 24), date(2026, 9, 30), 60, 7.5, 8.0,
                                "Gửi 60 thư trong 5 ngày làm việc cuối kỳ (24/09–30/09), gấp 8,0 lần "
                                "mức thường ngày (1,5 thư/ngày) — cần xem xét trước khi tính điểm"),)
        officials.append(OfficialResult(email, name, last_unit, UNITS[last_unit][0],
                                        tuple(days.items()), activity, s, bursts))
        for unit, n in days.items():
            members[unit].append(MemberScore(email, name, n, s))
    unit_scores = []
    for code, (name, kind, _) in UNITS.items():
        register = REGISTER.get(code)
        indicators = {"U1": Counts(register[1], register[0])} if register else None
        unit_scores.append(unit_score(code, name, kind, members[code], indicators,
                                      unit_model=UNIT_MODEL if indicators else None))
    ranked = rank_within_groups(unit_scores)
    units = []
    for kind, rows in ranked.items():
        for rank, us in rows:
            register = REGISTER.get(us.unit)
            units.append(UnitResult(us, kind, UNITS[us.unit][2], rank, len(rows),
                                    register[0] if register else None,
                                    register[1] if register else None))
    indicators = tuple(IndicatorInfo(i.code, i.name_vi, i.name_en, i.weight, i.target, "official")
                       for i in DEFAULT_MODEL.indicators)
    indicators += tuple(IndicatorInfo(i.code, i.name_vi, i.name_en, i.weight, i.target, "unit")
                        for i in UNIT_MODEL.indicators)
    return PeriodScores(
        period=period, model_version=DEFAULT_MODEL.version, indicators=indicators,
        working_days=WORKING_DAYS, computed_at=datetime(2026, 10, 2, 2, 30, tzinfo=timezone.utc),
        data_until=datetime(2026, 10, 2, 2, 29, 58, tzinfo=timezone.utc),
        officials=tuple(officials), units=tuple(units),
        closed_at=datetime(2026, 10, 5, 3, 0, tzinfo=timezone.utc) if closed else None,
        closed_by="hr@hcm.gov.vn" if closed else None)


def at_vn(day: date, hour: int = 9) -> datetime:
    """``hour`` o'clock of ``day`` in Vietnam, as an aware UTC time (how the ledger stores it)."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=VIETNAM).astimezone(timezone.utc)


def mail(official: str, day: date, n: int = 1, **extra) -> list[dict]:
    """``n`` ledger rows of mail sent by ``official`` on ``day`` (``extra``: other columns)."""
    row = dict(at=at_vn(day), kind="email", official_email=official, unit_code=None, policy=None,
               signature=None, to_self=False, automatic=False)
    return [row | extra for _ in range(n)]
