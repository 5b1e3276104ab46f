"""The console's refused-mail page (admin) on the real server: refusals made by submitting,
over SMTP, mail the policies refuse, then read back from the usage ledger."""
from __future__ import annotations

import re
import smtplib
from datetime import timedelta

import pytest
from sqlalchemy import insert

from mailhub.ledger import refused_event
from mailhub.models import UsageEvent, utcnow
from mailhub.templating import VIETNAM
from mailhub.web.refusal_policies import POLICY_LABELS, registered
from tests.console_support import console_hub
from tests.support import message

ADMIN = "quantri@hcm.gov.vn"
BURST = 52  # binh's refusals: more than one page of 50


@pytest.fixture(scope="module")
def hub(tmp_path_factory, ca, provisioned_home):
    running = console_hub(tmp_path_factory.mktemp("refusals"), ca, provisioned_home, only="submission")
    try:
        _refuse_some(running)
    except BaseException:
        running.stop()
        raise
    yield running
    running.stop()


def _refuse_some(hub) -> None:
    smtp = hub.running
    with smtp.connect("an@hcm.gov.vn") as client:
        assert client.mail("binh@hcm.gov.vn")[0] == 553  # sender_owned
        client.rset()
        with pytest.raises(smtplib.SMTPDataError) as info:  # header_from_matches
            client.sendmail("an@hcm.gov.vn", ["x@example.org"], message(sender="binh@hcm.gov.vn"))
        assert info.value.smtp_code == 550
        with pytest.raises(smtplib.SMTPDataError):  # classification
            client.sendmail("an@hcm.gov.vn", ["x@example.org"], message(subject="[MẬT] Báo cáo quý"))
    with smtp.connect("chau@q1.hcm.gov.vn") as client:
        assert client.mail("an@hcm.gov.vn")[0] == 553
    with smtp.connect("binh@hcm.gov.vn") as client:
        for _ in range(BURST):
            assert client.mail("vanphong@hcm.gov.vn")[0] == 553  # a unit mailbox not granted to her
    # an older refusal, ten days ago (Vietnam time), outside the default week
    old = refused_event(official_email="an@hcm.gov.vn", unit_code="STTTT", policy="rate_limit",
                        reason="451 4.7.1 Da gui qua 200 thu trong mot gio / Hourly limit", client_ip="127.0.0.1")
    with hub.engine.begin() as conn:
        conn.execute(insert(UsageEvent.__table__), [old | {"at": utcnow() - timedelta(days=10)}])


@pytest.fixture(scope="module")
def admin(hub):
    return hub.browser(ADMIN)


def _rows(page: str) -> list[str]:
    body = page.split("<h2>", 2)[-1]
    return re.findall(r"<tr>\s*<td>.*?</tr>", body, re.S)


def test_refusals_are_counted_per_policy_and_listed_with_the_reason(admin):
    response, page = admin.get("/console/refusals")
    assert response.status == 200
    counts = dict(re.findall(r"<code>(\w+)</code></a></td><td>[^<]*</td><td class=\"num\">(\d+)</td>", page))
    assert counts == {"sender_owned": str(2 + BURST), "header_from_matches": "1", "classification": "1"}
    assert "Gửi bằng địa chỉ không phải của mình" in page and "Văn bản có nội dung mật" in page
    assert "rate_limit" not in counts  # ten days ago: outside the last 7 days
    assert f"{4 + BURST} lần" in page and "trang 1/2" in page

    page = admin.get("/console/refusals?policy=classification")[1]
    rows = _rows(page)
    assert len(rows) == 1
    assert "Nguyễn Văn An" in rows[0] and "Sở Thông tin và Truyền thông" in rows[0] and "(GMT+7)" in rows[0]
    assert "550 5.7.1" in rows[0] and "nội dung mật" in rows[0]  # the reply the client got
    today = utcnow().astimezone(VIETNAM).strftime("%d/%m/%Y")
    assert today in rows[0]

    page = admin.get("/console/refusals?official=CHAU@q1.hcm.gov.vn")[1]
    rows = _rows(page)
    assert len(rows) == 1 and "Lê Minh Châu" in rows[0] and "Ủy ban nhân dân Quận 1" in rows[0]
    assert "553 5.7.1 Bạn chỉ được gửi thư bằng địa chỉ của chính mình" in rows[0]

    page = admin.get("/console/refusals?policy=header_from_matches&official=an%40hcm.gov.vn")[1]
    assert len(_rows(page)) == 1 and "Địa chỉ “From” trong thư không khớp người gửi" in page


def test_the_days_choose_the_period(admin):
    today = utcnow().astimezone(VIETNAM).date()
    month = (today - timedelta(days=29)).isoformat()
    page = admin.get(f"/console/refusals?from={month}&to={today.isoformat()}&policy=rate_limit")[1]
    rows = _rows(page)
    assert len(rows) == 1 and "Hourly limit" in rows[0]
    assert "30 ngày gần nhất" in page
    page = admin.get("/console/refusals?from=01/01/2020&to=31/01/2020")[1]
    assert "Không có lần từ chối nào trong khoảng thời gian này" in page and not _rows(page)


def test_refusals_come_a_page_at_a_time(admin):
    first = admin.get("/console/refusals?official=binh%40hcm.gov.vn")[1]
    assert len(_rows(first)) == 50 and "trang 1/2" in first and "Trần Thị Bình" in first
    link = re.search(r'href="(/console/refusals\?[^"]*page=2)"', first)[1].replace("&amp;", "&")
    second = admin.get(link)[1]
    assert len(_rows(second)) == BURST - 50 and "trang 2/2" in second and "Trang trước" in second


def test_english_labels(admin):
    admin.cookies["mailhub_lang"] = "en"
    try:
        page = admin.get("/console/refusals")[1]
    finally:
        del admin.cookies["mailhub_lang"]
    assert "Refused mail" in page and "Sending as an address not one&#39;s own" in page


@pytest.mark.parametrize("query, field", [
    ("from=31/02/2026", "Từ ngày"), ("to=h%C3%B4m-qua", "Đến ngày"), ("policy=nope", "Quy tắc"),
    ("official=not-an-address", "Cán bộ"), ("page=0", "Trang"), ("page=-3", "Trang"),
])
def test_bad_filter_values_get_a_clear_message(admin, query, field):
    response, page = admin.get(f"/console/refusals?{query}")
    assert response.status == 400 and 'role="alert"' in page and f"Trường “{field}”" in page


def test_a_period_backwards_or_too_long_is_refused(admin):
    response, page = admin.get("/console/refusals?from=2026-03-10&to=2026-03-01")
    assert response.status == 400 and "phải trước hoặc bằng" in page
    response, page = admin.get("/console/refusals?from=2024-01-01&to=2026-01-01")
    assert response.status == 400 and "tối đa là 366 ngày" in page


@pytest.mark.parametrize("email", ["an@hcm.gov.vn", "thuky@hcm.gov.vn", "nhansu@hcm.gov.vn"])
def test_only_the_it_department_sees_refusals(hub, email):
    response, page = hub.browser(email).get("/console/refusals")
    assert response.status == 403 and "Bạn không có quyền" in page and "553 5.7.1" not in page


def test_every_registered_policy_has_a_label():
    assert registered() <= POLICY_LABELS.keys()
