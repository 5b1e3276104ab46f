"""The meetings JSON API under ``/api/v1`` for secretaries' tools (docs/api.md).

- ``POST /meetings`` — create a meeting from the same fields as the meeting file
  (:mod:`invites.spec`); the ``secretary`` is the caller unless an admin names
  someone else;
- ``GET /meetings`` — the caller's meetings (an admin's: all), newest first, paged;
- ``GET /meetings/{id}`` — the meeting and each attendee's email/SMS state and answer;
- ``POST /meetings/{id}/send`` — issue the invitations (:func:`invites.issue.issue`);
- updates, cancellations and reminders: :mod:`invites.api_changes`.

Every route needs an API token of an official with the secretary or admin role
(:mod:`mailhub.http.auth`). A secretary acts only on meetings they are the
secretary of; anyone else's meeting answers 404, exactly as a meeting that does
not exist, so ids reveal nothing. New routes about one meeting take
``meeting: Meeting = Depends(acting_on)``, which does that check.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Annotated, Any, Awaitable, Callable

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine

from invites.access import Actor, load_meeting, may_act_as, meeting_lock, meetings_page
from invites.issue import issue
from invites.spec import VIETNAM, spec_from_mapping
from invites.store import ISSUING_ROLES, create_meeting
from invites.tracking import meeting_status
from mailhub.config import Config
from mailhub.errors import InputError
from mailhub.http.auth import ApiAuth, ApiError, ApiRoute, Caller, Problem, error_responses, problems
from mailhub.models import ChannelState, Meeting, MeetingStatus, PartStat, as_utc
from mailhub.signing import DkimSigner

log = logging.getLogger("mailhub.api")

MeetingId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The meeting's id")]
Line = Annotated[str, Field(max_length=320, pattern=r"^[^\x00-\x1f\x7f]*$")]  # one line of text, no controls


# ---- request and response documents ----------------------------------------------

class GuestIn(BaseModel):
    """Someone outside the directory; an email address, a phone number, or both."""

    model_config = ConfigDict(extra="forbid", strict=True)
    name: Line
    email: Line | None = None
    phone: Line | None = Field(None, description="E.164, or a Vietnamese number: 0912 345 678")


class MeetingIn(BaseModel):
    """A meeting, with the fields of the meeting file (docs/invites.md). Times are
    Vietnam time (``2026-12-03 08:00`` or ``03/12/2026 08:00``), or ISO 8601 with an
    offset (``2026-12-03T01:00:00Z``). Give ``end`` or ``duration_minutes``."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{
        "title": "Họp giao ban chuyển đổi số quý IV", "start": "2026-12-03 08:00", "duration_minutes": 150,
        "location": "Phòng họp số 2, 59 Lý Tự Trọng", "unit": "STTTT", "attendees": ["binh@hcm.gov.vn"],
        "units": ["Q1"], "guests": [{"name": "Ông Trần Văn Bảo", "email": "bao@doitac.vn"}]}]})
    title: str
    agenda: str = ""
    location: str = ""
    start: str
    end: str | None = None
    duration_minutes: int | None = Field(None, gt=0, le=7 * 24 * 60)
    unit: str = Field(description="The organizing unit's code")
    chair: str = ""
    secretary: str | None = Field(None, description="Default: the caller. Only an admin may name someone else")
    attendees: list[Line] = Field([], description="Officials' addresses, one by one")
    units: list[Line] = Field([], description="Units whose every active official is invited")
    guests: list[GuestIn] = []

    def mapping(self) -> dict[str, Any]:
        """The fields as :func:`invites.spec.spec_from_mapping` reads them."""
        data = self.model_dump(exclude_none=True)
        for key in ("start", "end"):
            if key in data:
                data[key] = vietnam_text(data[key])
        return data


class CreatedOut(BaseModel):
    id: int
    uid: str  # the iCalendar UID
    officials: int
    guests: int
    without_email: int  # reachable by SMS only
    without_phone: int  # reachable by email only


class MeetingOut(BaseModel):
    id: int
    uid: str
    title: str
    agenda: str
    location: str
    start: datetime  # ISO 8601 in Vietnam time (+07:00)
    end: datetime
    unit: str
    chair: str
    secretary: str
    status: MeetingStatus
    sequence: int
    invited: int = Field(description="Attendees not removed")
    created_at: datetime
    updated_at: datetime


class MeetingList(BaseModel):
    meetings: list[MeetingOut]
    total: int
    limit: int
    offset: int


class AttendeeOut(BaseModel):
    """One attendee, with the fields of ``mailhub invite status --json``."""

    name: str
    email: str | None
    phone: str | None
    removed: bool
    answer: PartStat
    email_state: ChannelState = Field(description='"" when no email was sent')
    email_reason: str
    sms_state: ChannelState = Field(description='"" when no SMS was sent')
    sms_reason: str


class MeetingDetail(MeetingOut):
    attendees: list[AttendeeOut]


class RefusedOut(BaseModel):
    address: str
    reply: str  # the relay rule's SMTP reply, e.g. "550 5.7.1 ..."


class SendOut(BaseModel):
    id: int
    emails: int  # queued now
    sms: int
    refused: list[RefusedOut]
    no_channel: list[str] = Field(description="Names of attendees with neither email nor mobile number")


# The 201 of POST /meetings: where the meeting is, and the operations its id leads to
# (OpenAPI links, so a client or a tester can follow them).
CREATED = {
    "description": "Created, as a draft",
    "headers": {"Location": {"description": "The meeting: /api/v1/meetings/{id}", "schema": {"type": "string"}}},
    "links": {name: {"operationId": operation, "parameters": {"meeting_id": "$response.body#/id"}}
              for name, operation in (("GetMeeting", "getMeeting"), ("SendMeeting", "sendMeeting"),
                                      ("UpdateMeeting", "updateMeeting"), ("CancelMeeting", "cancelMeeting"),
                                      ("RemindMeeting", "remindMeeting"))},
}


def send_out(meeting_id: int, report) -> SendOut:
    return SendOut(id=meeting_id, emails=report.emails, sms=report.sms,
                   refused=[RefusedOut(address=a, reply=r) for a, r in report.refused], no_channel=report.no_channel)


# ---- rules and queries (run in a thread) ---------------------------------------------

def meeting_list(engine: Engine, caller: Actor, limit: int, offset: int) -> MeetingList:
    """One page of the caller's meetings as the API lists them (the console's list shows the same)."""
    meetings, invited, total = meetings_page(engine, caller, limit, offset)
    return MeetingList(meetings=[_out(m, invited.get(m.id, 0)) for m in meetings], total=total, limit=limit,
                       offset=offset)


def _out(meeting: Meeting, invited: int) -> MeetingOut:
    def local(moment: datetime) -> datetime:
        return as_utc(moment).astimezone(VIETNAM).replace(microsecond=0)

    return MeetingOut(id=meeting.id, uid=meeting.uid, title=meeting.title, agenda=meeting.agenda,
                      location=meeting.location, start=local(meeting.start_at), end=local(meeting.end_at),
                      unit=meeting.unit_code, chair=meeting.chair_name, secretary=meeting.secretary_email,
                      status=meeting.status, sequence=meeting.sequence, invited=invited,
                      created_at=local(meeting.created_at), updated_at=local(meeting.updated_at))


def vietnam_text(value: str) -> str:
    """An ISO 8601 time with an offset (whole minutes) as the meeting file writes it,
    in Vietnam time; anything else unchanged, for the meeting's own checks."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None or moment.second or moment.microsecond:
        return value
    return moment.astimezone(VIETNAM).strftime("%Y-%m-%d %H:%M")


# ---- the router -------------------------------------------------------------------------

def meeting_access(engine: Engine):
    """The two dependencies every meetings route uses: ``issuer`` (the caller, who
    must have the secretary or admin role) and ``acting_on`` (the meeting in the
    path, if the caller may act on it, else 404)."""
    issuer = ApiAuth(engine).requiring(*sorted(ISSUING_ROLES))

    async def acting_on(meeting_id: MeetingId, caller: Caller = Depends(issuer)) -> Meeting:
        meeting = await asyncio.to_thread(load_meeting, engine, caller, meeting_id)
        if meeting is None:
            raise ApiError(404, f"Không có cuộc họp {meeting_id}.", f"No meeting {meeting_id}.")
        return meeting

    return issuer, acting_on


def meetings_api_router(engine: Engine, config: Config, signer_getter: Callable[[], Awaitable[DkimSigner]],
                        rsvp_key: bytes) -> APIRouter:
    """``signer_getter``: the process's DKIM signer, loaded on first use."""
    issuer, acting_on = meeting_access(engine)
    router = APIRouter(prefix="/api/v1", tags=["meetings"], route_class=ApiRoute,
                       responses=error_responses(401, 403, 422, 500, 503))

    @router.post("/meetings", status_code=201, response_model=CreatedOut, summary="Create a meeting (draft)",
                 operation_id="createMeeting", responses={201: CREATED, **error_responses(413)})
    async def create(body: MeetingIn, response: Response, caller: Caller = Depends(issuer)) -> CreatedOut:
        """Checks every field, then the directory (units, officials, the secretary's role, guests'
        addresses and numbers), and lists every problem at once; nothing is stored unless all is
        well. Nothing is sent until `send`."""
        data = body.mapping()
        if not may_act_as(caller, data.setdefault("secretary", caller.email)):
            raise ApiError(403, "Chỉ quản trị viên được tạo cuộc họp với thư ký là người khác.",
                           "Only an admin may create a meeting whose secretary is someone else.",
                           errors=[Problem(field="secretary", message="must be yourself")])
        try:
            created = await asyncio.to_thread(create_meeting, engine, config.domains,
                                              spec_from_mapping(data, "body"))
        except InputError as exc:
            raise ApiError(422, "Cuộc họp có lỗi, xem danh sách errors.", "The meeting has problems: see errors.",
                           errors=problems(str(exc), "body")) from None
        log.info("API: %s created meeting %d", caller.email, created.meeting_id)
        response.headers["Location"] = f"{router.prefix}/meetings/{created.meeting_id}"
        return CreatedOut(id=created.meeting_id, uid=created.uid, officials=created.officials, guests=created.guests,
                          without_email=created.without_email, without_phone=created.without_phone)

    @router.get("/meetings", response_model=MeetingList, summary="The caller's meetings, newest first",
                operation_id="listMeetings")
    async def list_meetings(caller: Caller = Depends(issuer),
                            limit: Annotated[int, Query(ge=1, le=200)] = 50,
                            offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> MeetingList:
        """A secretary's own meetings; an admin's: every meeting."""
        return await asyncio.to_thread(meeting_list, engine, caller, limit, offset)

    @router.get("/meetings/{meeting_id}", response_model=MeetingDetail, responses=error_responses(404),
                summary="A meeting and each attendee's email and SMS state and answer", operation_id="getMeeting")
    async def show(meeting: Meeting = Depends(acting_on)) -> MeetingDetail:
        """Another secretary's meeting is a 404, exactly like one that does not exist."""
        rows = await asyncio.to_thread(meeting_status, engine, meeting.id)
        attendees = [AttendeeOut(**row.as_dict()) for row in rows]
        return MeetingDetail(**_out(meeting, sum(not a.removed for a in attendees)).model_dump(),
                             attendees=attendees)

    @router.post("/meetings/{meeting_id}/send", response_model=SendOut, responses=error_responses(404, 409, 413),
                 summary="Queue the invitations of every attendee not reached yet", operation_id="sendMeeting")
    async def send(meeting: Meeting = Depends(acting_on), caller: Caller = Depends(issuer)) -> SendOut:
        """Email (iMIP, with the RSVP link) and SMS, through the relay's rules, as the meeting's
        secretary. Sending again reaches only people added since: nobody gets an invitation twice.
        409: the meeting is cancelled, or its secretary left the directory."""
        if meeting.status == MeetingStatus.CANCELLED.value:
            raise ApiError(409, "Cuộc họp đã bị hủy, không gửi thêm gì.", "The meeting is cancelled: nothing is sent.")
        signer = await signer_getter()
        # One send at a time per meeting in this process: a second request (a double
        # click) waits, then finds everyone reached and queues nothing twice.
        async with meeting_lock(meeting.id):
            try:
                report = await asyncio.to_thread(issue, engine, config, signer, rsvp_key, meeting.id)
            except InputError as exc:
                raise ApiError(409, "Không thể gửi giấy mời.", "The invitations cannot be sent.",
                               errors=[Problem(field="", message=line) for line in str(exc).splitlines()]) from None
        log.info("API: %s sent meeting %d: %d email(s), %d SMS, %d refused", caller.email, meeting.id,
                 report.emails, report.sms, len(report.refused))
        return send_out(meeting.id, report)

    return router
