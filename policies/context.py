"""The plain facts a policy decides on. Built by the SMTP front end; no I/O here."""
from __future__ import annotations

from dataclasses import dataclass, field
from email.message import Message
from typing import Any, Mapping


@dataclass(frozen=True, slots=True)
class Sender:
    """The authenticated official, as the directory knows them."""

    login: str  # the official's own address, lower-case
    full_name: str
    unit: str  # unit code
    # addresses (lower-case) this official may use as envelope sender / From:
    # their own address, their aliases, and shared unit mailboxes granted to them
    may_send_as: frozenset[str]


@dataclass(frozen=True, slots=True)
class Usage:
    """How much the official already sent, for the rate limits."""

    sent_last_hour: int = 0
    sent_last_day: int = 0


@dataclass(frozen=True, slots=True)
class PolicyContext:
    """Everything a policy may look at. ``stage`` is ``"mail"``, ``"rcpt"`` or ``"data"``.

    - at ``mail``: ``mail_from`` is set, ``rcpt_tos`` is empty;
    - at ``rcpt``: ``rcpt`` is the recipient being added, ``rcpt_tos`` those already accepted;
    - at ``data``: ``headers`` holds the parsed header section, ``size`` the message size
      in bytes, ``rcpt_tos`` all accepted recipients.
    """

    stage: str
    sender: Sender | None
    client_ip: str
    mail_from: str
    rcpt_tos: tuple[str, ...] = ()
    rcpt: str | None = None
    headers: Message | None = None
    size: int = 0
    declared_size: int | None = None  # MAIL FROM SIZE= parameter, if given
    usage: Usage = field(default_factory=Usage)
    # the directory's addresses -> display name, used to detect impersonation;
    # a read-only mapping owned by the caller
    directory_names: Mapping[str, str] = field(default_factory=dict)
    settings: Any = None  # the frozen policies section of the config
    # at ``data``, for submissions a [[documents.rules]] entry covers: the mode ("record" or
    # "require") and what mailhub.signatures.examine found (a DocumentCheck)
    documents_mode: str | None = None
    documents: Any = None
