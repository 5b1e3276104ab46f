"""Cleanup: make an accepted message complete before it is signed and queued.

Adds ``Message-ID`` and ``Date`` when the client left them out (RFC 5322 §3.6:
Date is required, Message-ID should be present) and prepends a ``Received``
trace header (RFC 5321 §4.4) built only from values we control or have
sanitised, so a client cannot use its EHLO name to inject header lines.
Trusts: ``data`` uses CRLF line endings only (checked before, see
:mod:`mailhub.smtp.hygiene`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from mailhub.smtp.hygiene import safe_helo

_HEADER_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class TraceInfo:
    """What the Received header says about the session."""

    helo: str | None
    client_ip: str
    hostname: str
    queue_id: str
    tls: str | None  # e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384"; None without TLS
    authenticated: bool


def split_message(data: bytes) -> tuple[bytes, bytes]:
    """Header section (ending in CRLF) and body. A message without a blank
    line is all header; one starting with a blank line has no header."""
    if data.startswith(b"\r\n"):
        return b"", data[2:]
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return (data if data.endswith(b"\r\n") else data + b"\r\n"), b""
    return head + b"\r\n", body


def header_names(head: bytes) -> set[str]:
    return {m.group(1).decode("ascii").lower() for m in _HEADER_NAME.finditer(head)}


def received_header(t: TraceInfo, when: datetime) -> bytes:
    # RFC 3848: ESMTPSA = ESMTP + STARTTLS/TLS + AUTH.
    protocol = "ESMTP" + ("S" if t.tls else "") + ("A" if t.authenticated else "")
    tls = f"\r\n\t(using {t.tls})" if t.tls else ""
    ip = t.client_ip if ":" not in t.client_ip else f"IPv6:{t.client_ip}"
    line = (f"Received: from {safe_helo(t.helo)} ([{ip}]){tls}\r\n"
            f"\tby {t.hostname} (mailhub) with {protocol} id {t.queue_id};\r\n"
            f"\t{format_datetime(when)}\r\n")
    return line.encode("ascii", "replace")


def cleanup(data: bytes, trace: TraceInfo, *, message_id_domain: str,
            when: datetime) -> tuple[bytes, str]:
    """Return the completed message and its Message-ID (the client's or ours).

    ``when`` must be timezone-aware (the Date header carries its offset).
    """
    head, body = split_message(data)
    names = header_names(head)
    added = b""
    if "date" not in names:
        added += f"Date: {format_datetime(when)}\r\n".encode("ascii")
    message_id = _existing_message_id(head) if "message-id" in names else None
    if message_id is None:
        message_id = f"<{trace.queue_id}@{message_id_domain}>"
        added += f"Message-ID: {message_id}\r\n".encode("ascii")
    return received_header(trace, when) + head + added + b"\r\n" + body, message_id


_MESSAGE_ID = re.compile(rb"^message-id[ \t]*:[ \t]*((?:.*\r\n)(?:[ \t].*\r\n)*)",
                         re.IGNORECASE | re.MULTILINE)


def _existing_message_id(head: bytes) -> str | None:
    m = _MESSAGE_ID.search(head)
    if not m:
        return None
    value = b" ".join(m.group(1).split()).decode("ascii", "replace")
    return value or None
