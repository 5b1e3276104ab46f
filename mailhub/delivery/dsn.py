"""Delivery status notifications: the bounce and the delay warning, as one pure function.

:func:`build_notice` turns a :class:`NoticeRequest` into a whole message
(RFC 6522 ``multipart/report; report-type=delivery-status``), ready to be
DKIM-signed and queued with the null sender:

1. ``text/plain; charset=utf-8`` (quoted-printable), Vietnamese then English,
   from ``templates/dsn/failed.txt.j2`` or ``templates/dsn/delayed.txt.j2``;
2. ``message/delivery-status`` (RFC 3464 §2): printable ASCII only;
3. ``text/rfc822-headers``: the original's header block, never its body.

Nothing here does I/O except reading the templates once per process. Values
from the queue and from remote servers are not trusted: every one is cleaned
before it goes into a header field or the text, so none can add a header line
or a MIME part. The output has CRLF line endings only and no line over 998
octets (RFC 5322 §2.1.1). It is deterministic: the same request, ``now`` and
``message_id`` give the same bytes.
"""
from __future__ import annotations

import binascii
import hashlib
import itertools
import re
from dataclasses import dataclass
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import SMTP, default
from email.utils import format_datetime

from mailhub.templating import environment

DISPLAY_NAME = "Hệ thống thư điện tử công vụ"
SUBJECTS = {
    "failed": "Thư không gửi được / Undelivered Mail Returned to Sender",
    "delayed": "Thư chưa gửi được, hệ thống đang thử lại / Delayed Mail (still being retried)",
}
TEMPLATES = {"failed": "dsn/failed.txt.j2", "delayed": "dsn/delayed.txt.j2"}
HEADER_CAP = 64 * 1024  # the most of the original's header block that is returned
MAX_LINE = 998  # RFC 5322 §2.1.1, without the CRLF
_FOLD_AT = 78  # RFC 5322 §2.1.1: lines SHOULD be at most 78 characters
_CHUNK = 900  # a word longer than this is cut, so that no folded line passes MAX_LINE
_MAX_ADDRESS = 254  # RFC 5321 §4.5.3.1.3 (256 with the angle brackets)
_MAX_HOST = 255  # RFC 5321 §4.5.3.1.2

# RFC 5321 §4.2: a reply starts with a three-digit code, then SP, "-" or the end.
_REPLY = re.compile(r"([2-5][0-9]{2})(?:[ -]|$)")
# RFC 3463 §2: class "." subject "." detail, 1-3 digits each; RFC 2034 §4: right
# after the basic code and its separator, and ending at a space or the end.
_ENHANCED = re.compile(r"([245])\.([0-9]{1,3})\.([0-9]{1,3})(?: |$)")
# What may stay in an address: RFC 5322 §3.2.3 atext, "." and "@" (our addresses are
# dot-atoms, see policies.addresses). Anything else, quotes and spaces too, becomes "?".
_NOT_ADDRESS = re.compile(r"[^A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.@]")
_NOT_HOST = re.compile(r"[^A-Za-z0-9.\-_:\[\]]")  # host names and address literals
_NEWLINE = re.compile(rb"\r\n|\r|\n")
_MESSAGE_ID = re.compile(r"[!-;=?-~]+@[!-;=?-~]+")  # printable ASCII except "<", ">"


@dataclass(frozen=True)
class RecipientNotice:
    address: str  # the failed/delayed recipient (envelope RCPT TO)
    action: str  # "failed" or "delayed" (RFC 3464 §2.3.3)
    reply: str  # the last answer: a remote SMTP reply, or our own text when none answered
    remote_mta: str = ""  # host name of the server that gave `reply`, "" when none answered
    last_attempt: datetime | None = None  # aware UTC


@dataclass(frozen=True)
class NoticeRequest:
    reporting_mta: str  # this relay's host name (server.hostname)
    from_address: str  # e.g. "MAILER-DAEMON@hochiminhcity.gov.vn"
    to_address: str  # the original envelope sender (the notice goes to them)
    queue_id: str  # our queue id of the original message
    arrival: datetime  # when the original was accepted (aware UTC)
    original: bytes  # the original message as queued (CRLF); only its header block is returned
    recipients: tuple[RecipientNotice, ...]  # all with the same action
    will_retry_until: datetime | None = None  # for "delayed": when we give up


def status_code(reply: str, permanent: bool) -> str:
    """The RFC 3463 enhanced status for ``reply``, of class 5 if ``permanent`` else 4.

    Trusts nothing in ``reply``. The enhanced code in it is used when it is well
    formed, follows a basic code of the same class (RFC 2034 §4) and agrees with
    ``permanent`` (``"550 5.1.1 ..."`` -> ``"5.1.1"``). Otherwise the answer is
    ``"5.0.0"`` / ``"4.0.0"`` (RFC 3463 §3.1, other or undefined status): that is
    also what the basic code alone says when its class agrees, and a reply whose
    class disagrees with ``permanent`` (a 4xx that timed out into a bounce) says
    nothing more precise about this outcome.
    """
    wanted = "5" if permanent else "4"
    text = reply.strip()
    basic = _REPLY.match(text)
    if basic:
        enhanced = _ENHANCED.match(text, basic.end())
        if enhanced and enhanced.group(1) == basic.group(1)[0] == wanted:
            return ".".join(str(int(n)) for n in enhanced.groups())
    return f"{wanted}.0.0"


def build_notice(req: NoticeRequest, *, now: datetime, message_id: str) -> bytes:
    """The whole notice message, CRLF line endings, ready to be DKIM-signed and queued
    with the null sender (``MAIL FROM:<>``, RFC 5321 §4.5.5) and ``BODY=8BITMIME``.

    Checks the request itself and raises ``ValueError`` for what only a caller's bug
    produces: no recipients, mixed or unknown actions, an empty ``to_address`` (a
    notice never goes to the null sender, RFC 3464 §2 / RFC 5321 §4.5.5), a naive
    datetime, or a ``message_id`` that is not ``[<]left@right[>]`` in printable ASCII.
    Everything else is cleaned, not refused, so that a strange reply or original never
    stops a notice: addresses keep only atext, ``.`` and ``@`` (others become ``?``),
    host names only host-name characters, other texts only printable characters.
    ``will_retry_until`` is used only for ``delayed`` (RFC 3464 §2.3.8).
    """
    action = _check(req, now)
    mid = message_id.strip().removeprefix("<").removesuffix(">")
    if not _MESSAGE_ID.fullmatch(mid):
        raise ValueError(f"message_id must be left@right in printable ASCII, got {message_id!r}")
    headers = _original_headers(req.original)
    eight_bit = re.search(rb"[\x80-\xff]", headers) is not None
    text = _newlines(_render(req, action, headers).encode("utf-8"))
    parts = [
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + binascii.b2a_qp(text, istext=True),
        b"Content-Type: message/delivery-status\r\n\r\n" + _delivery_status(req, action).encode("ascii"),
        b"Content-Type: text/rfc822-headers\r\n"
        + (b"Content-Transfer-Encoding: 8bit\r\n" if eight_bit else b"") + b"\r\n" + headers,
    ]
    boundary = _boundary(mid, parts)
    top = [
        SMTP.header_factory("From", f"{DISPLAY_NAME} <{_address(req.from_address)}>").fold(policy=SMTP),
        f"To: {_address(req.to_address)}\r\n",
        SMTP.header_factory("Subject", SUBJECTS[action]).fold(policy=SMTP),
        f"Date: {format_datetime(now)}\r\n",
        f"Message-ID: <{mid}>\r\n",
        "MIME-Version: 1.0\r\n",
        "Auto-Submitted: auto-replied\r\n",  # RFC 3834 §5: no auto-responder answers it
        f"Content-Type: multipart/report; report-type=delivery-status;\r\n boundary=\"{boundary}\"\r\n",
    ]
    if eight_bit:  # RFC 2045 §6.4: a multipart holding 8bit data is itself 8bit
        top.append("Content-Transfer-Encoding: 8bit\r\n")
    delimiter = b"--" + boundary.encode("ascii")
    # RFC 2046 §5.1.1: the CRLF before each delimiter line belongs to the delimiter.
    body = b"".join(delimiter + b"\r\n" + part + b"\r\n" for part in parts) + delimiter + b"--\r\n"
    return "".join(top).encode("ascii") + b"\r\n" + body


def _check(req: NoticeRequest, now: datetime) -> str:
    """The request's one action, after the checks listed in :func:`build_notice`."""
    actions = {r.action for r in req.recipients}
    if len(actions) != 1 or not actions <= set(SUBJECTS):
        raise ValueError(f"recipients need one action, failed or delayed; got {sorted(actions)}")
    if not req.to_address.strip():
        raise ValueError("no notice is sent to the null sender (RFC 5321 §4.5.5)")
    moments = [now, req.arrival, req.will_retry_until, *(r.last_attempt for r in req.recipients)]
    if any(m is not None and m.utcoffset() is None for m in moments):
        raise ValueError("every datetime of a notice must be aware")
    return actions.pop()


def _address(text: str) -> str:
    return _NOT_ADDRESS.sub("?", text.strip())[:_MAX_ADDRESS]


def _host(text: str) -> str:
    return _NOT_HOST.sub("?", text.strip())[:_MAX_HOST]


def _ascii(text: str) -> str:
    """``text`` as printable ASCII on one line: white space runs become one space,
    other characters outside 0x20-0x7E become ``?`` (RFC 3464 §2.1: the
    delivery-status body is 7bit text)."""
    return " ".join("".join(c if " " <= c <= "~" or c.isspace() else "?" for c in text).split())


def _printable(text: str) -> str:
    """``text`` on one line for the human part: Vietnamese stays, control and
    format characters (CR, LF, U+2028, surrogates, ...) become spaces."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def _field(name: str, value: str) -> str:
    """``name: value`` as a header field, folded at spaces (RFC 5322 §2.2.3) into
    lines of at most 78 characters where the words allow and never over
    :data:`MAX_LINE`: a longer word is cut into pieces. ``value`` must be printable
    ASCII already (see :func:`_ascii`)."""
    lines, line = [], f"{name}:"
    for word in value.split():
        for piece in (word[i:i + _CHUNK] for i in range(0, len(word), _CHUNK)):
            if line != f"{name}:" and len(line) + 1 + len(piece) > _FOLD_AT:
                lines.append(line)
                line = ""
            line += " " + piece
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def _delivery_status(req: NoticeRequest, action: str) -> str:
    """The ``message/delivery-status`` body: the per-message block, then one block per
    recipient, separated by blank lines, fields in RFC 3464 §2.2 / §2.3 order."""
    blocks = [_field("Reporting-MTA", f"dns; {_host(req.reporting_mta)}")
              + _field("Arrival-Date", format_datetime(req.arrival))
              + _field("X-Mailhub-Queue-ID", _ascii(req.queue_id))]  # RFC 3464 §3.4: extension
    for r in req.recipients:
        reply, remote = _ascii(r.reply), _host(r.remote_mta)
        block = [_field("Final-Recipient", f"rfc822; {_address(r.address)}"),
                 _field("Action", action),
                 _field("Status", status_code(r.reply, permanent=action == "failed"))]
        if remote:
            block.append(_field("Remote-MTA", f"dns; {remote}"))
        if reply:  # RFC 3464 §2.3.6: "smtp" for an SMTP reply, our own type for our own words
            kind = "smtp" if _REPLY.match(reply) else "X-mailhub"
            block.append(_field("Diagnostic-Code", f"{kind}; {reply}"))
        if r.last_attempt is not None:
            block.append(_field("Last-Attempt-Date", format_datetime(r.last_attempt)))
        if action == "delayed" and req.will_retry_until is not None:
            block.append(_field("Will-Retry-Until", format_datetime(req.will_retry_until)))
        blocks.append("".join(block))
    # No CRLF after the last block: the one before the next delimiter ends its last line.
    return "\r\n".join(blocks).removesuffix("\r\n")


def _newlines(data: bytes) -> bytes:
    return _NEWLINE.sub(b"\r\n", data)


def _original_headers(original: bytes) -> bytes:
    """The original's header block (RFC 5322 §2.1: up to the first empty line), each
    line ending in CRLF; all of the original when it has no empty line.

    Trusts nothing: bare CR or LF become CRLF, NUL becomes ``?`` (not allowed in 8bit
    data, RFC 2045 §2.8), at most :data:`HEADER_CAP` octets are read (cut after the
    last whole line), and a line over :data:`MAX_LINE` octets is cut into pieces,
    each after the first starting with a space, like a folded header line.
    """
    head = _newlines(original[:HEADER_CAP])
    if head.startswith(b"\r\n"):
        return b""
    end = head.find(b"\r\n\r\n")
    if end != -1:
        head = head[:end + 2]
    elif len(original) > HEADER_CAP and b"\r\n" in head:
        head = head[:head.rindex(b"\r\n") + 2]
    lines = []
    for line in head.replace(b"\0", b"?").removesuffix(b"\r\n").split(b"\r\n"):
        while len(line) > MAX_LINE:
            lines.append(line[:MAX_LINE])
            line = b" " + line[MAX_LINE:]
        lines.append(line)
    return b"\r\n".join(lines) + b"\r\n"


def _render(req: NoticeRequest, action: str, headers: bytes) -> str:
    """The human part, from the action's template; every value is cleaned first."""
    return environment().get_template(TEMPLATES[action]).render(
        reporting_mta=_host(req.reporting_mta),
        queue_id=_printable(req.queue_id),
        arrival=req.arrival,
        will_retry_until=req.will_retry_until if action == "delayed" else None,
        subject=_original_subject(headers),
        recipients=[dict(address=_printable(r.address), reply=_printable(r.reply),
                         remote_mta=_printable(r.remote_mta), last_attempt=r.last_attempt)
                    for r in req.recipients],
    )


def _original_subject(headers: bytes) -> str:
    """The original's decoded Subject, cleaned and cut to 200 characters; ``""`` if none.

    Only a help for the reader, so a header the email package cannot decode gives
    ``""``: its parser has raised on malformed input in the past, and a notice must
    never fail because of what the sender wrote.
    """
    try:
        subject = BytesHeaderParser(policy=default).parsebytes(headers).get("Subject", "")
        return _printable(str(subject))[:200]
    except Exception:  # noqa: BLE001 - see docstring
        return ""


def _boundary(seed: str, parts: list[bytes]) -> str:
    """A multipart boundary (RFC 2046 §5.1.1) found in none of ``parts``.

    Derived from ``seed`` so that the output is deterministic; "=_" cannot occur in
    quoted-printable text (RFC 2045 §6.7), and the other parts are searched.
    """
    for n in itertools.count():
        boundary = "=_mailhub_" + hashlib.sha256(f"{seed}/{n}".encode()).hexdigest()[:32]
        if not any(boundary.encode("ascii") in part for part in parts):
            return boundary
    raise AssertionError("unreachable")
