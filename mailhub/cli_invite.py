"""``mailhub invite``: meetings and their invitations, for secretaries' scripts and
the IT department (the web console comes later).

- ``create FILE.toml`` — check a meeting file against the directory and store it;
- ``send ID`` — queue the invitations (emails through the relay's rules, SMS),
  with a progress bar;
- ``status ID [--json]`` — per attendee: email and SMS state, the answer.

Errors are one red line per problem (``hop.toml: end: must be after start``), exit 2.
"""
from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlmodel import Session

from mailhub.models import Meeting

invite_app = typer.Typer(help="Meetings and their invitations (email and SMS).", no_args_is_help=True)


def _root(ctx: typer.Context):
    return ctx.find_root().obj


@invite_app.command("create")
def create(ctx: typer.Context, file: Path = typer.Argument(..., help="The meeting, as a TOML file")) -> None:
    """Store a meeting described in FILE (see docs/invites.md); prints its id."""
    from invites.spec import load_spec
    from invites.store import create_meeting

    state = _root(ctx)
    created = create_meeting(state.engine(), state.config().domains, load_spec(file))
    typer.echo(f"meeting {created.meeting_id} created: {created.officials} official(s), {created.guests} "
               f"guest(s); {created.without_email} without email, {created.without_phone} without phone")
    typer.echo(f"uid {created.uid}")


@invite_app.command("send")
def send(ctx: typer.Context, meeting_id: int = typer.Argument(..., help="The meeting's id")) -> None:
    """Queue the invitation email and SMS of every attendee not reached yet."""
    from invites.issue import issue
    from invites.rsvp import ensure_key
    from mailhub.app import load_signer

    state = _root(ctx)
    config = state.config()
    signer, key = load_signer(config), ensure_key(config.rsvp_key_path)
    columns = (TextColumn("gửi giấy mời / sending"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("send", total=None)
        report = issue(state.engine(), config, signer, key, meeting_id,
                       progress=lambda done, total: progress.update(task, completed=done, total=total))
    typer.echo(f"meeting {meeting_id}: {report.emails} email(s) and {report.sms} SMS queued")
    for address, reply in report.refused:
        typer.echo(f"refused: {address}: {reply}")
    for name in report.no_channel:
        typer.echo(f"not reachable (no email, no mobile number): {name}")


@invite_app.command("status")
def status(ctx: typer.Context, meeting_id: int = typer.Argument(..., help="The meeting's id"),
           as_json: bool = typer.Option(False, "--json", help="One JSON document for scripts")) -> None:
    """Per attendee: email and SMS state, and the answer."""
    from invites.tracking import meeting_status
    from mailhub.errors import InputError

    engine = _root(ctx).engine()
    with Session(engine) as session:
        meeting = session.get(Meeting, meeting_id)
        if meeting is None:
            raise InputError(f"no meeting {meeting_id}")
    rows = [status.as_dict() for status in meeting_status(engine, meeting_id)]
    for r in rows:
        r["email_state"], r["sms_state"] = r["email_state"] or "-", r["sms_state"] or "-"
    if as_json:
        typer.echo(json.dumps({"meeting": meeting_id, "uid": meeting.uid, "title": meeting.title,
                               "status": meeting.status, "sequence": meeting.sequence, "attendees": rows},
                              ensure_ascii=False, indent=2))
        return
    table = Table(title=f"{meeting.title} ({meeting.status}, sequence {meeting.sequence})", title_justify="left")
    for column in ("attendee", "email", "SMS", "answer"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["name"], f"{r['email'] or '-'}: {r['email_state']}", f"{r['phone'] or '-'}: {r['sms_state']}",
                      r["answer"])
    Console(highlight=False).print(table)
