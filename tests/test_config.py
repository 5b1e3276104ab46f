"""Configuration: every error names the file and the key; environment overrides."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailhub.config import DEFAULT_CONFIG, Secret, config_from_mapping, load_config
from mailhub.errors import ConfigError


def test_shipped_config_loads_with_the_documented_defaults():
    config = load_config(DEFAULT_CONFIG, {})
    assert config.domains.official == ("hochiminhcity.gov.vn",)
    assert config.limits.max_recipients == 100
    assert config.database_url.startswith("sqlite:///")
    assert config.listen_address("submission").port == 10587


@pytest.mark.parametrize("data, message", [
    ({"limits": {"max_recipients": "many"}}, "limits.max_recipients: expected an integer, got 'many'"),
    ({"limits": {"max_recipients": True}}, "limits.max_recipients: expected an integer"),
    ({"limits": {"max_recipients": -1}}, "limits.max_recipients: must not be negative"),
    ({"limits": {"max_recipientz": 5}}, "unknown key limits.max_recipientz"),
    ({"limitz": {"max_recipients": 5}}, "unknown section [limitz]"),
    ({"limits": 5}, "[limits] must be a table"),
    ({"listen": {"submission": "localhost"}}, "listen.submission: expected host:port, got 'localhost'"),
    ({"listen": {"http": "127.0.0.1:99999"}}, "listen.http: expected host:port"),
    ({"dkim": {"ed25519": "yes"}}, "dkim.ed25519: expected true or false"),
    ({"domains": {"official": "hcm.gov.vn"}}, "domains.official: expected a list"),
    ({"domains": {"official": []}}, "domains.official: at least one official domain is required"),
    ({"delivery": {"mode": "carrier-pigeon"}}, "delivery.mode: expected one of outbox, relay"),
    ({"delivery": {"mode": "relay"}}, "delivery.relay_host: required"),
    ({"tls": {"cert_file": "/etc/cert.pem"}}, "tls.cert_file and tls.key_file: give both or neither"),
])
def test_errors_name_the_key(data, message):
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(data, "test.toml")
    assert str(caught.value).startswith("test.toml: ")
    assert message in str(caught.value)


def test_environment_overrides():
    env = {"MAILHUB_SUBMISSION_LISTEN": "0.0.0.0:587", "MAILHUB_HOME": "/srv/mailhub",
           "MAILHUB_DATABASE_URL": "postgresql+psycopg://mailhub@db/mailhub"}
    config = config_from_mapping({"listen": {"submission": "127.0.0.1:10587"}}, "t.toml", env)
    assert config.listen_address("submission").port == 587
    assert config.listen_address("submission").host == "0.0.0.0"
    assert config.home == Path("/srv/mailhub")
    assert config.database_url == env["MAILHUB_DATABASE_URL"]


def test_bad_environment_override_names_the_key():
    with pytest.raises(ConfigError, match=r"listen\.submission: expected host:port, got 'port587'"):
        config_from_mapping({}, "t.toml", {"MAILHUB_SUBMISSION_LISTEN": "port587"})


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.toml: cannot read configuration"):
        load_config(tmp_path / "nope.toml", {})
    bad = tmp_path / "bad.toml"
    bad.write_text("[limits]\nmax_recipients = \n", encoding="utf-8")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_config(bad, {})
    env_chosen = tmp_path / "env.toml"
    env_chosen.write_text('[limits]\nmax_recipients = "ten"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="env.toml: limits.max_recipients: expected an integer"):
        load_config(None, {"MAILHUB_CONFIG": str(env_chosen)})


def test_secrets_hide_in_repr():
    config = config_from_mapping({"delivery": {"relay_password": "hunter2-hunter2"}}, "t.toml")
    assert "hunter2" not in repr(config)
    assert config.delivery.relay_password.reveal() == "hunter2-hunter2"
    assert repr(Secret("")) == "Secret('')"


@pytest.mark.parametrize("toml, env, expected", [
    ('[limits]\nmax_recipients = "ten"\n', {}, "limits.max_recipients: expected an integer"),
    ("[bogus]\n", {}, "unknown section [bogus]"),
    ("[server]\nhome_dir = 'x'\n", {}, "unknown key server.home_dir"),
    ("", {"MAILHUB_SUBMISSION_LISTEN": "nowhere"}, "listen.submission: expected host:port"),
])
def test_cli_prints_one_red_line_and_exits_2(tmp_path, toml, env, expected):
    path = tmp_path / "mailhub.toml"
    path.write_text(toml, encoding="utf-8")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MAILHUB_")}
    result = subprocess.run([sys.executable, "-m", "mailhub", "--config", str(path), "unit", "list"],
                            capture_output=True, text=True, encoding="utf-8", timeout=120,
                            env=clean | {"MAILHUB_HOME": str(tmp_path)} | env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: ") and expected in lines[0]
