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
    ({"delivery": {"relay_tls": "may", "relay_username": "hub"}}, "delivery.relay_tls: \"may\" does not check"),
    ({"delivery": {"concurrency": 0}}, "delivery.concurrency: must be at least 1"),
    ({"delivery": {"retry_min_seconds": 600, "retry_max_seconds": 60}}, "delivery.retry_min_seconds: must be"),
    ({"delivery": {"retry_jitter": 1.0}}, "delivery.retry_jitter: must be at least 0 and below 1"),
    ({"delivery": {"max_age_hours": 0}}, "delivery.max_age_hours: must be above 0"),
    ({"delivery": {"lease_seconds": 1}}, "delivery.lease_seconds: must be at least 5"),
    ({"delivery": {"dns_servers": ["10.0.0.53", " "]}}, "delivery.dns_servers[1]: expected an address"),
    ({"delivery": {"routes": {"host": "x"}}}, "delivery.routes: expected a list"),
    ({"delivery": {"routes": [{"domains": ["a.vn"]}]}}, "delivery.routes[0].host: required"),
    ({"delivery": {"routes": [{"host": "mx", "domains": []}]}}, "delivery.routes[0].domains: at least one"),
    ({"delivery": {"routes": [{"host": "mx", "domains": ["a@b"]}]}}, "delivery.routes[0].domains: not a domain"),
    ({"delivery": {"routes": [{"host": "mx", "domains": ["a.vn"], "protocol": "uucp"}]}},
     "delivery.routes[0].protocol: expected one of smtp, lmtp"),
    ({"delivery": {"routes": [{"host": "mx", "domains": ["a.vn"], "tls": "may", "username": "u"}]}},
     "delivery.routes[0].tls: \"may\" does not check"),
    ({"delivery": {"routes": [{"host": "mx", "domains": ["a.vn"], "colour": "red"}]}},
     "unknown key delivery.routes[0].colour"),
    ({"delivery": {"routes": [{"host": "mx", "domains": ["a.vn"]}, {"host": "my", "domains": ["A.vn."]}]}},
     "delivery.routes[1].domains: 'A.vn.' is already routed by delivery.routes[0]"),
    ({"tls": {"cert_file": "/etc/cert.pem"}}, "tls.cert_file and tls.key_file: give both or neither"),
    ({"listen": {"http_trusted_proxies": ["10.0.0.5", "proxy.hcm.gov.vn"]}},
     "listen.http_trusted_proxies: not an IP address or network: 'proxy.hcm.gov.vn'"),
    ({"sms": {"gateway": "pigeon"}}, "sms.gateway: expected one of outbox, twilio, smpp"),
    ({"sms": {"gateway": "twilio"}}, "sms.twilio_account_sid and sms.twilio_auth_token: required"),
    ({"sms": {"gateway": "twilio", "twilio_account_sid": "AC1", "twilio_auth_token": "tok"}},
     "sms.twilio_messaging_service_sid / sms.twilio_from: give exactly one"),
    ({"sms": {"gateway": "smpp", "smpp_host": "smsc.vn"}}, "sms.smpp_host, sms.smpp_system_id and sms.smpp_source_addr"),
    ({"invites": {"public_url": "mail.hcm.gov.vn"}}, "invites.public_url: expected an http:// or https:// address"),
    ({"invites": {"reminder_hours_before": [24, "1"]}}, "invites.reminder_hours_before[1]: expected a number"),
])
def test_errors_name_the_key(data, message):
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(data, "test.toml")
    assert str(caught.value).startswith("test.toml: ")
    assert message in str(caught.value)


def test_sms_secrets_are_hidden():
    config = config_from_mapping({"sms": {"gateway": "twilio", "twilio_account_sid": "AC1",
                                          "twilio_auth_token": "twilio-token-123", "twilio_from": "UBNDTPHCM"}}, "t")
    assert config.sms.twilio_auth_token.reveal() == "twilio-token-123"
    assert "twilio-token-123" not in repr(config)


def test_routes_are_read_in_order():
    config = config_from_mapping({"delivery": {"mode": "mx", "routes": [
        {"domains": ["hcm.gov.vn", ".hcm.gov.vn"], "host": "store", "port": 24, "protocol": "lmtp", "tls": "none"},
        {"domains": ["partner.vn"], "host": "gw.partner.vn", "password": "s3cret-s3cret"}]}}, "t.toml")
    first, second = config.delivery.routes
    assert (first.domains, first.host, first.port, first.protocol, first.tls) == (
        ("hcm.gov.vn", ".hcm.gov.vn"), "store", 24, "lmtp", "none")
    assert (second.port, second.protocol, second.tls) == (25, "smtp", "starttls")
    assert "s3cret" not in repr(config)


@pytest.mark.parametrize("delivery, message", [
    ({"mode": "mx", "dns_servers": ["10.0.0.53:99999"]}, "delivery.dns_servers: nameserver '10.0.0.53:99999'"),
    ({"tls_ca_file": "/no/such/ca.pem"}, "delivery.tls_ca_file: cannot load /no/such/ca.pem"),
])
def test_delivery_settings_checked_before_start(delivery, message):
    from mailhub.app import check_delivery_settings

    with pytest.raises(ConfigError, match="^t.toml: " + message.replace(".", r"\.").replace("[", r"\[")):
        check_delivery_settings(config_from_mapping({"delivery": delivery}, "t.toml"))


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
