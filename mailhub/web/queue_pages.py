"""The IT department's mail queue (``/console/queue``): what ``mailhub queue`` offers, in pages.

- ``GET /console/queue``: the counts of ``queue stats``, a filter form with the options of
  ``queue list`` (state, sender, recipient domain, older/newer than, at most N), and the
  matching messages, oldest first, each recipient with its state, attempts, next attempt
  and the next hop's last reply;
- ``POST /console/queue``: retry now, hold, release or delete, on the checked messages or on
  every message the filter matches (the filter travels in the form);
- ``GET /console/queue/{id}``: one message: envelope, recipients, header block (never the
  body: officials' mail is not the IT department's to read) and the attempts;
- ``POST /console/queue/{id}``: the same actions on that message.

Deleting needs the "I am sure" box. A message being delivered right now is never deleted
from here (``queue delete --force`` on the command line can): the page says so and nothing
changes. Every change is one call of :mod:`mailhub.queue_admin`, which takes the delivery
worker's locks; this module only reads the forms and shows the results.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Sequence

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from mailhub.models import utcnow
from mailhub.queue_admin import (ActionReport, Filters, InFlightError, QueueLookupError, change_recipients,
                                 delete_messages, list_messages, message_detail, stats)
from mailhub.web.pages import Console, Visitor, done
from mailhub.web.queue_filters import (MAX_LIMIT, ActionForm, FieldError, QueueQuery, parse_action, parse_filters,
                                       valid_path_id)
from mailhub.web.queue_view import STATE_LABELS, detail_view, message_view, stats_view

log = logging.getLogger("mailhub.web")

NOTICES = {
    "retry": ("Các người nhận đang chờ của thư đã chọn sẽ được gửi lại ngay.",
              "The waiting recipients of the chosen messages are due now."),
    "hold": ("Đã tạm giữ: các người nhận này sẽ không được gửi cho đến khi được thả.",
             "Held: these recipients are not tried until released."),
    "hold_busy": ("Đã tạm giữ những người nhận đang chờ; một số người nhận đang được gửi ngay lúc này nên "
                  "chưa giữ được, hãy thử lại sau ít phút.",
                  "Held the waiting recipients; some are being delivered right now and were not held: try "
                  "again in a few minutes."),
    "release": ("Đã thả: các người nhận bị tạm giữ sẽ được gửi ngay.", "Released: the held recipients are due now."),
    "delete": ("Đã xóa thư khỏi hàng đợi, cùng lịch sử gửi của thư.",
               "Deleted the messages from the queue, with their delivery history."),
    "none": ("Không có người nhận nào ở trạng thái phù hợp với thao tác này; không có gì thay đổi.",
             "No recipient was in a state this action applies to; nothing changed."),
}
_GONE = FieldError("id", "Không tìm thấy thư đã chọn trong hàng đợi (có thể đã được gửi xong hoặc bị xóa). "
                         "Không có gì thay đổi; hãy tải lại trang.",
                   "A chosen message is no longer in the queue (delivered and removed, or deleted). "
                   "Nothing changed; reload the page.")


_WHOLE_QUEUE = FieldError(
    "sure", "Chưa có bộ lọc nào: thao tác này sẽ áp dụng cho mọi thư trong hàng đợi. Hãy chọn bộ lọc, hoặc "
            "đánh dấu “Tôi chắc chắn” nếu đúng là muốn vậy. Chưa có gì thay đổi.",
    "No filter given: this would apply to every message in the queue. Choose a filter, or check “I am sure” "
    "if that is what you want. Nothing changed.")


def _in_flight(exc: InFlightError) -> FieldError:
    ids = ", ".join(exc.message_ids[:5]) + (", …" if len(exc.message_ids) > 5 else "")
    return FieldError("id", f"Không thể xóa: thư {ids} đang được gửi ngay lúc này (máy chủ nhận có thể vẫn nhận "
                            f"được thư). Chưa có thư nào bị xóa; hãy thử lại sau khi lần gửi này kết thúc.",
                      f"Cannot delete: message {ids} is being delivered right now (the next hop may get it "
                      f"anyway). Nothing was deleted; try again after this attempt.")


def _apply(console: Console, action: str, ids: Sequence[str] | None, filters: Filters) -> ActionReport:
    """One queue_admin call: raises QueueLookupError, InFlightError (delete, never forced)."""
    if action == "delete":
        return delete_messages(console.engine, ids, filters, utcnow())
    return change_recipients(console.engine, action, ids, filters, utcnow())


def _notice_key(report: ActionReport) -> str:
    if report.action == "hold" and report.in_flight:
        return "hold_busy"
    changed = report.messages if report.action == "delete" else report.targets
    return report.action if changed else "none"


def _fields(request: Request) -> dict[str, list[str]]:
    return {k: request.query_params.getlist(k) for k in request.query_params.keys()}


def router(console: Console) -> APIRouter:
    router = APIRouter()
    admin = console.allow("admin")

    async def list_page(request: Request, who: Visitor, q: QueueQuery, errors: Sequence[FieldError] = (),
                        status: int = 200, checked: Sequence[str] = ()) -> Response:
        now = utcnow()
        counts = await asyncio.to_thread(stats, console.engine, now)
        messages, total = [], 0
        if not q.errors:
            found, total = await asyncio.to_thread(list_messages, console.engine, q.filters, q.limit, now)
            messages = [message_view(m, now) for m in found]
        errors = list(q.errors) + [e for e in errors if e not in q.errors]
        return console.render(request, who, "queue/list", status=400 if q.errors and status == 200 else status,
                              notices=NOTICES, stats=stats_view(counts, now), q=q, messages=messages, total=total,
                              errors=errors, checked=set(checked), states=STATE_LABELS, max_limit=MAX_LIMIT)

    async def detail_page(request: Request, who: Visitor, message_id: str, errors: Sequence[FieldError] = (),
                          status: int = 200) -> Response:
        try:
            detail = await asyncio.to_thread(message_detail, console.engine, message_id)
        except QueueLookupError:
            return console.refusal(request, who, 404, "Không có thư này trong hàng đợi (có thể đã được gửi xong "
                                                      "hoặc bị xóa).",
                                   "There is no such message in the queue (delivered and removed, or deleted).")
        return console.render(request, who, "queue/detail", status=status, notices=NOTICES,
                              d=detail_view(detail, utcnow()), errors=list(errors))

    @router.get("/queue")
    async def queue(request: Request, who: Visitor = Depends(admin)) -> Response:
        return await list_page(request, who, parse_filters(_fields(request)))

    @router.post("/queue")
    async def queue_action(request: Request, who: Visitor = Depends(admin)) -> Response:
        fields = await console.form_lists(request, who)
        q, form = parse_filters(fields), parse_action(fields)
        if q.errors or form.errors:
            return await list_page(request, who, q, form.errors, 400, form.ids)
        if form.scope == "matching" and not q.narrowed and not form.sure:
            return await list_page(request, who, q, [_WHOLE_QUEUE], 400, form.ids)
        ids = form.ids if form.scope == "selected" else None
        try:
            report = await asyncio.to_thread(_apply, console, form.action, ids, q.filters)
        except QueueLookupError:
            return await list_page(request, who, q, [_GONE], 409, form.ids)
        except InFlightError as exc:
            return await list_page(request, who, q, [_in_flight(exc)], 409, form.ids)
        log.info("console: %s: queue %s on %s: %d message(s), %d recipient(s)", who.email, form.action,
                 f"{len(ids)} selected" if ids else f"every match of [{q.query() or 'no filter'}]",
                 len(report.messages), len(report.targets))
        query = q.query()
        return done("/console/queue" + (f"?{query}" if query else ""), _notice_key(report))

    @router.get("/queue/{message_id}")
    async def message(message_id: str, request: Request, who: Visitor = Depends(admin)) -> Response:
        if not valid_path_id(message_id):
            return console.not_found(request, who)
        return await detail_page(request, who, message_id)

    @router.post("/queue/{message_id}")
    async def message_action(message_id: str, request: Request, who: Visitor = Depends(admin)) -> Response:
        fields = await console.form_lists(request, who)
        if not valid_path_id(message_id):
            return console.not_found(request, who)
        form: ActionForm = parse_action({**fields, "scope": ["selected"], "id": [message_id]})
        if form.errors:
            return await detail_page(request, who, message_id, form.errors, 400)
        try:
            report = await asyncio.to_thread(_apply, console, form.action, [message_id], Filters())
        except QueueLookupError:
            return await detail_page(request, who, message_id)  # gone: the 404 page says so
        except InFlightError as exc:
            return await detail_page(request, who, message_id, [_in_flight(exc)], 409)
        log.info("console: %s: queue %s on message %s: %d recipient(s)", who.email, form.action, message_id,
                 len(report.targets))
        if report.action == "delete":
            return done("/console/queue", _notice_key(report))
        return done(f"/console/queue/{report.messages[0] if report.messages else message_id}", _notice_key(report))

    return router
