"""The stored records: directory, queue, meetings, usage ledger, auth lockouts.

One module of table definitions (sqlmodel) so the schema is visible in one place;
alembic migrations in ``mailhub/migrations`` create exactly these tables.
"""
from __future__ import annotations

import enum
from datetime import date, datetime, timezone

from sqlalchemy import Column, Index, LargeBinary, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    # Aware UTC: sqlmodel >= 0.0.50 stores `datetime` fields as UTCDateTime, which
    # refuses naive values on write and returns aware UTC values on read.
    return datetime.now(timezone.utc)


def as_utc(moment: datetime) -> datetime:
    """``moment`` in aware UTC, as the tables store times; a naive one is taken to be UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


# ---- directory -------------------------------------------------------------

class UnitKind(str, enum.Enum):
    CITY = "city"
    DEPARTMENT = "department"  # Sở, ban, ngành
    DISTRICT = "district"  # Quận, huyện, thành phố thuộc thành phố
    WARD = "ward"  # Phường, xã, thị trấn
    OTHER = "other"


class Unit(SQLModel, table=True):
    """An administrative unit; units form a tree (city → departments/districts → wards)."""

    code: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=255)  # Vietnamese name, e.g. "Sở Thông tin và Truyền thông"
    parent_code: str | None = Field(default=None, foreign_key="unit.code", index=True)
    kind: str = Field(default=UnitKind.OTHER.value, max_length=16)
    created_at: datetime = Field(default_factory=utcnow)


# official: sends mail, sees their own score; secretary: issues meeting invitations; leader:
# heads a unit and sees its scores; hr: the Department of Home Affairs, every score; admin: IT.
ROLES = ("official", "secretary", "leader", "hr", "admin")


class Official(SQLModel, table=True):
    """A person with an account: cán bộ, công chức, viên chức."""

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True, index=True)  # lower-case
    full_name: str = Field(max_length=255)
    phone: str | None = Field(default=None, max_length=32)  # E.164
    unit_code: str = Field(foreign_key="unit.code", index=True)
    roles: str = Field(default="official", max_length=128)  # comma-separated, from ROLES
    password_hash: str | None = Field(default=None, max_length=255)  # argon2id
    active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow)

    @property
    def role_list(self) -> list[str]:
        return [r for r in self.roles.split(",") if r]


class MailboxKind(str, enum.Enum):
    ALIAS = "alias"  # another address of one official
    SHARED = "shared"  # a unit mailbox that several officials may send as


class Mailbox(SQLModel, table=True):
    """An address that is not an official's own: an alias or a shared unit mailbox."""

    address: str = Field(primary_key=True, max_length=320)  # lower-case
    kind: str = Field(max_length=16)
    display_name: str = Field(default="", max_length=255)
    unit_code: str | None = Field(default=None, foreign_key="unit.code")


class MailboxGrant(SQLModel, table=True):
    """Official ``official_id`` may send as ``address``."""

    __table_args__ = (UniqueConstraint("address", "official_id"),)
    id: int | None = Field(default=None, primary_key=True)
    address: str = Field(foreign_key="mailbox.address", index=True, max_length=320)
    official_id: int = Field(foreign_key="official.id", index=True)


# ---- queue -----------------------------------------------------------------

class RecipientState(str, enum.Enum):
    QUEUED = "queued"  # waiting for its first or next attempt
    SENDING = "sending"  # claimed by a delivery worker (lease until lease_until)
    DEFERRED = "deferred"  # last attempt failed temporarily; retried at next_attempt_at
    DELIVERED = "delivered"  # the next hop accepted it
    BOUNCED = "bounced"  # failed permanently
    HELD = "held"  # put aside by an operator; not attempted until released


class MessageKind(str, enum.Enum):
    EMAIL = "email"  # submitted by an official through the relay
    INVITE_EMAIL = "invite_email"  # a meeting invitation sent by the invites module
    NOTICE = "notice"  # a delivery status notification (bounce, delay warning) we generated


class QueuedMessage(SQLModel, table=True):
    """A message accepted and signed, exactly as it will go out."""

    __tablename__ = "queued_message"
    id: str = Field(primary_key=True, max_length=40)
    mail_from: str = Field(max_length=320)  # "" is the null sender (RFC 5321 §4.5.5): never bounced
    kind: str = Field(default=MessageKind.EMAIL.value,
                      sa_column=Column(String(16), nullable=False, server_default=MessageKind.EMAIL.value))
    official_email: str | None = Field(default=None, max_length=320, index=True)
    message_id_header: str = Field(default="", max_length=998)
    size: int
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, index=True)


class NoticeState(str, enum.Enum):
    """Which delivery status notification the sender has had about one recipient."""

    NONE = ""  # none yet
    DELAY = "delay"  # a delay warning ("still trying")
    FINAL = "final"  # the failure notice, or none is due (null sender, a notice itself)


class QueueRecipient(SQLModel, table=True):
    """One recipient of a queued message, with its own delivery state."""

    __tablename__ = "queue_recipient"
    __table_args__ = (Index("ix_queue_recipient_state_next", "state", "next_attempt_at"),
                      # bounced rows whose notice is not out yet, deferred rows not warned yet
                      Index("ix_queue_recipient_state_notified", "state", "notified"))
    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(foreign_key="queued_message.id", index=True, max_length=40)
    rcpt: str = Field(max_length=320)
    state: str = Field(default=RecipientState.QUEUED.value, max_length=16)
    attempts: int = Field(default=0)
    next_attempt_at: datetime = Field(default_factory=utcnow)
    lease_until: datetime | None = Field(default=None)
    last_reply: str = Field(default="", max_length=1000)
    updated_at: datetime = Field(default_factory=utcnow)
    notified: str = Field(default=NoticeState.NONE.value,
                          sa_column=Column(String(16), nullable=False, server_default=NoticeState.NONE.value))


class DeliveryAttempt(SQLModel, table=True):
    """One attempt to deliver one recipient: what the next hop answered, for
    ``mailhub queue show`` and for the bounce an operator has to explain."""

    __tablename__ = "delivery_attempt"
    id: int | None = Field(default=None, primary_key=True)
    recipient_id: int = Field(foreign_key="queue_recipient.id", index=True)
    message_id: str = Field(max_length=40, index=True)
    at: datetime = Field(default_factory=utcnow, index=True)  # `queue stats` counts the last hour/day
    node: str = Field(default="", max_length=128)
    outcome: str = Field(max_length=16)  # delivered, deferred, bounced
    reply: str = Field(default="", max_length=1000)
    remote: str = Field(default="", max_length=255)  # name[address]:port that answered, "" if none


# ---- meetings and invitations (invites/) ------------------------------------

class MeetingStatus(str, enum.Enum):
    DRAFT = "draft"  # created, nothing sent yet
    SENT = "sent"  # invitations issued (REQUEST)
    CANCELLED = "cancelled"  # CANCEL sent; nothing more goes out


class PartStat(str, enum.Enum):
    """An attendee's answer (RFC 5545 §3.2.12 PARTSTAT for VEVENT)."""

    NEEDS_ACTION = "NEEDS-ACTION"
    ACCEPTED = "ACCEPTED"
    DECLINED = "DECLINED"
    TENTATIVE = "TENTATIVE"


class ChannelState(str, enum.Enum):
    """Where one invitation stands on one channel (email or SMS)."""

    NONE = ""  # not sent on this channel (no address, or not asked for)
    QUEUED = "queued"  # in our mail queue / SMS queue
    SENT = "sent"  # handed to the next hop or the SMS gateway
    DELIVERED = "delivered"  # the next hop or the carrier confirmed it
    FAILED = "failed"  # given up, with a reason


class Meeting(SQLModel, table=True):
    """A meeting and its invitation (RFC 5546: UID and SEQUENCE identify its versions)."""

    id: int | None = Field(default=None, primary_key=True)
    uid: str = Field(max_length=255, unique=True)  # iCalendar UID, stable for the meeting's life
    sequence: int = Field(default=0)  # RFC 5546 §2.1.4: + 1 for each update that matters
    title: str = Field(max_length=500)
    agenda: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    location: str = Field(default="", max_length=500)
    start_at: datetime  # aware UTC; shown in Asia/Ho_Chi_Minh
    end_at: datetime
    unit_code: str = Field(foreign_key="unit.code", index=True)  # the organizing unit
    chair_name: str = Field(default="", max_length=255)
    secretary_email: str = Field(max_length=320, index=True)  # the issuing secretary: ORGANIZER, mail sender
    status: str = Field(default=MeetingStatus.DRAFT.value, max_length=16)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class MeetingAttendee(SQLModel, table=True):
    """One invited person: an official from the directory or an external guest."""

    __tablename__ = "meeting_attendee"
    __table_args__ = (Index("ix_meeting_attendee_meeting_email", "meeting_id", "email"),)
    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="meeting.id")
    official_id: int | None = Field(default=None, foreign_key="official.id")  # None: an external guest
    name: str = Field(max_length=255)
    email: str | None = Field(default=None, max_length=320)  # lower-case
    phone: str | None = Field(default=None, max_length=32)  # E.164
    removed: bool = Field(default=False)  # cancelled for this attendee alone (METHOD:CANCEL to them)
    partstat: str = Field(default=PartStat.NEEDS_ACTION.value, max_length=16)
    answered_at: datetime | None = Field(default=None)
    answered_sequence: int = Field(default=0)  # the SEQUENCE the answer was about
    email_state: str = Field(default=ChannelState.NONE.value, max_length=16)
    email_queue_id: str | None = Field(default=None, max_length=40)  # queued_message.id of the last email
    email_reason: str = Field(default="", max_length=1000)
    sms_state: str = Field(default=ChannelState.NONE.value, max_length=16)
    sms_reason: str = Field(default="", max_length=1000)
    created_at: datetime = Field(default_factory=utcnow)


class SmsMessage(SQLModel, table=True):
    """One SMS to send or sent: its own small queue, with retries like the mail queue."""

    __tablename__ = "sms_message"
    __table_args__ = (Index("ix_sms_message_state_next", "state", "next_attempt_at"),)
    id: int | None = Field(default=None, primary_key=True)
    attendee_id: int | None = Field(default=None, foreign_key="meeting_attendee.id", index=True)
    to: str = Field(max_length=32)  # E.164
    text: str = Field(max_length=1600)
    encoding: str = Field(max_length=8)  # GSM-7 or UCS-2
    segments: int
    gateway: str = Field(default="", max_length=32)  # outbox, twilio, smpp
    gateway_id: str = Field(default="", max_length=64, index=True)  # Twilio SID / SMPP message id
    state: str = Field(default=ChannelState.QUEUED.value, max_length=16)
    attempts: int = Field(default=0)
    next_attempt_at: datetime = Field(default_factory=utcnow)
    lease_until: datetime | None = Field(default=None)
    reason: str = Field(default="", max_length=1000)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class MeetingReply(SQLModel, table=True):
    """An answer received (iMIP REPLY or COUNTER, or the RSVP page), kept as evidence;
    a COUNTER proposal is stored and shown, never applied."""

    __tablename__ = "meeting_reply"
    id: int | None = Field(default=None, primary_key=True)
    attendee_id: int = Field(foreign_key="meeting_attendee.id", index=True)
    method: str = Field(max_length=16)  # REPLY, COUNTER, RSVP-LINK
    partstat: str = Field(default="", max_length=16)
    sequence: int = Field(default=0)
    proposed_start: datetime | None = Field(default=None)
    proposed_end: datetime | None = Field(default=None)
    comment: str = Field(default="", max_length=1000)
    received_at: datetime = Field(default_factory=utcnow)


class Reminder(SQLModel, table=True):
    """A reminder due at ``due_at``; rows, not timers, so they survive restarts."""

    __table_args__ = (Index("ix_reminder_due", "done_at", "due_at"),)
    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="meeting.id", index=True)
    kind: str = Field(max_length=16)  # "all", or "unanswered" (those who have not answered)
    due_at: datetime
    done_at: datetime | None = Field(default=None)


# ---- usage ledger ----------------------------------------------------------

class UsageKind(str, enum.Enum):
    EMAIL = "email"  # a message accepted by the relay
    REFUSED = "refused"  # an attempt refused by a policy
    INVITE_EMAIL = "invite_email"  # an invitation sent by the invites module


class UsageEvent(SQLModel, table=True):
    """One line of the usage ledger. Scoring and reports read only this table."""

    __tablename__ = "usage_event"
    __table_args__ = (Index("ix_usage_official_at", "official_email", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    kind: str = Field(max_length=32)
    official_email: str | None = Field(default=None, max_length=320)
    unit_code: str | None = Field(default=None, max_length=64)
    message_id: str | None = Field(default=None, max_length=40)
    recipients_internal: int = Field(default=0)
    recipients_external: int = Field(default=0)
    size: int = Field(default=0)
    policy: str | None = Field(default=None, max_length=64)  # for refusals
    reason: str | None = Field(default=None, max_length=1000)  # the reply given
    client_ip: str | None = Field(default=None, max_length=64)
    # document submissions ([[documents.rules]]): "signed-valid", "signed-invalid" or
    # "unsigned" (mailhub.signatures.outcome), and the signer's certificate subject
    signature: str | None = Field(default=None, max_length=16)
    signer: str | None = Field(default=None, max_length=400)
    # what scoring leaves out (mailhub.ledger.mail_nature): mail only to the sender's own
    # addresses, and automatic mail (auto-replies, bounces: RFC 3834, null sender)
    to_self: bool = Field(default=False)
    automatic: bool = Field(default=False)


# ---- HR scoring ------------------------------------------------------------

class OfficialAssignment(SQLModel, table=True):
    """An official's employment in a unit from ``start`` to ``end``, both inclusive (``end``
    None: still there). A transfer is two rows, the first ending the day before the second
    starts. An official without any row counts for their directory unit on every day
    (mailhub.scoring.employment)."""

    __tablename__ = "official_assignment"
    id: int | None = Field(default=None, primary_key=True)
    official_id: int = Field(foreign_key="official.id", index=True)
    unit_code: str = Field(foreign_key="unit.code", max_length=64)
    start: date
    end: date | None = Field(default=None)


class UsageMonth(SQLModel, table=True):
    """The usage ledger rolled up per official and Vietnam month, so a quarter's scores read
    tens of thousands of rows instead of millions of events (mailhub.scoring.rollup).

    ``days``: for day 1..31 of the month, the day's counted mail, refusals for an outside
    address, document submissions and valid ones, as little-endian uint16 (rollup.DAY_FIELDS).
    """

    __tablename__ = "usage_month"
    month: str = Field(primary_key=True, max_length=7)  # "2026-07"
    official_email: str = Field(primary_key=True, max_length=320)
    days: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class UsageRollup(SQLModel, table=True):
    """How far each month is rolled up: days 1..``through`` are in usage_month."""

    __tablename__ = "usage_rollup"
    month: str = Field(primary_key=True, max_length=7)
    through: date
    events: int = Field(default=0)
    rolled_at: datetime = Field(default_factory=utcnow)


class ScoreDeduction(SQLModel, table=True):
    """Confirmed use of an outside mail system by an official, recorded by HR; each case
    takes points off that official's score for the period holding ``day``."""

    __tablename__ = "score_deduction"
    id: int | None = Field(default=None, primary_key=True)
    official_email: str = Field(max_length=320, index=True)
    day: date
    cases: int = Field(default=1)
    note: str = Field(default="", max_length=1000)
    recorded_by: str = Field(default="", max_length=320)
    recorded_at: datetime = Field(default_factory=utcnow)


class UnitRegister(SQLModel, table=True):
    """A unit's documents issued in a month and those issued electronically, imported from
    the unit's register (CSV); the unit-level indicator U1."""

    __tablename__ = "unit_register"
    unit_code: str = Field(primary_key=True, foreign_key="unit.code", max_length=64)
    month: str = Field(primary_key=True, max_length=7)
    issued: int
    issued_electronic: int
    source: str = Field(default="", max_length=255)
    imported_at: datetime = Field(default_factory=utcnow)


class ScorePeriod(SQLModel, table=True):
    """A closed scoring period: who closed it and when, and its results frozen as they were
    (JSON of mailhub.scoring.results.PeriodScores, with the model and holidays used)."""

    __tablename__ = "score_period"
    label: str = Field(primary_key=True, max_length=32)
    start: date
    end: date
    closed_at: datetime = Field(default_factory=utcnow)
    closed_by: str = Field(max_length=320)
    model_version: str = Field(max_length=64)
    snapshot: str = Field(sa_column=Column(Text, nullable=False))


# ---- web console -----------------------------------------------------------

class WebSession(SQLModel, table=True):
    """A signed-in browser (mailhub.web.sessions). The cookie holds a random token; only its
    SHA-256 is stored, with the session's CSRF token for the forms it is shown."""

    __tablename__ = "web_session"
    token_hash: str = Field(primary_key=True, max_length=64)
    official_id: int = Field(foreign_key="official.id", index=True)
    csrf: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime


# ---- authentication lockouts -----------------------------------------------

class AuthLockout(SQLModel, table=True):
    """Failed AUTH attempts per key (``account:<email>`` or ``client:<ip>``).

    Kept in the database so every relay process and node sees the same lockout."""

    __tablename__ = "auth_lockout"
    key: str = Field(primary_key=True, max_length=400)
    failures: int = Field(default=0)
    window_start: datetime = Field(default_factory=utcnow)
    locked_until: datetime | None = Field(default=None)


# ---- API tokens (mailhub/tokens.py) ------------------------------------------

class ApiToken(SQLModel, table=True):
    """A bearer token for the JSON API, issued to one official; the token itself is
    shown once at creation and only its SHA-256 is stored."""

    __tablename__ = "api_token"
    id: int | None = Field(default=None, primary_key=True)
    official_id: int = Field(foreign_key="official.id", index=True)
    label: str = Field(default="", max_length=255)  # what it is for, e.g. "lịch họp của Văn phòng Sở"
    # hex SHA-256 of the token: 32 random bytes need no slow, salted hash (nothing to
    # guess from), and a unique index makes the lookup one probe.
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = Field(default=None)  # updated at most once a minute
    expires_at: datetime | None = Field(default=None)  # None: never expires
    revoked_at: datetime | None = Field(default=None)
