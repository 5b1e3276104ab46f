"""The directory for the IT department (``/console/directory``): units and officials with a
filter and pages, and the CSV import (``/console/directory/import``) with its report.

The import is :func:`mailhub.csvimport.import_directory`, the same as ``mailhub directory
import``: every row is checked first and nothing is stored when one is bad; the page lists
every bad row with its line number and column.
"""
from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from mailhub.csvimport import OPTIONAL, REQUIRED
from mailhub.directory import list_units
from mailhub.models import ROLES
from mailhub.web.console import ROLE_NAMES
from mailhub.web.directory_search import ACTIVE_CHOICES, PAGE_SIZE, descendants, find_officials, parse_filter
from mailhub.web.directory_upload import (MAX_UPLOAD, BadUpload, ImportOutcome, UploadTooLarge, import_upload,
                                          read_upload_form)
from mailhub.web.pages import Console, Visitor, language, translator

UNIT_KINDS = {"city": ("Thành phố", "City"), "department": ("Sở, ban, ngành", "Department"),
              "district": ("Quận, huyện", "District"), "ward": ("Phường, xã", "Ward or commune"),
              "other": ("Khác", "Other")}
# What each CSV column holds (docs/operations.md, "The directory CSV format"); the column
# names themselves come from mailhub.csvimport.
COLUMN_HELP = {
    "email": ("địa chỉ thư của cán bộ, thuộc một tên miền chính thức", "the official's address, in an official domain"),
    "full_name": ("họ và tên có dấu, ví dụ Nguyễn Văn An", "full name with diacritics, e.g. Nguyễn Văn An"),
    "unit_code": ("mã đơn vị; đơn vị phải có sẵn hoặc được mô tả trong tệp",
                  "the unit's code; the unit must exist or be described in the file"),
    "unit_name": ("nếu có: tạo đơn vị, hoặc đổi tên đơn vị, theo tên này", "when given: the unit is created, or renamed, with this name"),
    "parent_unit_code": ("mã đơn vị cấp trên (chỉ dùng cùng unit_name)", "the parent unit's code (with unit_name only)"),
    "roles": ("vai trò trong số " + ", ".join(ROLES) + ", cách nhau bởi ; hoặc dấu cách; để trống là official",
              "roles among " + ", ".join(ROLES) + ", separated by ; or spaces; empty means official"),
    "phone": ("số điện thoại, ví dụ 0912345678 (lưu thành +84912345678)", "phone number, e.g. 0912345678 (stored as +84912345678)"),
    "unit_kind": ("loại đơn vị: " + ", ".join(UNIT_KINDS) + " (chỉ dùng cùng unit_name)",
                  "unit kind: " + ", ".join(UNIT_KINDS) + " (with unit_name only)"),
}

log = logging.getLogger("mailhub.web")


def _example(domain: str) -> str:
    return (f"email,full_name,unit_code,unit_name,parent_unit_code,roles,phone\n"
            f"an@{domain},Nguyễn Văn An,STTTT,Sở Thông tin và Truyền thông,HCM,official;secretary,0912345678\n"
            f"binh@{domain},Trần Thị Bình,STTTT,,,official,\n")


def router(console: Console) -> APIRouter:
    routes = APIRouter()
    admin = console.allow("admin")

    @routes.get("/directory")
    async def directory_page(request: Request, who: Visitor = Depends(admin)) -> Response:
        t = translator(language(request))
        units = await asyncio.to_thread(list_units, console.engine)
        unit_list = [u for u, _ in units]
        chosen, problems = parse_filter(request.query_params, {u.code for u in unit_list})
        codes = None if not chosen.unit else descendants(unit_list, chosen.unit) if chosen.subunits else [chosen.unit]
        found = await asyncio.to_thread(find_officials, console.engine, chosen, codes)
        links = {"prev": urlencode(chosen.query(found.page - 1)) if found.page > 1 else None,
                 "next": urlencode(chosen.query(found.page + 1)) if found.page < found.pages else None}
        return console.render(request, who, "directory/list", 400 if problems else 200,
                              title=t("Danh bạ", "Directory"), units=units,
                              unit_names={u.code: u.name for u in unit_list}, kinds=UNIT_KINDS,
                              roles=ROLE_NAMES, chosen=chosen, problems=problems, found=found,
                              links=links, page_size=PAGE_SIZE, active_choices=ACTIVE_CHOICES)

    def import_page(request: Request, who: Visitor, status: int = 200, outcome: ImportOutcome | None = None,
                    refusal: tuple[str, str] | None = None) -> Response:
        t = translator(language(request))
        columns = [(name, name in REQUIRED, COLUMN_HELP.get(name, ("", ""))) for name in REQUIRED + OPTIONAL]
        return console.render(request, who, "directory/import", status,
                              title=t("Nhập danh bạ từ tệp CSV", "Import the directory from a CSV file"),
                              columns=columns, example=_example(console.config.domains.official[0]),
                              max_mb=MAX_UPLOAD // (1024 * 1024), outcome=outcome,
                              refusal=t(*refusal) if refusal else "")

    @routes.get("/directory/import")
    async def import_form(request: Request, who: Visitor = Depends(admin)) -> Response:
        return import_page(request, who)

    @routes.post("/directory/import")
    async def import_post(request: Request, who: Visitor = Depends(admin)) -> Response:
        try:
            form = await read_upload_form(request)
        except UploadTooLarge:
            mb = MAX_UPLOAD // (1024 * 1024)
            return import_page(request, who, 413, refusal=(
                f"Tệp quá lớn: tối đa {mb} MB. Hãy chia danh bạ thành nhiều tệp nhỏ hơn.",
                f"The file is too large: at most {mb} MB. Split the directory into smaller files."))
        except BadUpload:
            return import_page(request, who, 400, refusal=(
                "Không đọc được biểu mẫu tải lên; hãy chọn lại tệp và gửi lại.",
                "The upload form could not be read; choose the file again and resend."))
        try:
            console.check_csrf(request, who, _text(form.get("csrf")))
            upload = form.get("file")
            if not isinstance(upload, UploadFile) or not upload.filename or not upload.size:
                return import_page(request, who, 400, refusal=(
                    "Trường “Tệp CSV”: hãy chọn một tệp CSV không rỗng.",
                    "Field “CSV file”: choose a CSV file that is not empty."))
            if upload.filename.lower().endswith((".xlsx", ".xls", ".ods")):
                return import_page(request, who, 400, refusal=(
                    ("Trường “Tệp CSV”: đây là tệp bảng tính, không phải CSV. Trong Excel chọn "
                     "Lưu thành → CSV UTF-8 (Comma delimited) rồi tải tệp đó lên."),
                    ("Field “CSV file”: this is a spreadsheet, not a CSV file. In Excel choose "
                     "Save as → CSV UTF-8 (Comma delimited) and upload that file.")))
            outcome = await asyncio.to_thread(import_upload, console.engine, console.config.domains, upload.file)
        finally:
            await form.close()
        if outcome.report is not None:
            r = outcome.report
            log.info("console: %s imported the directory: %d unit(s) added, %d updated; %d official(s) added, "
                     "%d updated, %d unchanged", who.email, len(r.units_created), len(r.units_updated),
                     len(r.officials_created), len(r.officials_updated), r.officials_unchanged)
        else:
            log.info("console: %s's directory import refused: %d problem(s), nothing stored", who.email,
                     len(outcome.problems))
        return import_page(request, who, 400 if outcome.problems else 200, outcome=outcome)

    return routes


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
