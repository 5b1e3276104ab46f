"""Setup for ``bench/scoring.py`` (untimed): a year of usage ledger for a city's officials.

The scoring benchmark computes a quarter's HR usage scores for 50,000 officials from 20 million
``usage_event`` rows, on SQLite and on PostgreSQL. This module builds that data once, schema
first (:func:`mailhub.schema.upgrade`), and keeps it between runs (:func:`cached_sqlite`,
:func:`cached_postgres`): generating and loading 20 million rows takes minutes, a bench run
should not pay that each time.

What it writes, all from seeded ``random.Random`` generators (the same parameters give the same
rows, byte for byte):

- units: the city (``UBND``), 25 departments (``SO-01``..), 22 districts (``QH-01``..) and 300
  wards (``PX-001``.., under a district); departments are large, wards small;
- officials with Vietnamese names, ``nguyen.van.an.12345@hcm.gov.vn`` addresses and about 3%
  secretaries; about 1% join during the year and 1% move to another unit during it;
- the ledger over the year's Vietnam days (UTC+7): per-official activity is lognormal, about 95%
  of events fall on working days, mostly in office hours; kinds and flags in the shares of
  :data:`EVENT_SHARES`; a few officials send several times their usual mail in the last working
  week of one quarter (the bursts :mod:`policies.scoring.bursts` looks for);
- meetings created by secretaries, with 0-3 attendees and their channel states;
- ``official_assignment`` rows, when a migration has created that table.

Rows go in as the application stores them: SQLite gets DB-API text exactly as SQLAlchemy writes
a ``DateTime`` (naive UTC ``YYYY-MM-DD HH:MM:SS.ffffff``; the scoring compares it as text) and
0/1 booleans; PostgreSQL gets ``timestamptz`` text with an explicit ``+00``. The ledger is written
in time order (as the relay appends it), through ``executemany`` (SQLite) or ``COPY``
(PostgreSQL), with its secondary indexes dropped during the load and recreated from their own
definitions afterwards.

Run: ``.venv/bin/python bench/scoring_setup.py --database sqlite|postgresql [--officials N]
[--events N] [--pg-url URL]``: builds or reuses, then prints the summary as JSON.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import random
import sqlite3
import sys
import time
import unicodedata
from bisect import bisect
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from itertools import accumulate
from operator import itemgetter
from pathlib import Path
from queue import Empty

from sqlalchemy.engine import make_url

from mailhub.schema import MIGRATIONS_DIR, head_revision, upgrade

OFFICIALS, EVENTS, YEAR, SEED = 50_000, 20_000_000, 2026, 1
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
VAR = Path(__file__).resolve().parent.parent / "var" / "bench"
FORMAT = 2  # bump when the generated data changes: cached databases are then rebuilt
DOMAIN = "hcm.gov.vn"
MARKER = "bench_scoring_marker"  # table in a cached PostgreSQL schema, written last

Progress = Callable[[str], None]


def print_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---- names --------------------------------------------------------------------------

DEPARTMENTS = (
    "Văn phòng Ủy ban nhân dân Thành phố", "Sở Nội vụ", "Sở Tài chính", "Sở Kế hoạch và Đầu tư",
    "Sở Tư pháp", "Sở Công Thương", "Sở Xây dựng", "Sở Giao thông vận tải", "Sở Tài nguyên và Môi trường",
    "Sở Thông tin và Truyền thông", "Sở Lao động - Thương binh và Xã hội", "Sở Văn hóa và Thể thao",
    "Sở Du lịch", "Sở Khoa học và Công nghệ", "Sở Giáo dục và Đào tạo", "Sở Y tế",
    "Sở Nông nghiệp và Phát triển nông thôn", "Sở Quy hoạch - Kiến trúc", "Sở Ngoại vụ",
    "Thanh tra Thành phố", "Ban Dân tộc", "Ban Quản lý An toàn thực phẩm",
    "Ban Quản lý các Khu chế xuất và công nghiệp", "Ban Quản lý Khu Công nghệ cao",
    "Ban Quản lý Dự án đầu tư xây dựng các công trình giao thông")
DISTRICTS = (
    "Quận 1", "Quận 3", "Quận 4", "Quận 5", "Quận 6", "Quận 7", "Quận 8", "Quận 10", "Quận 11", "Quận 12",
    "Quận Bình Tân", "Quận Bình Thạnh", "Quận Gò Vấp", "Quận Phú Nhuận", "Quận Tân Bình", "Quận Tân Phú",
    "Thành phố Thủ Đức", "Huyện Bình Chánh", "Huyện Cần Giờ", "Huyện Củ Chi", "Huyện Hóc Môn", "Huyện Nhà Bè")
WARDS = 300
COMMUNES = ("Tân Nhựt", "Vĩnh Lộc A", "Bình Hưng", "Phước Kiển", "Long Hòa", "An Thới Đông", "Tân Thông Hội",
            "Phước Vĩnh An", "Xuân Thới Sơn", "Bà Điểm", "Hiệp Phước", "Nhơn Đức", "Thạnh An", "Trung Lập Hạ")
FAMILY = (("Nguyễn", 38), ("Trần", 11), ("Lê", 9.5), ("Phạm", 7), ("Huỳnh", 5), ("Võ", 4), ("Phan", 4.5),
          ("Vũ", 3), ("Hoàng", 3), ("Đặng", 2), ("Bùi", 2), ("Đỗ", 1.4), ("Hồ", 1.3), ("Ngô", 1.3),
          ("Trương", 1.2), ("Dương", 1), ("Đinh", 0.8), ("Lâm", 0.6), ("Lý", 0.5), ("Mai", 0.5))
MIDDLE = (("Văn", "Hữu", "Đức", "Minh", "Quốc", "Thanh", "Công", "Hoàng", "Ngọc", "Tấn", "Xuân", "Anh"),
          ("Thị", "Ngọc", "Thu", "Thanh", "Mỹ", "Kim", "Thị Thu", "Thị Ngọc", "Bích", "Phương", "Thùy"))
GIVEN = (("An", "Bình", "Cường", "Dũng", "Duy", "Đạt", "Hải", "Hiếu", "Hòa", "Hùng", "Huy", "Khang", "Khánh",
          "Khoa", "Long", "Lộc", "Minh", "Nam", "Nghĩa", "Phong", "Phúc", "Quang", "Sơn", "Tài", "Tâm", "Thắng",
          "Thành", "Trung", "Tuấn", "Việt", "Vinh", "Vũ"),
         ("Anh", "Chi", "Diệp", "Dung", "Giang", "Hà", "Hạnh", "Hằng", "Hiền", "Hoa", "Hồng", "Hương", "Lan",
          "Liên", "Linh", "Loan", "Mai", "My", "Nga", "Ngân", "Nhung", "Oanh", "Phương", "Quyên", "Thảo",
          "Trang", "Trinh", "Tuyết", "Uyên", "Vân", "Vy", "Yến"))
MEETING_TITLES = (
    "Họp giao ban tuần", "Họp triển khai kế hoạch chuyển đổi số", "Hội nghị sơ kết công tác 6 tháng",
    "Họp xét duyệt hồ sơ khen thưởng", "Họp Ban Chỉ đạo phòng, chống thiên tai", "Họp góp ý dự thảo văn bản",
    "Hội nghị tập huấn nghiệp vụ", "Họp rà soát thủ tục hành chính", "Họp chuyên đề cải cách hành chính",
    "Họp giao ban công tác an ninh trật tự")


def ascii_fold(text: str) -> str:
    """``"Nguyễn Thị Thu"`` -> ``"nguyen thi thu"``: Vietnamese letters without their marks."""
    bare = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return bare.replace("đ", "d").replace("Đ", "D").lower()


# ---- the calendar -------------------------------------------------------------------

VN = timezone(timedelta(hours=7))
# Fixed-date public holidays (Labour Code 2019, art. 112); Tết and the Hùng Kings' day follow the
# lunar calendar and are left out. These days get weekend activity.
HOLIDAYS = ((1, 1), (4, 30), (5, 1), (9, 2))
OFF_DAY_WEIGHT = 0.12  # an off day's share of mail relative to a working day: ~5% of the year's
# When mail is sent, in Vietnam hours: (from, to, weight). Before 07:00 is the previous UTC day.
WORKDAY_HOURS = ((6.5, 7.5, 3), (7.5, 11.5, 44), (11.5, 13, 5), (13, 17, 40), (17, 22, 7), (22, 24, 1))
OFF_DAY_HOURS = ((8, 12, 40), (13, 17, 25), (19, 23, 35))
HMS = [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]
UTC_SHIFT = 7 * 3600


def year_days(year: int) -> list[date]:
    first = date(year, 1, 1)
    return [first + timedelta(days=n) for n in range((date(year + 1, 1, 1) - first).days)]


def is_working(day: date) -> bool:
    return day.weekday() < 5 and (day.month, day.day) not in HOLIDAYS


def hour_segments(hours: tuple) -> tuple[list[float], list[float], list[float]]:
    """(cumulative lower bounds, start seconds, seconds per unit of probability) for sampling a
    local time of day from one uniform draw."""
    total = sum(w for _, _, w in hours)
    lows = [0.0, *accumulate(w / total for _, _, w in hours)][:-1]
    return lows, [a * 3600 for a, _, _ in hours], [(b - a) * 3600 * total / w for a, b, w in hours]


def stamp(moment: datetime, suffix: str) -> str:
    """``moment`` as the stored text of a UTC ``DateTime`` (SQLAlchemy's SQLite format)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f") + suffix


def local_stamp(day: date, seconds: float, suffix: str) -> str:
    return stamp(datetime.combine(day, datetime.min.time(), VN) + timedelta(seconds=seconds), suffix)


def apportion(total: int, weights: list[float]) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainders), summing exactly."""
    scale = total / sum(weights)
    shares = [w * scale for w in weights]
    counts = [int(s) for s in shares]
    by_remainder = sorted(range(len(weights)), key=lambda i: counts[i] - shares[i])
    for i in by_remainder[:total - sum(counts)]:
        counts[i] += 1
    return counts


# ---- the directory ------------------------------------------------------------------

@dataclass
class Directory:
    """Units and officials as parallel lists (official ``i`` has id ``i + 1``), and who joins or
    moves during the year."""

    units: list[tuple[str, str, str | None, str]]  # code, name, parent, kind
    emails: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    unit_codes: list[str] = field(default_factory=list)  # the unit at the end of the year
    secretary: list[bool] = field(default_factory=list)
    activity: list[float] = field(default_factory=list)  # relative mail volume, lognormal
    joins: dict[int, date] = field(default_factory=dict)  # official -> first day
    moves: dict[int, tuple[date, str]] = field(default_factory=dict)  # official -> (day, previous unit)
    bursts: dict[int, int] = field(default_factory=dict)  # official -> quarter of their burst

    def unit_on(self, official: int, day: date) -> str:
        move = self.moves.get(official)
        return move[1] if move and day < move[0] else self.unit_codes[official]


def make_units(rng: random.Random) -> tuple[list[tuple[str, str, str | None, str]], list[float]]:
    """The unit tree and each unit's relative headcount."""
    units: list[tuple[str, str, str | None, str]] = [
        ("UBND", "Ủy ban nhân dân Thành phố Hồ Chí Minh", None, "city")]
    sizes = [8.0]
    for k, name in enumerate(DEPARTMENTS, 1):
        units.append((f"SO-{k:02d}", name, "UBND", "department"))
        sizes.append(rng.uniform(4, 12))
    for k, name in enumerate(DISTRICTS, 1):
        units.append((f"QH-{k:02d}", f"Ủy ban nhân dân {name}", "UBND", "district"))
        sizes.append(rng.uniform(3, 6))
    per_district = apportion(WARDS, [rng.uniform(0.6, 1.4) for _ in DISTRICTS])
    code = 0
    for k, (district, count) in enumerate(zip(DISTRICTS, per_district), 1):
        for n in range(1, count + 1):
            code += 1
            ward = (f"Xã {COMMUNES[(code + n) % len(COMMUNES)]} {n}" if district.startswith("Huyện")
                    else f"Phường {n}")
            units.append((f"PX-{code:03d}", f"Ủy ban nhân dân {ward}, {district}", f"QH-{k:02d}", "ward"))
            sizes.append(rng.uniform(0.3, 1.0))
    return units, sizes


def make_directory(rng: random.Random, officials: int, year: int) -> Directory:
    units, sizes = make_units(rng)
    d = Directory(units)
    placed = [code for (code, *_), n in zip(units, apportion(officials, sizes)) for _ in range(n)]
    rng.shuffle(placed)
    width = max(5, len(str(officials)))
    numbers = rng.sample(range(10 ** (width - 1), 10 ** width), officials)
    families, family_weights = zip(*FAMILY)
    for i in range(officials):
        female = rng.random() < 0.5
        parts = (*rng.choices(families, family_weights), rng.choice(MIDDLE[female]), rng.choice(GIVEN[female]))
        d.names.append(" ".join(parts))
        d.emails.append(f"{ascii_fold('.'.join(parts)).replace(' ', '.')}.{numbers[i]}@{DOMAIN}")
        d.unit_codes.append(placed[i])
        d.secretary.append(False)
        d.activity.append(0.0 if rng.random() < 0.02 else rng.lognormvariate(0, 1))  # 2% never send
    for i in rng.sample(range(officials), max(1, round(officials * 0.03))):
        d.secretary[i] = True
        d.activity[i] = max(d.activity[i], 0.5) * 2  # secretaries mail more, and always some
    _plan_changes(rng, d, year)
    return d


def _plan_changes(rng: random.Random, d: Directory, year: int) -> None:
    """About 1% join during the year and 1% move units (on a working day after 1 January),
    and 0.2% have a burst in one quarter (quarters in turn, so each has some). Bursts go to the
    busier half: a quiet official's week at several times their usual is still too little mail
    for :func:`policies.scoring.bursts.find_bursts` (``min_sent``)."""
    n = len(d.emails)
    days = [day for day in year_days(year)[1:] if is_working(day)]
    changing = rng.sample(range(n), min(n, 2 * round(n * 0.01)))
    half = len(changing) // 2
    for i in changing[:half]:
        d.joins[i] = rng.choice(days)
    codes = [code for code, *_ in d.units]
    for i in changing[half:]:
        previous = rng.choice([c for c in rng.sample(codes, 2) if c != d.unit_codes[i]])
        d.moves[i] = (rng.choice(days), previous)
    busy = sorted(range(n), key=d.activity.__getitem__)[n // 2:]
    for k, i in enumerate(rng.sample(busy, min(len(busy), max(4, round(n * 0.002))))):
        d.bursts[i] = k % 4 + 1


def unit_rows(d: Directory, suffix: str) -> list[tuple]:
    created = stamp(datetime(2020, 1, 1, tzinfo=VN), suffix)
    return [(code, name, parent, kind, created) for code, name, parent, kind in d.units]


def official_rows(d: Directory, rng: random.Random, suffix: str) -> list[tuple]:
    rows = []
    for i, email in enumerate(d.emails):
        joined = d.joins.get(i) or date(2015, 1, 1) + timedelta(days=rng.randrange(5 * 365))
        roles = "official,secretary" if d.secretary[i] else "official"
        rows.append((i + 1, email, d.names[i], f"+849{i:08d}", d.unit_codes[i], roles, None, 1,
                     local_stamp(joined, 8 * 3600, suffix)))
    return rows


def assignment_rows(d: Directory) -> list[tuple]:
    """Every official's assignments: open since 2020-01-01, from the day they joined, or two
    consecutive ones around a move (the first ends the day before the second starts)."""
    rows = []
    for i, unit in enumerate(d.unit_codes):
        if i in d.moves:
            day, previous = d.moves[i]
            rows.append((i + 1, previous, "2020-01-01", (day - timedelta(days=1)).isoformat()))
            rows.append((i + 1, unit, day.isoformat(), None))
        else:
            rows.append((i + 1, unit, (d.joins.get(i) or date(2020, 1, 1)).isoformat(), None))
    return rows


# ---- the usage ledger ---------------------------------------------------------------

USAGE_COLUMNS = ("at", "kind", "official_email", "unit_code", "message_id", "recipients_internal",
                 "recipients_external", "size", "policy", "reason", "client_ip", "signature", "signer",
                 "to_self", "automatic")
# One uniform draw per event decides what it is, in this order: a document submission, a refusal
# of a logged-in official, a refusal without a login (no official), else mail; the "_of_mail"
# shares split the mail (an official who is not a secretary sends no invitations).
EVENT_SHARES = {"document": 0.04, "refused": 0.02, "anonymous": 0.002,
                "invite_of_secretary_mail": 0.3, "automatic_of_mail": 0.02, "to_self_of_mail": 0.03}
REFUSALS = (  # policy, weight, reply (mailhub.submission records "code status vi / en")
    ("sender_domain_official", 45, "553 5.7.1 Cán bộ chỉ được gửi thư từ địa chỉ thuộc tên miền chính thức "
     "của thành phố (hcm.gov.vn). / Officials may send only from an official city domain (hcm.gov.vn)."),
    ("sender_owned", 35, "553 5.7.1 Bạn chỉ được gửi thư bằng địa chỉ của chính mình hoặc hộp thư đã được "
     "cấp quyền. / You may send only as your own address or a mailbox granted to you."),
    ("rate_limit", 6, "451 4.7.1 Bạn đã gửi tới giới hạn 500 thư mỗi ngày; vui lòng thử lại sau. / "
     "Daily limit of 500 messages reached; try again later."),
    ("external_recipients", 5, "550 5.7.1 Không được gửi thư ra ngoài hệ thống. / External recipients "
     "are not allowed."),
    ("message_size", 4, "552 5.3.4 Thư vượt quá kích thước tối đa 26214400 byte. / Message exceeds the "
     "maximum size of 26214400 bytes."),
    ("no_impersonation", 3, "550 5.7.1 Tên người gửi giống tên một cơ quan khác. / The display name "
     "imitates another agency."),
    ("classification", 2, "550 5.7.1 Thư mật không được gửi qua thư điện tử. / Classified mail may not "
     "be sent by email."))
NO_LOGIN = "530 5.7.0 Cần đăng nhập (xác thực) trước khi gửi thư. / Authentication required."
UNSIGNED = ("550 5.7.1 Văn bản gửi tới địa chỉ này phải có chữ ký số. / Documents sent to this address "
            "must be digitally signed.")
BAD_SIGNATURE = ("550 5.7.1 Chữ ký số không hợp lệ (văn bản đã bị sửa sau khi ký). / The digital "
                 "signature is not valid (the document was changed after signing).")
BURST_FACTOR = 8  # mail in a burst week, relative to the official's usual
BURST_DAYS = 5  # the last working days of the quarter


class LedgerWriter:
    """Generates the year's ledger day by day, each day's rows sorted by time."""

    def __init__(self, d: Directory, rng: random.Random, year: int, suffix: str) -> None:
        self.d, self.rng, self.suffix = d, rng, suffix
        self.days = year_days(year)
        self.emails = d.emails
        self.ips = [f"10.{10 + k % 200}.{k // 200 % 250}.{k % 250 + 1}" for k in range(len(d.emails))]
        self.signers = [f"CN={ascii_fold(name).upper()},O=UBND TP Ho Chi Minh,C=VN" for name in d.names]
        self.mail = [self._mail_shape() for _ in range(4096)]
        self.documents = [int(rng.lognormvariate(12.2, 0.7)) for _ in range(1024)]
        policies, weights, replies = zip(*REFUSALS)
        self.refusals = list(zip(policies, replies))
        self.refusal_bounds = [w / sum(weights) for w in accumulate(weights)]
        self.kinds: Counter = Counter()

    def _mail_shape(self) -> tuple[int, int, int]:
        """(internal recipients, external recipients, size) of one ordinary message."""
        rng = self.rng
        internal = min(40, int(rng.expovariate(0.6)) + 1)
        external = int(rng.expovariate(1.5)) if rng.random() < 0.2 else 0
        return internal, external, int(rng.lognormvariate(10.3, 1.1)) + 800

    def chunks(self, total: int) -> Iterator[list[tuple]]:
        """The rows of each day in turn, in time order, ``total`` in all."""
        d, days = self.d, self.days
        per_day = apportion(total, [1.0 if is_working(day) else OFF_DAY_WEIGHT for day in days])
        activity = [0.0 if i in d.joins else a for i, a in enumerate(d.activity)]
        units = [d.unit_on(i, days[0]) for i in range(len(d.emails))]
        joining, moving, bursting = self._by_day(d.joins.items()), self._by_day(
            (i, day) for i, (day, _) in d.moves.items()), self._burst_days()
        everyone = range(len(activity))
        for index, (day, count) in enumerate(zip(days, per_day)):
            for i in joining.get(day, ()):
                activity[i] = d.activity[i]
            for i in moving.get(day, ()):
                units[i] = d.unit_codes[i]
            weights = activity
            if day in bursting:
                weights = activity.copy()
                for i in bursting[day]:
                    weights[i] *= BURST_FACTOR
            chosen = self.rng.choices(everyone, cum_weights=list(accumulate(weights)), k=count)
            rows = self._day_rows(index, chosen, units)
            self.kinds.update(map(itemgetter(1, 11, 13, 14), rows))
            yield rows

    @staticmethod
    def _by_day(pairs: Iterable[tuple[int, date]]) -> dict[date, list[int]]:
        result: dict[date, list[int]] = {}
        for i, day in pairs:
            result.setdefault(day, []).append(i)
        return result

    def _burst_days(self) -> dict[date, list[int]]:
        """Day -> officials bursting then: the last working days of each one's quarter."""
        working = [day for day in self.days if is_working(day)]
        result: dict[date, list[int]] = {}
        for i, quarter in self.d.bursts.items():
            in_quarter = [day for day in working if (day.month - 1) // 3 + 1 == quarter]
            for day in in_quarter[-BURST_DAYS:]:
                result.setdefault(day, []).append(i)
        return result

    def _day_rows(self, index: int, chosen: list[int], units: list[str]) -> list[tuple]:
        """One row per chosen official, in time order. The hot loop of the whole setup: the
        day's time draws are sorted first (cheaper than sorting rows; ``chosen`` is in random
        order, so pairing them in turn is still random), then one draw per event decides what
        it is; everything else is looked up."""
        day = self.days[index]
        lows, starts, scales = hour_segments(WORKDAY_HOURS if is_working(day) else OFF_DAY_HOURS)
        today = f"{day.isoformat()} "
        yesterday = f"{(day - timedelta(days=1)).isoformat()} "
        midnight_ms = int(datetime.combine(day, datetime.min.time(), VN).timestamp()) * 1000
        rand, bits, suffix, hms = self.rng.random, self.rng.getrandbits, self.suffix, HMS
        emails, ips, secretary, mail = self.emails, self.ips, self.d.secretary, self.mail
        share = EVENT_SHARES
        doc_end = share["document"]
        refused_end = doc_end + share["refused"]
        mail_start = refused_end + share["anonymous"]
        invites, automatic_end = share["invite_of_secretary_mail"], 1 - share["to_self_of_mail"]
        automatic_start = automatic_end - share["automatic_of_mail"]
        draws = [rand() for _ in chosen]
        draws.sort()
        rows = []
        append = rows.append
        for o, u in zip(chosen, draws):
            k = bisect(lows, u) - 1
            x = starts[k] + (u - lows[k]) * scales[k]  # Vietnam seconds since midnight
            s = int(x)
            us = int((x - s) * 1_000_000)
            at = (f"{today}{hms[s - UTC_SHIFT]}.{us:06d}{suffix}" if s >= UTC_SHIFT
                  else f"{yesterday}{hms[s + 86400 - UTC_SHIFT]}.{us:06d}{suffix}")
            r = rand()
            if r >= mail_start:
                q = (r - mail_start) / (1 - mail_start)
                queue_id = f"{midnight_ms + s * 1000 + us // 1000:012x}{bits(80):020x}"
                if secretary[o] and q < invites:
                    append((at, "invite_email", emails[o], units[o], queue_id, 1, 0, 9000 + bits(12),
                            None, None, None, None, None, 0, 0))
                else:
                    internal, external, size = mail[bits(12)]
                    append((at, "email", emails[o], units[o], queue_id, internal, external, size, None, None,
                            ips[o], None, None, int(q >= automatic_end), int(automatic_start <= q < automatic_end)))
            elif r < doc_end:
                append(self._document(at, o, units[o], r / doc_end, midnight_ms + s * 1000))
            elif r < refused_end:
                policy, reply = self.refusals[bisect(self.refusal_bounds, (r - doc_end) / share["refused"])]
                append((at, "refused", emails[o], units[o], None, 0, 0, 0, policy, reply, ips[o],
                        None, None, 0, 0))
            else:
                append((at, "refused", None, None, None, 0, 0, 0, "sender_owned", NO_LOGIN,
                        f"113.161.{bits(8)}.{bits(8)}", None, None, 0, 0))
        return rows

    def _document(self, at: str, o: int, unit: str, v: float, ms: int) -> tuple:
        """A document submission: 85% signed-valid (accepted), 6% signed-invalid and 9% unsigned
        (half of those accepted, in ``check`` mode, half refused by ``signed_documents``)."""
        if v < 0.85:
            outcome, refused = "signed-valid", False
        elif v < 0.91:
            outcome, refused = "signed-invalid", v >= 0.88
        else:
            outcome, refused = "unsigned", v >= 0.955
        signer = None if outcome == "unsigned" else self.signers[o]
        if refused:
            reply = UNSIGNED if outcome == "unsigned" else BAD_SIGNATURE
            return (at, "refused", self.emails[o], unit, None, 0, 0, 0, "signed_documents", reply,
                    self.ips[o], outcome, signer, 0, 0)
        size = self.documents[self.rng.getrandbits(10)]
        return (at, "email", self.emails[o], unit, f"{ms:012x}{self.rng.getrandbits(80):020x}", 1, 0, size,
                None, None, self.ips[o], outcome, signer, 0, 0)

    def summary(self) -> dict:
        by_kind, signatures = Counter(), Counter()
        to_self = automatic = 0
        for (kind, signature, self_only, auto), n in self.kinds.items():
            by_kind[kind] += n
            if signature:
                signatures[signature] += n
            to_self += n * self_only
            automatic += n * auto
        return {"by_kind": dict(sorted(by_kind.items())), "documents": dict(sorted(signatures.items())),
                "to_self": to_self, "automatic": automatic}


# ---- meetings -----------------------------------------------------------------------

MEETING_COLUMNS = ("id", "uid", "sequence", "title", "agenda", "location", "start_at", "end_at", "unit_code",
                   "chair_name", "secretary_email", "status", "created_at", "updated_at")
ATTENDEE_COLUMNS = ("id", "meeting_id", "official_id", "name", "email", "phone", "removed", "partstat",
                    "answered_at", "answered_sequence", "email_state", "email_queue_id", "email_reason",
                    "sms_state", "sms_reason", "created_at")


def meeting_rows(d: Directory, rng: random.Random, year: int, count: int, suffix: str
                 ) -> tuple[list[tuple], list[tuple]]:
    """``count`` meetings by random secretaries on working days (85% sent, 7% draft, 8%
    cancelled) and 0-3 attendees each. A cancelled meeting's invitations went out first in 60%
    of cases (its attendees have channel states); the others were cancelled as drafts."""
    secretaries = [i for i, s in enumerate(d.secretary) if s]
    working = [day for day in year_days(year) if is_working(day)]
    meetings, attendees = [], []
    for m in range(1, count + 1):
        i = rng.choice(secretaries)
        day = rng.choice([w for w in working if w >= d.joins[i]] if i in d.joins else working)
        created = local_stamp(day, rng.uniform(7.5, 17) * 3600, suffix)
        start = day + timedelta(days=rng.randint(1, 14))
        begins = rng.choice((8, 9, 14)) * 3600
        status = rng.choices(("sent", "draft", "cancelled"), (85, 7, 8))[0]
        issued = status == "sent" or (status == "cancelled" and rng.random() < 0.6)
        meetings.append((m, f"{rng.getrandbits(128):032x}@{DOMAIN}", int(status == "cancelled"),
                         rng.choice(MEETING_TITLES), "", f"Phòng họp số {rng.randint(1, 12)}",
                         local_stamp(start, begins, suffix), local_stamp(start, begins + 2 * 3600, suffix),
                         d.unit_on(i, day), f"Đồng chí {rng.choice(d.names)}", d.emails[i], status, created,
                         created))
        for _ in range(rng.randint(0, 3)):
            guest = rng.randrange(len(d.emails))
            email_state = rng.choice(("sent", "delivered", "delivered", "failed")) if issued else ""
            sms_state = rng.choice(("", "", "sent", "delivered")) if issued else ""
            queue_id = f"{rng.getrandbits(128):032x}" if email_state else None
            attendees.append((len(attendees) + 1, m, guest + 1, d.names[guest], d.emails[guest], None, 0,
                              "NEEDS-ACTION", None, 0, email_state, queue_id, "", sms_state, "", created))
    return meetings, attendees


# ---- loading ------------------------------------------------------------------------

def placeholders_sql(table: str, columns: Iterable[str]) -> str:
    cols = list(columns)
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"


class SqliteLoader:
    """Raw ``sqlite3``: ``synchronous=OFF`` while loading (the file is rebuilt if a load fails),
    a large page cache and two sorter threads for the index builds."""

    suffix = ""  # DateTime text has no offset in SQLite

    def __init__(self, url: str) -> None:
        self.path = make_url(url).database
        self.db = sqlite3.connect(self.path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=OFF", "cache_size=-1048576", "threads=2"):
            self.db.execute(f"PRAGMA {pragma}")

    def has_table(self, table: str) -> bool:
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                               (table,)).fetchone() is not None

    def count(self, table: str) -> int:
        return self.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

    def load(self, table: str, columns: tuple[str, ...], chunks: Iterable[list[tuple]]) -> None:
        """Each chunk in one ``executemany``; a commit about every million rows keeps the WAL small."""
        sql, pending = placeholders_sql(table, columns), 0
        self.db.execute("BEGIN")
        for rows in chunks:
            self.db.executemany(sql, rows)
            pending += len(rows)
            if pending >= 1_000_000:
                self.db.execute("COMMIT")
                self.db.execute("BEGIN")
                pending = 0
        self.db.execute("COMMIT")

    def drop_indexes(self, table: str) -> list[str]:
        """Drops ``table``'s explicit indexes; returns their ``CREATE INDEX`` statements."""
        found = self.db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                                "AND sql IS NOT NULL", (table,)).fetchall()
        for name, _ in found:
            self.db.execute(f'DROP INDEX "{name}"')
        return [sql for _, sql in found]

    def run(self, statements: Iterable[str]) -> None:
        for sql in statements:
            self.db.execute(sql)

    def finish(self) -> int:
        """ANALYZE, a checkpoint, and the file's size in bytes."""
        self.db.execute("ANALYZE")
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return os.path.getsize(self.path)

    def close(self) -> None:
        self.db.close()


class PostgresLoader:
    """psycopg 3 ``COPY``; the ledger table is truncated first in the same transaction so that
    ``COPY ... FREEZE`` writes its pages frozen and all-visible, as a vacuumed table's are."""

    suffix = "+00"  # timestamptz text in UTC, whatever the session's TimeZone

    def __init__(self, url: str) -> None:
        import psycopg

        self.db = psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(False))
        self.db.execute("SET synchronous_commit = off")
        self.db.execute("SET maintenance_work_mem = '1GB'")

    def has_table(self, table: str) -> bool:
        return self.db.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]

    def count(self, table: str) -> int:
        return self.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

    def load(self, table: str, columns: tuple[str, ...], chunks: Iterable[list[tuple]]) -> None:
        freeze = ""
        if table == "usage_event":
            self.db.execute(f"TRUNCATE {table}")
            freeze = " WITH (FREEZE)"
        with self.db.cursor() as cur:
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN{freeze}") as copy:
                for rows in chunks:
                    for row in rows:
                        copy.write_row(row)
            if "id" in columns:  # explicit ids: move the serial sequence past them
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)")
        self.db.commit()

    def drop_indexes(self, table: str) -> list[str]:
        """Drops ``table``'s indexes other than the primary key and unique ones; returns their
        definitions (``pg_get_indexdef``)."""
        found = self.db.execute(
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE x.indrelid = to_regclass(%s) AND NOT x.indisprimary AND NOT x.indisunique", (table,)).fetchall()
        for name, _ in found:
            self.db.execute(f'DROP INDEX "{name}"')
        self.db.commit()
        return [sql for _, sql in found]

    def run(self, statements: Iterable[str]) -> None:
        for sql in statements:
            self.db.execute(sql)
        self.db.commit()

    def finish(self) -> int:
        """VACUUM ANALYZE of the schema's tables (statistics, visibility map); their size in bytes."""
        self.db.autocommit = True
        tables = self.db.execute("SELECT c.oid::regclass::text, pg_total_relation_size(c.oid) FROM pg_class c "
                                 "JOIN pg_namespace n ON n.oid = c.relnamespace "
                                 "WHERE n.nspname = current_schema() AND c.relkind = 'r'").fetchall()
        for table, _ in tables:
            self.db.execute(f"VACUUM ANALYZE {table}")
        return self.db.execute("SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c "
                               "WHERE c.oid = ANY(%s::regclass[])", ([t for t, _ in tables],)).fetchone()[0]

    def close(self) -> None:
        self.db.close()


def generated_in_child(writer: LedgerWriter, total: int) -> Iterator[list[tuple]]:
    """``writer.chunks(total)``, generated in a forked process: generating a row costs about as
    much CPU as loading it (~10 µs each), so the two can run on two cores. The child's counts
    come back into ``writer.kinds`` at the end. Pickling through the queue adds ~3 µs a row:
    with a free second core the load takes about half as long; on a machine whose other core
    is busy it is a wash."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue(maxsize=8)
    child = context.Process(target=_generate, args=(writer, total, queue), name="ledger-generator", daemon=True)
    child.start()
    try:
        while True:
            try:
                what, payload = queue.get(timeout=5)
            except Empty:
                if not child.is_alive():
                    raise RuntimeError(f"the ledger generator died (exit code {child.exitcode})") from None
                continue
            if what == "done":
                writer.kinds = payload
                return
            yield payload
    finally:
        child.join(timeout=5)
        if child.is_alive():
            child.terminate()


def _generate(writer: LedgerWriter, total: int, queue) -> None:
    for rows in writer.chunks(total):
        queue.put(("rows", rows))
    queue.put(("done", writer.kinds))


def with_progress(chunks: Iterable[list[tuple]], total: int, label: str, progress: Progress,
                  every: float = 10.0) -> Iterator[list[tuple]]:
    """``chunks`` unchanged, reporting rows loaded, rate and time left about every ``every`` s."""
    started = last = time.monotonic()
    done = 0
    for rows in chunks:
        yield rows
        done += len(rows)
        now = time.monotonic()
        if now - last >= every or done == total:
            rate = done / max(now - started, 1e-9)
            progress(f"{label}: {done:,}/{total:,} rows ({100 * done / max(total, 1):.0f}%), "
                     f"{rate:,.0f} rows/s, {(total - done) / max(rate, 1e-9):.0f} s left")
            last = now


# ---- build and cache ----------------------------------------------------------------

def build(url: str, *, officials: int = OFFICIALS, events: int = EVENTS, year: int = YEAR, seed: int = SEED,
          progress: Progress = print_to_stderr) -> dict:
    """Migrate ``url`` to head and load the benchmark data into it; returns a summary.

    The directory, meetings and ledger each have their own seeded generator, so a change to how
    one of them is generated leaves the others as they were. Refuses a database that already has
    officials or ledger events: the ledger's indexes are dropped and rebuilt, and PostgreSQL
    truncates the table.
    """
    seconds: dict[str, float] = {}
    clock = time.monotonic()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.monotonic()
        seconds[step] = round(now - clock, 1)
        clock = now

    upgrade(url)
    lap("schema")
    loader = SqliteLoader(url) if url.startswith("sqlite") else PostgresLoader(url)
    try:
        if loader.count("official") or loader.count("usage_event"):
            raise ValueError(f"{make_url(url).render_as_string()} already has officials or usage events")
        summary = _load(loader, officials, events, year, seed, progress, lap)
        summary["bytes"] = loader.finish()
        lap("analyze")
    finally:
        loader.close()
    summary["seconds"] = {**seconds, "total": round(sum(seconds.values()), 1)}
    return summary


def _load(loader: SqliteLoader | PostgresLoader, officials: int, events: int, year: int, seed: int,
          progress: Progress, lap: Callable[[str], None]) -> dict:
    suffix = loader.suffix
    d = make_directory(random.Random(f"{seed}/directory"), officials, year)
    loader.load("unit", ("code", "name", "parent_code", "kind", "created_at"), [unit_rows(d, suffix)])
    loader.load("official", ("id", "email", "full_name", "phone", "unit_code", "roles", "password_hash",
                             "active", "created_at"),
                [official_rows(d, random.Random(f"{seed}/officials"), suffix)])
    if loader.has_table("official_assignment"):
        assignments = assignment_rows(d)
        loader.load("official_assignment", ("official_id", "unit_code", '"start"', '"end"'), [assignments])
        assigned: int | str = len(assignments)
    else:
        assigned = "skipped: no official_assignment table at this schema revision"
    lap("directory")
    meetings, attendees = meeting_rows(d, random.Random(f"{seed}/meetings"), year, round(officials * 0.4), suffix)
    loader.load("meeting", MEETING_COLUMNS, [meetings])
    loader.load("meeting_attendee", ATTENDEE_COLUMNS, [attendees])
    lap("meetings")
    progress(f"usage_event: generating and loading {events:,} rows")
    indexes = loader.drop_indexes("usage_event")
    ledger = LedgerWriter(d, random.Random(f"{seed}/ledger"), year, suffix)
    rows = with_progress(generated_in_child(ledger, events), events, "usage_event", progress)
    loader.load("usage_event", USAGE_COLUMNS, rows)
    lap("events")
    progress(f"usage_event: recreating {len(indexes)} indexes")
    loader.run(indexes)
    lap("indexes")
    kinds = Counter(kind for *_, kind in d.units)
    return {"units": dict(kinds), "officials": officials, "secretaries": sum(d.secretary),
            "joined_in_year": len(d.joins), "moved_in_year": len(d.moves), "bursts": len(d.bursts),
            "assignments": assigned, "events": events, **ledger.summary(),
            "meetings": dict(Counter(m[11] for m in meetings)), "attendees": len(attendees)}


def parameters(officials: int, events: int, year: int, seed: int) -> dict:
    """What a cached database was built from; any change means a rebuild. The migrations are
    named by revision and by a digest of their files, which still change while under review."""
    digest = hashlib.sha256()
    for script in sorted(MIGRATIONS_DIR.glob("versions/*.py")):
        digest.update(script.name.encode() + b"\0" + script.read_bytes())
    return {"officials": officials, "events": events, "year": year, "seed": seed, "format": FORMAT,
            "revision": head_revision(), "migrations": digest.hexdigest()[:16]}


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def cached_summary_sqlite(path: Path) -> dict | None:
    """The sidecar of a completed build at ``path`` (parameters and summary), or None."""
    try:
        return json.loads(sidecar(path).read_text()) if path.exists() else None
    except (OSError, ValueError):
        return None


def cached_sqlite(path: Path, *, officials: int = OFFICIALS, events: int = EVENTS, year: int = YEAR,
                  seed: int = SEED, progress: Progress = print_to_stderr) -> str:
    """The URL of a SQLite file at ``path`` holding the data for these parameters, built under a
    temporary name and renamed when complete if it is missing or was built from others."""
    params = parameters(officials, events, year, seed)
    path = path.resolve()
    url = f"sqlite:///{path}"
    found = cached_summary_sqlite(path)
    if found and found["parameters"] == params:
        return url
    path.parent.mkdir(parents=True, exist_ok=True)
    building = path.with_name(path.name + ".building")
    for stale in (sidecar(path), *_sqlite_files(building), *_sqlite_files(path)):
        stale.unlink(missing_ok=True)
    progress(f"building {path}")
    summary = build(f"sqlite:///{building}", officials=officials, events=events, year=year, seed=seed,
                    progress=progress)
    Path(f"{building}-writelock").unlink(missing_ok=True)  # left by mailhub.db.make_engine
    os.replace(building, path)
    sidecar(path).write_text(json.dumps({"parameters": params, "summary": summary}, indent=1,
                                        ensure_ascii=False))
    return url


def _sqlite_files(path: Path) -> list[Path]:
    return [path, *(Path(f"{path}{ext}") for ext in ("-wal", "-shm", "-writelock"))]


def schema_name(officials: int, events: int, year: int, seed: int) -> str:
    return f"bench_scoring_{officials}_{events}_{year}_{seed}"


def schema_url(pg_url: str, schema: str) -> str:
    """``pg_url`` with ``search_path`` set to ``schema`` (as ``bench/invites_setup.py`` does)."""
    return f"{pg_url}{'&' if '?' in pg_url else '?'}options=-csearch_path%3D{schema}"


def cached_summary_postgres(pg_url: str, schema: str) -> dict | None:
    """The marker of a completed build in ``schema`` (parameters and summary), or None."""
    import psycopg

    with psycopg.connect(make_url(pg_url).set(drivername="postgresql").render_as_string(False)) as db:
        if not db.execute("SELECT to_regclass(%s)", (f'"{schema}".{MARKER}',)).fetchone()[0]:
            return None
        return json.loads(db.execute(f'SELECT record FROM "{schema}".{MARKER}').fetchone()[0])


def cached_postgres(pg_url: str, *, officials: int = OFFICIALS, events: int = EVENTS, year: int = YEAR,
                    seed: int = SEED, progress: Progress = print_to_stderr) -> str:
    """The URL (``search_path`` set) of a schema holding the data for these parameters, kept
    between runs; rebuilt from scratch if its marker table is missing or differs."""
    import psycopg

    params = parameters(officials, events, year, seed)
    schema = schema_name(officials, events, year, seed)
    url = schema_url(pg_url, schema)
    found = cached_summary_postgres(pg_url, schema)
    if found and found["parameters"] == params:
        return url
    admin = make_url(pg_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        db.execute(f'CREATE SCHEMA "{schema}"')
    progress(f"building schema {schema}")
    summary = build(url, officials=officials, events=events, year=year, seed=seed, progress=progress)
    record = json.dumps({"parameters": params, "summary": summary}, ensure_ascii=False)
    with psycopg.connect(admin) as db:
        db.execute(f'CREATE TABLE "{schema}".{MARKER} (record text NOT NULL)')
        db.execute(f'INSERT INTO "{schema}".{MARKER} VALUES (%s)', (record,))
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--officials", type=int, default=OFFICIALS)
    parser.add_argument("--events", type=int, default=EVENTS)
    parser.add_argument("--year", type=int, default=YEAR)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--path", type=Path, help="SQLite file (default: var/bench/scoring_<parameters>.db)")
    args = parser.parse_args()
    params = dict(officials=args.officials, events=args.events, year=args.year, seed=args.seed)
    if args.database == "sqlite":
        path = args.path or VAR / f"{schema_name(**params).replace('bench_', '')}.db"
        url = cached_sqlite(path, **params)
        record = cached_summary_sqlite(path)
    else:
        url = cached_postgres(args.pg_url, **params)
        record = cached_summary_postgres(args.pg_url, schema_name(**params))
    print(json.dumps({"url": url, **(record or {})}, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
