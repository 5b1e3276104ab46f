"""``mailhub documents``: document submissions and their digital signatures.

- ``list [--days 7] [--outcome O] [--official EMAIL] [--limit 200] [--json]`` — the
  submissions ``[[documents.rules]]`` covers, newest first: when, who, the outcome
  (signed-valid, signed-invalid, unsigned), the signer, accepted or refused and why.
"""
from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mailhub.errors import InputError
from mailhub.models import utcnow
from mailhub.signatures.outcome import SignatureOutcome
from mailhub.templating import VIETNAM

documents_app = typer.Typer(help="Digitally signed documents sent to the addresses of [[documents.rules]].",
                            no_args_is_help=True)
OUTCOMES = tuple(o.value for o in SignatureOutcome)


@documents_app.command("list")
def list_(ctx: typer.Context,
          days: Annotated[float, typer.Option("--days", help="How far back, in days")] = 7,
          outcome: Annotated[Optional[str], typer.Option("--outcome", help=" | ".join(OUTCOMES))] = None,
          official: Annotated[Optional[str], typer.Option("--official", help="Only this official's")] = None,
          limit: Annotated[int, typer.Option("--limit", help="At most this many")] = 200,
          as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document")] = False) -> None:
    """Recent document submissions and their signature outcome, newest first."""
    from mailhub.signatures.submissions import outcome_counts, recent_submissions

    if outcome is not None and outcome not in OUTCOMES:
        raise InputError(f"--outcome: expected one of {', '.join(OUTCOMES)}, got {outcome!r}")
    if days <= 0 or limit <= 0:
        raise InputError("--days and --limit: must be more than 0")
    rows = recent_submissions(ctx.find_root().obj.engine(), utcnow() - timedelta(days=days), outcome=outcome,
                              official=official, limit=limit)
    counts = outcome_counts(rows)
    if as_json:
        typer.echo(json.dumps({"counts": counts, "submissions": [
            {"at": r.at.isoformat(timespec="seconds"), "official": r.official, "unit": r.unit,
             "outcome": r.outcome, "signer": r.signer, "accepted": r.accepted, "queue_id": r.queue_id,
             "recipients": list(r.recipients), "reason": r.reason} for r in rows]}, ensure_ascii=False, indent=2))
        return
    table = Table(title=f"Document submissions, last {days:g} days", title_justify="left")
    for column in ("time (GMT+7)", "official", "outcome", "signer", "result", "recipients"):
        table.add_column(column)
    for r in rows:
        result = "accepted" if r.accepted else f"refused: {r.reason[:60]}"
        table.add_row(r.at.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M"), Text(r.official or "-"), r.outcome,
                      Text(r.signer or "-"), Text(result), Text(", ".join(r.recipients) or "-"))
    wide = not sys.stdout.isatty() and not os.environ.get("COLUMNS")  # piped: no wrapping mid-word
    Console(highlight=False, width=200 if wide else None).print(table)
    typer.echo(f"{len(rows)} submission(s): " + ", ".join(f"{k} {v}" for k, v in counts.items()))
