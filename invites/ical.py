"""iCalendar objects for meeting invitations (iTIP, RFC 5546), as pure functions.

:func:`build_calendar` writes the ``text/calendar`` body of a REQUEST or CANCEL;
:func:`parse_reply` reads the body of a REPLY or COUNTER an attendee's client sent
back. No I/O, no database: callers pass plain frozen records.

What is trusted: the caller's records are ours (from the database or a checked
meeting file), but their texts came from people, so every text is cleaned
(control characters dropped, one line where one line is meant); addresses and the
UID are checked and a bad one raises ``ValueError``, since mailing a cleaned,
different address would be worse than failing. What comes back from outside
(:func:`parse_reply`) is trusted for nothing: anything unexpected gives ``None``.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, Timezone, vCalAddress
from icalendar.parser import Contentline
from icalendar.prop import vBroken

PRODID = "-//mailhub//Giay moi hop//VI"
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
METHODS = ("REQUEST", "CANCEL")  # REPLY and COUNTER are written by the attendees' clients
PARTSTATS = frozenset({"NEEDS-ACTION", "ACCEPTED", "DECLINED", "TENTATIVE"})  # RFC 5545 §3.2.12, VEVENT
ROLES = frozenset({"CHAIR", "REQ-PARTICIPANT", "OPT-PARTICIPANT", "NON-PARTICIPANT"})  # RFC 5545 §3.2.16
MAX_NAME = 200
MAX_TEXT = 20_000
# A plain addr-spec: dot-atom local part (RFC 5322 §3.2.3 atext) @ an ASCII host name.
_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?:\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*"
                      r"@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)+")
_UID = re.compile(r"[!-~]{1,255}")  # printable ASCII, no space: safe in a header-like context too


@dataclass(frozen=True)
class MeetingInfo:
    uid: str  # stable across updates, e.g. "3f2a...@hochiminhcity.gov.vn" (RFC 5545 §3.8.4.7)
    sequence: int  # RFC 5546 §2.1.4: the caller increments it for each update and cancellation
    title: str
    agenda: str
    location: str
    start: datetime  # aware; written in Asia/Ho_Chi_Minh whatever its zone
    end: datetime  # aware, after start
    organizer_email: str  # the issuing secretary (ORGANIZER)
    organizer_name: str
    chair_name: str
    unit_name: str
    created: datetime  # aware
    cancelled: bool = False  # the whole meeting is cancelled (only with METHOD:CANCEL)


@dataclass(frozen=True)
class AttendeeInfo:
    email: str
    name: str
    partstat: str = "NEEDS-ACTION"  # NEEDS-ACTION | ACCEPTED | DECLINED | TENTATIVE
    role: str = "REQ-PARTICIPANT"  # CHAIR | REQ-PARTICIPANT | OPT-PARTICIPANT | NON-PARTICIPANT


@dataclass(frozen=True)
class ReplyInfo:
    method: str  # "REPLY" or "COUNTER"
    uid: str
    sequence: int  # 0 when missing or unreadable
    attendee_email: str  # lower-case, from the ATTENDEE's mailto (RFC 6047 §2.3), never from mail headers
    partstat: str  # upper-case as sent; "NEEDS-ACTION" when missing; not checked against PARTSTATS
    proposed_start: datetime | None  # COUNTER only: aware (floating times read as Vietnam time)
    proposed_end: datetime | None
    comment: str  # COMMENT lines, or Google's X-RESPONSE-COMMENT; "" when none


def check_address(address: str) -> str:
    """``address`` stripped, if it is a plain ``local@host`` in ASCII; ``ValueError`` otherwise."""
    address = address.strip()
    if len(address) > 254 or not _ADDRESS.fullmatch(address):  # RFC 5321 §4.5.3.1.3
        raise ValueError(f"not a plain email address: {address!r}")
    return address


def one_line(text: str, limit: int = MAX_NAME) -> str:
    """``text`` on one line: every run of white space or control/format characters
    (CR, LF, U+2028, ...) becomes one space; cut to ``limit`` characters."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())[:limit]


def lines(text: str, limit: int = MAX_TEXT) -> list[str]:
    """``text`` (an agenda) as cleaned lines, blank lines at both ends dropped."""
    kept = [one_line(line, limit) for line in text[:limit].splitlines()]
    while kept and not kept[-1]:
        kept.pop()
    while kept and not kept[0]:
        kept.pop(0)
    return kept


def build_calendar(meeting: MeetingInfo, attendees: Sequence[AttendeeInfo], method: str,
                   *, now: datetime) -> bytes:
    """A VCALENDAR with METHOD ``method``, a VTIMEZONE for Asia/Ho_Chi_Minh and one VEVENT.

    ``method`` is ``REQUEST`` (invitation or update, RFC 5546 §3.2.2) or ``CANCEL``
    (§3.2.5). A CANCEL with ``meeting.cancelled`` cancels the meeting (STATUS:CANCELLED);
    a CANCEL without it removes the listed attendees only, and then §3.2.5 says STATUS
    MUST NOT be included. A REQUEST for a cancelled meeting raises ``ValueError``, as do
    naive datetimes, ``end <= start``, a negative SEQUENCE, a bad UID or address, and an
    unknown PARTSTAT or ROLE. Output: UTF-8, CRLF, lines folded at 75 octets.
    """
    method = _check(meeting, attendees, method, now)
    head, tail = _frame(meeting, method, now)
    return head + b"".join(_attendee_line(attendee, method) for attendee in attendees) + tail


_ATTENDEES_HERE = b"X-MAILHUB-ATTENDEES:here\r\n"  # where the ATTENDEE lines go; never sent


@functools.lru_cache(maxsize=16)
def _frame(meeting: MeetingInfo, method: str, now: datetime) -> tuple[bytes, bytes]:
    """The calendar without its ATTENDEE lines, split where they go: the part every
    attendee's copy shares, built once per meeting, method and ``now`` (a send of
    10,000 invitations is one ``now``)."""
    cal = Calendar.new(method=method, prodid=PRODID)
    cal.pop("UID", None)  # FIELD-NOTES: icalendar adds an RFC 7986 UID; iTIP matches on the VEVENT's
    event = Event()
    event.add("uid", meeting.uid.strip())
    event.add("sequence", meeting.sequence)
    event.add("dtstamp", now.astimezone(UTC))  # RFC 5545 §3.8.7.2: UTC
    event.add("created", meeting.created.astimezone(UTC))
    event.add("dtstart", meeting.start.astimezone(VIETNAM))
    event.add("dtend", meeting.end.astimezone(VIETNAM))
    event.add("summary", one_line(meeting.title, MAX_TEXT))
    if agenda := "\n".join(lines(meeting.agenda)):
        event.add("description", agenda)
    if location := one_line(meeting.location, MAX_TEXT):
        event.add("location", location)
    # FIELD-NOTES: a bare mailto with CN only; Outlook hides the buttons for other forms.
    event.add("organizer", _address_property(meeting.organizer_email, meeting.organizer_name))
    event.add("x-mailhub-attendees", "here")
    if method == "REQUEST":
        event.add("status", "CONFIRMED")
    elif meeting.cancelled:
        event.add("status", "CANCELLED")
    event.add("transp", "OPAQUE")
    cal.add_component(event)
    for tzid in sorted(cal.get_missing_tzids()):  # a VTIMEZONE for every TZID used (RFC 5545 §3.6.5)
        cal.subcomponents.insert(0, _vtimezone(tzid))
    head, here, tail = cal.to_ical().partition(_ATTENDEES_HERE)
    assert here, "the attendees' place is missing from the calendar"
    return head, tail


def _attendee_line(attendee: AttendeeInfo, method: str) -> bytes:
    """One ATTENDEE content line, folded (RFC 5545 §3.1), ending in CRLF."""
    prop = _address_property(attendee.email, attendee.name)
    prop.params["ROLE"] = attendee.role
    prop.params["PARTSTAT"] = attendee.partstat
    if method == "REQUEST":  # RFC 5546 §3.2.2: a reply is wanted; a CANCEL wants none
        prop.params["RSVP"] = "TRUE"
    return Contentline.from_parts("ATTENDEE", prop.params, prop).to_ical() + b"\r\n"


@functools.lru_cache(maxsize=8)
def _vtimezone(tzid: str) -> Timezone:
    """The VTIMEZONE for ``tzid``, built once: icalendar walks every hour of its default
    range to build one (about 50 ms, measured by ``bench/invites.py``), and a meeting
    with 10,000 attendees needs the same one 10,000 times. Shared and read-only: callers
    only serialise it."""
    return Timezone.from_tzid(tzid)


def _check(meeting: MeetingInfo, attendees: Sequence[AttendeeInfo], method: str, now: datetime) -> str:
    method = method.upper()
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "REQUEST" and meeting.cancelled:
        raise ValueError("a cancelled meeting is sent with METHOD:CANCEL, not REQUEST")
    if any(m.utcoffset() is None for m in (now, meeting.start, meeting.end, meeting.created)):
        raise ValueError("every datetime of a meeting must be aware")
    if meeting.end <= meeting.start:
        raise ValueError("a meeting must end after it starts")
    if meeting.sequence < 0:
        raise ValueError("SEQUENCE is a non-negative integer (RFC 5545 §3.8.7.4)")
    if not _UID.fullmatch(meeting.uid.strip()):
        raise ValueError(f"UID must be 1-255 printable ASCII characters, got {meeting.uid!r}")
    check_address(meeting.organizer_email)
    for attendee in attendees:
        check_address(attendee.email)
        if attendee.partstat not in PARTSTATS or attendee.role not in ROLES:
            raise ValueError(f"bad PARTSTAT or ROLE for {attendee.email}: {attendee.partstat}, {attendee.role}")
    return method


def _address_property(address: str, name: str) -> vCalAddress:
    prop = vCalAddress("mailto:" + check_address(address))
    # RFC 5545 §3.1: a parameter value cannot hold DQUOTE; a name never needs one.
    if cn := one_line(name).replace('"', "'"):
        prop.params["CN"] = cn
    return prop


def parse_reply(data: bytes) -> ReplyInfo | None:
    """What an attendee answered, from the ``text/calendar`` body of an iMIP reply.

    Trusts nothing. Lenient like real clients: bytes that are not UTF-8 are replaced,
    broken values (icalendar's ``vBroken``) are skipped, ``mailto:`` is matched in any
    case, a missing or unreadable SEQUENCE is 0, a time with an unknown TZID or none
    (floating) is read as Vietnam time, an all-day date proposes nothing. Returns
    ``None`` unless there is one VCALENDAR with METHOD REPLY or COUNTER holding exactly
    one VEVENT with a UID and exactly one ATTENDEE whose value is a mailto address.
    The caller still checks that the address was invited and the SEQUENCE is current.
    """
    try:
        cal = Calendar.from_ical(data.decode("utf-8", errors="replace"))
    except ValueError:  # icalendar's parse errors (ICalParsingError is one) are ValueErrors
        return None
    if cal.name != "VCALENDAR":
        return None
    method = _text(cal.get("METHOD")).upper()
    events = [c for c in cal.subcomponents if c.name == "VEVENT"]
    if method not in ("REPLY", "COUNTER") or len(events) != 1:
        return None
    event = events[0]
    uid = one_line(_text(event.get("UID")), 255)
    attendees = event.get("ATTENDEE")
    if not isinstance(attendees, list):
        attendees = [] if attendees is None else [attendees]
    if not uid or len(attendees) != 1 or isinstance(attendees[0], vBroken):
        return None
    attendee = attendees[0]
    value = str(attendee).strip()
    if value[:7].lower() != "mailto:":
        return None
    try:
        email = check_address(value[7:]).lower()
    except ValueError:
        return None
    start = end = None
    if method == "COUNTER":
        start, end = _moment(event.get("DTSTART")), _moment(event.get("DTEND"))
        duration = event.get("DURATION")
        if end is None and start is not None and duration is not None and not isinstance(duration, vBroken):
            end = start + duration.dt if hasattr(duration.dt, "total_seconds") else None
    comments = event.get("COMMENT")
    comments = comments if isinstance(comments, list) else [] if comments is None else [comments]
    comment = "\n".join(t for t in (_text(c).strip() for c in comments) if t)
    comment = comment or str(attendee.params.get("X-RESPONSE-COMMENT", "")).strip()  # Google
    return ReplyInfo(method=method, uid=uid, sequence=_sequence(event.get("SEQUENCE")),
                     attendee_email=email,
                     partstat=one_line(str(attendee.params.get("PARTSTAT", "NEEDS-ACTION")), 40).upper(),
                     proposed_start=start, proposed_end=end,
                     comment="\n".join(lines(comment, 2000)))


def _text(value: Any) -> str:
    """A text property as ``str``, ``""`` when missing, broken or repeated."""
    if value is None or isinstance(value, (vBroken, list)):
        return ""
    return str(value)


def _sequence(value: Any) -> int:
    if value is None or isinstance(value, (vBroken, list)):
        return 0
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def _moment(value: Any) -> datetime | None:
    """An aware datetime from a DTSTART/DTEND, or ``None`` (missing, broken, a date)."""
    if value is None or isinstance(value, (vBroken, list)):
        return None
    moment = value.dt
    if not isinstance(moment, datetime):  # a date (all day), a duration or a period
        return None
    return moment if moment.utcoffset() is not None else moment.replace(tzinfo=VIETNAM)
