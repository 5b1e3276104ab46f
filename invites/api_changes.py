"""Changing a meeting through the JSON API (docs/api.md), as ``mailhub invite
update / cancel / remind`` do:

- ``PATCH /meetings/{id}`` — change fields and/or add people
  (:func:`invites.changes.update_meeting`);
- ``POST /meetings/{id}/cancel`` — cancel the meeting, or with ``attendees`` only
  those invitations;
- ``POST /meetings/{id}/remind`` — a reminder now (sent by the delivery side).

Same access rules as :mod:`invites.api`. A cancelled meeting answers 409.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Literal, Sequence

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from invites.access import meeting_lock
from invites.api import GuestIn, Line, SendOut, meeting_access, send_out, vietnam_text
from invites.changes import cancel_attendees, cancel_meeting, update_meeting
from invites.reminders import remind_now
from invites.spec import changes_from_mapping
from mailhub.config import Config
from mailhub.errors import InputError
from mailhub.http.auth import ApiError, ApiRoute, Caller, Problem, error_responses, problems
from mailhub.models import Meeting, MeetingStatus
from mailhub.signing import DkimSigner

log = logging.getLogger("mailhub.api")


class ChangesIn(BaseModel):
    """Only the fields that change; moving ``start`` alone keeps the length. Once the
    invitations are out, everyone reached gets the update (SEQUENCE + 1); a new time
    or place also resets every answer."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [
        {"start": "2026-12-04 09:00", "add_attendees": ["dung@hcm.gov.vn"]}]})
    title: str | None = None
    agenda: str | None = None
    location: str | None = None
    chair: str | None = None
    start: str | None = None
    end: str | None = None
    duration_minutes: int | None = Field(None, gt=0, le=7 * 24 * 60)
    add_attendees: list[Line] = []
    add_units: list[Line] = []
    add_guests: list[GuestIn] = []

    def mapping(self) -> dict[str, Any]:
        data = {k: v for k, v in self.model_dump(exclude_none=True).items() if v != []}
        for key in ("start", "end"):
            if key in data:
                data[key] = vietnam_text(data[key])
        return data


class UpdatedOut(SendOut):
    sequence: int
    changed: list[str]
    answers_reset: bool = Field(description="Time or place changed: every answer is back to NEEDS-ACTION")
    added: int


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [
        {}, {"attendees": ["binh@hcm.gov.vn", "0912 345 678"]}]})
    attendees: list[Line] = Field([], description="Withdraw only these invitations (addresses or phone numbers); "
                                                  "empty: cancel the whole meeting")


class RemindIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    to: Literal["unanswered", "all"] = "unanswered"


class RemindOut(BaseModel):
    id: int
    to: str


def withdrawal_problems(lines: str, attendees: Sequence[str]) -> list[Problem]:
    """The problems of a withdrawal: a line ``<text>: problem`` is about ``attendees[i]``,
    the i-th text given (the message is then the whole line)."""
    found = []
    for line in lines.splitlines():
        index = next((i for i, text in enumerate(attendees) if line.startswith(f"{text}: ")), None)
        found.extend(problems(line) if index is None else [Problem(field=f"attendees[{index}]", message=line)])
    return found


def meeting_changes_router(engine, config: Config, signer_getter: Callable[[], Awaitable[DkimSigner]],
                           rsvp_key: bytes) -> APIRouter:
    issuer, acting_on = meeting_access(engine)
    router = APIRouter(prefix="/api/v1", tags=["meetings"], route_class=ApiRoute,
                       responses=error_responses(401, 403, 404, 409, 413, 422, 500, 503))

    def still_open(meeting: Meeting) -> None:
        if meeting.status == MeetingStatus.CANCELLED.value:
            raise ApiError(409, "Cuộc họp đã bị hủy, không thay đổi được nữa.",
                           "The meeting is cancelled: it cannot change any more.")

    async def run(vi: str, en: str, function, *args, status: int = 422,
                  described: Callable[[str], list[Problem]] = lambda text: problems(text, "body")):
        """``function(*args)`` in a thread; its InputError answers ``status``, each line a problem."""
        try:
            return await asyncio.to_thread(function, *args)
        except InputError as exc:
            raise ApiError(status, f"{vi}, xem danh sách errors.", f"{en}: see errors.",
                           errors=described(str(exc))) from None

    @router.patch("/meetings/{meeting_id}", response_model=UpdatedOut, summary="Change a meeting, add people",
                  operation_id="updateMeeting")
    async def update(body: ChangesIn, meeting: Meeting = Depends(acting_on),
                     caller: Caller = Depends(issuer)) -> UpdatedOut:
        """A draft is just changed. Once the invitations are out, everyone reached gets the update
        (SEQUENCE + 1); a new time or place also resets every answer; people added are invited."""
        still_open(meeting)
        try:
            changes = changes_from_mapping(body.mapping(), "body")
        except InputError as exc:
            raise ApiError(422, "Thay đổi có lỗi, xem danh sách errors.", "The changes have problems: see errors.",
                           errors=problems(str(exc), "body")) from None
        async with meeting_lock(meeting.id):  # one change at a time, with the console's too
            updated = await run("Không thể cập nhật cuộc họp", "Cannot update the meeting", update_meeting, engine,
                                config, await signer_getter(), rsvp_key, meeting.id, changes)
        log.info("API: %s updated meeting %d (%s)", caller.email, meeting.id, ", ".join(updated.changed))
        return UpdatedOut(**send_out(meeting.id, updated.report).model_dump(), sequence=updated.sequence,
                          changed=updated.changed, answers_reset=updated.answers_reset, added=updated.added)

    @router.post("/meetings/{meeting_id}/cancel", response_model=SendOut,
                 summary="Cancel the meeting, or withdraw some invitations", operation_id="cancelMeeting")
    async def cancel(body: CancelIn | None = None, meeting: Meeting = Depends(acting_on),
                     caller: Caller = Depends(issuer)) -> SendOut:
        """No body (or `{}`): the whole meeting (METHOD:CANCEL to everyone reached, waiting SMS
        dropped, reminders deleted). With `attendees`: only those invitations."""
        still_open(meeting)
        signer = await signer_getter()
        async with meeting_lock(meeting.id):
            if body is not None and body.attendees:
                report = await run("Không thể hủy các giấy mời", "Cannot withdraw the invitations", cancel_attendees,
                                   engine, config, signer, rsvp_key, meeting.id, body.attendees,
                                   described=lambda text: withdrawal_problems(text, body.attendees))
            else:
                report = await run("Không thể hủy cuộc họp", "Cannot cancel the meeting", cancel_meeting, engine,
                                   config, signer, rsvp_key, meeting.id)
        log.info("API: %s cancelled %s of meeting %d", caller.email,
                 f"{len(body.attendees)} invitation(s)" if body and body.attendees else "all", meeting.id)
        return send_out(meeting.id, report)

    @router.post("/meetings/{meeting_id}/remind", status_code=202, response_model=RemindOut,
                 summary="A reminder now (mailhub serve sends it within seconds)", operation_id="remindMeeting")
    async def remind(body: RemindIn | None = None, meeting: Meeting = Depends(acting_on)) -> RemindOut:
        """To those who have not answered (the default) or to everyone invited. 409: the meeting
        is a draft (only a sent meeting has reminders), has started, or is cancelled."""
        still_open(meeting)
        to = body.to if body is not None else "unanswered"
        await run("Không thể gửi nhắc nhở", "Cannot send a reminder", remind_now, engine, meeting.id, to,
                  status=409)
        return RemindOut(id=meeting.id, to=to)

    return router
