"""The Jinja2 environment for every message mailhub writes itself.

Templates live in the repository's top-level ``templates/`` folder (found the
way :mod:`mailhub.config` finds ``config/``), one sub-folder per kind of
message (``dsn/``, later ``invites/``). The environment is built once per
process and shared: it holds no per-message state.

Settings, and why:

- ``StrictUndefined``: a misspelt variable raises instead of rendering as an
  empty string into a message that goes to an official;
- autoescape only for ``.html`` / ``.html.j2``: plain-text mail and SMS are not
  HTML, escaping ``<`` in an address there would corrupt it;
- ``keep_trailing_newline``: a text template's last line ends like the others;
- ``trim_blocks`` / ``lstrip_blocks``: a line holding only ``{% ... %}`` leaves
  no blank line or indentation behind, so text templates read like their output.

Filters: ``vn_time`` (an aware datetime as Vietnam wall-clock time).
"""
from __future__ import annotations

import functools
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jinja2

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"

# Asia/Ho_Chi_Minh has been UTC+7 without daylight saving since 1975 (tz database),
# so a fixed offset is exact for every date mailhub handles and needs no tz data
# on the host; the "(GMT+7)" label below says the same thing.
VIETNAM = timezone(timedelta(hours=7), "ICT")


def vn_time(moment: datetime) -> str:
    """``moment`` as ``dd/mm/yyyy HH:MM (GMT+7)``, the way Vietnamese offices write times.

    Checks that ``moment`` is aware: a naive datetime has no defined instant and
    ``astimezone`` would silently read it as the host's local time, so it raises
    ``ValueError`` instead.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("vn_time needs an aware datetime, got a naive one")
    return moment.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M") + " (GMT+7)"


@functools.cache
def environment() -> jinja2.Environment:
    """The process's one template environment, loading from :data:`TEMPLATES_DIR`.

    Trusts the template files (they are part of the repository, not user input);
    values passed to ``render`` are escaped only in HTML templates, so a caller that
    puts outside text into a plain-text template must clean it first.
    """
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"),
                                            disabled_extensions=(), default_for_string=False,
                                            default=False),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["vn_time"] = vn_time
    return env
