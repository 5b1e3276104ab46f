"""The console's DKIM and settings page (``/console/setup``) on the real server: the DNS
records are exactly those ``mailhub dkim dns`` prints, the settings are shown read-only and
no secret of the configuration ever reaches the page."""
from __future__ import annotations

import html
import re

import pytest

from mailhub.config import Secret
from mailhub.db import make_engine
from mailhub.dkimkeys import dns_records, ensure_domain_keys
from mailhub.web.setup_keys import name_and_value
from mailhub.web.setup_secrets import hide_passwords_in, is_secret_key, shown
from mailhub.web.setup_settings import config_sections
from tests.console_support import AN, ConsoleHub, add_staff
from tests.support import DOMAIN, make_config, provisioned_copy, start_hub

TWILIO_TOKEN = "tw-auth-token-5f2b9c0d"
RELAY_PASSWORD = "relay-pass-8a7e61"
ROUTE_PASSWORD = "route-pass-93c1d4"
SMPP_PASSWORD = "smpp-pw7"
URL_PASSWORD = "UrlPass2026"


@pytest.mark.parametrize("key, value, expected", [
    ("url", "postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
    ("url", "postgresql+psycopg://mailhub:s3cr@t@db.example:5432/mailhub", "postgresql+psycopg://mailhub:***@db.example:5432/mailhub"),
    ("url", "postgresql+psycopg://mailhub@db.example/mailhub", "postgresql+psycopg://mailhub@db.example/mailhub"),
    ("url", "sqlite:////srv/mailhub/mailhub.db", "sqlite:////srv/mailhub/mailhub.db"),
    ("url", "host=db user=mailhub password=pw1 dbname=m", "host=db user=mailhub password=*** dbname=m"),
    ("url", "postgresql://db/m?user=u&password=pw1&sslmode=require", "postgresql://db/m?user=u&password=***&sslmode=require"),
    ("public_url", "https://mail.hcm.gov.vn", "https://mail.hcm.gov.vn"),
    ("relay_password", "anything", "***"),
    ("relay_password", "", ""),
    ("twilio_auth_token", "abc", "***"),
    ("client_secret", "abc", "***"),
    ("api_key", "abc", "***"),
    ("relay_username", "mailhub", "mailhub"),
    ("key_file", "/etc/mailhub/key.pem", "/etc/mailhub/key.pem"),
    ("keys_dir", "/var/lib/mailhub/dkim", "/var/lib/mailhub/dkim"),
    ("twilio_account_sid", "AC123", "AC123"),
    ("anything", Secret("hidden by its type"), "***"),
])
def test_what_the_console_shows_of_a_setting(key, value, expected):
    assert shown(key, value) == expected


def test_secret_key_names():
    assert all(map(is_secret_key, ["smpp_password", "sms.twilio_auth_token", "token", "private_key", "passphrase"]))
    assert not any(map(is_secret_key, ["key_file", "keys_dir", "relay_username", "selector", "max_failures"]))
    assert hide_passwords_in("no url here") == "no url here"


def test_a_zone_line_as_name_and_value():
    assert name_and_value('s._domainkey.x.vn. IN TXT ( "v=DKIM1; k=rsa; p=AB" "CD" )') == \
        ("s._domainkey.x.vn.", "v=DKIM1; k=rsa; p=ABCD")
    assert name_and_value('s-ed25519._domainkey.x.vn. IN TXT "v=DKIM1; k=ed25519; p=QQ="') == \
        ("s-ed25519._domainkey.x.vn.", "v=DKIM1; k=ed25519; p=QQ=")


def _config(home, ca):
    return make_config(
        home, ca,
        dkim={"ed25519": True},
        database={"url": f"sqlite:///{home / 'mailhub.db'}"},
        delivery={"mode": "relay", "relay_host": "127.0.0.1", "relay_port": 9, "relay_tls": "require-starttls",
                  "relay_username": "mailhub-relay", "relay_password": RELAY_PASSWORD,
                  "routes": [{"domains": ["q1.hcm.gov.vn"], "host": "127.0.0.1", "port": 24, "protocol": "lmtp",
                              "tls": "require-starttls", "username": "lmtp-user", "password": ROUTE_PASSWORD}]},
        sms={"gateway": "twilio", "twilio_account_sid": "AC0123456789", "twilio_auth_token": TWILIO_TOKEN,
             "twilio_from": "UBNDTPHCM", "smpp_password": SMPP_PASSWORD},
        invites={"public_url": f"https://rsvp:{URL_PASSWORD}@mail.hcm.gov.vn"},
        documents={"rules": [{"recipients": ["@ubnd.hanoi.gov.vn"], "mode": "record"}]},
    )


@pytest.fixture(scope="module")
def hub(tmp_path_factory, ca, provisioned_home):
    home = provisioned_copy(provisioned_home, tmp_path_factory.mktemp("setup") / "home")
    config = _config(home, ca)
    ensure_domain_keys(config.dkim_keys_dir, DOMAIN, config.dkim.selector, True)  # the Ed25519 key
    engine = make_engine(config.database_url)
    add_staff(engine, config)
    running = ConsoleHub(start_hub(config, ca, only="submission"), config, engine)
    yield running
    running.stop()


def test_the_admin_sees_the_dns_records_to_publish(hub):
    response, page = hub.browser("quantri@hcm.gov.vn").get("/console/setup")
    assert response.status == 200 and "DKIM và cấu hình" in page
    config = hub.config
    records = dns_records(config.dkim_keys_dir, DOMAIN, config.dkim.selector, True)
    assert len(records) == 2 and "k=ed25519" in records[1]
    blocks = [html.unescape(b) for b in re.findall(r"<pre>(.*?)</pre>", page, re.DOTALL)]
    for record in records:
        assert record in blocks  # one copyable block per zone line, exactly as `mailhub dkim dns`
        assert name_and_value(record)[1] in blocks
    assert "mailhub._domainkey.hcm.gov.vn." in page and "mailhub-ed25519._domainkey.hcm.gov.vn." in page
    assert re.search(r"<td class=\"num\">2048</td>", page) and "SHA256:" in page
    assert "opendkim-testkey -d hcm.gov.vn -s mailhub" in html.unescape(page)
    assert "PRIVATE KEY" not in page


def test_settings_are_shown_without_any_secret(hub):
    browser = hub.browser("quantri@hcm.gov.vn")
    response, page = browser.get("/console/setup")
    assert response.status == 200
    text = html.unescape(page)
    for secret in (TWILIO_TOKEN, RELAY_PASSWORD, ROUTE_PASSWORD, SMPP_PASSWORD, URL_PASSWORD):
        assert secret not in text
    assert "https://rsvp:***@mail.hcm.gov.vn" in text  # the rest of the URL is still there
    assert text.count("đã đặt — ẩn") == 4  # relay, route, Twilio and SMPP passwords
    assert '"mailhub-relay"' in text and '"lmtp-user"' in text and '"twilio"' in text
    assert "[[delivery.routes]]" in text and '["@ubnd.hanoi.gov.vn"]' in text
    assert '["hcm.gov.vn"]' in text and "signed_documents" in text and "model-2026.1.toml" in text
    assert hub.config.source in text and "khởi động lại" in text  # where to change it, and when it applies
    assert "<input" not in page.split("<main", 1)[1].replace('name="csrf"', "")  # read-only: no form fields

    browser.cookies["mailhub_lang"] = "en"
    _, english = browser.get("/console/setup")
    assert "DKIM and settings" in english and "set — hidden" in english and RELAY_PASSWORD not in english


def test_every_section_of_the_config_is_listed():
    from mailhub.config import config_from_mapping

    config = config_from_mapping({"domains": {"official": [DOMAIN], "subdomains_of": [DOMAIN]}})
    names = [s.name for s in config_sections(config)]
    assert names[:3] == ["domains", "dkim", "policies"] and {"sms", "delivery", "scoring", "database"} <= set(names)
    domains = next(s for s in config_sections(config) if s.name == "domains")
    assert [(x.key, x.value, x.default) for x in domains.settings] == [
        ("official", '["hcm.gov.vn"]', False), ("subdomains_of", '["hcm.gov.vn"]', False)]


@pytest.mark.parametrize("email", [AN, "thuky@hcm.gov.vn", "nhansu@hcm.gov.vn"])
def test_other_roles_may_not_open_it(hub, email):
    response, page = hub.browser(email).get("/console/setup")
    assert response.status == 403 and "mailhub._domainkey" not in page


def test_signed_out_visitors_are_sent_to_sign_in(hub):
    response, _ = hub.browser().get("/console/setup")
    assert response.status == 303 and response.headers["Location"].startswith("/console/signin")
