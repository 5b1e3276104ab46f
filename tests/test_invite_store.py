"""Creating a meeting: attendees from the directory (one by one and whole units), guests,
duplicates, and every problem reported before anything is written."""
from __future__ import annotations

import pytest
from sqlmodel import Session, select

from invites.spec import spec_from_mapping
from invites.store import create_meeting
from mailhub import directory
from mailhub.config import DomainsConfig
from mailhub.db import make_engine
from mailhub.errors import InputError
from mailhub.models import Meeting, MeetingAttendee
from mailhub.schema import upgrade

DOMAINS = DomainsConfig(official=("hcm.gov.vn",), subdomains_of=("hcm.gov.vn",))


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('invites') / 'mailhub.db'}"
    upgrade(url)
    eng = make_engine(url)
    directory.add_unit(eng, "HCM", "Thành phố Hồ Chí Minh", kind="city")
    directory.add_unit(eng, "STTTT", "Sở Thông tin và Truyền thông", parent="HCM", kind="department")
    directory.add_unit(eng, "Q1", "Ủy ban nhân dân Quận 1", parent="HCM", kind="district")
    directory.add_unit(eng, "EMPTY", "Đơn vị trống", parent="HCM")
    directory.add_official(eng, DOMAINS, "vanthu@hcm.gov.vn", "Phạm Thu Hà", "STTTT", ["official", "secretary"])
    directory.add_official(eng, DOMAINS, "an@hcm.gov.vn", "Nguyễn Văn An", "STTTT", ["official"], "0912345678")
    directory.add_official(eng, DOMAINS, "chau@q1.hcm.gov.vn", "Lê Minh Châu", "Q1", ["official"], "0987654321")
    directory.add_official(eng, DOMAINS, "dung@q1.hcm.gov.vn", "Võ Dũng", "Q1", ["official"])
    yield eng
    eng.dispose()


def spec(**change):
    data = {"title": "Họp giao ban", "start": "2026-12-03 08:00", "end": "2026-12-03 09:00", "unit": "STTTT",
            "secretary": "vanthu@hcm.gov.vn", "attendees": ["An@HCM.gov.vn"], "units": ["Q1"],
            "guests": [{"name": "Ông Bảo", "email": "bao@doitac.vn", "phone": "0912 000 111"},
                       {"name": "Bà Cúc", "phone": "0903 123 456"}]}
    data.update(change)
    return spec_from_mapping({k: v for k, v in data.items() if v is not None}, "hop.toml")


def test_attendees_from_the_directory_and_guests(engine):
    created = create_meeting(engine, DOMAINS, spec(attendees=["An@HCM.gov.vn", "chau@q1.hcm.gov.vn"]))
    assert (created.officials, created.guests, created.without_email, created.without_phone) == (3, 2, 1, 1)
    with Session(engine) as session:
        meeting = session.get(Meeting, created.meeting_id)
        people = session.exec(select(MeetingAttendee).where(MeetingAttendee.meeting_id == meeting.id)
                               .order_by(MeetingAttendee.id)).all()
    assert (meeting.status, meeting.sequence, meeting.secretary_email) == ("draft", 0, "vanthu@hcm.gov.vn")
    assert meeting.uid.endswith("@hcm.gov.vn") and meeting.uid == created.uid
    # chau@ named and also in Q1: invited once
    assert [(p.name, p.email, p.phone, p.official_id is not None) for p in people] == [
        ("Nguyễn Văn An", "an@hcm.gov.vn", "+84912345678", True),
        ("Lê Minh Châu", "chau@q1.hcm.gov.vn", "+84987654321", True),
        ("Võ Dũng", "dung@q1.hcm.gov.vn", None, True),
        ("Ông Bảo", "bao@doitac.vn", "+84912000111", False),
        ("Bà Cúc", None, "+84903123456", False),
    ]
    assert {p.partstat for p in people} == {"NEEDS-ACTION"}


@pytest.mark.parametrize("change, problem", [
    ({"unit": "NOPE"}, "unit: no unit 'NOPE' in the directory"),
    ({"secretary": "an@hcm.gov.vn"}, "secretary: an@hcm.gov.vn does not have the secretary role"),
    ({"secretary": "ghost@hcm.gov.vn"}, "secretary: ghost@hcm.gov.vn is not an official in the directory"),
    ({"attendees": ["ghost@hcm.gov.vn"]}, "attendees[0]: ghost@hcm.gov.vn is not an official in the directory"),
    ({"attendees": ["not an address"]}, "attendees[0]: "),
    ({"units": ["NOPE"]}, "units: no unit 'NOPE' in the directory"),
    ({"units": ["EMPTY"]}, "units: unit EMPTY has no active official"),
    ({"guests": [{"name": "Ông Bảo", "phone": "123"}]}, "guests[0] (Ông Bảo): phone number '123' is too short"),
])
def test_problems_are_reported_and_nothing_is_written(engine, change, problem):
    with Session(engine) as session:
        before = len(session.exec(select(Meeting)).all())
    with pytest.raises(InputError) as caught:
        create_meeting(engine, DOMAINS, spec(**change))
    assert problem in str(caught.value)
    with Session(engine) as session:
        assert len(session.exec(select(Meeting)).all()) == before
