"""What sending a meeting's invitations will put in the queues, shown before it is sent.

Built by the code that builds the real messages, not by a second template path: the
meeting's :class:`~invites.outbound.Outbound` (sender, meeting info, DKIM domain, the
SMS text with the title cut to fit), the invitation :data:`~invites.letters.REQUEST`
letter and the relay's rules of :class:`~invites.letters.EmailFactory`. The email is
read back from its bytes with the standard ``email`` package, so the page shows the
Subject, From, To and parts the attendee's mail program will show.

One thing differs on purpose: the personal RSVP link is a capability (whoever has it
answers for the attendee), so its token is shown as ``X`` characters of the same
length; the SMS's encoding and segment count are unchanged by that.
"""
from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from invites.ical import AttendeeInfo
from invites.issue import INVITATION_SMS
from invites.letters import REQUEST, EmailFactory
from invites.outbound import Outbound, is_mobile_number
from invites.rsvp import rsvp_url
from mailhub.config import Config
from mailhub.models import ChannelState, Meeting, MeetingAttendee, utcnow
from mailhub.queue import new_queue_id
from mailhub.signing import DkimSigner


@dataclass(frozen=True)
class EmailPreview:
    attendee: str  # the sample attendee's name
    subject: str
    sender: str  # the From field, decoded
    to: str
    text: str  # the text/plain part
    html: str  # the text/html part
    calendar_method: str  # the text/calendar part's METHOD ("REQUEST"), "" if none
    attachment: str  # the attached calendar file's name, "" if none
    refusal: str | None  # the relay rule's reply if it would refuse the email


@dataclass(frozen=True)
class SmsPreview:
    attendee: str
    text: str
    encoding: str  # GSM-7 or UCS-2
    segments: int
    units: int  # septets or UTF-16 units


@dataclass(frozen=True)
class Preview:
    email: EmailPreview | None  # None: nobody has an address
    sms: SmsPreview | None  # None: nobody has a mobile number
    invited: int
    by_email: int
    by_sms: int
    no_channel: list[str] = field(default_factory=list)  # names with neither an address nor a mobile
    pending: int = 0  # reachable attendees not sent anything yet: what Send reaches


def hidden_link(config: Config, rsvp_key: bytes, attendee_id: int) -> str:
    """The attendee's RSVP link with its token replaced by as many ``X``."""
    base, _, token = rsvp_url(config.invites.public_url, rsvp_key, attendee_id).rpartition("/")
    return f"{base}/{'X' * len(token)}"


def build_preview(engine: Engine, config: Config, signer: DkimSigner, rsvp_key: bytes, meeting_id: int,
                  now: datetime | None = None) -> Preview:
    """The invitation of the meeting's first attendee with an address (email) and with a
    mobile number (SMS), and who can be reached how. Raises
    :class:`~mailhub.errors.InputError` when nothing can be sent as the secretary."""
    now = now or utcnow()
    with Session(engine, expire_on_commit=False) as session:
        meeting = session.get(Meeting, meeting_id)
        people = session.exec(select(MeetingAttendee).where(
            MeetingAttendee.meeting_id == meeting_id, MeetingAttendee.removed == False)  # noqa: E712
            .order_by(MeetingAttendee.id)).all()
    outbound = Outbound(engine, config, signer, rsvp_key, meeting, now)
    mobile = {p.id: is_mobile_number(p.phone) for p in people}
    first_email = next((p for p in people if p.email), None)
    first_mobile = next((p for p in people if mobile[p.id]), None)
    sms = None
    if first_mobile is not None:
        text, encoding = outbound.sms(INVITATION_SMS, hidden_link(config, rsvp_key, first_mobile.id))
        sms = SmsPreview(first_mobile.name, text, encoding.name, encoding.segments, encoding.units)
    return Preview(
        email=_email(outbound, config, signer, rsvp_key, first_email, now) if first_email else None, sms=sms,
        invited=len(people), by_email=sum(bool(p.email) for p in people), by_sms=sum(mobile.values()),
        no_channel=[p.name for p in people if not p.email and not mobile[p.id]],
        pending=sum(p.email_state == ChannelState.NONE.value and p.sms_state == ChannelState.NONE.value
                    and bool(p.email or mobile[p.id]) for p in people))


def _email(outbound: Outbound, config: Config, signer: DkimSigner, rsvp_key: bytes, person: MeetingAttendee,
           now: datetime) -> EmailPreview:
    """One attendee's invitation as :meth:`EmailFactory.make` builds and checks it
    (without the DKIM signature, a header the mail program does not show)."""
    factory = EmailFactory(config, outbound.sender, outbound.info, outbound.domain, now, REQUEST, signer)
    data = REQUEST.build(outbound.info, AttendeeInfo(person.email, person.name, person.partstat),
                         rsvp_url=hidden_link(config, rsvp_key, person.id), now=now,
                         message_id=f"{new_queue_id()}@{outbound.domain or 'invites'}")
    verdict = factory.refusal(person.email, data)
    message = email.message_from_bytes(data, policy=email.policy.default)
    method, attachment = "", ""
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            method = str(part.get_param("method") or "")
        elif part.get_content_disposition() == "attachment":
            attachment = part.get_filename() or ""
    return EmailPreview(person.name, str(message["Subject"]), str(message["From"]), str(message["To"]),
                        message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content(),
                        method, attachment, verdict.smtp_reply() if verdict is not None else None)
