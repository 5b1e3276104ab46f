"""The console's score pages on the real server: HR's tables and charts for a period whose
usage was written to the ledger, the downloads read back, each role's view (HR everything, a
unit leader their unit, an official only /console/me), the filters' errors, paging, English.

One hub for the module: the last quarter (every working day of it) gets mail from the
provisioned officials and 130 more, so scores are real and the officials' view has two pages.
"""
from __future__ import annotations

import csv
import html
import io
import re

import openpyxl
import pytest
from sqlmodel import Session

from mailhub import directory
from mailhub.models import OfficialAssignment, UsageEvent, utcnow
from mailhub.scoring import periodstore
from mailhub.scoring.charts import format_number
from mailhub.scoring.csvexport import csv_cell
from mailhub.scoring.modelfile import SHIPPED_HOLIDAYS, load_holidays
from mailhub.templating import VIETNAM
from policies.scoring.calendar import working_days
from policies.scoring.formula import SCORED, shown
from policies.scoring.periods import previous_quarter
from tests.scoring_sample import mail
from tests.console_support import AN, console_hub
from tests.support import PASSWORD

BINH, CHAU, HR, ADMIN = "binh@hcm.gov.vn", "chau@q1.hcm.gov.vn", "nhansu@hcm.gov.vn", "quantri@hcm.gov.vn"
LEADER, NEWCOMER = "lanhdao@hcm.gov.vn", "moi@hcm.gov.vn"
TODAY = utcnow().astimezone(VIETNAM).date()
LAST = previous_quarter(TODAY)  # a whole quarter, over
CROWD = 130  # officials in ward P-BN, beyond the provisioned ones: two pages of 100


@pytest.fixture(scope="module")
def hub(tmp_path_factory, ca, provisioned_home):
    hub = console_hub(tmp_path_factory.mktemp("scores"), ca, provisioned_home, only="submission")
    engine, domains = hub.engine, hub.config.domains
    directory.add_official(engine, domains, LEADER, "Hoàng Lãnh Đạo", "STTTT", ["official", "leader"], None, PASSWORD)
    newcomer = directory.add_official(engine, domains, NEWCOMER, "Ngô Mới Đến", "STTTT", ["official"], None, PASSWORD)
    directory.add_unit(engine, "P-BN", "UBND Phường Bến Nghé", parent="Q1", kind="ward")
    crowd = [f"canbo{n:03d}@hcm.gov.vn" for n in range(CROWD)]
    with Session(engine) as session:  # one transaction
        for n, email in enumerate(crowd):
            directory.add_official(session, domains, email, f"Cán Bộ Số {n:03d}", "P-BN")
        session.commit()
    with engine.begin() as conn:  # joins today: nothing to count in the last quarter
        conn.execute(OfficialAssignment.__table__.insert(),
                     [{"official_id": newcomer.id, "unit_code": "STTTT", "start": TODAY, "end": None}])

    days = working_days(LAST.start, LAST.end, load_holidays(SHIPPED_HOLIDAYS).dates)
    rows = mail(AN, days[3], 5, kind="refused", policy="sender_domain_official")
    for n, day in enumerate(days):
        rows += mail(AN, day, 3)
        if n % 2:
            rows += mail(BINH, day)
        if n < 40:
            rows += mail(CHAU, day)
        for k, email in enumerate(crowd):
            if (n + k) % 3:
                rows += mail(email, day)
    for day in days[-5:]:
        rows += mail(crowd[0], day, 12)  # a burst at the end of the quarter: "cần xem xét"
    with engine.begin() as conn:
        conn.execute(UsageEvent.__table__.insert(), rows)
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def expected(hub):
    """The same period's scores, straight from the period store."""
    return periodstore.scores_for(hub.engine, hub.config, LAST.label)


@pytest.fixture(scope="module")
def hr(hub):
    return hub.browser(HR)


def cell_after(page: str, marker: str) -> str:
    """The bold total of the table row that holds ``marker`` (a unit code or an email)."""
    found = re.search(rf'<span class="muted">\(?{re.escape(marker)}\)?</span>.*?<strong>([^<]*)</strong>', page, re.S)
    assert found, f"no row for {marker}"
    return found[1]


def official_emails(page: str) -> list[str]:
    return re.findall(r'<br><span class="muted">([^<@]+@[^<]+)</span></th>', page)


def test_hr_sees_the_units_ranked_with_explanations_matching_the_period_store(hr, expected):
    response, page = hr.get(f"/console/scores?period={LAST.label}")
    assert response.status == 200, page
    assert LAST.label_vi in page and expected.model_version in page and "Chưa chốt" in page
    scored = [u for u in expected.units if u.score.total is not None]
    assert {u.code for u in scored} >= {"STTTT", "Q1", "P-BN"}
    for u in expected.units:
        total = format_number(u.score.total, "vi") if u.score.total is not None else "—"
        assert cell_after(page, u.code) == total, u.code
        for line in u.score.explanation_vi:
            assert html.escape(line) in page
    assert "Sở, ban, ngành" in page and "Phường, xã, thị trấn" in page and "<details>" in page
    assert '<img src="/console/scores/chart/ranking.svg?' in page and 'alt="' in page
    # The trend over the year's quarters: computed on request when quarters are neither cached nor
    # closed (seconds each for a big city), then shown with the page while they stay cached.
    response, page = hr.get(f"/console/scores?period={LAST.label}&trend=1")
    assert response.status == 200 and "Bình quân toàn thành phố" in page  # the trend's table
    assert "Bình quân toàn thành phố" in hr.get(f"/console/scores?period={LAST.label}")[1]
    _, page = hr.get("/console/scores?period=2025-Q4")  # a year none of whose quarters was computed
    assert "Xem xu hướng theo các quý của năm" in page and "cần tính thêm 3 quý chưa chốt" in page
    assert "Bình quân toàn thành phố" not in page and "trend=1" in page


def test_hr_sees_the_officials_with_their_points_and_flags(hr, expected):
    by_email = {o.email: o for o in expected.officials}
    for email in (AN, BINH, CHAU, "canbo000@hcm.gov.vn"):
        response, page = hr.get(f"/console/scores?period={LAST.label}&view=official&q={email}")
        assert response.status == 200 and official_emails(page) == [email]
        o = by_email[email]
        assert o.score.status == SCORED
        assert cell_after(page, email) == format_number(o.score.total, "vi")
        for line in o.score.explain_vi():
            assert html.escape(line) in page
    _, page = hr.get(f"/console/scores?period={LAST.label}&view=official&q=canbo000")
    assert "Cần xem xét" in page and by_email["canbo000@hcm.gov.vn"].bursts
    _, page = hr.get(f"/console/scores?period={LAST.label}&view=official&q=nguyen+van")  # no diacritics
    assert official_emails(page) == [AN]


def test_the_officials_view_is_paged(hr, expected):
    response, first = hr.get(f"/console/scores?period={LAST.label}&view=official")
    assert response.status == 200
    total = len(expected.officials)
    assert total > 100 and f"Tìm thấy {total} cán bộ" in first and "trang 1/2" in first
    assert len(official_emails(first)) == 100 and "page=2" in first
    _, second = hr.get(f"/console/scores?period={LAST.label}&view=official&page=2")
    rest = official_emails(second)
    assert len(rest) == total - 100 and not set(rest) & set(official_emails(first))
    assert NEWCOMER not in first + second  # not employed in the period


def test_the_xlsx_and_csv_downloads_hold_the_same_scores(hr, expected):
    response, data = hr.get(f"/console/scores/download.xlsx?period={LAST.label}")
    assert response.status == 200
    assert response.headers["Content-Disposition"] == f'attachment; filename="diem-thi-dua-{LAST.label}.xlsx"'
    workbook = openpyxl.load_workbook(io.BytesIO(data))
    sheet = workbook["Đơn vị"]
    names = [c.value for c in sheet[1]]
    totals = {row[names.index("Mã đơn vị")]: row[names.index("Tổng điểm")]
              for row in sheet.iter_rows(min_row=2, values_only=True)}
    for u in expected.units:
        if u.score.total is not None:
            assert totals[u.code] == pytest.approx(float(shown(u.score.total))), u.code
    assert workbook["Cán bộ"].max_row == len(expected.officials) + 1

    response, text = hr.get(f"/console/scores/download.csv?period={LAST.label}&view=official")
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/csv")
    assert "diem-thi-dua-can-bo-" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    header, body = rows[0], rows[1:]
    by_email = {r[header.index("Email")]: r for r in body}
    assert len(body) == len(expected.officials)
    for o in expected.officials:
        if o.score.status == SCORED:
            assert by_email[o.email][header.index("Tổng điểm")] == csv_cell(o.score.total)


def test_the_pdf_report(hr):
    try:
        from weasyprint import HTML
        HTML(string="<p>Xin chào</p>").write_pdf()
    except Exception as exc:  # no Pango on this machine
        pytest.skip(f"WeasyPrint cannot render here: {exc}")
    response, data = hr.get(f"/console/scores/report.pdf?period={LAST.label}")
    assert response.status == 200 and response.headers["Content-Type"] == "application/pdf"
    assert data.startswith(b"%PDF") and "bao-cao-thi-dua-" in response.headers["Content-Disposition"]


def test_the_charts_are_svg(hr):
    for path in (f"/console/scores/chart/ranking.svg?period={LAST.label}&group=ward",
                 f"/console/scores/chart/trend.svg?year={LAST.start.year}&unit=STTTT",
                 f"/console/scores/chart/trend.svg?year={LAST.start.year}"):
        response, data = hr.get(path)
        assert response.status == 200 and response.headers["Content-Type"] == "image/svg+xml", path
        assert b"<svg" in data[:400] and data.rstrip().endswith(b"</svg>")
    response, _ = hr.get("/console/scores/chart/ranking.svg?group=galaxy")
    assert response.status == 422


def test_a_plain_official_sees_only_their_own_score(hub, expected):
    binh = hub.browser(BINH)
    for path in ("/console/scores", f"/console/scores/download.xlsx?period={LAST.label}",
                 f"/console/scores/download.csv?period={LAST.label}", f"/console/scores/report.pdf?period={LAST.label}",
                 "/console/scores/chart/trend.svg"):
        assert binh.get(path)[0].status == 403, path
    response, page = binh.get(f"/console/me?period={LAST.label}")
    assert response.status == 200
    own = next(o for o in expected.officials if o.email == BINH)
    assert format_number(own.score.total, "vi") in page and "Thư gửi qua hệ thống thư công vụ" in page
    for line in own.score.explain_vi():
        assert html.escape(line) in page
    assert "Điểm đơn vị" not in page and AN not in page  # no one else's figures
    response, page = binh.get("/console/me")  # the current quarter by default
    assert response.status == 200 and "Điểm của tôi" in page


def test_an_official_without_data_gets_a_friendly_text(hub):
    newcomer = hub.browser(NEWCOMER)
    response, page = newcomer.get(f"/console/me?period={LAST.label}")
    assert response.status == 200 and "Chưa có đủ dữ liệu để tính điểm của bạn" in page
    response, page = newcomer.get("/console/me")  # employed from today: too few days
    assert response.status == 200 and "Chưa đủ dữ liệu để tính điểm" in page


def test_a_leader_sees_their_unit_only(hub, expected):
    leader = hub.browser(LEADER)
    response, page = leader.get(f"/console/scores?period={LAST.label}")
    assert response.status == 200
    stttt = next(u for u in expected.units if u.code == "STTTT")
    assert cell_after(page, "STTTT") == format_number(stttt.score.total, "vi")
    assert "Ủy ban nhân dân Quận 1" not in page and "P-BN" not in page
    assert "Bình quân toàn thành phố" not in page and "report.pdf" not in page  # the city's figures are HR's
    _, page = leader.get(f"/console/scores?period={LAST.label}&view=official")
    assert set(official_emails(page)) == {AN, BINH, LEADER, "thuky@hcm.gov.vn", HR, ADMIN}
    for path in (f"/console/scores?period={LAST.label}&unit=Q1",
                 f"/console/scores/download.xlsx?period={LAST.label}&unit=Q1",
                 f"/console/scores/chart/trend.svg?year={LAST.start.year}&unit=Q1"):
        assert leader.get(path)[0].status == 403, path
    response, _ = leader.get(f"/console/scores/report.pdf?period={LAST.label}")
    assert response.status == 403  # the city's report is HR's document
    response, data = leader.get(f"/console/scores/download.xlsx?period={LAST.label}")
    units = [r[3] for r in openpyxl.load_workbook(io.BytesIO(data))["Đơn vị"].iter_rows(min_row=2, values_only=True)]
    assert response.status == 200 and units == ["STTTT"]
    response, page = leader.get(f"/console/me?period={LAST.label}")
    assert response.status == 200 and "Điểm đơn vị" in page  # a leader sees their unit's score


def test_bad_filters_name_the_field(hr):
    response, page = hr.get("/console/scores?period=2026-Q9")
    assert response.status == 422 and 'role="alert"' in page and "Kỳ: “2026-Q9” không hợp lệ" in page
    response, page = hr.get("/console/scores?other=2099")
    assert response.status == 422 and "Kỳ: Năm 2099 chưa bắt đầu" in page
    response, page = hr.get(f"/console/scores?period={LAST.label}&unit=KHONG-CO")
    assert response.status == 422 and "Đơn vị: không có đơn vị mã “KHONG-CO”" in page
    response, page = hr.get(f"/console/scores?period={LAST.label}&page=abc&view=everything")
    assert response.status == 422 and "Trang:" in page and "Xem theo:" in page
    response, page = hr.get("/console/scores/download.csv?period=h%C3%B4m-qua")
    assert response.status == 422 and "Kỳ:" in page
    response, page = hr.get("/console/me?period=2026-13")
    assert response.status == 422 and "Kỳ:" in page


def test_the_pages_in_english(hub, expected):
    browser = hub.browser(HR)
    browser.cookies["mailhub_lang"] = "en"
    response, page = browser.get(f"/console/scores?period={LAST.label}")
    assert response.status == 200 and "Usage scores of the city mail system" in page and LAST.label_en in page
    stttt = next(u for u in expected.units if u.code == "STTTT")
    assert cell_after(page, "STTTT") == format_number(stttt.score.total, "en")
    response, page = browser.get(f"/console/me?period={LAST.label}&other=nonsense")
    assert response.status == 422 and "Period: “nonsense” is not valid" in page


def test_a_period_closed_meanwhile_shows_as_closed(hub, hr, expected):
    hr.get(f"/console/scores?period={LAST.label}")  # cached while open
    periodstore.close_period(hub.engine, hub.config, LAST.label, HR)
    _, page = hr.get(f"/console/scores?period={LAST.label}")
    assert "Đã chốt" in page and HR in page
    stttt = next(u for u in expected.units if u.code == "STTTT")
    assert cell_after(page, "STTTT") == format_number(stttt.score.total, "vi")
