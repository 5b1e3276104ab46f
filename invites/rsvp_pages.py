"""The RSVP page behind each invitation's link: ``GET /r/<token>`` shows the meeting
and three buttons, ``POST /r/<token>`` records the answer.

Only POST changes anything: mail scanners and link previews fetch links with
GET, and must not answer for the official. The signed token is the capability
(:mod:`invites.rsvp`); an invalid one gets 404 and no hint. An answer is
recorded with the meeting's current SEQUENCE, as a ``meeting_reply`` row
(method ``RSVP-LINK``) next to the attendee's new PARTSTAT.
"""
from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy.engine import Engine
from sqlmodel import Session

from invites.replies import record_answer
from invites.rsvp import read_token
from mailhub.http.bodies import read_limited
from mailhub.models import Meeting, MeetingAttendee, MeetingStatus, PartStat, utcnow
from mailhub.templating import environment

CHOICES = [(PartStat.ACCEPTED.value, "Tham dự", "Accept"),
           (PartStat.TENTATIVE.value, "Chưa chắc chắn", "Tentative"),
           (PartStat.DECLINED.value, "Không tham dự", "Decline")]
NOT_FOUND = "Liên kết không hợp lệ hoặc đã hết hạn. / This link is not valid.\n"

# The OpenAPI description. The token is read from the path by hand, not declared as a
# FastAPI parameter: nothing about it can fail validation (anything that is not a valid
# token is a 404), so the schema must not promise FastAPI's 422 document.
_TEXT = {"text/plain": {"schema": {"type": "string"}}}
_TOKEN = {"name": "token", "in": "path", "required": True,
          "description": "The signed token of the invitation's link (invites.rsvp); anything else is a 404",
          "schema": {"type": "string"}}
_NOT_FOUND = {404: {"description": "Not a valid link (or the invitation was withdrawn): one line of text, "
                                   "no hint why", "content": _TEXT}}
_ANSWER_FORM = {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
    "type": "object", "required": ["answer"],
    "properties": {"answer": {"type": "string", "enum": [value for value, _, _ in CHOICES]}}}}}}


def rsvp_router(engine: Engine, key: bytes) -> APIRouter:
    router = APIRouter(tags=["invitations"])

    def load(token: str) -> tuple[Meeting, MeetingAttendee] | None:
        attendee_id = read_token(key, token)
        if attendee_id is None:
            return None
        with Session(engine, expire_on_commit=False) as session:
            attendee = session.get(MeetingAttendee, attendee_id)
            if attendee is None or attendee.removed:
                return None
            meeting = session.get(Meeting, attendee.meeting_id)
            return (meeting, attendee) if meeting is not None else None

    def answer(attendee_id: int, partstat: str) -> None:
        with Session(engine) as session:
            attendee = session.get(MeetingAttendee, attendee_id)
            meeting = session.get(Meeting, attendee.meeting_id)
            record_answer(session, meeting, attendee, "RSVP-LINK", partstat, utcnow())
            session.commit()

    def page(found: tuple[Meeting, MeetingAttendee], answered=None) -> HTMLResponse:
        meeting, attendee = found
        view = dict(title=meeting.title, location=meeting.location, start=meeting.start_at, end=meeting.end_at,
                    status=meeting.status)
        html = environment().get_template("pages/rsvp.html.j2").render(
            meeting=view, attendee=attendee, answered=answered, choices=CHOICES)
        return HTMLResponse(html, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})

    @router.get("/r/{token}", response_class=HTMLResponse, summary="The RSVP page of one invitation",
                responses=_NOT_FOUND, openapi_extra={"parameters": [_TOKEN]}, operation_id="rsvpPage")
    async def show(request: Request) -> Response:
        """The meeting and three buttons (accept, tentative, decline). Changes nothing:
        mail scanners and link previews fetch links with GET."""
        found = await asyncio.to_thread(load, request.path_params["token"])
        if found is None:
            return Response(NOT_FOUND, status_code=404, media_type="text/plain; charset=utf-8")
        return page(found)

    @router.post("/r/{token}", response_class=HTMLResponse, summary="Record the answer to one invitation",
                 responses={400: {"description": "Not one of the three answers, or the meeting is cancelled",
                                  "content": _TEXT}, **_NOT_FOUND},
                 openapi_extra={"parameters": [_TOKEN], "requestBody": _ANSWER_FORM}, operation_id="rsvpAnswer")
    async def record(request: Request) -> Response:
        """Records the answer with the meeting's current SEQUENCE and shows the page again."""
        found = await asyncio.to_thread(load, request.path_params["token"])
        if found is None:
            return Response(NOT_FOUND, status_code=404, media_type="text/plain; charset=utf-8")
        meeting, attendee = found
        body = await read_limited(request, 1024)  # "answer=TENTATIVE": a longer body is not an answer
        value = dict(parse_qsl(body.decode("ascii", "replace"))).get("answer", "") if body is not None else ""
        choice = next((c for c in CHOICES if c[0] == value), None)
        if choice is None or meeting.status == MeetingStatus.CANCELLED.value:
            return Response("Câu trả lời không hợp lệ. / Not a valid answer.\n", status_code=400,
                            media_type="text/plain; charset=utf-8")
        await asyncio.to_thread(answer, attendee.id, value)
        attendee.partstat = value
        return page((meeting, attendee), answered=choice)

    return router
