"""The directory, passwords, CSV import, TLS certificate and schema, in-process."""
from __future__ import annotations

import socket
import ssl
import stat
import threading
import unicodedata
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from cryptography import x509
from sqlalchemy import create_engine, inspect, text
from sqlmodel import SQLModel

from mailhub import directory, passwords, schema, tlscert
from mailhub.config import DomainsConfig
from mailhub.csvimport import import_directory
from mailhub.db import make_engine
from mailhub.errors import ConfigError, DirectoryError, InputError
from mailhub.models import Official

DOMAINS = DomainsConfig(official=("hcm.gov.vn",), subdomains_of=("hcm.gov.vn",))
PASSWORD = "mat-khau-rat-dai-2026"
BOM = "\ufeff"
HEADER = "email,full_name,unit_code,unit_name,parent_unit_code,roles,phone\n"


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'mailhub.db'}")
    schema.upgrade(engine)
    directory.add_unit(engine, "HCM", "Thành phố Hồ Chí Minh", kind="city")
    directory.add_unit(engine, "STTTT", "Sở Thông tin và Truyền thông", parent="HCM", kind="department")
    yield engine
    engine.dispose()


def _add_an(engine, password: str | None = PASSWORD) -> Official:
    return directory.add_official(engine, DOMAINS, "An@HCM.gov.vn", "Nguyễn Văn An", "STTTT",
                                  ["official", "secretary"], "0912 345 678", password)


# ---- passwords ----------------------------------------------------------------

def test_password_hash_is_argon2id_and_verifies():
    stored = passwords.hash_password(PASSWORD)
    assert stored.startswith("$argon2id$")
    assert passwords.verify_password(stored, PASSWORD)
    assert not passwords.verify_password(stored, PASSWORD + "x")
    assert not passwords.needs_rehash(stored)


@pytest.mark.parametrize("stored", [None, "", "not-a-hash", "$argon2id$v=19$m=1,t=1,p=1$broken"])
def test_verify_never_raises_on_bad_hash(stored):
    assert passwords.verify_password(stored, PASSWORD) is False


@pytest.mark.parametrize("candidate, problem", [
    ("", "empty"), ("short", "too short"), ("x" * 2000, "too long"), ("abc\ndefghijk", "control"),
])
def test_new_password_rules(candidate, problem):
    with pytest.raises(InputError, match=problem):
        passwords.check_new_password(candidate)


# ---- normalisation -------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    ("0912345678", "+84912345678"),
    ("0912 345 678", "+84912345678"),
    ("+84 912 345 678", "+84912345678"),
    ("(028) 3829 6052", "+842838296052"),  # a Ho Chi Minh City landline
    ("", None),
    (None, None),
])
def test_phone_normalised_to_e164(raw, expected):
    assert directory.normalise_phone(raw) == expected


@pytest.mark.parametrize("raw", ["12345", "abc", "0912", "+1 555"])
def test_invalid_phone_is_a_clear_error(raw):
    with pytest.raises(DirectoryError, match="phone number"):
        directory.normalise_phone(raw)


@pytest.mark.parametrize("raw, expected", [
    ("An@HCM.gov.vn", "an@hcm.gov.vn"),
    ("  binh@q1.hcm.gov.vn ", "binh@q1.hcm.gov.vn"),
    ("chau@bến-thành.hcm.gov.vn", "chau@xn--bn-thnh-dwa2399d.hcm.gov.vn"),
])
def test_official_email_normalised(raw, expected):
    assert directory.official_email(raw, DOMAINS) == expected


@pytest.mark.parametrize("raw, problem", [
    ("an@gmail.com", "not an official domain"),
    ("an@evilhcm.gov.vn", "not an official domain"),
    ("an b@hcm.gov.vn", "space"),
    ("an@", "empty domain"),
    ("an", "exactly one @"),
    ('"a@b"@hcm.gov.vn', "quoted"),
])
def test_bad_email_refused(raw, problem):
    with pytest.raises(DirectoryError, match=problem):
        directory.official_email(raw, DOMAINS)


def test_roles():
    assert directory.normalise_roles(["Secretary", "official", "secretary"]) == "secretary,official"
    assert directory.normalise_roles([]) == "official"
    with pytest.raises(DirectoryError, match="unknown role 'boss'"):
        directory.normalise_roles(["boss"])


# ---- units and officials -------------------------------------------------------

def test_units_refuse_duplicates_unknown_parents_and_kinds(engine):
    with pytest.raises(DirectoryError, match="already exists"):
        directory.add_unit(engine, "HCM", "again")
    with pytest.raises(DirectoryError, match="unknown unit 'NOPE'"):
        directory.add_unit(engine, "Q1", "Quận 1", parent="NOPE")
    with pytest.raises(DirectoryError, match="unknown unit kind"):
        directory.add_unit(engine, "Q1", "Quận 1", kind="province")
    with pytest.raises(DirectoryError, match="invalid unit code"):
        directory.add_unit(engine, "Q 1", "Quận 1")
    assert [u.code for u, _n in directory.list_units(engine)] == ["HCM", "STTTT"]


def test_add_official_normalises_and_hashes(engine):
    _add_an(engine)
    found = directory.find_official(engine, "AN@hcm.gov.vn")
    assert (found.email, found.phone, found.role_list) == ("an@hcm.gov.vn", "+84912345678",
                                                           ["official", "secretary"])
    assert found.password_hash.startswith("$argon2id$")
    assert passwords.verify_password(found.password_hash, PASSWORD)
    directory.set_password(engine, "an@hcm.gov.vn", "mot-mat-khau-moi")
    changed = directory.find_official(engine, "an@hcm.gov.vn")
    assert passwords.verify_password(changed.password_hash, "mot-mat-khau-moi")


@pytest.mark.parametrize("kwargs, problem", [
    (dict(email="an@hcm.gov.vn"), "already an official's address"),
    (dict(unit_code="NOPE"), "unknown unit"),
    (dict(phone="123"), "phone number"),
    (dict(roles=["root"]), "unknown role"),
    (dict(full_name="  "), "full name: must not be empty"),
    (dict(password="short"), "too short"),
])
def test_add_official_refusals(engine, kwargs, problem):
    _add_an(engine)
    args = dict(email="binh@hcm.gov.vn", full_name="Trần Thị Bình", unit_code="STTTT",
                roles=None, phone=None, password=None) | kwargs
    with pytest.raises(DirectoryError, match=problem):
        directory.add_official(engine, DOMAINS, **args)


def test_sender_holds_own_alias_and_granted_shared_mailboxes(engine):
    _add_an(engine)
    directory.add_official(engine, DOMAINS, "binh@hcm.gov.vn", "Trần Thị Bình", "STTTT")
    directory.add_alias(engine, DOMAINS, "An.Nguyen@hcm.gov.vn", "an@hcm.gov.vn")
    directory.add_shared_mailbox(engine, DOMAINS, "VanPhong@hcm.gov.vn", "STTTT", "Văn phòng Sở",
                                 grant_to=["an@hcm.gov.vn"])
    sender = directory.load_sender(engine, "AN@hcm.gov.vn")
    assert sender.login == "an@hcm.gov.vn" and sender.unit == "STTTT"
    assert sender.may_send_as == {"an@hcm.gov.vn", "an.nguyen@hcm.gov.vn", "vanphong@hcm.gov.vn"}
    assert directory.load_sender(engine, "binh@hcm.gov.vn").may_send_as == {"binh@hcm.gov.vn"}
    assert directory.grant(engine, "vanphong@hcm.gov.vn", "binh@hcm.gov.vn") is True
    assert directory.grant(engine, "vanphong@hcm.gov.vn", "binh@hcm.gov.vn") is False
    assert "vanphong@hcm.gov.vn" in directory.load_sender(engine, "binh@hcm.gov.vn").may_send_as
    assert directory.load_sender(engine, "nobody@hcm.gov.vn") is None
    assert directory.directory_names(engine) == {"an@hcm.gov.vn": "Nguyễn Văn An",
                                                 "binh@hcm.gov.vn": "Trần Thị Bình"}


def test_address_conflicts(engine):
    _add_an(engine)
    directory.add_alias(engine, DOMAINS, "an.nguyen@hcm.gov.vn", "an@hcm.gov.vn")
    with pytest.raises(DirectoryError, match="already an official's address"):
        directory.add_alias(engine, DOMAINS, "an@hcm.gov.vn", "an@hcm.gov.vn")
    with pytest.raises(DirectoryError, match="already an alias"):
        directory.add_shared_mailbox(engine, DOMAINS, "an.nguyen@hcm.gov.vn", "STTTT", "x")
    with pytest.raises(DirectoryError, match="not a shared mailbox"):
        directory.grant(engine, "an.nguyen@hcm.gov.vn", "an@hcm.gov.vn")
    with pytest.raises(DirectoryError, match="not an official domain"):
        directory.add_alias(engine, DOMAINS, "an@gmail.com", "an@hcm.gov.vn")


# ---- CSV import ----------------------------------------------------------------

def _csv(tmp_path, body: str, bom: bool = True):
    path = tmp_path / "danh-ba.csv"
    path.write_text((BOM if bom else "") + HEADER + body, encoding="utf-8")
    return path


def test_import_creates_then_updates_without_touching_passwords(engine, tmp_path):
    _add_an(engine)
    nfd_name = unicodedata.normalize("NFD", "Lê Minh Châu")  # as Excel on a Mac may write it
    path = _csv(tmp_path, "an@hcm.gov.vn,Nguyễn Văn An,Q1,Ủy ban nhân dân Quận 1,HCM,official;hr,0912345678\n"
                          f"chau@q1.hcm.gov.vn,{nfd_name},Q1,,,official secretary,\n"
                          "\n"
                          'dung@hcm.gov.vn,"Phạm, Văn Dũng",STTTT,,,,\n')
    report = import_directory(engine, path, DOMAINS)
    assert report.units_created == ["Q1"]
    assert report.officials_created == ["chau@q1.hcm.gov.vn", "dung@hcm.gov.vn"]
    assert report.officials_updated == ["an@hcm.gov.vn"]
    an = directory.find_official(engine, "an@hcm.gov.vn")
    assert (an.unit_code, an.roles) == ("Q1", "official,hr")
    assert passwords.verify_password(an.password_hash, PASSWORD)
    chau = directory.find_official(engine, "chau@q1.hcm.gov.vn")
    assert chau.full_name == "Lê Minh Châu" and chau.password_hash is None
    assert directory.find_official(engine, "dung@hcm.gov.vn").full_name == "Phạm, Văn Dũng"
    again = import_directory(engine, path, DOMAINS)
    assert (again.units_created, again.officials_created, again.officials_updated) == ([], [], [])
    assert again.officials_unchanged == 3


def test_import_reports_every_bad_row_and_imports_nothing(engine, tmp_path):
    path = _csv(tmp_path, "binh@hcm.gov.vn,Trần Thị Bình,STTTT,,,,\n"
                          "an@gmail.com,Nguyễn Văn An,STTTT,,,,\n"
                          "chau@hcm.gov.vn,Lê Minh Châu,Q9,,,boss,12\n"
                          "binh@HCM.gov.vn,Bình khác,STTTT,,,,\n")
    with pytest.raises(InputError) as caught:
        import_directory(engine, path, DOMAINS)
    message = str(caught.value)
    assert f"{path}:3: email: an@gmail.com: gmail.com is not an official domain" in message
    assert f"{path}:4: roles: unknown role 'boss'" in message
    assert f"{path}:4: phone:" in message
    assert f"{path}:4: unit_code: unknown unit Q9" in message
    assert f"{path}:5: email: binh@hcm.gov.vn is repeated (first on line 2)" in message
    assert f"{path}:2:" not in message
    assert directory.list_officials(engine) == []


@pytest.mark.parametrize("body, expected", [
    ("a@hcm.gov.vn,A,Q1,Quận 1,HCM,,\nb@hcm.gov.vn,B,Q1,Quận Một,HCM,,\n", ":3: unit_name: unit Q1 is described"),
    ("a@hcm.gov.vn,A,Q1,Quận 1,P1,,\nb@hcm.gov.vn,B,P1,Phường 1,Q1,,\n", "would be its own ancestor"),
    ("a@hcm.gov.vn,A,Q1,Quận 1,NOPE,,\n", ":2: parent_unit_code: unknown unit NOPE"),
    ("a@hcm.gov.vn,,STTTT,,,,\n", ":2: full_name: full name: must not be empty"),
    ("a@hcm.gov.vn,A,STTTT,,,,,extra\n", ":2: row: 8 fields"),
])
def test_import_unit_and_row_problems(engine, tmp_path, body, expected):
    with pytest.raises(InputError, match=expected):
        import_directory(engine, _csv(tmp_path, body), DOMAINS)
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from unit")).scalar() == 2


def test_import_file_level_problems(engine, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("email,name,unit_code\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.csv:1: header: missing column\(s\) full_name"):
        import_directory(engine, path, DOMAINS)
    path.write_bytes(HEADER.encode() + "a@hcm.gov.vn,Nguyễn,STTTT,,,,\n".encode("utf-16"))
    with pytest.raises(InputError, match="not UTF-8"):
        import_directory(engine, path, DOMAINS)


# ---- TLS certificate -----------------------------------------------------------

def test_self_signed_certificate(tmp_path):
    cert, key = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
    assert tlscert.ensure_self_signed(cert, key, "mail.hcm.gov.vn") is True
    assert tlscert.ensure_self_signed(cert, key, "mail.hcm.gov.vn") is False
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    san = loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"mail.hcm.gov.vn", "localhost"}
    assert "127.0.0.1" in {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    assert (loaded.not_valid_after_utc - loaded.not_valid_before_utc).days >= 5 * 365

    server = tlscert.server_context(cert, key)
    assert server.minimum_version == ssl.TLSVersion.TLSv1_2
    client = ssl.create_default_context(cafile=str(cert))
    left, right = socket.socketpair()
    with left, right:
        done = threading.Thread(target=lambda: server.wrap_socket(right, server_side=True).close())
        done.start()
        with client.wrap_socket(left, server_hostname="mail.hcm.gov.vn") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
        done.join(5)


def test_server_context_names_unusable_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot load certificate"):
        tlscert.server_context(tmp_path / "none.pem", tmp_path / "none.key")


# ---- schema --------------------------------------------------------------------

def _assert_matches_models(engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                SQLModel.metadata)
    assert diff == []


def test_upgrade_is_idempotent_and_matches_models(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no alembic.ini anywhere near
    url = f"sqlite:///{tmp_path / 'sub' / 'x.db'}"
    assert schema.upgrade(url) is True
    assert schema.upgrade(url) is False
    engine = make_engine(url)
    try:
        assert schema.current_revision(engine) == schema.head_revision()
        schema.require_current(engine)
        _assert_matches_models(engine)
        assert {"unit", "official", "mailbox", "queued_message"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_require_current_tells_to_run_init(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        with pytest.raises(ConfigError, match="run `mailhub init`"):
            schema.require_current(engine)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_upgrade_on_postgresql(pg_url):
    name = f"mailhub_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    engine = create_engine(pg_url, connect_args={"options": f"-csearch_path={name}"})
    try:
        assert schema.upgrade(engine) is True
        assert schema.upgrade(engine) is False
        _assert_matches_models(engine)
        directory.add_unit(engine, "STTTT", "Sở Thông tin và Truyền thông", kind="department")
        _add_an(engine, password=None)
        assert directory.load_sender(engine, "an@hcm.gov.vn").may_send_as == {"an@hcm.gov.vn"}
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()
