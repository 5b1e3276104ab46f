"""The `mailhub` command, run as a real subprocess (`python -m mailhub`)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailhub import passwords
from mailhub.db import make_engine
from mailhub.directory import find_official, load_sender

PASSWORD = "mat-khau-rat-dai-2026"
CONFIG = """\
[server]
hostname = "mail.hcm.gov.vn"

[listen]
submission = "127.0.0.1:0"
submissions = "127.0.0.1:0"
http = "127.0.0.1:0"

[domains]
official = ["hcm.gov.vn"]
subdomains_of = ["hcm.gov.vn"]
"""


@dataclass
class Mailhub:
    """Runs `python -m mailhub --config <tmp>/mailhub.toml ...` with MAILHUB_HOME=<tmp>/home."""

    tmp: Path

    @property
    def home(self) -> Path:
        return self.tmp / "home"

    @property
    def config(self) -> Path:
        return self.tmp / "mailhub.toml"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILHUB_")}
        return env | {"MAILHUB_HOME": str(self.home)} | extra

    def __call__(self, *args: str, stdin: str = "", env: dict[str, str] | None = None,
                 config: bool = True) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "mailhub", *(["--config", str(self.config)] if config else []), *args]
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, encoding="utf-8",
                              env=env or self.env(), cwd=self.tmp, timeout=120)

    def engine(self):
        return make_engine(f"sqlite:///{self.home / 'mailhub.db'}")


@pytest.fixture
def hub(tmp_path) -> Mailhub:
    hub = Mailhub(tmp_path)
    hub.config.write_text(CONFIG, encoding="utf-8")
    return hub


@pytest.fixture(scope="module")
def ready_home(tmp_path_factory) -> Path:
    """An initialised home with the units HCM and STTTT, made once per module (each
    command is a new Python process, about a second each)."""
    hub = Mailhub(tmp_path_factory.mktemp("template"))
    hub.config.write_text(CONFIG, encoding="utf-8")
    for args in (["init"],
                 ["unit", "add", "HCM", "--name", "Thành phố Hồ Chí Minh", "--kind", "city"],
                 ["unit", "add", "STTTT", "--name", "Sở Thông tin và Truyền thông",
                  "--parent", "HCM", "--kind", "department"]):
        result = hub(*args)
        assert result.returncode == 0, result.stderr
    return hub.home


@pytest.fixture
def ready(hub, ready_home) -> Mailhub:
    """A copy of the initialised home for one test."""
    shutil.copytree(ready_home, hub.home)
    return hub


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_init_twice(hub):
    first = hub("init")
    assert first.returncode == 0, first.stderr
    assert "created" in first.stdout
    assert oct(hub.home.stat().st_mode & 0o777) == "0o700"
    assert (hub.home / "tls" / "cert.pem").exists()
    assert oct((hub.home / "tls" / "key.pem").stat().st_mode & 0o777) == "0o600"
    assert oct((hub.home / "rsvp.key").stat().st_mode & 0o777) == "0o600"
    second = hub("init")
    assert second.returncode == 0, second.stderr
    assert "already" in second.stdout and "created" not in second.stdout
    assert "mailhub._domainkey.hcm.gov.vn. IN TXT" in second.stdout


def test_dkim_dns_prints_zone_file_lines(ready):
    result = ready("dkim", "dns")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines and all(line.startswith("mailhub._domainkey.hcm.gov.vn. IN TXT ") for line in lines)
    assert "v=DKIM1; k=rsa; p=" in lines[0]


def test_commands_before_init_say_so(hub):
    line = _one_error_line(hub("unit", "list"))
    assert "run `mailhub init`" in line


def test_user_add_reads_the_password_from_stdin(ready):
    result = ready("user", "add", "An@HCM.gov.vn", "--name", "Nguyễn Văn An", "--unit", "STTTT",
                   "--role", "official", "--role", "secretary", "--phone", "0912 345 678",
                   stdin=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    engine = ready.engine()
    try:
        official = find_official(engine, "an@hcm.gov.vn")
        assert official.password_hash.startswith("$argon2id$")
        assert passwords.verify_password(official.password_hash, PASSWORD)
        assert (official.phone, official.roles) == ("+84912345678", "official,secretary")
        listing = ready("user", "list", "--unit", "STTTT")
        assert "Nguyễn Văn An" in listing.stdout and "+84912345678" in listing.stdout
        assert ready("user", "passwd", "an@hcm.gov.vn", stdin="mot-mat-khau-moi\n").returncode == 0
        changed = find_official(engine, "an@hcm.gov.vn")
        assert passwords.verify_password(changed.password_hash, "mot-mat-khau-moi")
        result = ready("user", "disable", "an@hcm.gov.vn")
        assert result.returncode == 0 and "disabled" in result.stdout
        assert find_official(engine, "an@hcm.gov.vn").active is False
        assert "already disabled" in ready("user", "disable", "an@hcm.gov.vn").stdout
        assert ready("user", "enable", "an@hcm.gov.vn").returncode == 0
        assert find_official(engine, "an@hcm.gov.vn").active is True
        assert "unknown official" in _one_error_line(ready("user", "disable", "ai@hcm.gov.vn"))
    finally:
        engine.dispose()


@pytest.mark.parametrize("args, stdin, expected", [
    (["--password", PASSWORD], PASSWORD + "\n", "No such option"),
    ([PASSWORD], PASSWORD + "\n", "unexpected extra argument"),
    ([], "", "empty password"),
    ([], "\n", "empty password"),
    ([], "kngan\n", "too short"),
])
def test_password_never_from_argv_nor_weak(ready, args, stdin, expected):
    result = ready("user", "add", "binh@hcm.gov.vn", "--name", "Trần Thị Bình", "--unit", "STTTT",
                   *args, stdin=stdin)
    assert result.returncode == 2
    assert expected.lower() in result.stderr.lower()
    assert "Traceback" not in result.stderr
    engine = ready.engine()
    try:
        assert find_official(engine, "binh@hcm.gov.vn") is None
    finally:
        engine.dispose()


@pytest.mark.parametrize("args, expected", [
    (["user", "add", "an@gmail.com", "--name", "A", "--unit", "STTTT"], "gmail.com is not an official domain"),
    (["user", "add", "an@hcm.gov.vn", "--name", "A", "--unit", "NOPE"], "unknown unit 'NOPE'"),
    (["user", "add", "an@hcm.gov.vn", "--name", "A", "--unit", "STTTT", "--phone", "12"], "phone number"),
    (["unit", "add", "HCM", "--name", "again"], "unit 'HCM' already exists"),
    (["mailbox", "grant", "nope@hcm.gov.vn", "an@hcm.gov.vn"], "unknown shared mailbox"),
])
def test_directory_errors_are_one_red_line(ready, args, expected):
    assert expected in _one_error_line(ready(*args, stdin=PASSWORD + "\n"))


def test_alias_and_shared_mailbox(ready):
    ready("user", "add", "an@hcm.gov.vn", "--name", "Nguyễn Văn An", "--unit", "STTTT", stdin=PASSWORD)
    assert ready("alias", "add", "an.nguyen@hcm.gov.vn", "--to", "an@hcm.gov.vn").returncode == 0
    made = ready("mailbox", "add", "vanphong@hcm.gov.vn", "--unit", "STTTT", "--name", "Văn phòng Sở",
                 "--grant", "an@hcm.gov.vn")
    assert made.returncode == 0 and "Văn phòng Sở" in made.stdout
    assert "already" in ready("mailbox", "grant", "vanphong@hcm.gov.vn", "an@hcm.gov.vn").stdout
    engine = ready.engine()
    try:
        assert load_sender(engine, "an@hcm.gov.vn").may_send_as == {
            "an@hcm.gov.vn", "an.nguyen@hcm.gov.vn", "vanphong@hcm.gov.vn"}
    finally:
        engine.dispose()


def test_directory_import_with_bom_and_vietnamese_names(ready):
    csv = ready.tmp / "danh-ba.csv"
    csv.write_text("\ufeffemail,full_name,unit_code,unit_name,parent_unit_code,roles,phone\n"
                   "an@hcm.gov.vn,Nguyễn Văn An,STTTT,,,official;secretary,0912345678\n"
                   "chau@q1.hcm.gov.vn,Lê Minh Châu,Q1,Ủy ban nhân dân Quận 1,HCM,official,\n",
                   encoding="utf-8")
    result = ready("directory", "import", str(csv))
    assert result.returncode == 0, result.stderr
    assert "officials" in result.stdout and "user passwd" in result.stdout
    listing = ready("user", "list").stdout
    assert "Nguyễn Văn An" in listing and "Lê Minh Châu" in listing
    assert "Ủy ban nhân dân Quận 1" in ready("unit", "list").stdout


def test_directory_import_with_bad_rows_imports_nothing(ready):
    csv = ready.tmp / "bad.csv"
    csv.write_text("email,full_name,unit_code,unit_name,parent_unit_code,roles,phone\n"
                   "an@hcm.gov.vn,Nguyễn Văn An,STTTT,,,,\n"
                   "binh@gmail.com,Trần Thị Bình,STTTT,,,,\n"
                   "chau@hcm.gov.vn,Lê Minh Châu,STTTT,,,,09\n", encoding="utf-8")
    result = ready("directory", "import", str(csv))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{csv}:3: email:" in result.stderr
    assert f"{csv}:4: phone:" in result.stderr
    assert f"{csv}:2:" not in result.stderr
    assert "nothing imported" in result.stderr
    assert "an@hcm.gov.vn" not in ready("user", "list").stdout


def test_config_from_environment_variable(hub):
    result = hub("dkim", "dns", config=False, env=hub.env(MAILHUB_CONFIG=str(hub.tmp / "missing.toml")))
    assert "missing.toml: cannot read configuration" in _one_error_line(result)
