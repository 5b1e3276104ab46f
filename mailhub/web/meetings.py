"""The secretaries' meeting pages (``/console/meetings``): create a meeting from the
directory, preview exactly what will be sent, send, follow each attendee's email, SMS
and answer, remind, change and cancel.

For secretaries and admins. A secretary sees and acts on the meetings they are the
secretary of, an admin on all; any other id gets the same not-found page as a missing
one (:func:`invites.access.load_meeting`). Every change goes through the functions the
JSON API and the CLI use (:mod:`invites.store`, :mod:`invites.issue`,
:mod:`invites.changes`, :mod:`invites.reminders`), so the console behaves as they do;
this module reads forms, calls them and renders.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.engine import Engine

from invites.access import load_meeting, meeting_lock
from invites.changes import cancel_meeting, update_meeting
from invites.issue import issue
from invites.reminders import remind_now
from invites.smstext import strip_diacritics
from invites.spec import changes_from_mapping, spec_from_mapping
from invites.store import create_meeting
from mailhub.directory import list_officials, list_units
from mailhub.errors import InputError
from mailhub.models import Meeting, MeetingStatus, as_utc
from mailhub.web.meeting_form import (LABELS, FieldError, MeetingForm, by_field, changes_mapping, field_errors,
                                      form_values, meeting_mapping, name_key)
from mailhub.web.meeting_overview import PAGE, attendee_rows, counts, meeting_rows
from mailhub.web.meeting_preview import build_preview
from mailhub.web.pages import Console, Stop, Visitor, done, language, secure_headers

log = logging.getLogger("mailhub.web")

SHOWN_OFFICIALS = 300  # officials listed as checkboxes at once; the filter narrows the rest
EMAIL_FRAME_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"

NOTICES = {
    "created": ("Đã tạo cuộc họp (bản nháp). Hãy xem trước giấy mời rồi bấm Gửi.",
                "The meeting is created (a draft). Check the invitation below, then press Send."),
    "sent": ("Đã đưa giấy mời vào hàng đợi gửi; trạng thái bên dưới tự cập nhật.",
             "The invitations are queued; the states below update themselves."),
    "sent_refused": ("Đã gửi giấy mời, nhưng quy tắc của hệ thống đã từ chối một số thư: xem cột Email.",
                     "The invitations are queued, but the relay's rules refused some emails: see the Email column."),
    "nothing_new": ("Không còn ai cần gửi: mọi người đã được gửi giấy mời.",
                    "Nobody is left to send to: everyone has been sent the invitation."),
    "reminded": ("Đã yêu cầu gửi lời nhắc; hệ thống sẽ gửi trong vài giây.",
                 "A reminder has been asked for; it goes out within seconds."),
    "updated": ("Đã cập nhật cuộc họp và gửi thông báo thay đổi cho những người đã nhận giấy mời.",
                "The meeting is updated; those already invited are sent the change."),
    "updated_draft": ("Đã cập nhật bản nháp.", "The draft is updated."),
    "cancelled": ("Đã hủy cuộc họp; những người đã nhận giấy mời được gửi thông báo hủy.",
                  "The meeting is cancelled; those invited are told."),
}
STATUS = {"draft": ("Bản nháp", "Draft", "wait"), "sent": ("Đã gửi", "Sent", "ok"),
          "cancelled": ("Đã hủy", "Cancelled", "bad")}
ANSWER = {"ACCEPTED": ("Tham dự", "Accepted", "ok"), "DECLINED": ("Từ chối", "Declined", "bad"),
          "TENTATIVE": ("Chưa chắc chắn", "Tentative", "wait"), "NEEDS-ACTION": ("Chưa trả lời", "No answer", "")}
CHANNEL = {"": ("Không gửi", "Not sent", ""), "queued": ("Đang chờ gửi", "Queued", "wait"),
           "sent": ("Đã gửi", "Sent", "ok"), "delivered": ("Đã nhận", "Delivered", "ok"),
           "failed": ("Thất bại", "Failed", "bad")}
REMIND_TO = ("unanswered", "all")
CANCELLED = ("Cuộc họp đã bị hủy, không thay đổi hay gửi thêm được nữa.",
             "The meeting is cancelled: it cannot change and nothing more is sent.")
_REMIND_REFUSALS = (("only a sent meeting", "Chỉ nhắc được khi giấy mời đã được gửi.",
                     "Reminders are possible once the invitations are sent."),
                    ("already started", "Cuộc họp đã bắt đầu, không nhắc nữa.", "The meeting has already started."))


def directory_view(engine: Engine, query: str, picked: list[str]) -> dict[str, Any]:
    """The units (code, name, officials) and the active officials grouped by unit,
    narrowed by ``query`` (name or address, with or without diacritics); ticked ones
    are always listed. Also every active official's (email, name), to resolve names."""
    units = list_units(engine)
    officials = [o for o in list_officials(engine) if o.active]
    wanted = strip_diacritics(name_key(query))
    chosen = set(picked)
    matching = [o for o in officials if o.email in chosen or not wanted
                or wanted in strip_diacritics(name_key(o.full_name)) or wanted in o.email]
    names = {u.code: u.name for u, _ in units}
    groups: dict[str, list] = {}
    for official in matching[:SHOWN_OFFICIALS]:
        groups.setdefault(official.unit_code, []).append(official)
    return {"units": [(u.code, u.name, n) for u, n in units],
            "groups": [(code, names.get(code, code), people) for code, people in groups.items()],
            "hidden": max(0, len(matching) - SHOWN_OFFICIALS), "matching": len(matching),
            "pairs": [(o.email, o.full_name) for o in officials]}


def merged(form_problems: list[FieldError], checked: list[FieldError]) -> list[FieldError]:
    """The form's own problems and the meeting's checks; "nobody invited" or "nothing
    changes" is left out when a line naming people was refused (it is why)."""
    if any(e.field in ("people", "guests") for e in form_problems):
        checked = [e for e in checked if e.field not in ("invitees", "")]
    return form_problems + checked


def router(console: Console) -> APIRouter:
    engine, config = console.engine, console.config
    router = APIRouter()
    secretary = console.allow("secretary", "admin")

    def labels() -> dict[str, Any]:
        return {"status": STATUS, "answer": ANSWER, "channel": CHANNEL, "fields": LABELS}

    async def meeting_of(request: Request, who: Visitor, meeting_id: str) -> Meeting:
        """The meeting in the path if the visitor may see it; else the not-found page."""
        number = int(meeting_id) if meeting_id.isascii() and meeting_id.isdigit() and len(meeting_id) <= 18 else 0
        meeting = await asyncio.to_thread(load_meeting, engine, who, number) if number else None
        if meeting is None:
            raise Stop(console.not_found(request, who))
        return meeting

    def still_open(request: Request, who: Visitor, meeting: Meeting) -> None:
        if meeting.status == MeetingStatus.CANCELLED.value:
            raise Stop(console.refusal(request, who, 409, *CANCELLED))

    async def signer(request: Request, who: Visitor):
        if console.signer_getter is None:
            raise Stop(console.refusal(request, who, 503, "Chưa sẵn sàng gửi thư (chưa có khóa DKIM).",
                                       "Sending is not available (no DKIM keys)."))
        return await console.signer_getter()

    def form_page(request: Request, who: Visitor, form: MeetingForm, view: dict, errors: list[FieldError],
                  meeting: Meeting | None = None, status: int = 200) -> HTMLResponse:
        lang = language(request)
        return console.render(request, who, "meetings/form", status, form=form, view=view, meeting=meeting,
                              errors=by_field(errors), summary=[e.text(lang) for e in errors], labels=labels(),
                              shown=SHOWN_OFFICIALS)

    # ---- the list and the new meeting -----------------------------------------------

    @router.get("/meetings")
    async def meetings(request: Request, who: Visitor = Depends(secretary)) -> Response:
        text = request.query_params.get("page", "1")
        page = int(text) if text.isascii() and text.isdigit() and 0 < len(text) < 7 and int(text) > 0 else 1
        rows, total = await asyncio.to_thread(meeting_rows, engine, who, page)
        return console.render(request, who, "meetings/list", rows=rows, total=total, page=page,
                              pages=max(1, -(-total // PAGE)), labels=labels(), notices=NOTICES)

    @router.get("/meetings/new")
    async def new(request: Request, who: Visitor = Depends(secretary)) -> Response:
        form = MeetingForm({"unit": who.unit, "q": request.query_params.get("q", "")[:100]})
        view = await asyncio.to_thread(directory_view, engine, form.value("q"), [])
        return form_page(request, who, form, view, [])

    @router.post("/meetings/new")
    async def create(request: Request, who: Visitor = Depends(secretary)) -> Response:
        posted = await console.form_lists(request, who)
        form = MeetingForm.read(posted)
        view = await asyncio.to_thread(directory_view, engine, form.value("q")[:100], form.attendees)
        if posted.get("do", [""])[-1] == "filter":  # the officials' filter: the form again, narrowed
            return form_page(request, who, form, view, [])
        data, sources, errors = meeting_mapping(form, who.email, view["pairs"])
        try:
            spec = spec_from_mapping(data, "form")  # its problems too, all at once
        except InputError as exc:
            errors = merged(errors, field_errors(str(exc), sources))
        if not errors:
            try:
                created = await asyncio.to_thread(create_meeting, engine, config.domains, spec)
            except InputError as exc:
                errors = field_errors(str(exc), sources)
        if errors:
            return form_page(request, who, form, view, errors, status=422)
        log.info("console: %s created meeting %d", who.email, created.meeting_id)
        return done(f"/console/meetings/{created.meeting_id}/preview", "created")

    # ---- preview and send -------------------------------------------------------------

    async def preview_of(request: Request, who: Visitor, meeting: Meeting):
        still_open(request, who, meeting)  # a cancelled meeting sends no invitation any more
        try:
            return await asyncio.to_thread(build_preview, engine, config, await signer(request, who),
                                           console.rsvp_key, meeting.id)
        except (InputError, ValueError) as exc:
            log.warning("console: no preview of meeting %d: %s", meeting.id, exc)
            raise Stop(console.refusal(request, who, 409, "Không thể dựng giấy mời của cuộc họp này.",
                                       f"The invitation of this meeting cannot be built: {exc}")) from None

    @router.get("/meetings/{meeting_id}/preview")
    async def preview(meeting_id: str, request: Request, who: Visitor = Depends(secretary)) -> Response:
        meeting = await meeting_of(request, who, meeting_id)
        shown = await preview_of(request, who, meeting)
        return console.render(request, who, "meetings/preview", meeting=meeting, preview=shown, labels=labels(),
                              start=as_utc(meeting.start_at), end=as_utc(meeting.end_at), notices=NOTICES)

    @router.get("/meetings/{meeting_id}/preview/email.html")
    async def preview_html(meeting_id: str, request: Request, who: Visitor = Depends(secretary)) -> Response:
        meeting = await meeting_of(request, who, meeting_id)
        shown = await preview_of(request, who, meeting)
        if shown.email is None:
            return console.not_found(request, who)
        response = secure_headers(HTMLResponse(shown.email.html))
        # The email's own HTML: nothing may run or load, and only our page may frame it.
        response.headers["Content-Security-Policy"] = EMAIL_FRAME_CSP
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
        return response

    @router.post("/meetings/{meeting_id}/send")
    async def send(meeting_id: str, request: Request, who: Visitor = Depends(secretary)) -> Response:
        meeting = await meeting_of(request, who, meeting_id)
        await console.form(request, who)
        still_open(request, who, meeting)
        dkim = await signer(request, who)
        async with meeting_lock(meeting.id):  # shared with the API
            try:
                report = await asyncio.to_thread(issue, engine, config, dkim, console.rsvp_key, meeting.id)
            except InputError as exc:
                log.info("console: meeting %d not sent: %s", meeting.id, exc)
                return console.refusal(request, who, 409, *CANCELLED)
        log.info("console: %s sent meeting %d: %d email(s), %d SMS, %d refused", who.email, meeting.id,
                 report.emails, report.sms, len(report.refused))
        key = "sent_refused" if report.refused else "sent" if report.emails or report.sms else "nothing_new"
        return done(f"/console/meetings/{meeting.id}?live=1", key)  # just sent: follow it live

    # ---- status, remind ---------------------------------------------------------------

    async def status_page(request: Request, who: Visitor, meeting: Meeting, error: tuple[str, str] | None = None,
                          status: int = 200) -> Response:
        rows = await asyncio.to_thread(attendee_rows, engine, meeting.id)
        return console.render(request, who, "meetings/status", status, meeting=meeting, rows=rows,
                              counts=counts(rows), labels=labels(), start=as_utc(meeting.start_at),
                              end=as_utc(meeting.end_at), error=error, notices=NOTICES,
                              live=request.query_params.get("live") == "1")

    @router.get("/meetings/{meeting_id}")
    async def show(meeting_id: str, request: Request, who: Visitor = Depends(secretary)) -> Response:
        return await status_page(request, who, await meeting_of(request, who, meeting_id))

    @router.post("/meetings/{meeting_id}/remind")
    async def remind(meeting_id: str, request: Request, who: Visitor = Depends(secretary)) -> Response:
        meeting = await meeting_of(request, who, meeting_id)
        posted = await console.form(request, who)
        still_open(request, who, meeting)
        to = posted.get("to", "unanswered")
        if to not in REMIND_TO:
            return await status_page(request, who, meeting, ("Lựa chọn nhắc không hợp lệ.", "Not a valid choice."), 422)
        try:
            await asyncio.to_thread(remind_now, engine, meeting.id, to)
        except InputError as exc:
            vi, en = next(((vi, en) for text, vi, en in _REMIND_REFUSALS if text in str(exc)),
                          ("Không thể gửi lời nhắc.", f"No reminder: {exc}"))
            return await status_page(request, who, meeting, (vi, en), 409)
        log.info("console: %s asked for a reminder (%s) of meeting %d", who.email, to, meeting.id)
        return done(f"/console/meetings/{meeting.id}", "reminded")

    # ---- update -----------------------------------------------------------------------

    def current(meeting: Meeting) -> dict[str, str]:
        return form_values(meeting.title, meeting.agenda, meeting.location, meeting.chair_name,
                           as_utc(meeting.start_at), as_utc(meeting.end_at))

    @router.get("/meetings/{meeting_id}/edit")
    async def edit(meeting_id: str, request: Request, who: Visitor = Depends(secretary)) -> Response:
        meeting = await meeting_of(request, who, meeting_id)
        still_open(request, who, meeting)
        form = MeetingForm(current(meeting) | {"q": request.query_params.get("q", "")[:100]})
        view = await asyncio.to_thread(directory_view, engine, form.value("q"), [])
        return form_page(request, who, form, view, [], meeting)

    @router.post("/meetings/{meeting_id}/edit")
    async def change(meeting_id: str, request: Request, who: Visitor = Depends(secretary)) -> Response:
        meeting = await meeting_of(request, who, meeting_id)
        posted = await console.form_lists(request, who)
        still_open(request, who, meeting)
        form = MeetingForm.read(posted)
        view = await asyncio.to_thread(directory_view, engine, form.value("q")[:100], form.attendees)
        if posted.get("do", [""])[-1] == "filter":
            return form_page(request, who, form, view, [], meeting)
        data, sources, errors = changes_mapping(form, current(meeting), view["pairs"])
        try:
            changes = changes_from_mapping(data, "form")
        except InputError as exc:
            errors = merged(errors, field_errors(str(exc), sources))
        if not errors:
            dkim = await signer(request, who)
            try:
                async with meeting_lock(meeting.id):  # shared with the API
                    updated = await asyncio.to_thread(update_meeting, engine, config, dkim, console.rsvp_key,
                                                      meeting.id, changes)
            except InputError as exc:
                errors = field_errors(str(exc), sources)
        if errors:
            return form_page(request, who, form, view, errors, meeting, status=422)
        log.info("console: %s updated meeting %d (%s; %d added)", who.email, meeting.id,
                 ", ".join(updated.changed), updated.added)
        key = "updated" if meeting.status == MeetingStatus.SENT.value else "updated_draft"
        return done(f"/console/meetings/{meeting.id}", key)

    # ---- cancel -----------------------------------------------------------------------

    @router.get("/meetings/{meeting_id}/cancel")
    async def confirm_cancel(meeting_id: str, request: Request, who: Visitor = Depends(secretary)) -> Response:
        meeting = await meeting_of(request, who, meeting_id)
        still_open(request, who, meeting)
        return console.render(request, who, "meetings/cancel", meeting=meeting, start=as_utc(meeting.start_at),
                              end=as_utc(meeting.end_at))

    @router.post("/meetings/{meeting_id}/cancel")
    async def cancel(meeting_id: str, request: Request, who: Visitor = Depends(secretary)) -> Response:
        meeting = await meeting_of(request, who, meeting_id)
        posted = await console.form(request, who)
        still_open(request, who, meeting)
        reason = " ".join("".join(c for c in posted.get("reason", "") if c.isprintable() or c.isspace()).split())[:500]
        dkim = await signer(request, who)
        async with meeting_lock(meeting.id):  # shared with the API
            try:
                report = await asyncio.to_thread(cancel_meeting, engine, config, dkim, console.rsvp_key, meeting.id)
            except InputError:  # cancelled meanwhile (a double click)
                return console.refusal(request, who, 409, *CANCELLED)
        log.info("console: %s cancelled meeting %d (%d email(s), %d SMS); reason: %s", who.email, meeting.id,
                 report.emails, report.sms, reason or "-")
        return done(f"/console/meetings/{meeting.id}", "cancelled")

    return router
