"""One attendee's email, from the attendee to bytes ready for the queue: built
(:mod:`invites.imip`), held to the relay's rules, DKIM-signed. Pure: no database,
no clock; so the work of a large meeting can be shared out to worker processes
(:mod:`invites.workers`) and give the same result as in the caller's process.

:class:`Letter` says which email (picklable, unlike a closure); :class:`EmailFactory`
holds what every attendee's email of one send shares and makes one
:class:`Outcome` per :class:`LetterJob`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from invites.ical import AttendeeInfo, MeetingInfo
from invites.imip import REMINDER_KINDS, build_invitation, build_reminder
from mailhub.config import Config
from mailhub.ledger import refused_event
from mailhub.signing import DkimSigner
from policies.context import PolicyContext, Sender
from policies.headerfields import parse_header_section
from policies.registry import build_stage
from policies.runner import evaluate
from policies.verdict import Verdict

SKIPPED_RULES = {"rate_limit"}  # a meeting's list comes from the directory: see invites.outbound


@dataclass(frozen=True)
class Letter:
    """Which email: ``REQUEST`` (invitation or update), ``CANCEL`` (meeting cancelled,
    or this attendee's invitation withdrawn), ``reminder`` or ``unanswered``."""

    kind: str

    def build(self, meeting: MeetingInfo, attendee: AttendeeInfo, *, rsvp_url: str, now: datetime,
              message_id: str) -> bytes:
        if self.kind in REMINDER_KINDS:
            return build_reminder(meeting, attendee, self.kind, rsvp_url=rsvp_url, now=now, message_id=message_id)
        link = rsvp_url if self.kind == "REQUEST" else None  # a cancellation asks for no answer
        return build_invitation(meeting, attendee, self.kind, rsvp_url=link, now=now, message_id=message_id)


REQUEST, CANCEL = Letter("REQUEST"), Letter("CANCEL")


@dataclass(frozen=True)
class LetterJob:
    """One attendee's email to make."""

    queue_id: str
    message_id: str
    email: str
    name: str
    partstat: str
    rsvp_url: str


@dataclass(frozen=True)
class Outcome:
    """The signed message, or the refusing rule's reply and its ledger row."""

    data: bytes | None
    reply: str | None = None
    refused_event: dict | None = None


@dataclass
class EmailFactory:
    """What one send's emails share; :meth:`make` is one attendee's.

    Picklable: the DKIM keys and the rules are not sent to a worker process, which
    loads them from ``config`` (:meth:`__setstate__`)."""

    config: Config
    sender: Sender
    meeting: MeetingInfo
    domain: str | None  # the DKIM signing domain, or None: not signed
    now: datetime
    letter: Letter
    signer: DkimSigner | None = None
    _stages: dict = field(default_factory=dict, repr=False)
    _context: dict = field(default_factory=dict, repr=False)  # what every rule's context shares
    _mail_verdict: Verdict | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._stages = {stage: [(n, p) for n, p in build_stage(self.config.policies, stage)
                                if n not in SKIPPED_RULES] for stage in ("mail", "rcpt", "data")}
        self._context = dict(sender=self.sender, client_ip="invites", mail_from=self.meeting.organizer_email,
                             settings=self.config.policy_settings)
        # MAIL FROM is the secretary's for every attendee: one verdict serves the whole send
        self._mail_verdict = evaluate(self._stages["mail"], PolicyContext(stage="mail", **self._context))

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("signer", "_stages", "_context", "_mail_verdict")}

    def __setstate__(self, state: dict) -> None:
        from mailhub.app import load_signer  # the worker process loads the keys once

        self.__dict__.update(state)
        self.signer = load_signer(self.config) if self.domain is not None else None
        self.__post_init__()

    def make(self, job: LetterJob) -> Outcome:
        data = self.letter.build(self.meeting, AttendeeInfo(job.email, job.name, job.partstat),
                                 rsvp_url=job.rsvp_url, now=self.now, message_id=job.message_id)
        verdict = self.refusal(job.email, data)
        if verdict is not None:
            reply = verdict.smtp_reply()
            return Outcome(None, reply, refused_event(official_email=self.sender.login, unit_code=self.sender.unit,
                                                      policy=verdict.policy or "unknown", reason=reply,
                                                      client_ip="invites"))
        if self.domain is not None:
            data = self.signer.sign(data, self.domain)
        return Outcome(data)

    def refusal(self, rcpt: str, data: bytes) -> Verdict | None:
        """The verdict of the first rule that refuses this email, as the relay would
        give it to the secretary's own mail client, or ``None``."""
        verdict = self._mail_verdict
        if not verdict.refused:
            verdict = evaluate(self._stages["rcpt"], PolicyContext(stage="rcpt", rcpt=rcpt, **self._context))
        if not verdict.refused:
            verdict = evaluate(self._stages["data"], PolicyContext(
                stage="data", rcpt_tos=(rcpt,), size=len(data),
                headers=parse_header_section(data.split(b"\r\n\r\n", 1)[0]), **self._context))
        return verdict if verdict.refused else None

