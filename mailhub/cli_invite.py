"""``mailhub invite``: meetings and their invitations, for secretaries' scripts and
the IT department (the web console comes later).

- ``create [FILE.toml] [--title ... --start ...]`` — check a meeting (a file, flags,
  or a file with flags overriding it) against the directory and store it;
- ``send ID`` — queue the invitations (emails through the relay's rules, SMS),
  with a progress bar;
- ``update ID [FILE.toml] [--start ... --add-attendee ...]`` — change it: the
  update goes out to everyone reached (SEQUENCE + 1);
- ``cancel ID [--attendee ADDRESS|PHONE ...]`` — cancel the meeting, or withdraw
  some people's invitations;
- ``remind ID [--all]`` — a reminder now, to those who have not answered (or all);
- ``status ID [--json]`` — per attendee: email and SMS state, the answer.

Errors are one red line per problem (``hop.toml: end: must be after start``), exit 2.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlmodel import Session

from mailhub.models import Meeting

invite_app = typer.Typer(help="Meetings and their invitations (email and SMS).", no_args_is_help=True)


def _root(ctx: typer.Context):
    return ctx.find_root().obj


_FILE = typer.Argument(None, help="The meeting, as a TOML file (see docs/invites.md)")
_TITLE = typer.Option(None, "--title", help="Nội dung / title")
_AGENDA = typer.Option(None, "--agenda", help="Chương trình (lines separated by \\n in a file)")
_LOCATION = typer.Option(None, "--location", help="Địa điểm / place")
_START = typer.Option(None, "--start", help="Vietnam time, 2026-12-03 08:00 or 03/12/2026 08:00")
_END = typer.Option(None, "--end", help="Vietnam time")
_DURATION = typer.Option(None, "--duration", help="Minutes (instead of --end)")
_CHAIR = typer.Option(None, "--chair", help="Chủ trì / chair")


def _mapping(file: Path | None, read, flags: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The file's fields (raw TOML) with the flags given on top, and the source name."""
    data = dict(read(file)) if file is not None else {}
    data.update({key: value for key, value in flags.items() if value not in (None, [], ())})
    return data, str(file) if file is not None else "command line"


def _send_progress(label: str):
    """A progress bar redrawn by :func:`_advance` only: without rich's refresh thread the
    command stays one thread, so a large send's workers can be forked (invites.workers)."""
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    return Progress(*columns, console=Console(stderr=True), transient=True, auto_refresh=False)


def _advance(progress: Progress, task):
    return lambda done, total: progress.update(task, completed=done, total=total, refresh=True)


def _tools(state):
    from invites.rsvp import ensure_key
    from mailhub.app import load_signer

    config = state.config()
    return state.engine(), config, load_signer(config), ensure_key(config.rsvp_key_path)


def _print_report(report) -> None:
    for address, reply in report.refused:
        typer.echo(f"refused: {address}: {reply}")
    for name in report.no_channel:
        typer.echo(f"not reachable (no email, no mobile number): {name}")


@invite_app.command("create")
def create(ctx: typer.Context, file: Optional[Path] = _FILE, title: Optional[str] = _TITLE,
           agenda: Optional[str] = _AGENDA, location: Optional[str] = _LOCATION, start: Optional[str] = _START,
           end: Optional[str] = _END, duration: Optional[int] = _DURATION, chair: Optional[str] = _CHAIR,
           unit: Optional[str] = typer.Option(None, "--unit", help="The organizing unit's code"),
           secretary: Optional[str] = typer.Option(None, "--secretary", help="The issuing secretary's address"),
           attendee: list[str] = typer.Option([], "--attendee", help="An official's address (repeat)"),
           invite_unit: list[str] = typer.Option([], "--invite-unit", help="Invite a whole unit (repeat)")) -> None:
    """Store a meeting described in FILE and/or by flags; prints its id."""
    from invites.spec import read_toml, spec_from_mapping
    from invites.store import create_meeting

    state = _root(ctx)
    data, source = _mapping(file, read_toml, dict(
        title=title, agenda=agenda, location=location, start=start, end=end, duration_minutes=duration,
        chair=chair, unit=unit, secretary=secretary, attendees=attendee, units=invite_unit))
    created = create_meeting(state.engine(), state.config().domains, spec_from_mapping(data, source))
    typer.echo(f"meeting {created.meeting_id} created: {created.officials} official(s), {created.guests} "
               f"guest(s); {created.without_email} without email, {created.without_phone} without phone")
    typer.echo(f"uid {created.uid}")


@invite_app.command("send")
def send(ctx: typer.Context, meeting_id: int = typer.Argument(..., help="The meeting's id")) -> None:
    """Queue the invitation email and SMS of every attendee not reached yet."""
    from invites.issue import issue

    engine, config, signer, key = _tools(_root(ctx))
    with _send_progress("gửi giấy mời / sending") as progress:
        task = progress.add_task("send", total=None)
        report = issue(engine, config, signer, key, meeting_id,
                       progress=_advance(progress, task))
    typer.echo(f"meeting {meeting_id}: {report.emails} email(s) and {report.sms} SMS queued")
    _print_report(report)


@invite_app.command("update")
def update_(ctx: typer.Context, meeting_id: int = typer.Argument(..., help="The meeting's id"),
            file: Optional[Path] = _FILE, title: Optional[str] = _TITLE, agenda: Optional[str] = _AGENDA,
            location: Optional[str] = _LOCATION, start: Optional[str] = _START, end: Optional[str] = _END,
            duration: Optional[int] = _DURATION, chair: Optional[str] = _CHAIR,
            add_attendee: list[str] = typer.Option([], "--add-attendee", help="Invite an official too (repeat)"),
            add_unit: list[str] = typer.Option([], "--add-unit", help="Invite a whole unit too (repeat)")) -> None:
    """Change a meeting; once sent, everyone reached gets the update (a change of
    time or place also asks everyone to answer again)."""
    from invites.changes import update_meeting
    from invites.spec import read_toml, changes_from_mapping

    state = _root(ctx)
    data, source = _mapping(file, read_toml, dict(
        title=title, agenda=agenda, location=location, start=start, end=end, duration_minutes=duration,
        chair=chair, add_attendees=add_attendee, add_units=add_unit))
    changes = changes_from_mapping(data, source)
    engine, config, signer, key = _tools(state)
    with _send_progress("gửi cập nhật / sending the update") as progress:
        task = progress.add_task("update", total=None)
        updated = update_meeting(engine, config, signer, key, meeting_id, changes,
                                 progress=_advance(progress, task))
    what = ", ".join(updated.changed) or "nothing"
    typer.echo(f"meeting {meeting_id}: changed {what}; {updated.added} person(s) added; sequence {updated.sequence}")
    if updated.answers_reset:
        typer.echo("time or place changed: every answer is reset, attendees are asked again")
    typer.echo(f"{updated.report.emails} email(s) and {updated.report.sms} SMS queued")
    _print_report(updated.report)


@invite_app.command("cancel")
def cancel(ctx: typer.Context, meeting_id: int = typer.Argument(..., help="The meeting's id"),
           attendee: list[str] = typer.Option([], "--attendee",
                                              help="Withdraw only this person's invitation: address or phone "
                                                   "(repeat)")) -> None:
    """Cancel the meeting (everyone reached is told), or only some invitations."""
    from invites.changes import cancel_attendees, cancel_meeting

    engine, config, signer, key = _tools(_root(ctx))
    if attendee:
        report = cancel_attendees(engine, config, signer, key, meeting_id, attendee)
        typer.echo(f"meeting {meeting_id}: {len(attendee)} invitation(s) withdrawn")
    else:
        with _send_progress("gửi thông báo hủy / cancelling") as progress:
            task = progress.add_task("cancel", total=None)
            report = cancel_meeting(engine, config, signer, key, meeting_id,
                                    progress=_advance(progress, task))
        typer.echo(f"meeting {meeting_id} cancelled")
    typer.echo(f"{report.emails} email(s) and {report.sms} SMS queued")
    _print_report(report)


@invite_app.command("remind")
def remind(ctx: typer.Context, meeting_id: int = typer.Argument(..., help="The meeting's id"),
           everyone: bool = typer.Option(False, "--all", help="Remind everyone, not only those who have "
                                                             "not answered")) -> None:
    """Ask `mailhub serve` to send a reminder now."""
    from invites.reminders import remind_now

    remind_now(_root(ctx).engine(), meeting_id, "all" if everyone else "unanswered")
    typer.echo(f"meeting {meeting_id}: reminder to {'everyone' if everyone else 'those who have not answered'} "
               "scheduled now; mailhub serve sends it within seconds")


@invite_app.command("status")
def status(ctx: typer.Context, meeting_id: int = typer.Argument(..., help="The meeting's id"),
           as_json: bool = typer.Option(False, "--json", help="One JSON document for scripts")) -> None:
    """Per attendee: email and SMS state, and the answer."""
    from invites.spec import VIETNAM
    from invites.tracking import meeting_proposals, meeting_status
    from mailhub.errors import InputError

    engine = _root(ctx).engine()
    with Session(engine) as session:
        meeting = session.get(Meeting, meeting_id)
        if meeting is None:
            raise InputError(f"no meeting {meeting_id}")
    rows = [status.as_dict() for status in meeting_status(engine, meeting_id)]
    proposals = meeting_proposals(engine, meeting_id)
    for r in rows:
        r["email_state"], r["sms_state"] = r["email_state"] or "-", r["sms_state"] or "-"
    if as_json:
        typer.echo(json.dumps({"meeting": meeting_id, "uid": meeting.uid, "title": meeting.title,
                               "status": meeting.status, "sequence": meeting.sequence, "attendees": rows,
                               "proposals": [p.as_dict() for p in proposals]},
                              ensure_ascii=False, indent=2))
        return
    table = Table(title=f"{meeting.title} ({meeting.status}, sequence {meeting.sequence})", title_justify="left")
    for column in ("attendee", "email", "SMS", "answer"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["name"], f"{r['email'] or '-'}: {r['email_state']}", f"{r['phone'] or '-'}: {r['sms_state']}",
                      r["answer"])
    Console(highlight=False).print(table)
    for p in proposals:  # COUNTER: shown to the secretary, never applied
        when = (f"{p.start.astimezone(VIETNAM):%H:%M %d/%m/%Y} - {p.end.astimezone(VIETNAM):%H:%M %d/%m/%Y}"
                if p.start and p.end else "(no time)")
        typer.echo(f"đề xuất thời gian khác / proposed: {p.name} <{p.email}>: {when}"
                   + (f" ({p.comment})" if p.comment else ""))
