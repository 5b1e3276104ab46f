"""Issuing a meeting's invitations: one personal iMIP email and one SMS per attendee,
queued in the same queue and ledger as the relay's mail.

Each email is a message from the secretary and goes through the relay's own
rules, as if the secretary had submitted it: the configured MAIL, RCPT and DATA
policies (sender's domain and ownership, recipients, external recipients,
size, From, impersonation, classification — a title marked MẬT is refused),
then DKIM for the secretary's domain, then the queue, with a ledger event of
kind ``invite_email`` for the secretary. The one rule left out is
``rate_limit``: a meeting's attendee list comes from the directory, and a
meeting of a whole district would otherwise stop at the daily limit. An
invitation a rule refuses is not queued; the attendee's ``email_state`` says
``failed`` with the rule's reply, and the refusal is in the ledger.

SMS go to attendees with a mobile number, as GSM-7 without diacritics unless
``[invites] sms_unicode``; the title is shortened so the text stays in one SMS.

Work is written in chunks of ``CHUNK`` attendees, each one transaction, so a
meeting of 10,000 shows progress and a crash loses at most the chunk in hand
(running ``issue`` again only sends to attendees not yet queued).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Callable

from sqlalchemy import insert, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from invites.ical import AttendeeInfo, MeetingInfo
from invites.imip import build_invitation
from invites.rsvp import rsvp_url
from invites.smstext import encoding_of, prepare_sms, shorten_to_fit
from invites.spec import VIETNAM
from mailhub.config import Config
from mailhub.db import write_transaction
from mailhub.directory import load_sender
from mailhub.dkimkeys import signing_domain
from mailhub.errors import InputError
from mailhub.ledger import refused_event
from mailhub.models import (ChannelState, Meeting, MeetingAttendee, MeetingStatus, MessageKind, QueuedMessage,
                            QueueRecipient, RecipientState, Reminder, SmsMessage, Unit, UsageEvent, UsageKind, utcnow)
from mailhub.phones import PhoneError, is_mobile
from mailhub.queue import new_queue_id
from mailhub.signing import DkimSigner
from policies.addresses import is_official
from policies.context import PolicyContext
from policies.registry import build_stage
from policies.runner import evaluate

CHUNK = 500
SKIPPED_RULES = {"rate_limit"}
SMS_TEMPLATE = "Giay moi hop: {title}. Luc {when}, tai {where}. Xac nhan: {link}"


@dataclass
class IssueReport:
    emails: int = 0
    sms: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)  # (address, reply)
    no_channel: list[str] = field(default_factory=list)  # names with neither email nor mobile


def meeting_info(meeting: Meeting, secretary_name: str, unit_name: str) -> MeetingInfo:
    return MeetingInfo(uid=meeting.uid, sequence=meeting.sequence, title=meeting.title, agenda=meeting.agenda,
                       location=meeting.location, start=meeting.start_at, end=meeting.end_at,
                       organizer_email=meeting.secretary_email, organizer_name=secretary_name,
                       chair_name=meeting.chair_name, unit_name=unit_name, created=meeting.created_at,
                       cancelled=meeting.status == MeetingStatus.CANCELLED.value)


def issue(engine: Engine, config: Config, signer: DkimSigner, rsvp_key: bytes, meeting_id: int, *,
          now: datetime | None = None, progress: Callable[[int, int], None] = lambda done, total: None
          ) -> IssueReport:
    """Queue the REQUEST email and the SMS of every attendee not reached yet."""
    now = now or utcnow()
    with Session(engine) as session:
        meeting = session.get(Meeting, meeting_id)
        if meeting is None:
            raise InputError(f"no meeting {meeting_id}")
        if meeting.status == MeetingStatus.CANCELLED.value:
            raise InputError(f"meeting {meeting_id} is cancelled: nothing more is sent")
        unit = session.get(Unit, meeting.unit_code)
        people = session.exec(select(MeetingAttendee).where(
            MeetingAttendee.meeting_id == meeting_id, MeetingAttendee.removed == False,  # noqa: E712
            MeetingAttendee.email_state == ChannelState.NONE.value,
            MeetingAttendee.sms_state == ChannelState.NONE.value).order_by(MeetingAttendee.id)).all()
    sender = load_sender(engine, meeting.secretary_email)
    if sender is None:
        raise InputError(f"the secretary {meeting.secretary_email} is no longer in the directory")
    info = meeting_info(meeting, sender.full_name, unit.name if unit else meeting.unit_code)
    stages = {stage: [(n, p) for n, p in build_stage(config.policies, stage) if n not in SKIPPED_RULES]
              for stage in ("mail", "rcpt", "data")}
    domain = signing_domain(meeting.secretary_email.rpartition("@")[2], signer.domains)
    report = IssueReport()
    for start in range(0, len(people), CHUNK):
        chunk = people[start:start + CHUNK]
        rows = _Rows()
        for person in chunk:
            link = rsvp_url(config.invites.public_url, rsvp_key, person.id)
            if person.email:
                _email(rows, config, signer, domain, sender, stages, info, person, link, now, report)
            if person.phone and _mobile(person.phone):
                _sms(rows, config, info, person, link, now, report)
            elif not person.email:
                report.no_channel.append(person.name)
        rows.write(engine)
        progress(min(start + CHUNK, len(people)), len(people))
    _mark_sent(engine, config, meeting, now)
    return report


class _Rows:
    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.recipients: list[dict] = []
        self.events: list[dict] = []
        self.sms: list[dict] = []
        self.states: list[tuple[int, dict]] = []

    def write(self, engine: Engine) -> None:
        with write_transaction(engine) as conn:
            for table, rows in ((QueuedMessage, self.messages), (QueueRecipient, self.recipients),
                                (UsageEvent, self.events), (SmsMessage, self.sms)):
                if rows:
                    conn.execute(insert(table.__table__), rows)
            for attendee_id, values in self.states:
                conn.execute(update(MeetingAttendee.__table__)
                             .where(MeetingAttendee.__table__.c.id == attendee_id).values(**values))


def _email(rows: _Rows, config: Config, signer: DkimSigner, domain: str | None, sender, stages, info: MeetingInfo,
           person: MeetingAttendee, link: str, now: datetime, report: IssueReport) -> None:
    queue_id = new_queue_id()
    data = build_invitation(info, AttendeeInfo(person.email, person.name, person.partstat), "REQUEST",
                            rsvp_url=link, now=now, message_id=f"{queue_id}@{domain or 'invites'}")
    head = data.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    base = dict(sender=sender, client_ip="invites", mail_from=info.organizer_email,
                settings=config.policy_settings)
    for ctx in (PolicyContext(stage="mail", **base),
                PolicyContext(stage="rcpt", rcpt=person.email, **base),
                PolicyContext(stage="data", rcpt_tos=(person.email,), size=len(data),
                              headers=BytesHeaderParser(policy=compat32).parsebytes(head), **base)):
        verdict = evaluate(stages[ctx.stage], ctx)
        if verdict.refused:
            reply = verdict.smtp_reply()
            report.refused.append((person.email, reply))
            rows.events.append(refused_event(official_email=sender.login, unit_code=sender.unit,
                                             policy=verdict.policy or "unknown", reason=reply, client_ip="invites"))
            rows.states.append((person.id, dict(email_state=ChannelState.FAILED.value, email_reason=reply[:1000])))
            return
    if domain is not None:
        data = signer.sign(data, domain)
    internal = int(is_official(person.email.rpartition("@")[2], config.domains))
    rows.messages.append(dict(id=queue_id, mail_from=info.organizer_email, kind=MessageKind.INVITE_EMAIL.value,
                              official_email=sender.login, message_id_header=f"<{queue_id}@{domain or 'invites'}>",
                              size=len(data), data=data, created_at=now))
    rows.recipients.append(dict(message_id=queue_id, rcpt=person.email, state=RecipientState.QUEUED.value,
                                attempts=0, next_attempt_at=now, lease_until=None, last_reply="", updated_at=now,
                                notified=""))
    rows.events.append(dict(at=now, kind=UsageKind.INVITE_EMAIL.value, official_email=sender.login,
                            unit_code=sender.unit, message_id=queue_id, recipients_internal=internal,
                            recipients_external=1 - internal, size=len(data), policy=None, reason=None,
                            client_ip=None))
    rows.states.append((person.id, dict(email_state=ChannelState.QUEUED.value, email_queue_id=queue_id)))
    report.emails += 1


def _sms(rows: _Rows, config: Config, info: MeetingInfo, person: MeetingAttendee, link: str, now: datetime,
         report: IssueReport) -> None:
    local = info.start.astimezone(VIETNAM)
    fixed = SMS_TEMPLATE.format(title="{title}", when=local.strftime("%H:%M %d/%m/%Y"),
                                where=info.location or info.unit_name, link=link)
    fixed, _ = prepare_sms(fixed, unicode=config.invites.sms_unicode)
    title, _ = prepare_sms(info.title, unicode=config.invites.sms_unicode)
    try:
        text = shorten_to_fit(fixed, title, segments=1)
    except ValueError:  # even "..." does not fit one SMS (a very long place name): send two
        text = fixed.replace("{title}", title)
    encoding = encoding_of(text)
    rows.sms.append(dict(attendee_id=person.id, to=person.phone, text=text, encoding=encoding.name,
                         segments=encoding.segments, gateway="", gateway_id="", state=ChannelState.QUEUED.value,
                         attempts=0, next_attempt_at=now, lease_until=None, reason="", created_at=now,
                         updated_at=now))
    rows.states.append((person.id, dict(sms_state=ChannelState.QUEUED.value)))
    report.sms += 1


def _mobile(phone: str) -> bool:
    try:
        return is_mobile(phone)
    except PhoneError:
        return False


def _mark_sent(engine: Engine, config: Config, meeting: Meeting, now: datetime) -> None:
    """The meeting is ``sent``; its reminders are rows due before the start (those
    already past are not made)."""
    start = meeting.start_at
    reminders = [dict(meeting_id=meeting.id, kind="all", due_at=start - timedelta(hours=h), done_at=None)
                 for h in config.invites.reminder_hours_before]
    hours = config.invites.unanswered_reminder_hours_before
    if hours > 0:
        reminders.append(dict(meeting_id=meeting.id, kind="unanswered", due_at=start - timedelta(hours=hours),
                              done_at=None))
    reminders = [r for r in reminders if r["due_at"] > now]
    with write_transaction(engine) as conn:
        first = meeting.status == MeetingStatus.DRAFT.value
        conn.execute(update(Meeting.__table__).where(Meeting.__table__.c.id == meeting.id)
                     .values(status=MeetingStatus.SENT.value, updated_at=now))
        if first and reminders:
            conn.execute(insert(Reminder.__table__), reminders)
