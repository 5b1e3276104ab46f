"""Checks for ``bench/invites.py``: what reached the sinks is what was meant to.

- :func:`check_samples`: the messages ``bench/sink.py --sample-every`` kept, each with a
  DKIM signature that dkimpy verifies against the zone lines ``mailhub dkim dns`` prints,
  a ``text/calendar; method=REQUEST`` part (RFC 6047 §2.4), an ``invite.ics`` attachment,
  and one ATTENDEE: the recipient in To (the invitation is personal);
- :func:`check_sms_outbox`: the SMS outbox has one line per number, each with an RSVP link;
- :func:`sms_states`: the SMS queue's rows by state.

They report, they do not raise: a failed check is a figure in the benchmark's report.
"""
from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path

from icalendar import Calendar


def check_samples(folder: Path, config, domain: str) -> dict:
    from mailhub.dkimkeys import dns_records
    from tests.dkimcheck import dkimpy_verify

    records = dns_records(config.dkim_keys_dir, domain, config.dkim.selector, config.dkim.ed25519)
    files = sorted(folder.glob("*.eml")) if folder.exists() else []
    failed: list[str] = []
    for path in files:
        data = path.read_bytes()
        problem = None if dkimpy_verify(data, records) else "DKIM"
        message = email.message_from_bytes(data, policy=email.policy.default)
        parts = list(message.walk())
        calendar = [p for p in parts if p.get_content_type() == "text/calendar"
                    and p.get_param("method") == "REQUEST" and p.get_content_disposition() is None]
        attached = [p for p in parts if p.get_filename() == "invite.ics"
                    and p.get_content_disposition() == "attachment"]
        if not calendar or not attached:
            problem = problem or "no text/calendar part or invite.ics attachment"
        else:
            events = Calendar.from_ical(calendar[0].get_payload(decode=True)).walk("VEVENT")
            attendee = events[0].get("ATTENDEE") if len(events) == 1 else None
            to = message["To"].addresses[0].addr_spec.lower()
            if isinstance(attendee, list) or str(attendee).lower() != f"mailto:{to}":
                problem = problem or f"ATTENDEE {attendee!r} is not the recipient {to}"
        if problem:
            failed.append(f"{path.name}: {problem}")
    return {"samples": len(files), "samples_failed": failed,
            "ok_samples": bool(files) and not failed}


def check_sms_outbox(folder: Path, public_url: str) -> dict:
    path = folder / "sms.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    records = [json.loads(line) for line in lines]
    return {"sms_lines": len(records), "sms_numbers": len({r["to"] for r in records}),
            "sms_without_link": sum(f"{public_url}/r/" not in r["text"] for r in records)}


def sms_states(engine) -> dict[str, int]:
    from sqlalchemy import func, select

    from mailhub.models import SmsMessage

    t = SmsMessage.__table__
    with engine.connect() as conn:
        return {s: n for s, n in conn.execute(select(t.c.state, func.count()).group_by(t.c.state))}
