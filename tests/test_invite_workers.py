"""A large send's emails made by worker processes (invites.workers) are the emails the
sending process would make: same bytes, signed with the domain's key, one per attendee."""
from __future__ import annotations

import email
import email.policy
import threading

import pytest
from icalendar import Calendar
from sqlmodel import Session, select

from invites import workers
from invites.issue import issue
from invites.letters import REQUEST, EmailFactory, LetterJob
from invites.outbound import Outbound
from invites.rsvp import rsvp_url
from invites.spec import spec_from_mapping
from invites.store import create_meeting
from mailhub import directory
from mailhub.app import load_signer
from mailhub.config import config_from_mapping
from mailhub.db import make_engine
from mailhub.dkimkeys import dns_records, ensure_domain_keys
from mailhub.models import Meeting, MeetingAttendee, QueuedMessage, QueueRecipient, UsageEvent
from mailhub.schema import upgrade
from tests.dkimcheck import dkimpy_verify
from tests.test_invite_issue import KEY, NOW

PEOPLE = workers.PARALLEL_FROM + 20


@pytest.fixture
def large(tmp_path):
    """A directory with a unit of PEOPLE officials and a meeting inviting the unit."""
    config = config_from_mapping({"server": {"home": str(tmp_path)},
                                  "domains": {"official": ["hcm.gov.vn"], "subdomains_of": ["hcm.gov.vn"]},
                                  "invites": {"public_url": "https://mail.hcm.gov.vn", "build_processes": 2}},
                                 "t.toml")
    upgrade(config.database_url)
    ensure_domain_keys(config.dkim_keys_dir, "hcm.gov.vn", config.dkim.selector, False)
    engine = make_engine(config.database_url)
    directory.add_unit(engine, "VP", "Văn phòng", kind="department")
    directory.add_unit(engine, "Q3", "Ủy ban nhân dân Quận 3")
    directory.add_official(engine, config.domains, "vanthu@hcm.gov.vn", "Phạm Thu Hà", "VP",
                           ["official", "secretary"])
    for i in range(PEOPLE):
        directory.add_official(engine, config.domains, f"cb{i:03d}@q3.hcm.gov.vn", f"Cán bộ Số {i}", "Q3",
                               ["official"], f"091{i:07d}")
    spec = spec_from_mapping({"title": "Hội nghị toàn quận", "start": "2026-12-03 08:00", "duration_minutes": 120,
                              "unit": "VP", "location": "Hội trường", "secretary": "vanthu@hcm.gov.vn",
                              "units": ["Q3"]}, "hop.toml")
    mid = create_meeting(engine, config.domains, spec).meeting_id
    yield config, engine, mid
    engine.dispose()


def unsigned_factory(config, engine, mid) -> EmailFactory:
    with Session(engine) as s:
        meeting = s.get(Meeting, mid)
    outbound = Outbound(engine, config, load_signer(config), KEY, meeting, NOW)
    return EmailFactory(config, outbound.sender, outbound.info, None, NOW, REQUEST)


def test_a_large_send_is_made_by_workers_exactly_as_the_sender_would(large):
    config, engine, mid = large
    report = issue(engine, config, load_signer(config), KEY, mid, now=NOW)
    assert (report.emails, report.sms, report.refused) == (PEOPLE, PEOPLE, [])
    with Session(engine) as s:
        messages = {m.id: m for m in s.exec(select(QueuedMessage))}
        rcpts = {r.message_id: r.rcpt for r in s.exec(select(QueueRecipient))}
        people = {p.email: p for p in s.exec(select(MeetingAttendee))}
    assert sorted(rcpts.values()) == sorted(people)
    alone = unsigned_factory(config, engine, mid)
    records = dns_records(config.dkim_keys_dir, "hcm.gov.vn", config.dkim.selector, False)
    for n, (queue_id, message) in enumerate(sorted(messages.items())):
        person, data = people[rcpts[queue_id]], bytes(message.data)
        job = LetterJob(queue_id, message.message_id_header.strip("<>"), person.email, person.name,
                        person.partstat, rsvp_url(config.invites.public_url, KEY, person.id))
        unsigned = alone.make(job).data
        assert data.startswith(b"DKIM-Signature:") and data.endswith(unsigned)  # the same message, signed
        if n % 20 == 0:
            assert dkimpy_verify(data, records)
            parsed = email.message_from_bytes(data, policy=email.policy.default)
            cal = next(p for p in parsed.walk() if p.get_content_type() == "text/calendar")
            attendees = Calendar.from_ical(cal.get_payload(decode=True)).walk("VEVENT")[0].get("ATTENDEE")
            assert str(attendees).lower() == f"mailto:{person.email}"
            assert parsed["To"].addresses[0].addr_spec == person.email
            assert job.rsvp_url in parsed.get_body(("plain",)).get_content()


def test_from_a_process_with_threads_the_workers_load_the_keys_themselves(large):
    """``mailhub serve`` (the API, the reminders) has threads: its workers come from a fork
    server and get the send's factory pickled, without keys; they load them from the config."""
    config, engine, mid = large
    with Session(engine) as s:
        meeting = s.get(Meeting, mid)
        people = s.exec(select(MeetingAttendee).order_by(MeetingAttendee.id)).all()
    signer = load_signer(config)
    outbound = Outbound(engine, config, signer, KEY, meeting, NOW)
    factory = EmailFactory(config, outbound.sender, outbound.info, "hcm.gov.vn", NOW, REQUEST, signer)
    jobs = [LetterJob(f"q{p.id:05d}", f"q{p.id:05d}@hcm.gov.vn", p.email, p.name, p.partstat,
                      rsvp_url(config.invites.public_url, KEY, p.id)) for p in people]
    other = threading.Event()
    thread = threading.Thread(target=other.wait)
    thread.start()
    try:
        assert workers._context().get_start_method() == "forkserver"
        made = list(workers.outcomes(factory, jobs, 2))
    finally:
        other.set()
        thread.join()
    records = dns_records(config.dkim_keys_dir, "hcm.gov.vn", config.dkim.selector, False)
    alone = unsigned_factory(config, engine, mid)
    assert len(made) == len(jobs)
    for n, (job, outcome) in enumerate(zip(jobs, made)):
        assert outcome.data.endswith(alone.make(job).data)
        if n % 20 == 0:
            assert dkimpy_verify(outcome.data, records)


def test_a_refusal_in_a_worker_is_reported_and_written_to_the_ledger(large):
    """A title marked MẬT is refused by the classification rule for every attendee,
    in the workers as in the sender."""
    config, engine, mid = large
    with Session(engine) as s:
        meeting = s.get(Meeting, mid)
        meeting.title = "MẬT - Hội nghị toàn quận"
        s.add(meeting)
        s.commit()
    report = issue(engine, config, load_signer(config), KEY, mid, now=NOW)
    assert report.emails == 0 and len(report.refused) == PEOPLE and report.sms == PEOPLE
    assert {reply[:3] for _, reply in report.refused} == {"550"}
    with Session(engine) as s:
        assert s.exec(select(QueuedMessage)).all() == []
        states = {p.email_state for p in s.exec(select(MeetingAttendee))}
        refused = s.exec(select(UsageEvent).where(UsageEvent.kind == "refused")).all()
    assert states == {"failed"}
    assert len(refused) == PEOPLE and {e.official_email for e in refused} == {"vanthu@hcm.gov.vn"}


def test_the_rules_read_every_kind_of_invitation_email_as_the_parser_does(large):
    from email.parser import BytesHeaderParser
    from email.policy import compat32

    from invites.letters import CANCEL, Letter
    from policies.headerfields import parse_header_section

    config, engine, mid = large
    factory = unsigned_factory(config, engine, mid)
    job = LetterJob("q1", "q1@hcm.gov.vn", "cb001@q3.hcm.gov.vn", "Nguyễn Thị Minh Khai Trần Hưng Đạo Lê Lợi",
                    "NEEDS-ACTION", "https://mail.hcm.gov.vn/r/abc")
    for letter in (REQUEST, CANCEL, Letter("reminder"), Letter("unanswered")):
        factory.letter = letter
        data = factory.make(job).data
        head = data.split(b"\r\n\r\n", 1)[0]
        expected = BytesHeaderParser(policy=compat32).parsebytes(head + b"\r\n")
        assert parse_header_section(head).items() == expected.items()
