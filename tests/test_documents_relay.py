"""Document signatures through the real relay on loopback: officials submit signed
PDFs and S/MIME messages over TLS to an address of [[documents.rules]]; in "record"
mode every one is accepted and the ledger says what it was, in "require" mode only a
valid signature passes and the official is told what is missing."""
from __future__ import annotations

import functools
import json
import smtplib
import time

import pytest
from sqlalchemy import select

from mailhub.db import make_engine
from mailhub.models import UsageEvent
from tests.signing_pki import TestPki, mail_with_pdf, signed_pdf, smime_mail, tampered, tampered_smime, unsigned_pdf
from tests.support import make_config, provisioned_copy, start_hub

DOCS = "vanban@ubnd.hcm.gov.vn"  # the People's Committee's document mailbox


def pki() -> TestPki:
    return TestPki.create()


@functools.lru_cache(maxsize=1)
def cases() -> dict[str, tuple[bytes, str]]:
    """name -> (message, expected outcome)."""
    p = pki()
    to = dict(sender="an@hcm.gov.vn", to=DOCS)
    return {
        "pdf valid": (mail_with_pdf(signed_pdf(p.leaf_cert, p.leaf_key), **to), "signed-valid"),
        "pdf tampered": (mail_with_pdf(tampered(signed_pdf(p.leaf_cert, p.leaf_key)), **to), "signed-invalid"),
        "pdf untrusted": (mail_with_pdf(signed_pdf(p.stranger_cert, p.stranger_key), **to), "signed-invalid"),
        "pdf expired": (mail_with_pdf(signed_pdf(p.expired_cert, p.expired_key), **to), "signed-invalid"),
        "pdf unsigned": (mail_with_pdf(unsigned_pdf(), **to), "unsigned"),
        "smime valid": (smime_mail("Kính gửi UBND", p.leaf_cert, p.leaf_key, **to), "signed-valid"),
        "smime tampered": (tampered_smime(smime_mail("Kính gửi UBND", p.leaf_cert, p.leaf_key, **to)),
                           "signed-invalid"),
        "smime untrusted": (smime_mail("Kính gửi UBND", p.stranger_cert, p.stranger_key, **to), "signed-invalid"),
        "smime expired": (smime_mail("Kính gửi UBND", p.expired_cert, p.expired_key, **to), "signed-invalid"),
    }


CASES = ["pdf valid", "pdf tampered", "pdf untrusted", "pdf expired", "pdf unsigned", "smime valid",
         "smime tampered", "smime untrusted", "smime expired"]


@pytest.fixture(scope="module", params=["record", "require"])
def docs_hub(request, tmp_path_factory, ca, provisioned_home):
    base = tmp_path_factory.mktemp(f"docs-{request.param}")
    home = provisioned_copy(provisioned_home, base / "home")
    roots = pki().write_roots(base / "roots")
    config = make_config(home, ca, documents={"trust_roots_dir": str(roots),
                                              "rules": [{"recipients": [DOCS], "mode": request.param}]})
    running = start_hub(config, ca)
    yield request.param, running
    running.stop()


def submit(running, data: bytes, to=(DOCS,)) -> tuple[int, str]:
    """Send ``data``; return the reply once the submission's ledger event is stored (a
    refusal's event is written by the next group commit, after the reply)."""
    before = newest_event_id(running.config)
    client = running.connect()
    try:
        client.sendmail("an@hcm.gov.vn", list(to), data)
        answer = 250, ""
    except smtplib.SMTPDataError as exc:
        answer = exc.smtp_code, exc.smtp_error.decode()
    finally:
        client.quit()
    deadline = time.monotonic() + 10
    while newest_event_id(running.config) == before and time.monotonic() < deadline:
        time.sleep(0.02)
    return answer


def newest_event_id(config) -> int | None:
    event = last_event(config)
    return None if event is None else event.id


def last_event(config) -> UsageEvent:
    engine = make_engine(config.database_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(select(UsageEvent.__table__).order_by(UsageEvent.__table__.c.id.desc())).first()
    finally:
        engine.dispose()
    return row


@pytest.mark.parametrize("case", CASES)
def test_each_document_gets_its_outcome_in_record_and_require_mode(docs_hub, case):
    mode, running = docs_hub
    data, expected = cases()[case]
    code, reply = submit(running, data)
    event = last_event(running.config)
    assert event.signature == expected
    if expected == "signed-valid":
        assert "Nguyễn Văn An" in event.signer
    if mode == "record" or expected == "signed-valid":
        assert code == 250 and event.kind == "email"
    else:
        assert code == 550 and event.kind == "refused" and event.policy == "signed_documents"
        assert "chu ky so" in reply.lower() or "Chu ky so" in reply  # Vietnamese (ASCII on the wire)
        assert "signature" in reply or "signed" in reply               # and English


def test_an_unsigned_text_message_is_unsigned(docs_hub):
    mode, running = docs_hub
    data = (f"From: an@hcm.gov.vn\r\nTo: {DOCS}\r\nSubject: Bao cao\r\n\r\nKhong co van ban ky so.\r\n").encode()
    code, reply = submit(running, data)
    event = last_event(running.config)
    assert event.signature == "unsigned" and event.signer in (None, "")
    if mode == "require":
        assert code == 550 and "must be digitally signed" in reply
    else:
        assert code == 250


def test_mail_to_other_addresses_is_not_checked(docs_hub):
    mode, running = docs_hub
    data = mail_with_pdf(unsigned_pdf(), sender="an@hcm.gov.vn", to="binh@hcm.gov.vn")
    assert submit(running, data, to=("binh@hcm.gov.vn",))[0] == 250
    assert last_event(running.config).signature is None


def test_one_document_recipient_among_others_makes_it_a_document_submission(docs_hub):
    mode, running = docs_hub
    data = mail_with_pdf(unsigned_pdf(), sender="an@hcm.gov.vn", to=DOCS)
    code, _ = submit(running, data, to=("binh@hcm.gov.vn", DOCS.upper()))
    assert last_event(running.config).signature == "unsigned"
    assert code == (550 if mode == "require" else 250)


def test_the_it_department_lists_recent_submissions(docs_hub, tmp_path):
    import subprocess
    import sys

    mode, running = docs_hub
    p = pki()
    submit(running, mail_with_pdf(signed_pdf(p.leaf_cert, p.leaf_key), sender="an@hcm.gov.vn", to=DOCS))
    config_file = tmp_path / "mailhub.toml"
    config_file.write_text(f'[server]\nhome = "{running.config.home}"\n'
                           f'[domains]\nofficial = ["hcm.gov.vn"]\nsubdomains_of = ["hcm.gov.vn"]\n', encoding="utf-8")

    def mailhub(*args):
        return subprocess.run([sys.executable, "-m", "mailhub", "--config", str(config_file), "documents", "list",
                               *args], capture_output=True, text=True, timeout=60)

    result = mailhub("--json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    newest = listed["submissions"][0]
    assert (newest["outcome"], newest["official"], newest["accepted"]) == ("signed-valid", "an@hcm.gov.vn", True)
    assert newest["recipients"] == [DOCS] and "Nguyễn Văn An" in newest["signer"]
    assert listed["counts"]["signed-valid"] >= 1
    if mode == "require":
        refused = [s for s in listed["submissions"] if not s["accepted"]]
        assert refused and all(s["outcome"] != "signed-valid" and s["reason"].startswith("550") for s in refused)
    table = mailhub("--outcome", "unsigned")
    assert table.returncode == 0 and "unsigned" in table.stdout and "signed-valid" not in table.stdout.split("submission(s)")[0]
    bad = mailhub("--outcome", "maybe")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --outcome") and "Traceback" not in bad.stderr


@pytest.mark.parametrize("mode, code", [("require", 451), ("record", 250)])
def test_a_check_that_cannot_finish_defers_in_require_and_accepts_in_record(tmp_path, ca, provisioned_home,
                                                                          mode, code):
    home = provisioned_copy(provisioned_home, tmp_path / "home")
    config = make_config(home, ca, documents={"trust_roots_dir": str(pki().write_roots(tmp_path / "roots")),
                                              "timeout_seconds": 0.0,
                                              "rules": [{"recipients": ["@ubnd.hcm.gov.vn"], "mode": mode}]})
    running = start_hub(config, ca)
    try:
        p = pki()
        got, reply = submit(running, mail_with_pdf(signed_pdf(p.leaf_cert, p.leaf_key), to=DOCS))
    finally:
        running.stop()
    assert got == code
    if mode == "require":
        assert "try again later" in reply
    else:
        assert last_event(config).signature is None  # accepted, not checked
