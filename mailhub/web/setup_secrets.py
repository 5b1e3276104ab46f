"""Which configuration values are secrets, and how the console shows them: never.

Pure functions, so the rule is tested on its own. A value is hidden whole when it is a
:class:`~mailhub.config.Secret` or when its key names a secret (password, token, secret,
private or API key, credential, passphrase); a connection string keeps everything but its
password (``postgresql://u:pw@h/db`` → ``postgresql://u:***@h/db``), so the administrator
still sees which server and account are used.
"""
from __future__ import annotations

import re

from mailhub.config import Secret

HIDDEN = "***"

# Key names (the last dotted part, lower case) whose values are secrets: ``relay_password``,
# ``twilio_auth_token``, ``client_secret``, ``api_key``, ``private_key``... but not
# ``key_file`` or ``keys_dir``, which are paths.
_SECRET_KEY = re.compile(r"pass(word|wd|phrase)?$|pwd$|secret|token|credential|private|(^|_)key$",
                         re.IGNORECASE)
# ``scheme://user:password@host``: everything between the first ':' after the user name and the
# last '@' before the host is the password (a raw '@' inside it is hidden too).
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):(?P<password>[^\s]*)@(?P<host>[^@\s]*)$")
# ``password=...`` in a libpq key/value DSN or a URL query (``?password=...&sslmode=...``).
_PARAM_PASSWORD = re.compile(r"(?P<name>\b(?:password|passwd|pwd|secret|token)\s*=\s*)(?P<value>[^\s&;]+)",
                             re.IGNORECASE)


def is_secret_key(key: str) -> bool:
    """True when the name ``key`` (``sms.twilio_auth_token`` or ``twilio_auth_token``) says its
    value is a secret."""
    return bool(_SECRET_KEY.search(key.rpartition(".")[2]))


def hide_passwords_in(text: str) -> str:
    """``text`` with the password of a URL and any ``password=`` parameter replaced by ``***``;
    anything else unchanged."""
    match = _URL_PASSWORD.match(text)
    if match and match["password"]:
        text = f"{match['head']}:{HIDDEN}@{match['host']}"
    return _PARAM_PASSWORD.sub(lambda m: m["name"] + HIDDEN, text)


def is_hidden(key: str, value: object) -> bool:
    """True when the whole value of ``key`` (a string or a list of strings) must not be shown."""
    return isinstance(value, Secret) or (isinstance(value, (str, tuple)) and is_secret_key(key))


def shown(key: str, value: str) -> str:
    """What the console may show of the string ``value`` of ``key``: ``***`` for a secret
    that is set, ``""`` for one that is empty, else the value with passwords hidden."""
    if is_hidden(key, value):
        return HIDDEN if len(value) else ""
    return hide_passwords_in(value)
