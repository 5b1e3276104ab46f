"""Setup for ``bench/invites.py`` (timed, not part of the figures): a database, a
data folder, a directory of officials and one meeting inviting whole units.

The directory goes in the way HR's would: a CSV file through
:func:`mailhub.csvimport.import_directory` (one transaction), with the names and
addresses of ``bench/micro.py``'s directory, spread over units Q1..Qk, and a unique
Vinaphone mobile number (+8491xxxxxxx) for each official.
"""
from __future__ import annotations

import contextlib
import csv
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from delivery import CONTROL_APP, with_params
from micro import directory

DOMAIN = "hcm.gov.vn"
SECRETARY = "an@hcm.gov.vn"  # bench/micro.py's directory puts an@ first
PUBLIC_URL = "https://mail.hcm.gov.vn"
MEETING = {
    "title": "Hội nghị triển khai chuyển đổi số năm 2027", "start": "2026-12-03 08:00",
    "duration_minutes": 180, "unit": "VP", "secretary": SECRETARY,
    "location": "Hội trường A, 86 Lê Thánh Tôn, Quận 1", "chair": "Đồng chí Chủ tịch UBND Thành phố",
    "agenda": "1. Khai mạc\n2. Báo cáo kết quả năm 2026\n3. Kế hoạch năm 2027\n4. Thảo luận",
}


@contextlib.contextmanager
def fresh_database(database: str, pg_url: str, home: Path) -> Iterator[str]:
    """The URL of an empty database: a SQLite file in ``home``, or a new PostgreSQL
    schema (``-csearch_path``, as ``bench/delivery.py`` does), dropped at the end."""
    if database == "sqlite":
        yield f"sqlite:///{home / 'mailhub.db'}"
        return
    from sqlalchemy import create_engine, text

    schema = f"bench_invites_{uuid.uuid4().hex[:8]}"
    admin = create_engine(with_params(pg_url, application_name=CONTROL_APP))
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield with_params(pg_url, options=f"-csearch_path%3D{schema}")
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def write_directory(path: Path, attendees: int, units: int) -> None:
    """The CSV HR would export: the secretary in VP, then ``attendees`` officials."""
    people = list(directory(attendees + 2).items())  # an@, binh@, then cbNNNN@qK.hcm.gov.vn
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["email", "full_name", "unit_code", "unit_name", "roles", "phone"])
        out.writerow([SECRETARY, people[0][1], "VP", "Văn phòng UBND", "official;secretary", "0910000000"])
        for i, (email, name) in enumerate(people[1:attendees + 1], 1):
            k = i % units + 1
            out.writerow([email, name, f"Q{k}", f"Ủy ban nhân dân Quận {k}", "official", f"091{i:07d}"])


def provision(home: Path, url: str, sink_port: int, attendees: int, units: int) -> tuple[Path, int, dict]:
    """Config file (relay to ``sink_port``), schema, DKIM key, directory and meeting;
    returns (config file, meeting id, setup seconds)."""
    from invites.spec import spec_from_mapping
    from invites.store import create_meeting
    from mailhub.config import load_config
    from mailhub.csvimport import import_directory
    from mailhub.db import make_engine
    from mailhub.dkimkeys import ensure_domain_keys
    from mailhub.schema import upgrade
    from tests.support import write_config_file

    path = write_config_file(home, sink_port, server={"hostname": "mailhub.bench", "processes": 1},
                             database={"url": url}, invites={"public_url": PUBLIC_URL})
    config = load_config(path)
    t = time.monotonic()
    upgrade(url)
    ensure_domain_keys(config.dkim_keys_dir, DOMAIN, config.dkim.selector, config.dkim.ed25519)
    write_directory(home / "directory.csv", attendees, units)
    engine = make_engine(url)
    try:
        import_directory(engine, home / "directory.csv", config.domains)
        t_dir = time.monotonic()
        spec = spec_from_mapping({**MEETING, "units": [f"Q{k}" for k in range(1, units + 1)]}, "bench meeting")
        meeting = create_meeting(engine, config.domains, spec)
    finally:
        engine.dispose()
    return path, meeting.meeting_id, {"directory_s": round(t_dir - t, 2),
                                      "meeting_s": round(time.monotonic() - t_dir, 2)}
