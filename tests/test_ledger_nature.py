"""What scoring leaves out of the ledger: mail to oneself and automatic mail."""
from __future__ import annotations

from email.message import Message

import pytest
from sqlalchemy import select

from mailhub.db import make_engine
from mailhub.ledger import mail_nature
from mailhub.models import UsageEvent
from tests.support import message

OWN = ("an@hcm.gov.vn", "nguyenvanan@hcm.gov.vn", "vanphong@hcm.gov.vn")


def headers(**fields) -> Message:
    msg = Message()
    for name, value in fields.items():
        msg[name.replace("_", "-")] = value
    return msg


@pytest.mark.parametrize("mail_from, rcpts, fields, expected", [
    ("an@hcm.gov.vn", ["binh@hcm.gov.vn"], {}, (False, False)),
    ("an@hcm.gov.vn", ["An@HCM.gov.vn"], {}, (True, False)),                       # to oneself
    ("an@hcm.gov.vn", ["nguyenvanan@hcm.gov.vn", "vanphong@hcm.gov.vn"], {}, (True, False)),  # own aliases
    ("an@hcm.gov.vn", ["an@hcm.gov.vn", "binh@hcm.gov.vn"], {}, (False, False)),   # someone else too
    ("", ["binh@hcm.gov.vn"], {}, (False, True)),                                  # a bounce
    ("an@hcm.gov.vn", ["binh@hcm.gov.vn"], {"Auto_Submitted": "auto-replied"}, (False, True)),
    ("an@hcm.gov.vn", ["binh@hcm.gov.vn"], {"Auto_Submitted": "auto-generated; x=1"}, (False, True)),
    ("an@hcm.gov.vn", ["binh@hcm.gov.vn"], {"Auto_Submitted": "No"}, (False, False)),
    ("an@hcm.gov.vn", ["binh@hcm.gov.vn"], {"Precedence": "bulk"}, (False, True)),
    ("an@hcm.gov.vn", ["binh@hcm.gov.vn"], {"Precedence": "urgent"}, (False, False)),
    ("an@hcm.gov.vn", [], {}, (False, False)),
])
def test_mail_nature(mail_from, rcpts, fields, expected):
    assert mail_nature(mail_from, rcpts, OWN, headers(**fields)) == expected


def test_the_relay_records_it(hub):
    client = hub.connect()
    try:
        client.sendmail("an@hcm.gov.vn", ["an@hcm.gov.vn"], message(to="an@hcm.gov.vn", subject="Ghi chú"))
        client.sendmail("an@hcm.gov.vn", ["binh@hcm.gov.vn"],
                        message(subject="Vắng mặt", extra="Auto-Submitted: auto-replied\r\n"))
        client.sendmail("an@hcm.gov.vn", ["binh@hcm.gov.vn"], message())
    finally:
        client.quit()
    import time

    engine = make_engine(hub.config.database_url)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                rows = conn.execute(select(UsageEvent.__table__.c.to_self, UsageEvent.__table__.c.automatic)
                                    .where(UsageEvent.__table__.c.kind == "email")
                                    .order_by(UsageEvent.__table__.c.id)).all()
            if len(rows) == 3:
                break
            time.sleep(0.05)
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [(True, False), (False, True), (False, False)]
