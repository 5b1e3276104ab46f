"""One meeting's personal messages into the queues: each attendee's email (through
the relay's rules, DKIM, the mail queue) and SMS (the SMS queue).

Every outbound step of invites — the invitation, an update, a cancellation, a
reminder — is one :meth:`Outbound.send` with a different email
(:class:`invites.letters.Letter`) and SMS wording. Each email is a message from the secretary and goes through the
relay's own rules, as if the secretary had submitted it: the configured MAIL,
RCPT and DATA policies (sender's domain and ownership, recipients, external
recipients, size, From, impersonation, classification — a title marked MẬT is
refused), then DKIM for the secretary's domain, then the queue. The one rule
left out is ``rate_limit``: a meeting's attendee list comes from the directory,
and a meeting of a whole district would otherwise stop at the daily limit.

What the secretary sends counts as the secretary's usage (ledger events of kind
``invite_email``, and refusals as ``refused``); reminders, which mailhub sends
by itself, do not (``ledger=False``).

Work is written in chunks of :data:`CHUNK` attendees, one transaction each, so a
meeting of 10,000 shows progress and a crash loses at most the chunk in hand.
The emails of a large send are made by worker processes (:mod:`invites.workers`).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterator, Sequence

from sqlalchemy import bindparam, insert, update
from sqlalchemy.engine import Engine

from invites.ical import MeetingInfo
from invites.letters import EmailFactory, Letter, LetterJob, Outcome
from invites.rsvp import rsvp_url
from invites.smstext import SmsEncoding, encoding_of, fit_variable, prepare_sms
from invites.spec import VIETNAM
from invites.workers import outcomes
from mailhub.config import Config
from mailhub.db import write_transaction
from mailhub.directory import load_sender
from mailhub.dkimkeys import signing_domain
from mailhub.errors import InputError
from mailhub.models import (ChannelState, Meeting, MeetingAttendee, MeetingStatus, MessageKind, QueuedMessage,
                            QueueRecipient, SmsMessage, Unit, UsageEvent)
from mailhub.phones import PhoneError, is_mobile
from mailhub.queue import AcceptedMessage, new_queue_id, queue_rows
from mailhub.signing import DkimSigner
from policies.addresses import is_official

CHUNK = 500


@dataclass
class SendReport:
    emails: int = 0
    sms: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)  # (address, reply)
    no_channel: list[str] = field(default_factory=list)  # names with neither email nor mobile

    def add(self, other: SendReport) -> None:
        self.emails += other.emails
        self.sms += other.sms
        self.refused += other.refused
        self.no_channel += other.no_channel


@dataclass(frozen=True)
class SmsWording:
    """An SMS text with the fields ``{title}``, ``{when}``, ``{where}`` and ``{link}``,
    written with diacritics (they are stripped unless ``[invites] sms_unicode``)."""

    template: str
    with_link: bool = True


def meeting_info(meeting: Meeting, secretary_name: str, unit_name: str) -> MeetingInfo:
    return MeetingInfo(uid=meeting.uid, sequence=meeting.sequence, title=meeting.title, agenda=meeting.agenda,
                       location=meeting.location, start=meeting.start_at, end=meeting.end_at,
                       organizer_email=meeting.secretary_email, organizer_name=secretary_name,
                       chair_name=meeting.chair_name, unit_name=unit_name, created=meeting.created_at,
                       cancelled=meeting.status == MeetingStatus.CANCELLED.value)


def is_mobile_number(phone: str | None) -> bool:
    if not phone:
        return False
    try:
        return is_mobile(phone)
    except PhoneError:
        return False


class Outbound:
    """Sends one meeting's messages, as its secretary, at ``now``."""

    def __init__(self, engine: Engine, config: Config, signer: DkimSigner, rsvp_key: bytes, meeting: Meeting,
                 now: datetime) -> None:
        self.engine, self.config, self.signer, self.rsvp_key, self.now = engine, config, signer, rsvp_key, now
        self.sender = load_sender(engine, meeting.secretary_email)
        if self.sender is None:
            raise InputError(f"the secretary {meeting.secretary_email} is no longer in the directory")
        with engine.connect() as conn:
            unit = conn.execute(Unit.__table__.select().where(Unit.__table__.c.code == meeting.unit_code)).first()
        self.info = meeting_info(meeting, self.sender.full_name, unit.name if unit else meeting.unit_code)
        self.domain = signing_domain(meeting.secretary_email.rpartition("@")[2], signer.domains)
        self._sms_shapes: dict[tuple, tuple] = {}  # see sms()

    def send(self, people: Sequence[MeetingAttendee], *, email: Letter | None, sms: SmsWording | None,
             track: bool = True, ledger: bool = True,
             progress: Callable[[int, int], None] = lambda done, total: None) -> SendReport:
        """Queue ``email`` and ``sms`` for each of ``people`` (``None``: not on that
        channel). ``track``: the attendee's channel states follow these messages
        (invitations, updates, cancellations), not so for reminders."""
        report = SendReport()
        links = {p.id: rsvp_url(self.config.invites.public_url, self.rsvp_key, p.id) for p in people}
        jobs = [self._job(person, links[person.id]) for person in people if email is not None and person.email]
        factory = EmailFactory(self.config, self.sender, self.info, self.domain, self.now, email, self.signer)
        with contextlib.closing(outcomes(factory, jobs, self.config.invites.build_processes)) as made:
            self._send(people, zip(jobs, made) if email is not None else None, sms, links, track, ledger,
                       report, progress)
        return report

    def _send(self, people: Sequence[MeetingAttendee], made: Iterator[tuple[LetterJob, Outcome]] | None,
              sms: SmsWording | None, links: dict[int, str], track: bool, ledger: bool, report: SendReport,
              progress: Callable[[int, int], None]) -> None:
        for start in range(0, len(people), CHUNK):
            rows = _Rows()
            for person in people[start:start + CHUNK]:
                reachable = False
                if made is not None and person.email:
                    self._email(rows, *next(made), person, track, ledger, report)
                    reachable = True
                if sms is not None and is_mobile_number(person.phone):
                    self._sms(rows, sms, person, links[person.id], track, report)
                    reachable = True
                if not reachable and not person.email:
                    report.no_channel.append(person.name)
            rows.write(self.engine)
            progress(min(start + CHUNK, len(people)), len(people))

    def _job(self, person: MeetingAttendee, link: str) -> LetterJob:
        queue_id = new_queue_id()
        return LetterJob(queue_id, f"{queue_id}@{self.domain or 'invites'}", person.email, person.name,
                         person.partstat, link)

    def _email(self, rows: _Rows, job: LetterJob, outcome: Outcome, person: MeetingAttendee, track: bool,
               ledger: bool, report: SendReport) -> None:
        sender, data = self.sender, outcome.data
        if data is None:
            report.refused.append((person.email, outcome.reply))
            if ledger:  # a refusal is in the ledger like any other
                rows.events.append(outcome.refused_event)
            if track:
                rows.states.append((person.id, dict(email_state=ChannelState.FAILED.value,
                                                    email_reason=outcome.reply[:1000])))
            return
        internal = int(is_official(person.email.rpartition("@")[2], self.config.domains))
        message, recipients, event = queue_rows(AcceptedMessage(
            id=job.queue_id, mail_from=self.info.organizer_email, rcpt_tos=(person.email,), data=data,
            official_email=sender.login, unit_code=sender.unit, message_id_header=f"<{job.message_id}>",
            recipients_internal=internal, recipients_external=1 - internal, kind=MessageKind.INVITE_EMAIL.value),
            self.now)
        rows.messages.append(message)
        rows.recipients.extend(recipients)
        if ledger:
            rows.events.append(event)
        if track:
            rows.states.append((person.id, dict(email_state=ChannelState.QUEUED.value, email_reason="",
                                                email_queue_id=job.queue_id)))
        report.emails += 1

    def _sms(self, rows: _Rows, wording: SmsWording, person: MeetingAttendee, link: str, track: bool,
             report: SendReport) -> None:
        text, encoding = self.sms(wording, link)
        now = self.now
        rows.sms.append(dict(attendee_id=person.id if track else None, to=person.phone, text=text,
                             encoding=encoding.name, segments=encoding.segments, gateway="", gateway_id="",
                             state=ChannelState.QUEUED.value, attempts=0, next_attempt_at=now, lease_until=None,
                             reason="", created_at=now, updated_at=now))
        if track:
            rows.states.append((person.id, dict(sms_state=ChannelState.QUEUED.value, sms_reason="")))
        report.sms += 1

    def sms(self, wording: SmsWording, link: str) -> tuple[str, SmsEncoding]:
        """The SMS for one attendee and its encoding, the title shortened to stay in one
        SMS where it can.

        The links of one meeting differ only in their tokens: the text is prepared and
        the title's cut found once per wording and link size (its length and SMS
        units), and each attendee's link put in its place."""
        link = link if wording.with_link else ""
        key = (wording, len(link), encoding_of(link))
        if (shape := self._sms_shapes.get(key)) is None:
            shape = self._sms_shapes[key] = self._sms_shape(wording, link)
        prepared, title, encoding = shape
        text = prepared.replace("{title}", title).replace("{link}", link)
        return text, encoding if encoding.segments == 1 else encoding_of(text)

    def _sms_shape(self, wording: SmsWording, link: str) -> tuple[str, str, SmsEncoding]:
        info, unicode = self.info, self.config.invites.sms_unicode
        prepared, _ = prepare_sms(wording.template.format(
            title="{title}", when=info.start.astimezone(VIETNAM).strftime("%H:%M %d/%m/%Y"),
            where=info.location or info.unit_name, link="{link}"), unicode=unicode)
        fixed = prepared.replace("{link}", link)
        title, _ = prepare_sms(info.title, unicode=unicode)
        with contextlib.suppress(ValueError):  # even "..." does not fit one SMS (a very long place name): send two
            title = fit_variable(fixed, title, segments=1)
        return prepared, title, encoding_of(fixed.replace("{title}", title))


class _Rows:
    """One chunk's rows, written in one transaction."""

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
            for statement, rows in _state_updates(self.states):
                conn.execute(statement, rows)


def _state_updates(states: list[tuple[int, dict]]) -> list[tuple[object, list[dict]]]:
    """The attendees' new channel states as a few executemany UPDATEs: one attendee's
    changes merged (email, then SMS), attendees grouped by the columns they change."""
    merged: dict[int, dict] = {}
    for attendee_id, values in states:
        merged.setdefault(attendee_id, {}).update(values)
    groups: dict[tuple[str, ...], list[dict]] = {}
    for attendee_id, values in merged.items():
        groups.setdefault(tuple(sorted(values)), []).append(
            {"b_id": attendee_id, **{"b_" + k: v for k, v in values.items()}})
    table = MeetingAttendee.__table__
    return [(update(table).where(table.c.id == bindparam("b_id")).values({k: bindparam("b_" + k) for k in columns}),
             rows) for columns, rows in groups.items()]
