"""End to end: mail sent through the real relay (TLS, AUTH) and an invitation sent through the
invites API show up in the HR scores with the right counts, read back through the scores API
with each role's view (HR everything, a unit leader their unit, an official their own)."""
from __future__ import annotations

import smtplib
import time

import pytest
from sqlalchemy import func, select

from mailhub import directory
from mailhub.db import make_engine
from mailhub.models import UsageEvent, utcnow
from mailhub.scoring.modelfile import SHIPPED_HOLIDAYS, load_holidays
from mailhub.templating import VIETNAM
from mailhub.tokens import issue_token
from policies.scoring.calendar import working_days
from policies.scoring.periods import parse_period
from tests.support import make_config, message, provisioned_copy, start_hub
from tests.test_invite_api import MEETING, Api

AN, BINH, CHAU = "an@hcm.gov.vn", "binh@hcm.gov.vn", "chau@q1.hcm.gov.vn"
HR, LEADER = "tccb@hcm.gov.vn", "giamdoc@hcm.gov.vn"


@pytest.fixture
def hub(tmp_path, ca, provisioned_home):
    config = make_config(provisioned_copy(provisioned_home, tmp_path / "home"), ca)
    engine = make_engine(config.database_url)
    with engine.begin() as conn:  # an@ is also the unit's secretary
        conn.exec_driver_sql("UPDATE official SET roles = 'official,secretary' WHERE email = ?", (AN,))
    directory.add_official(engine, config.domains, HR, "Phòng Tổ chức cán bộ", "HCM", ["official", "hr"])
    directory.add_official(engine, config.domains, LEADER, "Giám đốc Sở", "STTTT", ["official", "leader"])
    tokens = {email: issue_token(engine, email, "test").token.reveal() for email in (AN, BINH, HR, LEADER, CHAU)}
    running = start_hub(config, ca, only="submission")
    yield running, Api(running.hub.ports["http"], engine, tokens), engine
    running.stop()
    engine.dispose()


def wait_for_events(engine, n: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.execute(select(func.count()).select_from(UsageEvent)).scalar() >= n:
                return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} ledger events")


def test_relay_mail_and_invitations_show_up_in_the_scores(hub):
    running, api, engine = hub
    with running.connect(AN) as client:
        for n in range(3):
            client.sendmail(AN, [BINH], message(AN, BINH, subject=f"Báo cáo {n}"))
        client.sendmail(AN, [AN], message(AN, AN, subject="Ghi chú cho mình"))  # to oneself: not counted
        with pytest.raises(smtplib.SMTPException):  # as someone else: refused, counts against I1
            client.sendmail(BINH, [CHAU], message(BINH, CHAU))
    with running.connect(CHAU) as client:
        client.sendmail(CHAU, [AN], message(CHAU, AN))
    status, _, created = api("POST", "/api/v1/meetings", MEETING | {"secretary": AN}, who=AN)
    assert status == 201, created
    status, _, sent = api("POST", f"/api/v1/meetings/{created['id']}/send", who=AN)
    assert status == 200, sent
    wait_for_events(engine, 4 + 1 + 1 + 2)  # an@'s 4 + refusal + châu's 1 + 2 invitations

    period = parse_period(f"{utcnow().astimezone(VIETNAM):%Y-%m}")
    status, _, everything = api("GET", f"/api/v1/scores?period={period.label}", who=HR)
    assert status == 200, everything
    officials = {o["email"]: o for o in everything["officials"]}
    an = officials[AN]["activity"]
    today = utcnow().astimezone(VIETNAM).date()
    worked_today = today in working_days(today, today, load_holidays(SHIPPED_HOLIDAYS).dates)
    assert an == {"sent": 3, "refused_outside": 1, "active_days": int(worked_today), "documents": 0,
                  "documents_valid": 0, "meetings": 1, "meetings_electronic": 1, "deduction_cases": 0}
    assert officials[CHAU]["activity"]["sent"] == 1 and officials[BINH]["activity"]["sent"] == 0
    assert everything["model_version"] == "2026.1" and everything["closed_at"] is None
    assert {u["score"]["unit"] for u in everything["units"]} >= {"STTTT", "Q1"}
    explanation = officials[AN]["score"]["notes"] or officials[AN]["score"]["parts"]
    assert explanation  # every score carries what explains it

    status, _, own = api("GET", f"/api/v1/scores?period={period.label}", who=BINH)
    assert status == 200 and [o["email"] for o in own["officials"]] == [BINH] and own["units"] == []
    status, _, refused = api("GET", f"/api/v1/scores?period={period.label}&unit=Q1", who=BINH)
    assert status == 403 and refused["error"] == "forbidden"

    status, _, unit = api("GET", f"/api/v1/scores?period={period.label}&by=unit", who=LEADER)
    assert status == 200 and "officials" not in unit
    assert [u["score"]["unit"] for u in unit["units"]] == ["STTTT"]
    status, _, other = api("GET", f"/api/v1/scores?period={period.label}&unit=Q1", who=LEADER)
    assert status == 403

    status, _, problem = api("GET", "/api/v1/scores?period=2026-Q9", who=HR)
    assert status == 422 and "2026-Q9" in problem["message"]["en"]
    status, _, _ = api("GET", f"/api/v1/scores?period={period.label}", token="mh_" + "x" * 43)
    assert status == 401
    status, _, closed = api("GET", "/api/v1/scores/periods", who=LEADER)
    assert status == 403
    status, _, closed = api("GET", "/api/v1/scores/periods", who=HR)
    assert status == 200 and closed == []
