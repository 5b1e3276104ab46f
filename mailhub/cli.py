"""The ``mailhub`` command: set up, run and administer a relay.

Every command loads the configuration (``--config``, else ``MAILHUB_CONFIG``, else
the shipped ``config/mailhub.toml``). A bad configuration, bad input or a refused
directory change prints one red ``error:`` line on stderr and exits 2; never a
traceback. Passwords are read from stdin (prompted twice without echo on a
terminal), never from the command line, where ``ps`` and shell history show them.
"""
from __future__ import annotations

import getpass
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import OperationalError

from mailhub import directory, passwords, schema, tlscert
from mailhub.cli_documents import documents_app
from mailhub.cli_invite import invite_app
from mailhub.cli_queue import queue_app
from mailhub.cli_scores import report, scores_app
from mailhub.cli_token import token_app
from mailhub.config import Config, load_config
from mailhub.errors import InputError, MailhubError
from mailhub.models import UnitKind

app = typer.Typer(help="mailhub: the city's mail submission relay.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
unit_app = typer.Typer(help="Administrative units.", no_args_is_help=True)
user_app = typer.Typer(help="Officials' accounts.", no_args_is_help=True)
alias_app = typer.Typer(help="Other addresses of one official.", no_args_is_help=True)
mailbox_app = typer.Typer(help="Shared unit mailboxes.", no_args_is_help=True)
directory_app = typer.Typer(help="The whole directory at once.", no_args_is_help=True)
dkim_app = typer.Typer(help="DKIM keys.", no_args_is_help=True)
for _sub, _name in ((unit_app, "unit"), (user_app, "user"), (alias_app, "alias"),
                    (mailbox_app, "mailbox"), (directory_app, "directory"), (dkim_app, "dkim"),
                    (queue_app, "queue"), (invite_app, "invite"), (token_app, "token"),
                    (documents_app, "documents"), (scores_app, "scores")):
    app.add_typer(_sub, name=_name)
app.command("report")(report)


class _State:
    """What the global options chose; the config and engine are opened on first use."""

    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None
        self._engine = None

    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path, os.environ)
        return self._config

    def engine(self):
        if self._engine is None:
            from mailhub.db import make_engine

            self._engine = make_engine(self.config().database_url)
            schema.require_current(self._engine)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def _state(ctx: typer.Context) -> _State:
    return ctx.find_root().obj


def _console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    # Piped output (scripts, tests): wide lines instead of wrapping names mid-word.
    wide = not stream.isatty() and not os.environ.get("COLUMNS")
    return Console(stderr=stderr, highlight=False, width=200 if wide else None)


def _table(title: str, columns: list[str], rows) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    _console().print(table)


def _say(text: str) -> None:
    _console().print(Text(text), soft_wrap=True)


def _read_password() -> str:
    """The new password from stdin: prompted twice without echo on a terminal, else one line."""
    if sys.stdin is None:
        raise InputError("password: no standard input to read it from")
    if sys.stdin.isatty():
        first = getpass.getpass("New password: ")
        if getpass.getpass("Repeat the password: ") != first:
            raise InputError("password: the two entries differ")
    else:
        first = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    return passwords.check_new_password(first)


@app.callback()
def _global(ctx: typer.Context, config: Optional[Path] = typer.Option(
        None, "--config", metavar="PATH",
        help="Configuration file (default: $MAILHUB_CONFIG, else the shipped config/mailhub.toml).")
        ) -> None:
    ctx.obj = _State(config)
    ctx.call_on_close(ctx.obj.close)


# ---- init and serve ---------------------------------------------------------

@app.command()
def init(ctx: typer.Context) -> None:
    """Create what a relay needs; safe to run again (reports what was already there)."""
    from mailhub.dkimkeys import dns_records, ensure_domain_keys

    cfg = _state(ctx).config()
    rows = []
    if cfg.home.is_dir():
        rows.append(("home folder", cfg.home, "already there"))
    else:
        cfg.home.mkdir(parents=True, mode=0o700)
        cfg.home.chmod(0o700)  # mkdir's mode is filtered by the umask
        rows.append(("home folder", cfg.home, "created"))
    from sqlalchemy.engine import make_url

    where = make_url(cfg.database_url).render_as_string(hide_password=True)
    head = schema.head_revision()
    migrated = schema.upgrade(cfg.database_url)
    rows.append(("database", where, f"migrated to {head}" if migrated else f"already at {head}"))
    if cfg.tls.cert_file:
        tlscert.server_context(cfg.tls_cert_path, cfg.tls_key_path)  # fails if unusable
        rows.append(("TLS certificate", cfg.tls_cert_path, "configured (already there)"))
    else:
        made = tlscert.ensure_self_signed(cfg.tls_cert_path, cfg.tls_key_path, cfg.server.hostname)
        rows.append(("TLS certificate (self-signed)", cfg.tls_cert_path, "created" if made else "already there"))
    for domain in cfg.domains.official:
        made = ensure_domain_keys(cfg.dkim_keys_dir, domain, cfg.dkim.selector, cfg.dkim.ed25519)
        rows.append((f"DKIM keys for {domain}", cfg.dkim_keys_dir, "created" if made else "already there"))
    from invites.rsvp import ensure_key

    existed = cfg.rsvp_key_path.exists()
    ensure_key(cfg.rsvp_key_path)
    rows.append(("RSVP link key", cfg.rsvp_key_path, "already there" if existed else "created"))
    _table("mailhub init", ["what", "where", "status"], rows)
    _say("\nPublish these DNS TXT records (zone-file lines):")
    for domain in cfg.domains.official:
        for line in dns_records(cfg.dkim_keys_dir, domain, cfg.dkim.selector, cfg.dkim.ed25519):
            typer.echo(line)


class _Only(str, Enum):
    submission = "submission"
    delivery = "delivery"


@app.command()
def serve(ctx: typer.Context, only: Optional[_Only] = typer.Option(
        None, "--only", help="Run only the SMTP front end or only the delivery worker.")) -> None:
    """Run the relay until SIGTERM or Ctrl-C."""
    from mailhub.app import serve as run

    run(_state(ctx).config(), only=only.value if only else None)


# ---- directory --------------------------------------------------------------

@unit_app.command("add")
def unit_add(ctx: typer.Context, code: str, name: str = typer.Option(..., "--name"),
             parent: Optional[str] = typer.Option(None, "--parent", help="Code of the parent unit."),
             kind: UnitKind = typer.Option(UnitKind.OTHER.value, "--kind", case_sensitive=False)) -> None:
    """Add a unit (Sở, Quận, Phường...)."""
    unit = directory.add_unit(_state(ctx).engine(), code, name, parent=parent, kind=kind.value)
    _say(f"created unit {unit.code}: {unit.name}")


@unit_app.command("list")
def unit_list(ctx: typer.Context) -> None:
    rows = [(u.code, u.name, u.kind, u.parent_code, n) for u, n in directory.list_units(_state(ctx).engine())]
    _table("Units", ["code", "name", "kind", "parent", "officials"], rows)


@user_app.command("add")
def user_add(ctx: typer.Context, email: str, name: str = typer.Option(..., "--name"),
             unit: str = typer.Option(..., "--unit"),
             role: Optional[list[str]] = typer.Option(None, "--role", help="Repeat for several roles."),
             phone: Optional[str] = typer.Option(None, "--phone")) -> None:
    """Add an official. The password is read from stdin, never from the command line."""
    state = _state(ctx)
    address = directory.official_email(email, state.config().domains)
    if directory.find_official(state.engine(), address) is not None:
        raise InputError(f"{address}: already exists (use `mailhub user passwd` to change the password)")
    official = directory.add_official(state.engine(), state.config().domains, address, name, unit,
                                      role or None, phone, _read_password())
    _say(f"created official {official.email} ({official.full_name}, {official.unit_code})")


@user_app.command("passwd")
def user_passwd(ctx: typer.Context, email: str) -> None:
    """Set an official's password, read from stdin."""
    state = _state(ctx)
    if directory.find_official(state.engine(), email) is None:
        raise InputError(f"{email}: no such official")
    directory.set_password(state.engine(), email, _read_password())
    _say(f"password set for {email.strip().lower()}")


@user_app.command("disable")
def user_disable(ctx: typer.Context, email: str) -> None:
    """Stop an official (someone who left): no sign-in, no sending; their console sessions end.
    Their past usage stays for the scores."""
    changed = directory.set_active(_state(ctx).engine(), email, False)
    _say(f"{email.strip().lower()}: {'disabled' if changed else 'already disabled'}")


@user_app.command("enable")
def user_enable(ctx: typer.Context, email: str) -> None:
    """Let a disabled official sign in and send again."""
    changed = directory.set_active(_state(ctx).engine(), email, True)
    _say(f"{email.strip().lower()}: {'enabled' if changed else 'already enabled'}")


@user_app.command("list")
def user_list(ctx: typer.Context, unit: Optional[str] = typer.Option(None, "--unit")) -> None:
    officials = directory.list_officials(_state(ctx).engine(), unit)
    rows = [(o.email, o.full_name, o.unit_code, o.roles.replace(",", " "), o.phone,
             "yes" if o.password_hash else "no", "yes" if o.active else "no") for o in officials]
    _table("Officials", ["email", "name", "unit", "roles", "phone", "password", "active"], rows)


@alias_app.command("add")
def alias_add(ctx: typer.Context, address: str, to: str = typer.Option(..., "--to")) -> None:
    """Give an official another address they may send as."""
    state = _state(ctx)
    mailbox = directory.add_alias(state.engine(), state.config().domains, address, to)
    _say(f"created alias {mailbox.address} for {to.strip().lower()}")


@mailbox_app.command("add")
def mailbox_add(ctx: typer.Context, address: str, unit: str = typer.Option(..., "--unit"),
                name: str = typer.Option(..., "--name"),
                grant: Optional[list[str]] = typer.Option(None, "--grant", help="Official allowed to send as it.")
                ) -> None:
    """Add a shared unit mailbox."""
    state = _state(ctx)
    mailbox = directory.add_shared_mailbox(state.engine(), state.config().domains, address, unit,
                                           name, grant or [])
    _say(f"created shared mailbox {mailbox.address} ({mailbox.display_name})")


@mailbox_app.command("grant")
def mailbox_grant(ctx: typer.Context, address: str, email: str) -> None:
    """Let an official send as a shared mailbox."""
    added = directory.grant(_state(ctx).engine(), address, email)
    _say(f"{email} may send as {address}" + ("" if added else " (already)"))


@directory_app.command("import")
def directory_import(ctx: typer.Context, file: Path) -> None:
    """Import units and officials from a CSV file (all rows or none)."""
    from mailhub.csvimport import import_directory

    state = _state(ctx)
    report = import_directory(state.engine(), file, state.config().domains)
    _table(f"Imported {file}", ["", "created", "updated", "unchanged"], [
        ("units", len(report.units_created), len(report.units_updated), ""),
        ("officials", len(report.officials_created), len(report.officials_updated),
         report.officials_unchanged)])
    if report.officials_created:
        _say("New officials have no password yet: set one with `mailhub user passwd EMAIL`.")


@dkim_app.command("dns")
def dkim_dns(ctx: typer.Context) -> None:
    """Print the DNS TXT records to publish for every official domain."""
    from mailhub.dkimkeys import dns_records

    cfg = _state(ctx).config()
    for domain in cfg.domains.official:
        for line in dns_records(cfg.dkim_keys_dir, domain, cfg.dkim.selector, cfg.dkim.ed25519):
            typer.echo(line)


# ---- entry point ------------------------------------------------------------

def _error(message: str) -> None:
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    for line in message.splitlines() or [""]:
        console.print(Text(f"error: {line}", style="red"))


def main(argv: list[str] | None = None) -> None:
    for stream in (sys.stdout, sys.stderr):
        if stream is not None and (stream.encoding or "").lower().replace("-", "") != "utf8":
            stream.reconfigure(errors="replace")  # a non-UTF-8 terminal: '?' rather than a crash
    try:
        app(args=argv, prog_name="mailhub")
    except MailhubError as exc:
        _error(str(exc))
        sys.exit(2)
    except OperationalError as exc:
        _error(f"database: {str(exc.orig).strip().splitlines()[0]}")
        sys.exit(1)
    except OSError as exc:
        _error(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
        sys.exit(1)
