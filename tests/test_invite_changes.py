"""Updates and cancellations: what each attendee receives (parsed back with the email
package and icalendar), what happens to answers, SMS and reminders."""
from __future__ import annotations

import email
import email.policy
from datetime import datetime, timedelta, timezone

import pytest
from icalendar import Calendar
from sqlmodel import Session, select

from invites.changes import cancel_attendees, cancel_meeting, update_meeting
from invites.issue import issue
from invites.spec import changes_from_mapping
from invites.tracking import meeting_status
from mailhub.app import load_signer
from mailhub.errors import InputError
from mailhub.models import Meeting, MeetingAttendee, QueuedMessage, QueueRecipient, Reminder, SmsMessage
from tests.test_invite_issue import KEY, NOW, meeting, setup  # noqa: F401  (fixture)

START = datetime(2026, 12, 3, 1, 0, tzinfo=timezone.utc)  # 08:00 in Vietnam
VN = timezone(timedelta(hours=7))


def issued(config, engine):
    mid = meeting(engine, config)
    issue(engine, config, load_signer(config), KEY, mid, now=NOW)
    return mid


def new_emails(engine, since: set[str]) -> dict[str, email.message.EmailMessage]:
    """Messages queued after ``since`` (queue ids), by recipient, parsed back."""
    with Session(engine) as s:
        rows = [(m, r.rcpt) for m in s.exec(select(QueuedMessage)) if m.id not in since
                for r in s.exec(select(QueueRecipient).where(QueueRecipient.message_id == m.id))]
    return {rcpt: email.message_from_bytes(bytes(m.data), policy=email.policy.default) for m, rcpt in rows}


def queue_ids(engine) -> set[str]:
    with Session(engine) as s:
        return {m.id for m in s.exec(select(QueuedMessage))}


def sms_texts(engine, since: int = 0) -> list[tuple[str, str, str]]:
    with Session(engine) as s:
        return [(m.to, m.text, m.state) for m in s.exec(select(SmsMessage).where(SmsMessage.id > since)
                                                        .order_by(SmsMessage.id))]


def event_of(message) -> tuple[str, object]:
    """(the MIME method parameter, the VEVENT) of an iMIP message."""
    part = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
    calendar = Calendar.from_ical(part.get_payload(decode=True))
    assert str(calendar["METHOD"]) == part.get_param("method")  # RFC 6047 §2.4
    return part.get_param("method"), calendar.walk("VEVENT")[0]


def set_sms(engine, states: dict[str, str]) -> None:
    """What the SMS worker and the delivery reports do: the SMS and its attendee move on."""
    with Session(engine) as s:
        for m in s.exec(select(SmsMessage).where(SmsMessage.to.in_(list(states)))):
            m.state = states[m.to]
            person = s.get(MeetingAttendee, m.attendee_id)
            person.sms_state = m.state
            s.add_all([m, person])
        s.commit()


def answer(engine, address: str, partstat: str) -> None:
    with Session(engine) as s:
        person = s.exec(select(MeetingAttendee).where(MeetingAttendee.email == address)).one()
        person.partstat = partstat
        s.add(person)
        s.commit()


def test_a_new_time_is_sent_to_everyone_and_resets_the_answers(setup):
    config, engine = setup
    mid = issued(config, engine)
    answer(engine, "an@hcm.gov.vn", "ACCEPTED")
    before, last_sms = queue_ids(engine), len(sms_texts(engine))
    changes = changes_from_mapping({"start": "2026-12-04 09:00"}, "update.toml")
    updated = update_meeting(engine, config, load_signer(config), KEY, mid, changes, now=NOW + timedelta(hours=1))
    assert (updated.sequence, updated.changed, updated.answers_reset) == (1, ["start", "end"], True)
    assert (updated.report.emails, updated.report.sms) == (3, 2)
    sent = new_emails(engine, before)
    assert sorted(sent) == ["an@hcm.gov.vn", "bao@doitac.vn", "chau@q1.hcm.gov.vn"]
    for rcpt, message in sent.items():
        method, event = event_of(message)
        assert method == "REQUEST" and event["SEQUENCE"] == 1
        assert event.decoded("DTSTART") == datetime(2026, 12, 4, 2, 0, tzinfo=timezone.utc)
        assert event.decoded("DTEND") - event.decoded("DTSTART") == timedelta(minutes=90)  # length kept
        assert event["ATTENDEE"].params["PARTSTAT"] == "NEEDS-ACTION"
        assert str(message["Subject"]).startswith("Cập nhật giấy mời: ")
    with Session(engine) as s:
        stored = s.get(Meeting, mid)
        assert str(stored.uid) == str(event["UID"])  # the same meeting, a new version
        people = {p.email: p for p in s.exec(select(MeetingAttendee)) if p.email}
        pending = sorted(r.due_at for r in s.exec(select(Reminder).where(Reminder.done_at == None)))  # noqa: E711
    assert people["an@hcm.gov.vn"].partstat == "NEEDS-ACTION"  # asked again
    new_start = datetime(2026, 12, 4, 2, 0, tzinfo=timezone.utc)
    assert pending == [new_start - timedelta(hours=h) for h in (48, 24, 1)]
    # Each attendee's email state now follows the update's message.
    assert all(people[r].email_queue_id not in before for r in sent)
    texts = sms_texts(engine)[last_sms:]
    assert [t[1][:33] for t in texts] == ["Thay doi lich hop: Hop giao ban c"] * 2
    assert all("Luc 09:00 04/12/2026" in t[1] for t in texts)


def test_an_agenda_change_keeps_the_answers_and_sends_no_sms(setup):
    config, engine = setup
    mid = issued(config, engine)
    answer(engine, "an@hcm.gov.vn", "DECLINED")
    before, last_sms = queue_ids(engine), len(sms_texts(engine))
    updated = update_meeting(engine, config, load_signer(config), KEY, mid,
                             changes_from_mapping({"agenda": "1. Báo cáo\n2. Thảo luận"}, "u.toml"), now=NOW)
    assert (updated.sequence, updated.answers_reset, updated.report.sms) == (1, False, 0)
    assert len(sms_texts(engine)) == last_sms
    method, event = event_of(new_emails(engine, before)["an@hcm.gov.vn"])
    assert event["SEQUENCE"] == 1 and "2. Thảo luận" in str(event["DESCRIPTION"])
    assert {a.email: a.answer for a in meeting_status(engine, mid)}["an@hcm.gov.vn"] == "DECLINED"


def test_people_added_by_an_update_get_the_invitation_and_nobody_else_is_disturbed(setup):
    config, engine = setup
    from mailhub import directory

    directory.add_official(engine, config.domains, "dung@hcm.gov.vn", "Võ Dũng", "STTTT", ["official"])
    mid = issued(config, engine)
    before = queue_ids(engine)
    updated = update_meeting(engine, config, load_signer(config), KEY, mid,
                             changes_from_mapping({"add_attendees": ["dung@hcm.gov.vn", "an@hcm.gov.vn"]}, "u"),
                             now=NOW)
    assert (updated.sequence, updated.added, updated.report.emails) == (0, 1, 1)  # An is invited already
    assert list(new_emails(engine, before)) == ["dung@hcm.gov.vn"]
    with pytest.raises(InputError, match="add_attendees\\[0\\]: nobody@hcm.gov.vn is not an official"):
        update_meeting(engine, config, load_signer(config), KEY, mid,
                       changes_from_mapping({"add_attendees": ["nobody@hcm.gov.vn"]}, "u"), now=NOW)
    with pytest.raises(InputError, match="nothing changes"):
        update_meeting(engine, config, load_signer(config), KEY, mid,
                       changes_from_mapping({"location": "Phòng họp số 2"}, "u"), now=NOW)


def test_updating_a_draft_sends_nothing(setup):
    config, engine = setup
    mid = meeting(engine, config)
    updated = update_meeting(engine, config, load_signer(config), KEY, mid,
                             changes_from_mapping({"title": "Họp giao ban (dời)"}, "u"), now=NOW)
    assert (updated.sequence, updated.report.emails, queue_ids(engine)) == (0, 0, set())
    report = issue(engine, config, load_signer(config), KEY, mid, now=NOW)
    assert report.emails == 3  # the first invitation carries the new title, SEQUENCE 0
    subjects = {str(m["Subject"]) for m in new_emails(engine, set()).values()}
    assert subjects == {"Giấy mời: Họp giao ban (dời) — 03/12/2026 08:00"}


def test_cancelling_the_meeting(setup):
    config, engine = setup
    mid = issued(config, engine)
    set_sms(engine, {"+84912345678": "sent"})  # An's SMS went out; Bà Cúc's is still waiting
    before, last_sms = queue_ids(engine), len(sms_texts(engine))
    report = cancel_meeting(engine, config, load_signer(config), KEY, mid, now=NOW)
    assert (report.emails, report.sms) == (3, 1)
    for message in new_emails(engine, before).values():
        method, event = event_of(message)
        assert (method, str(event["STATUS"]), event["SEQUENCE"]) == ("CANCEL", "CANCELLED", 1)
        assert str(message["Subject"]).startswith("Hủy cuộc họp: ")
        assert message.get_body(("plain",)).get_content().count("/r/") == 0  # no RSVP link any more
    texts = sms_texts(engine)
    assert texts[last_sms:] == [("+84912345678", "Huy cuoc hop: Hop giao ban chuyen doi so quy IV, luc 08:00 "
                                                 "03/12/2026, tai Phong hop so 2.", "queued")]
    waiting = next(t for t in texts if t[0] == "+84903123456")
    assert waiting[2] == "failed"  # never sent: the invitation was cancelled first
    with Session(engine) as s:
        assert s.get(Meeting, mid).status == "cancelled"
        assert s.exec(select(Reminder).where(Reminder.done_at == None)).all() == []  # noqa: E711
    for again in (lambda: issue(engine, config, load_signer(config), KEY, mid, now=NOW),
                  lambda: cancel_meeting(engine, config, load_signer(config), KEY, mid, now=NOW),
                  lambda: update_meeting(engine, config, load_signer(config), KEY, mid,
                                         changes_from_mapping({"title": "X"}, "u"), now=NOW)):
        with pytest.raises(InputError, match="cancelled"):
            again()


def test_withdrawing_one_invitation(setup):
    config, engine = setup
    mid = issued(config, engine)
    set_sms(engine, {"+84912345678": "delivered", "+84903123456": "delivered"})
    before, last_sms = queue_ids(engine), len(sms_texts(engine))
    with pytest.raises(InputError) as problem:
        cancel_attendees(engine, config, load_signer(config), KEY, mid, ["ghost@hcm.gov.vn", "0912 000"], now=NOW)
    assert str(problem.value).splitlines()[0] == f"ghost@hcm.gov.vn: not invited to meeting {mid}"
    report = cancel_attendees(engine, config, load_signer(config), KEY, mid, ["AN@hcm.gov.vn"], now=NOW)
    assert (report.emails, report.sms) == (1, 1)
    sent = new_emails(engine, before)
    method, event = event_of(sent["an@hcm.gov.vn"])
    assert list(sent) == ["an@hcm.gov.vn"] and method == "CANCEL"
    assert "STATUS" not in event and event["SEQUENCE"] == 0  # RFC 5546 §3.2.5: this attendee only
    assert sms_texts(engine)[last_sms:][0][1].startswith("Huy giay moi hop: Hop giao ban")
    with Session(engine) as s:
        stored = s.get(Meeting, mid)
        removed = {p.email for p in s.exec(select(MeetingAttendee)) if p.removed}
    assert (stored.status, stored.sequence, removed) == ("sent", 0, {"an@hcm.gov.vn"})
    # Withdrawn people get nothing more: an update goes to the two others only.
    before = queue_ids(engine)
    update_meeting(engine, config, load_signer(config), KEY, mid,
                   changes_from_mapping({"location": "Hội trường A"}, "u"), now=NOW)
    assert sorted(new_emails(engine, before)) == ["bao@doitac.vn", "chau@q1.hcm.gov.vn"]


# ---- reminders ---------------------------------------------------------------

def runner(config, engine):
    from invites.reminders import ReminderRunner

    return ReminderRunner(engine, config, load_signer(config), KEY)


def test_reminders_when_due_to_everyone_and_to_those_who_have_not_answered(setup):
    config, engine = setup
    mid = issued(config, engine)
    answer(engine, "an@hcm.gov.vn", "ACCEPTED")
    before, last_sms = queue_ids(engine), len(sms_texts(engine))
    assert runner(config, engine).run_once(now=START - timedelta(hours=49)) == 0  # nothing due yet
    # 48 hours before: those who have not answered (not An), by email and SMS.
    assert runner(config, engine).run_once(now=START - timedelta(hours=47)) == 1
    sent = new_emails(engine, before)
    assert sorted(sent) == ["bao@doitac.vn", "chau@q1.hcm.gov.vn"]
    message = sent["bao@doitac.vn"]
    assert str(message["Subject"]).startswith("Đề nghị xác nhận tham dự: Họp giao ban")
    assert message.get_content_type() == "multipart/alternative"  # no calendar: it is in the calendar already
    assert "/r/" in message.get_body(("plain",)).get_content()
    assert [t[0] for t in sms_texts(engine)[last_sms:]] == ["+84903123456"]  # Bà Cúc: SMS only
    # The day before: everyone; a second run sends nothing more.
    before, last_sms = queue_ids(engine), len(sms_texts(engine))
    assert runner(config, engine).run_once(now=START - timedelta(hours=23)) == 1
    assert runner(config, engine).run_once(now=START - timedelta(hours=23)) == 0
    sent = new_emails(engine, before)
    assert sorted(sent) == ["an@hcm.gov.vn", "bao@doitac.vn", "chau@q1.hcm.gov.vn"]
    assert str(sent["an@hcm.gov.vn"]["Subject"]).startswith("Nhắc lịch họp: ")
    assert [t[1][:15] for t in sms_texts(engine)[last_sms:]] == ["Nhac lich hop: "] * 2
    # Reminders do not move what the secretary sees of the invitation itself.
    assert {a.email_state for a in meeting_status(engine, mid) if a.email} == {"queued"}
    # One hour before, but mailhub was down until after the start: not sent, done.
    before = queue_ids(engine)
    assert runner(config, engine).run_once(now=START + timedelta(minutes=5)) == 1
    assert new_emails(engine, before) == {}
    with Session(engine) as s:
        assert s.exec(select(Reminder).where(Reminder.done_at == None)).all() == []  # noqa: E711


def test_a_reminder_asked_for_now(setup):
    from invites.reminders import remind_now

    config, engine = setup
    mid = meeting(engine, config)
    with pytest.raises(InputError, match="draft"):
        remind_now(engine, mid, "all", now=NOW)
    issue(engine, config, load_signer(config), KEY, mid, now=NOW)
    remind_now(engine, mid, "unanswered", now=NOW)
    before = queue_ids(engine)
    assert runner(config, engine).run_once(now=NOW + timedelta(seconds=1)) == 1
    assert len(new_emails(engine, before)) == 3
    with pytest.raises(InputError, match="kind"):
        remind_now(engine, mid, "some", now=NOW)


def test_reminders_fire_after_a_restart(tmp_path, ca, provisioned_home, next_hop):
    """A reminder that fell due while mailhub was stopped is sent when it starts again."""
    import time

    from mailhub import directory
    from mailhub.db import make_engine
    from tests.support import make_config, provisioned_copy, start_hub

    home = provisioned_copy(provisioned_home, tmp_path / "home")
    config = make_config(home, ca, delivery={"mode": "relay", "relay_host": "127.0.0.1",
                                             "relay_port": next_hop.port, "relay_tls": "none"})
    engine = make_engine(config.database_url)
    try:
        directory.add_official(engine, config.domains, "vanthu@hcm.gov.vn", "Phạm Thu Hà", "STTTT",
                               ["official", "secretary"])
        from invites.spec import spec_from_mapping
        from invites.store import create_meeting

        start = datetime.now(timezone.utc) + timedelta(days=3)
        spec = spec_from_mapping({"title": "Họp nhắc lịch", "start": f"{start.astimezone(VN):%Y-%m-%d %H:%M}",
                                  "duration_minutes": 60, "unit": "STTTT", "secretary": "vanthu@hcm.gov.vn",
                                  "attendees": ["an@hcm.gov.vn"]}, "hop.toml")
        mid = create_meeting(engine, config.domains, spec).meeting_id
        hub = start_hub(config, ca)
        try:
            issue(engine, config, load_signer(config), KEY, mid)
            hub.hub.worker.wake()
            assert len(next_hop.handler.wait_for(1)) == 1  # the invitation
            time.sleep(1.5)  # more than one reminder round: nothing is due yet
        finally:
            hub.stop()
        assert len(next_hop.handler.messages) == 1
        with Session(engine) as s:  # mailhub stays down while the day-before reminder falls due
            due = s.exec(select(Reminder).where(Reminder.kind == "all")).all()
            first = min(due, key=lambda r: r.due_at)
            first.due_at = datetime.now(timezone.utc) - timedelta(minutes=10)
            s.add(first)
            s.commit()
            first_id = first.id
        hub = start_hub(config, ca)
        try:
            arrived = next_hop.handler.wait_for(2)
        finally:
            hub.stop()
        with Session(engine) as s:
            done = s.get(Reminder, first_id).done_at
    finally:
        engine.dispose()
    assert len(arrived) == 2
    reminder = email.message_from_bytes(arrived[1][2], policy=email.policy.default)
    assert arrived[1][1] == ["an@hcm.gov.vn"]
    assert str(reminder["Subject"]).startswith("Nhắc lịch họp: Họp nhắc lịch")
    assert done is not None
