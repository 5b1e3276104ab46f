"""The console's directory pages on the real server: units and officials with a filter and
pages, and the CSV import (all rows or none) with its report, its size limit and its CSRF
check."""
from __future__ import annotations

import html
import re
import secrets

import pytest

from mailhub.directory import find_official, list_officials
from mailhub.web.directory_upload import MAX_UPLOAD, problems_from
from tests.console_support import AN, console_hub

ADMIN = "quantri@hcm.gov.vn"
HEADER = "email,full_name,unit_code,unit_name,parent_unit_code,roles,phone,unit_kind\n"


@pytest.fixture(scope="module")
def hub(tmp_path_factory, ca, provisioned_home):
    running = console_hub(tmp_path_factory.mktemp("directory"), ca, provisioned_home, only="submission")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def admin(hub):
    return hub.browser(ADMIN)


def multipart(fields: dict[str, str], filename: str | None = None, content: bytes = b""):
    """A ``multipart/form-data`` body (RFC 7578) and its headers, as a browser sends the form."""
    boundary = "----mailhub" + secrets.token_hex(8)
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    if filename is not None:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                     f"Content-Type: text/csv\r\n\r\n".encode() + content + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def upload(browser, csv_text: str | bytes, filename: str = "danh-ba.csv", with_csrf: bool = True):
    fields = {"csrf": browser.csrf("/console/directory/import")} if with_csrf else {}
    content = csv_text.encode("utf-8") if isinstance(csv_text, str) else csv_text
    body, headers = multipart(fields, filename, content)
    response, page = browser.request("POST", "/console/directory/import", body=body, headers=headers)
    return response, html.unescape(page)


def listed(browser, query: str = "") -> tuple[int, str]:
    response, page = browser.get("/console/directory" + query)
    return response.status, html.unescape(page)


def test_units_and_officials_are_listed_and_filtered(hub, admin):
    status, page = listed(admin)
    assert status == 200
    for email in (AN, "binh@hcm.gov.vn", "chau@q1.hcm.gov.vn", "thuky@hcm.gov.vn"):
        assert email in page
    assert "Sở Thông tin và Truyền thông" in page and "Ủy ban nhân dân Quận 1" in page
    assert re.search(r'href="/console/directory\?unit=STTTT">STTTT</a>.*?<td class="num">5</td>', page, re.DOTALL)
    assert "Thư ký / Văn thư" in page  # roles by name

    _, q1 = listed(admin, "?unit=Q1")
    assert "chau@q1.hcm.gov.vn" in q1 and AN not in q1 and "Tìm thấy 1 cán bộ" in q1
    _, hcm = listed(admin, "?unit=HCM&subunits=1")
    assert f"Tìm thấy {len(list_officials(hub.engine))} cán bộ" in hcm  # every unit is under the city
    _, found = listed(admin, "?q=b%C3%ACnh")  # "bình", as typed, lower case
    assert "binh@hcm.gov.vn" in found and AN not in found
    _, found = listed(admin, "?q=THUKY")
    assert "thuky@hcm.gov.vn" in found and "Tìm thấy 1 cán bộ" in found
    _, inactive = listed(admin, "?active=no")
    assert "Tìm thấy 0 cán bộ" in inactive

    status, page = listed(admin, "?unit=..%2Fx&active=maybe&page=abc")
    assert status == 400 and 'role="alert"' in page
    assert "Đơn vị: Mã đơn vị không hợp lệ." in page and "Trạng thái: Trạng thái không hợp lệ." in page
    assert "Trang: Số trang không hợp lệ." in page and AN in page  # the bad filters are left out
    status, page = listed(admin, "?unit=NOWHERE")
    assert status == 400 and "Không có đơn vị mã NOWHERE" in page


def test_a_good_file_adds_officials_then_listed_with_pages(hub, admin):
    rows = [f"cb{i:02d}@q1.hcm.gov.vn,Cán Bộ Phường {i:02d},P1Q1,Phường Bến Nghé,Q1,official,0912 000 {i:03d},ward\n"
            for i in range(60)]
    rows.append(f"{AN},Nguyễn Văn An,STTTT,,,official;secretary,0912345678\n")  # an update
    response, page = upload(admin, "\ufeff" + HEADER + "".join(rows))
    assert response.status == 200 and "Đã nhập xong tệp." in page
    report = re.search(r"<caption>Kết quả nhập</caption>.*?</table>", page, re.DOTALL)[0]
    cells = re.findall(r'<td class="num">([^<]*)</td>', report)
    assert cells == ["1", "0", "—", "60", "1", "0"]  # units added/updated; officials added/updated/unchanged
    assert "mailhub user passwd" in page
    assert find_official(hub.engine, "cb07@q1.hcm.gov.vn").phone == "+84912000007"

    _, first = listed(admin, "?unit=P1Q1")
    assert "Tìm thấy 60 cán bộ" in first and "trang 1/2" in first
    assert first.count("@q1.hcm.gov.vn</td>") == 50 and 'href="/console/directory?unit=P1Q1&page=2"' in first
    _, second = listed(admin, "?unit=P1Q1&page=2")
    assert second.count("@q1.hcm.gov.vn</td>") == 10 and "cb59@q1.hcm.gov.vn" in second
    _, district = listed(admin, "?unit=Q1&subunits=1")
    assert "Tìm thấy 61 cán bộ" in district

    response, page = upload(admin, HEADER + "".join(rows))  # the same file again
    cells = re.findall(r'<td class="num">([^<]*)</td>', re.search(r"<caption>Kết quả nhập.*?</table>", page, re.DOTALL)[0])
    assert cells == ["0", "0", "—", "0", "0", "61"]


def test_bad_rows_are_listed_and_nothing_is_stored(hub, admin):
    before = len(list_officials(hub.engine))
    csv_text = (HEADER
                + "moi1@hcm.gov.vn,Người Mới,STTTT,,,,\n"  # a good row
                + "an@gmail.com,Người Ngoài,STTTT,,,,\n"  # line 3: not an official domain
                + "moi2@hcm.gov.vn,Người Mới Hai,STTTT,,,,09\n"  # line 4: phone
                + "moi3@hcm.gov.vn,Người Mới Ba,KHONGCO,,,,\n"  # line 5: unknown unit
                + "moi1@hcm.gov.vn,Người Mới,STTTT,,,boss,\n")  # line 6: repeated, unknown role
    response, page = upload(admin, csv_text)
    assert response.status == 400 and "Không có thay đổi nào được lưu" in page
    rows = re.findall(r'<tr><td class="num">(\d+)</td><td><code>(\w+)</code></td><td>([^<]*)</td></tr>', page)
    assert {(line, field) for line, field, _ in rows} == {
        ("3", "email"), ("4", "phone"), ("5", "unit_code"), ("6", "email"), ("6", "roles")}
    assert any("gmail.com is not an official domain" in text for *_, text in rows)
    assert "/tmp" not in page and "upload.csv" not in page  # the temporary file is not named
    assert find_official(hub.engine, "moi1@hcm.gov.vn") is None
    assert len(list_officials(hub.engine)) == before

    response, page = upload(admin, "email;name\nx;y\n")
    assert response.status == 400 and "missing column(s)" in page and "Không có thay đổi nào được lưu" in page
    response, page = upload(admin, b"email,full_name,unit_code\n" + "a@hcm.gov.vn,Bình,STTTT\n".encode("latin-1"))
    assert response.status == 400 and "not UTF-8" in page and "cả tệp" in page


def test_an_upload_without_its_csrf_token_is_refused(hub, admin):
    response, page = upload(admin, HEADER + "csrf1@hcm.gov.vn,Không Token,STTTT,,,,\n", with_csrf=False)
    assert response.status == 403 and "Biểu mẫu đã hết hạn" in page
    body, headers = multipart({"csrf": "not-the-token"}, "x.csv", (HEADER + "csrf1@hcm.gov.vn,X,STTTT,,,,\n").encode())
    response, _ = admin.request("POST", "/console/directory/import", body=body, headers=headers)
    assert response.status == 403
    assert find_official(hub.engine, "csrf1@hcm.gov.vn") is None


def test_an_oversized_upload_is_refused(hub, admin):
    row = "big{}@hcm.gov.vn,Cán Bộ Lớn,STTTT,,,,\n"
    content = (HEADER + "".join(row.format(i) for i in range(MAX_UPLOAD // len(row) + 10))).encode()
    assert len(content) > MAX_UPLOAD
    response, page = upload(admin, content)
    assert response.status == 413 and "Tệp quá lớn: tối đa 10 MB" in html.unescape(page)
    assert "Không có thay đổi nào được lưu" in page

    # Without Content-Length (chunked): the bytes are counted as they arrive.
    body, headers = multipart({"csrf": admin.csrf("/console/directory/import")}, "big.csv", content)
    chunks = (body[i:i + 256 * 1024] for i in range(0, len(body), 256 * 1024))
    response, page = admin.request("POST", "/console/directory/import", body=chunks, headers=headers)
    assert response.status == 413 and "Tệp quá lớn" in page
    assert find_official(hub.engine, "big1@hcm.gov.vn") is None


def test_no_file_or_a_spreadsheet_is_refused_naming_the_field(admin):
    response, page = upload(admin, b"", filename="")
    assert response.status == 400 and "Trường “Tệp CSV”" in page
    response, page = upload(admin, b"PK\x03\x04 not csv", filename="danh-ba.xlsx")
    assert response.status == 400 and "CSV UTF-8" in page
    response, page = admin.request("POST", "/console/directory/import", body=b"--x\r\ngarbage",
                                   headers={"Content-Type": "multipart/form-data"})  # no boundary
    assert response.status == 400 and "Không đọc được biểu mẫu tải lên" in html.unescape(page)


def test_the_pages_speak_english_too(hub):
    browser = hub.browser(ADMIN)
    browser.cookies["mailhub_lang"] = "en"
    _, page = browser.get("/console/directory?unit=Q1")
    assert "Officials found: 1" in page and "Ủy ban nhân dân Quận 1" in page and "District" in page
    response, page = upload(browser, HEADER + "x@gmail.com,X,STTTT,,,,\n")
    assert response.status == 400 and "Nothing was stored" in page and "Rows with problems" in page


def test_the_import_page_documents_the_columns(admin):
    response, page = admin.get("/console/directory/import")
    page = html.unescape(page)
    assert response.status == 200 and 'enctype="multipart/form-data"' in page
    assert '<input type="file" id="csv-file" name="file"' in page and 'name="csrf"' in page
    for column in ("email", "full_name", "unit_code", "unit_name", "parent_unit_code", "roles", "phone", "unit_kind"):
        assert f"<code>{column}</code>" in page
    assert "an@hcm.gov.vn,Nguyễn Văn An,STTTT" in page  # the example, in the configured domain


@pytest.mark.parametrize("email", [AN, "thuky@hcm.gov.vn", "nhansu@hcm.gov.vn"])
def test_other_roles_may_not_use_the_directory_pages(hub, email):
    browser = hub.browser(email)
    for path in ("/console/directory", "/console/directory/import"):
        response, page = browser.get(path)
        assert response.status == 403 and "binh@hcm.gov.vn" not in page
    body, headers = multipart({"csrf": browser.csrf("/console")}, "x.csv",
                              (HEADER + "role1@hcm.gov.vn,X,STTTT,,,,\n").encode())
    response, _ = browser.request("POST", "/console/directory/import", body=body, headers=headers)
    assert response.status == 403 and find_official(hub.engine, "role1@hcm.gov.vn") is None


def test_problems_are_split_into_line_field_and_text():
    path = "/tmp/mailhub-import-x/upload.csv"
    message = (f"{path}:3: email: an@gmail.com: gmail.com is not an official domain\n"
               f"{path}:4: phone: not a valid phone number: '09'\n"
               f"{path}: 2 problem(s); nothing imported")
    assert [(p.line, p.field, p.text) for p in problems_from(message, path)] == [
        (3, "email", "an@gmail.com: gmail.com is not an official domain"),
        (4, "phone", "not a valid phone number: '09'")]
    assert [(p.line, p.field) for p in problems_from(f"{path}: not UTF-8 (byte 3): save as 'CSV UTF-8'", path)] == \
        [(None, "")]
