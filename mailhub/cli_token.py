"""``mailhub token``: API tokens for secretaries' tools (the JSON API, docs/api.md).

- ``create EMAIL [--label TEXT] [--days 365]`` — prints the token, once: only its
  hash is kept, so it cannot be shown again (revoke it and create another);
- ``list [--email EMAIL] [--json]`` — the tokens' ids, owners, labels and dates,
  never the tokens;
- ``revoke ID`` — the token stops working at once.

Errors are one red line, exit 2, as for every ``mailhub`` command.
"""
from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mailhub.models import utcnow

token_app = typer.Typer(help="API tokens for the JSON API (secretaries' tools).", no_args_is_help=True)


def _engine(ctx: typer.Context):
    return ctx.find_root().obj.engine()


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _day(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d")


@token_app.command("create")
def create(ctx: typer.Context, email: Annotated[str, typer.Argument(help="The official the token acts for")],
           label: Annotated[str, typer.Option("--label", help="What the token is for")] = "",
           days: Annotated[int, typer.Option("--days", help="Days it stays valid; 0: until revoked")] = 365
           ) -> None:
    """Create a token and print it once: store it in the tool's secret settings now."""
    from mailhub.directory import find_official
    from mailhub.tokens import issue_token

    engine = _engine(ctx)
    issued = issue_token(engine, email, label, days or None)
    expiry = f"expires {_day(issued.expires_at)}" if issued.expires_at else "never expires (revoke it when done)"
    typer.echo(f"token {issued.id} for {issued.official_email}, {expiry}")
    typer.echo(issued.token.reveal())
    typer.echo("Mã chỉ hiển thị một lần này. / This token is shown only once: it cannot be shown again.",
               err=True)
    official = find_official(engine, issued.official_email)
    if official is not None and not {"secretary", "admin"} & set(official.role_list):
        typer.echo(f"note: {issued.official_email} has neither the secretary nor the admin role: "
                   "the meetings API will answer 403", err=True)


@token_app.command("list")
def list_(ctx: typer.Context,
          email: Annotated[Optional[str], typer.Option("--email", help="Only this official's tokens")] = None,
          as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document")] = False) -> None:
    """The tokens, newest first (ids, owners, labels, dates; never the tokens)."""
    from mailhub.tokens import list_tokens

    now = utcnow()
    tokens = list_tokens(_engine(ctx), email)
    if as_json:
        typer.echo(json.dumps({"tokens": [
            {"id": t.id, "official": t.official_email, "label": t.label, "state": t.state(now),
             "created_at": _iso(t.created_at), "last_used_at": _iso(t.last_used_at),
             "expires_at": _iso(t.expires_at), "revoked_at": _iso(t.revoked_at)} for t in tokens]},
            ensure_ascii=False, indent=2))
        return
    table = Table(title="API tokens", title_justify="left")
    for column in ("id", "official", "label", "state", "created", "last used", "expires"):
        table.add_column(column)
    for t in tokens:
        table.add_row(str(t.id), Text(t.official_email), Text(t.label), t.state(now), _day(t.created_at),
                      _day(t.last_used_at), _day(t.expires_at) or "never")
    wide = not sys.stdout.isatty() and not os.environ.get("COLUMNS")  # piped: no wrapping mid-word
    Console(highlight=False, width=200 if wide else None).print(table)


@token_app.command("revoke")
def revoke(ctx: typer.Context, token_id: Annotated[int, typer.Argument(metavar="ID", help="The token's id")]) -> None:
    """Revoke a token: it is refused from now on."""
    from mailhub.tokens import revoke_token

    changed = revoke_token(_engine(ctx), token_id)
    typer.echo(f"token {token_id} revoked" + ("" if changed else " (already)"))
