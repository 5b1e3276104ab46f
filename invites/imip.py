"""One invitation email to one attendee (iMIP, RFC 6047), as a pure function.

:func:`build_invitation` writes the whole message, ready to go through the
pipeline (cleanup, DKIM, queue) as the secretary::

    multipart/mixed
      multipart/alternative
        text/plain; charset=utf-8                         quoted-printable
        text/html; charset=utf-8                          quoted-printable
        text/calendar; method=REQUEST; charset=UTF-8      base64, inline, no Content-Disposition
      application/ics; name="invite.ics"                  base64, attachment

That layout and METHOD equal to the MIME ``method`` are what Outlook, Gmail and
Thunderbird need to show Accept/Decline (FIELD-NOTES). The calendar lists only
this attendee: the email is personal, it carries a personal RSVP link.

Like :mod:`mailhub.delivery.dsn`: CRLF line endings only, header lines printable
ASCII (RFC 2047 encoded words for Vietnamese) and at most 78 characters, bodies
7bit-safe, no line over 998 octets, deterministic for the same arguments. Names
and titles are cleaned to one line before they reach a header or a template, so
none can add a header line or a MIME part.
"""
from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import itertools
import re
from datetime import datetime
from email.utils import format_datetime

from markupsafe import escape

from invites.ical import (
    VIETNAM,
    AttendeeInfo,
    MeetingInfo,
    build_calendar,
    check_address,
    lines,
    one_line,
)
from mailhub.templating import environment

LOCALES = ("vi", "en")
TEMPLATES = {"REQUEST": "invites/request", "CANCEL": "invites/cancel"}
# Subject prefixes by (locale, kind); RFC 5546 §2.1.4: an update is a REQUEST with SEQUENCE > 0.
SUBJECTS = {
    ("vi", "invite"): "Giấy mời", ("vi", "update"): "Cập nhật giấy mời",
    ("vi", "cancel"): "Hủy cuộc họp", ("vi", "uninvite"): "Hủy giấy mời",
    ("en", "invite"): "Invitation", ("en", "update"): "Updated invitation",
    ("en", "cancel"): "Meeting cancelled", ("en", "uninvite"): "Invitation withdrawn",
    ("vi", "reminder"): "Nhắc lịch họp", ("vi", "unanswered"): "Đề nghị xác nhận tham dự",
    ("en", "reminder"): "Meeting reminder", ("en", "unanswered"): "Please confirm your attendance",
}
REMINDER_KINDS = ("reminder", "unanswered")
_FOLD_AT = 78  # RFC 5322 §2.1.1: lines SHOULD be at most 78 characters
# 42 octets make 56 base64 characters, a 68-character encoded word (RFC 2047 §2: at most 75),
# so that "Subject: " or "From: " and one word stay within _FOLD_AT.
_WORD_BYTES = 42
_NEWLINE = re.compile(rb"\r\n|\r|\n")
_MESSAGE_ID = re.compile(r"[!-;=?-~]+@[!-;=?-~]+")  # printable ASCII except "<", ">"
_URL = re.compile(r"https?://[!-~]+")  # no space or control character can hide in it


def build_invitation(meeting: MeetingInfo, attendee: AttendeeInfo, method: str, *,
                     rsvp_url: str | None, now: datetime, message_id: str, locale: str = "vi") -> bytes:
    """The whole message for ``attendee``, CRLF line endings, 7bit.

    ``method`` is ``REQUEST`` or ``CANCEL`` with the meaning of
    :func:`invites.ical.build_calendar` (a CANCEL without ``meeting.cancelled``
    withdraws this attendee's invitation only). ``locale`` ``"vi"`` puts Vietnamese
    first, ``"en"`` English first, in the body and in the Subject prefix.
    Raises ``ValueError`` for a caller's bug: what ``build_calendar`` refuses, an
    unknown locale, a ``message_id`` that is not ``[<]left@right[>]`` in printable
    ASCII, or an ``rsvp_url`` that is not one http(s) URL in printable ASCII.
    """
    method = method.upper()
    calendar = build_calendar(meeting, [attendee], method, now=now)  # checks meeting and attendee
    mid = _checked(meeting, attendee, locale, message_id, rsvp_url)
    kind = _kind(meeting, method)
    text, html = _personal(_rendered(meeting, kind, locale, TEMPLATES[method], bool(one_line(attendee.name)),
                                     _wants_link(kind, rsvp_url)), attendee, rsvp_url)
    calendar_b64 = _base64(calendar)
    alternative = [
        b"Content-Type: text/plain; charset=utf-8\r\n" + _qp(text),
        b"Content-Type: text/html; charset=utf-8\r\n" + _qp(html),
        # FIELD-NOTES / RFC 6047 §2.4: METHOD equals the MIME parameter; inline, no disposition.
        f"Content-Type: text/calendar; method={method}; charset=UTF-8\r\n".encode("ascii")
        + b"Content-Transfer-Encoding: base64\r\n\r\n" + calendar_b64,
    ]
    inner_boundary = _boundary(mid + "/alternative", alternative)
    attachment = (b'Content-Type: application/ics; name="invite.ics"\r\n'
                  b'Content-Disposition: attachment; filename="invite.ics"\r\n'
                  b"Content-Transfer-Encoding: base64\r\n\r\n" + calendar_b64)
    inner = (f'Content-Type: multipart/alternative;\r\n boundary="{inner_boundary}"\r\n\r\n'.encode("ascii")
             + _multipart(inner_boundary, alternative))
    outer = [inner, attachment]
    outer_boundary = _boundary(mid + "/mixed", outer)
    return _message(meeting, attendee, kind, locale, now, mid, "mixed", outer_boundary, outer)


def build_reminder(meeting: MeetingInfo, attendee: AttendeeInfo, kind: str, *, rsvp_url: str | None,
                   now: datetime, message_id: str, locale: str = "vi") -> bytes:
    """A reminder of the meeting to ``attendee``: ``kind`` ``"reminder"`` (to everyone
    invited) or ``"unanswered"`` (asks for an answer). Plain ``multipart/alternative``
    (text and HTML) without a calendar: the invitation already put the meeting in the
    calendar, and a second REQUEST would make some clients ask again."""
    if kind not in REMINDER_KINDS:
        raise ValueError(f"kind must be one of {REMINDER_KINDS}, got {kind!r}")
    mid = _checked(meeting, attendee, locale, message_id, rsvp_url)
    text, html = _personal(_rendered(meeting, kind, locale, "invites/reminder", bool(one_line(attendee.name)),
                                     _wants_link(kind, rsvp_url)), attendee, rsvp_url)
    parts = [b"Content-Type: text/plain; charset=utf-8\r\n" + _qp(text),
             b"Content-Type: text/html; charset=utf-8\r\n" + _qp(html)]
    return _message(meeting, attendee, kind, locale, now, mid, "alternative", _boundary(mid + "/alt", parts), parts)


def _checked(meeting: MeetingInfo, attendee: AttendeeInfo, locale: str, message_id: str,
             rsvp_url: str | None) -> str:
    """The Message-ID without brackets, after the checks every message shares."""
    check_address(meeting.organizer_email)
    check_address(attendee.email)
    if locale not in LOCALES:
        raise ValueError(f"locale must be one of {LOCALES}, got {locale!r}")
    mid = message_id.strip().removeprefix("<").removesuffix(">")
    if not _MESSAGE_ID.fullmatch(mid):
        raise ValueError(f"message_id must be left@right in printable ASCII, got {message_id!r}")
    if rsvp_url is not None and not _URL.fullmatch(rsvp_url):
        raise ValueError(f"rsvp_url must be one http(s) URL in printable ASCII, got {rsvp_url!r}")
    return mid


def _message(meeting: MeetingInfo, attendee: AttendeeInfo, kind: str, locale: str, now: datetime, mid: str,
             subtype: str, boundary: str, parts: list[bytes]) -> bytes:
    sender, subject, date = _shared_fields(meeting, kind, locale, now)
    top = [
        sender,
        _mailbox("To", attendee.email, attendee.name),
        subject,
        date,
        f"Message-ID: <{mid}>\r\n",
        "MIME-Version: 1.0\r\n",
        f'Content-Type: multipart/{subtype};\r\n boundary="{boundary}"\r\n',
    ]
    return "".join(top).encode("ascii") + b"\r\n" + _multipart(boundary, parts)


@functools.lru_cache(maxsize=32)
def _shared_fields(meeting: MeetingInfo, kind: str, locale: str, now: datetime) -> tuple[str, str, str]:
    """The From, Subject and Date fields, the same in every attendee's copy."""
    subject = (f"{SUBJECTS[locale, kind]}: {one_line(meeting.title, 500)} — "
               f"{meeting.start.astimezone(VIETNAM):%d/%m/%Y %H:%M}")
    return (_mailbox("From", meeting.organizer_email, meeting.organizer_name), _unstructured("Subject", subject),
            f"Date: {format_datetime(now)}\r\n")


def _kind(meeting: MeetingInfo, method: str) -> str:
    if method == "CANCEL":
        return "cancel" if meeting.cancelled else "uninvite"
    return "update" if meeting.sequence > 0 else "invite"


# What differs between two attendees' copies of one message: the templates are rendered
# once per meeting with these in the attendee's name and RSVP link, and each copy gets
# its own by replacement (a meeting of 10,000 is not rendered 10,000 times). NUL cannot
# come out of one_line() or _URL, so these occur only where the templates put them.
_NAME = "\x00name\x00"
_LINK = "\x00link\x00"


def _wants_link(kind: str, rsvp_url: str | None) -> bool:
    return rsvp_url is not None and kind not in ("cancel", "uninvite")


@functools.lru_cache(maxsize=32)
def _rendered(meeting: MeetingInfo, kind: str, locale: str, template: str, named: bool,
              linked: bool) -> tuple[str, str]:
    """``template``'s text and HTML for ``meeting``, with :data:`_NAME` and
    :data:`_LINK` (when ``named`` and ``linked``) where the attendee's name and link go."""
    values = _values(meeting, _NAME if named else "", kind, _LINK if linked else None, locale)
    return (environment().get_template(template + ".txt.j2").render(values),
            environment().get_template(template + ".html.j2").render(values))


def _personal(rendered: tuple[str, str], attendee: AttendeeInfo, rsvp_url: str | None) -> tuple[str, str]:
    """One attendee's text and HTML from :func:`_rendered`'s, escaped as the templates
    escape (autoescape for HTML, nothing for text)."""
    text, html = rendered
    name, link = one_line(attendee.name), rsvp_url or ""
    return (text.replace(_NAME, name).replace(_LINK, link),
            html.replace(_NAME, str(escape(name))).replace(_LINK, str(escape(link))))


def _values(meeting: MeetingInfo, attendee_name: str, kind: str, rsvp_url: str | None,
            locale: str) -> dict[str, object]:
    """The templates' variables, each text cleaned to one line (the agenda to lines);
    ``attendee_name`` is cleaned already, or a placeholder."""
    return {
        "locale": locale, "kind": kind, "title": one_line(meeting.title, 500), "start": meeting.start, "end": meeting.end,
        "location": one_line(meeting.location, 500), "chair": one_line(meeting.chair_name),
        "unit": one_line(meeting.unit_name), "organizer": one_line(meeting.organizer_name),
        "organizer_email": check_address(meeting.organizer_email), "attendee": attendee_name,
        "agenda": lines(meeting.agenda), "rsvp_url": rsvp_url if _wants_link(kind, rsvp_url) else None,
    }


def _unstructured(name: str, value: str) -> str:
    """``name: value`` for a one-line ``value``: as it is when short ASCII that
    cannot be read as an encoded word, else as RFC 2047 encoded words, one per line.

    Encoded here, not by the email package: Python 3.11's folder puts the space
    between two words into the folding white space between two encoded words, where
    RFC 2047 §6.2 says it is dropped ("tin và" came back as "tinvà"). Here every
    space is inside an encoded word."""
    if value.isascii() and "=?" not in value and len(name) + 2 + len(value) <= _FOLD_AT:
        return f"{name}: {value}\r\n"
    return f"{name}: " + "\r\n ".join(_encoded_words(value)) + "\r\n"


def _mailbox(name: str, address: str, display_name: str) -> str:
    """``name: "display name" <address>`` (RFC 5322 §3.4). A short ASCII name is a quoted
    string with ``\\`` and ``"`` escaped, any other an encoded-word phrase (RFC 2047 §5),
    so no comma, quote or angle bracket in a name can start a second address."""
    address, display = check_address(address), one_line(display_name)
    if not display:
        return f"{name}: {address}\r\n"
    if display.isascii() and "=?" not in display and len(name) + len(display) < 40:
        words = ['"' + display.replace("\\", "\\\\").replace('"', '\\"') + '"']
    else:
        words = _encoded_words(display)
    lines = [f"{name}: {words[0]}", *(" " + w for w in words[1:])]
    if len(lines[-1]) + len(address) + 3 <= _FOLD_AT:
        lines[-1] += f" <{address}>"
    else:
        lines.append(f" <{address}>")
    return "\r\n".join(lines) + "\r\n"


def _encoded_words(text: str) -> list[str]:
    """``text`` as ``=?utf-8?b?...?=`` words of at most :data:`_WORD_BYTES` octets each,
    never splitting a character (RFC 2047 §5)."""
    chunks, chunk = [], b""
    for char in text:
        data = char.encode("utf-8")
        if len(chunk) + len(data) > _WORD_BYTES:
            chunks.append(chunk)
            chunk = b""
        chunk += data
    chunks.append(chunk)
    return ["=?utf-8?b?" + base64.b64encode(c).decode("ascii") + "?=" for c in chunks]


def _qp(text: str) -> bytes:
    """Transfer-encoding header, blank line and the quoted-printable body of ``text``
    (RFC 2045 §6.7: lines of at most 76 characters, soft breaks, CRLF line breaks)."""
    data = _NEWLINE.sub(b"\r\n", text.encode("utf-8"))
    body = binascii.b2a_qp(data, istext=True).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + body


def _base64(data: bytes) -> bytes:
    """``data`` in base64, lines of 76 characters ending in CRLF (RFC 2045 §6.8)."""
    text = base64.b64encode(data)
    return b"\r\n".join(text[i:i + 76] for i in range(0, len(text), 76)) + b"\r\n"


def _multipart(boundary: str, parts: list[bytes]) -> bytes:
    delimiter = b"--" + boundary.encode("ascii")
    # RFC 2046 §5.1.1: the CRLF before each delimiter line belongs to the delimiter.
    body = b"".join(delimiter + b"\r\n" + part + b"\r\n" for part in parts)
    return body + delimiter + b"--\r\n"


def _boundary(seed: str, parts: list[bytes]) -> str:
    """A multipart boundary (RFC 2046 §5.1.1) found in none of ``parts``, derived from
    ``seed`` so that the output is deterministic. "=_" occurs neither in
    quoted-printable (RFC 2045 §6.7) nor in base64; the parts are searched anyway."""
    for n in itertools.count():
        boundary = "=_mailhub_" + hashlib.sha256(f"{seed}/{n}".encode()).hexdigest()[:32]
        if not any(boundary.encode("ascii") in part for part in parts):
            return boundary
    raise AssertionError("unreachable")
