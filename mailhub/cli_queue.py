"""``mailhub queue``: the delivery queue for the operator (Postfix's mailq, postqueue, postsuper).

Each command prints a table, or with ``--json`` one JSON document for scripts
(stable keys, ISO 8601 UTC times, no colour). The SQL is in :mod:`mailhub.queue_admin`.

What it shows is what an operator needs and no more: envelopes, states, replies
and the header block; never a message body (officials' mail is not the IT
department's to read). Text that came from outside (addresses, headers, remote
replies) is shown with control characters escaped, so it cannot drive the terminal.

Exit status: 0 done; 1 refused (unknown id, a message in flight, a bulk change
without ``--yes``); 2 bad input (one red line naming the option).
"""
from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from typing import Annotated, NoReturn, Optional

import idna
import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mailhub.errors import InputError
from mailhub.models import RecipientState, utcnow
from mailhub.queue_terms import domain_spellings, escaped, header_fields, parse_duration

queue_app = typer.Typer(help="The delivery queue: list, show, retry, hold, release, delete, stats.",
                        no_args_is_help=True)

STATE_NAMES = tuple(s.value for s in RecipientState)
_PREVIEW_ROWS = 50

States = Annotated[Optional[list[str]], typer.Option(
    "--state", metavar="STATE", show_default=False,
    help="queued, sending, deferred, delivered, bounced, held; repeat or separate with commas "
         "(default: all but delivered and bounced).")]
Sender = Annotated[Optional[str], typer.Option(
    "--sender", metavar="ADDR", help="Envelope sender, any case; <> is the null sender.")]
Domain = Annotated[Optional[str], typer.Option(
    "--recipient-domain", metavar="DOMAIN", help="Recipient domain, any case; IDN in Unicode or xn--.")]
Older = Annotated[Optional[str], typer.Option(
    "--older-than", metavar="DURATION", help="Messages older than this: 30m, 4h, 2d, 1w.")]
Newer = Annotated[Optional[str], typer.Option(
    "--newer-than", metavar="DURATION", help="Messages newer than this.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
Yes = Annotated[bool, typer.Option("--yes", help="Needed to change a selection made without IDs.")]
Ids = Annotated[Optional[list[str]], typer.Argument(metavar="ID", show_default=False,
                                                    help="Message ids, or unique prefixes of 8+ hex digits.")]
All = Annotated[bool, typer.Option("--all", help="Select every message still in the queue.")]


# ---- input ------------------------------------------------------------------

def _filters(state: list[str] | None, sender: str | None, domain: str | None,
             older: str | None, newer: str | None):
    """The Filters of the selection options, and whether any was given."""
    from mailhub.queue_admin import NOT_FINAL, Filters

    states: list[str] = []
    for value in (v.strip().lower() for given in state or [] for v in given.split(",")):
        if value not in STATE_NAMES:
            raise InputError(f"--state: unknown state {value!r}; expected {', '.join(STATE_NAMES)}")
        states.append(value)
    if sender is not None:
        sender = sender.strip().removeprefix("<").removesuffix(">")
    filters = Filters(states=tuple(dict.fromkeys(states)) or NOT_FINAL, sender=sender,
                      domains=domain_spellings(domain) if domain is not None else (),
                      older_than=parse_duration(older, "--older-than") if older is not None else None,
                      newer_than=parse_duration(newer, "--newer-than") if newer is not None else None)
    return filters, any(v is not None for v in (state, sender, domain, older, newer))


# ---- output -----------------------------------------------------------------

def _engine(ctx: typer.Context):
    return ctx.find_root().obj.engine()


def _console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and not os.environ.get("COLUMNS")  # as mailhub.cli: no wrapping in pipes
    return Console(stderr=stderr, highlight=False, width=200 if wide else None)


def _clean(value: object) -> Text:
    return Text(escaped(str(value)))


def _say(text: str) -> None:
    _console().print(_clean(text), soft_wrap=True)


def _fail(message: str, code: int = 1) -> NoReturn:
    console = _console(stderr=True)
    for line in message.splitlines():
        console.print(_clean(f"error: {line}"), style="red", soft_wrap=True)
    raise typer.Exit(code)


def _table(title: str, columns: list[str], rows: list[tuple], sections: set[int] = frozenset()) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, min_width=len(title))
    for column in columns:  # an id must stay whole to be copied; nothing else is cut short
        table.add_column(column, no_wrap=column == "message", overflow="fold",
                         min_width=18 if "recipient" in column else None)
    for i, row in enumerate(rows):
        cells = [_clean("" if v is None else v) for v in row]
        table.add_row(*cells, *[""] * (len(columns) - len(cells)), end_section=i in sections)
    return table


def _json(document: dict) -> None:
    typer.echo(json.dumps(document, ensure_ascii=False, indent=2))


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _age(seconds: float) -> str:
    """``45s``, ``12m``, ``3h 12m``, ``2d 4h``."""
    s = max(0, int(seconds))
    days, hours, minutes = s // 86400, s % 86400 // 3600, s % 3600 // 60
    return f"{days}d {hours}h" if days else f"{hours}h {minutes}m" if hours else f"{minutes}m" if minutes else f"{s}s"


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _next(r, now: datetime, brief: bool = False) -> str:
    """When a recipient is tried next; ``brief`` for the list, where width is short."""
    when = (lambda t: t.strftime("%m-%d %H:%M UTC")) if brief else _when
    if r.state == RecipientState.SENDING.value:
        if r.lease_until is not None and r.lease_until >= now:
            return "in flight" if brief else f"in flight, lease until {_when(r.lease_until)}"
        return "due (lease ran out)"
    if r.state in ("queued", "deferred"):
        return "due" if r.next_attempt_at <= now else when(r.next_attempt_at)
    return ""


def _recipient_json(r) -> dict:
    return {"address": r.address, "state": r.state, "attempts": r.attempts,
            "next_attempt_at": _iso(r.next_attempt_at), "lease_until": _iso(r.lease_until),
            "last_reply": r.last_reply, "notified": r.notified}


def _message_json(m, now: datetime) -> dict:
    return {"id": m.id, "kind": m.kind, "sender": m.sender, "size": m.size, "created_at": _iso(m.created_at),
            "age_seconds": int((now - m.created_at).total_seconds()),
            "recipients": [_recipient_json(r) for r in m.recipients]}


# ---- commands -----------------------------------------------------------------

@queue_app.command("list")
def queue_list(ctx: typer.Context, state: States = None, sender: Sender = None, recipient_domain: Domain = None,
               older_than: Older = None, newer_than: Newer = None,
               limit: Annotated[int, typer.Option("--limit", metavar="N", help="Messages shown at most.")] = 100,
               as_json: AsJson = False) -> None:
    """Messages in the queue, oldest first, with their recipients (like mailq)."""
    from mailhub.queue_admin import list_messages

    if limit < 1:
        raise InputError(f"--limit: expected a positive number, got {limit}")
    filters, _ = _filters(state, sender, recipient_domain, older_than, newer_than)
    now = utcnow()
    messages, total = list_messages(_engine(ctx), filters, limit, now)
    if as_json:
        _json({"generated_at": _iso(now), "total": total, "not_shown": total - len(messages),
               "messages": [_message_json(m, now) for m in messages]})
        return
    rows, sections = [], set()
    for m in messages:  # as mailq: the message and its sender, then its recipients beneath
        kind = "" if m.kind == "email" else f" ({m.kind})"
        rows.append((m.id, _age((now - m.created_at).total_seconds()), f"{m.sender or '<>'}{kind}"))
        rows += [("", "", f"  {r.address}", r.state, r.attempts, _next(r, now, brief=True), r.last_reply)
                 for r in m.recipients]
        sections.add(len(rows) - 1)
    title = f"Queue: {_n(total, 'message')}" + (f", oldest {len(messages)} shown" if total > len(messages) else "")
    _console().print(_table(title, ["message", "age", "sender / recipients", "state", "tries", "next attempt",
                                    "last reply"], rows, sections))
    if total > len(messages):
        _say(f"{total - len(messages)} more not shown (use --limit).")


@queue_app.command("show")
def queue_show(ctx: typer.Context, message_id: Annotated[str, typer.Argument(metavar="ID")],
               as_json: AsJson = False) -> None:
    """One message: envelope, recipients, header block and attempts; never the body."""
    from mailhub.queue_admin import QueueLookupError, message_detail

    now = utcnow()
    try:
        detail = message_detail(_engine(ctx), message_id)
    except QueueLookupError as exc:
        _fail(str(exc))
    m, headers = detail.message, header_fields(detail.header_block)
    attempts = [{"at": _iso(a.at), "recipient": a.recipient or "", "outcome": a.outcome, "remote": a.remote,
                 "reply": a.reply, "node": a.node} for a in detail.attempts]
    if as_json:
        _json({"generated_at": _iso(now), **_message_json(m, now),
               "headers": [{"name": n, "value": v} for n, v in headers],
               "headers_truncated": detail.header_truncated, "attempts": attempts})
        return
    console = _console()
    _say(f"Message {m.id}: {m.kind}, {m.size:,} bytes, accepted {_when(m.created_at)} "
         f"({_age((now - m.created_at).total_seconds())} ago)")
    _say(f"Sender: {m.sender or '<>'}")
    console.print(_table("Recipients", ["recipient", "state", "tries", "next attempt", "notified", "last reply"],
                         [(r.address, r.state, r.attempts, _next(r, now), r.notified or "-", r.last_reply)
                          for r in m.recipients]))
    _say("Header (the body is not shown):")
    for name, value in headers:
        _say(f"  {name}: {value}")
    if detail.header_truncated:
        _say(f"  ... (longer than {len(detail.header_block):,} bytes; the rest is not shown)")
    console.print(_table(f"Attempts ({len(attempts)})", ["time", "recipient", "outcome", "remote", "reply", "node"],
                         [(_when(a.at), a.recipient, a.outcome, a.remote, a.reply, a.node) for a in detail.attempts]))


_DONE = {"retry": "{what} due now.", "hold": "held {what}.", "release": "released {what}; due now.",
         "delete": "deleted {what} ({recipients}, {attempts})."}


def _act(ctx: typer.Context, action: str, ids: list[str] | None, everything: bool, selection: tuple,
         yes: bool, as_json: bool, force: bool = False) -> None:
    """The body of retry, hold, release and delete: choose, change (or preview), report."""
    from mailhub.queue_admin import InFlightError, QueueLookupError, change_recipients, delete_messages

    filters, selected = _filters(*selection)
    if ids and (selected or everything):
        raise InputError(f"{action}: give message IDs or a selection (--all, --state, --sender, ...), not both")
    if not ids and not (selected or everything):
        raise InputError(f"{action}: name the messages (IDs), or select with --sender, --recipient-domain, "
                         f"--state, --older-than, --newer-than or --all")
    apply, now = bool(ids) or yes, utcnow()
    try:
        if action == "delete":
            report = delete_messages(_engine(ctx), ids or None, filters, now, apply=apply, force=force)
        else:
            report = change_recipients(_engine(ctx), action, ids or None, filters, now, apply=apply)
    except QueueLookupError as exc:
        _fail(f"{exc} (nothing was changed)")
    except InFlightError as exc:
        _fail(f"{exc}\nnothing was deleted: run delete again after the attempt, or add --force")
    recipients, in_flight = _n(len(report.targets), "recipient"), _n(report.in_flight, "recipient")
    what = _n(len(report.messages), "message")
    what = what if action == "delete" else f"{recipients} of {what}"
    if as_json:
        _json({"action": action, "applied": report.applied, "messages": list(report.messages),
               "recipients": len(report.targets), "in_flight": report.in_flight,
               "targets": [{"message_id": t.message_id, "recipient": t.recipient, "state": t.state}
                           for t in report.targets],
               **({"attempts_deleted": report.attempts_deleted} if action == "delete" else {})})
    elif not apply:
        shown = report.targets[:_PREVIEW_ROWS]
        _console().print(_table(f"Would {action}", ["message", "recipient", "state"],
                                [(t.message_id, t.recipient, t.state) for t in shown]))
        if len(report.targets) > len(shown):
            _say(f"{len(report.targets) - len(shown)} more not shown.")
        if report.in_flight and action in ("hold", "delete"):
            _say(f"{in_flight} in flight " + ("would not be held." if action == "hold" else
                                              "(delete would need --force)."))
    else:
        _say(_DONE[action].format(what=what, recipients=recipients,
                                  attempts=_n(report.attempts_deleted, "attempt record")))
        if report.in_flight and action == "hold":
            verb = "was" if report.in_flight == 1 else "were"
            _say(f"{in_flight} in flight {verb} not held; run hold again after the attempt.")
        elif report.in_flight and action == "delete":
            _say(f"{in_flight} in flight: the next hop may still get the message.")
    if not apply:
        _fail(f"nothing was changed: this selects {what}; add --yes to {action} them")


@queue_app.command("retry")
def queue_retry(ctx: typer.Context, ids: Ids = None,
                all_deferred: Annotated[bool, typer.Option("--all-deferred", help="Every deferred recipient.")] = False,
                everything: All = False, state: States = None, sender: Sender = None,
                recipient_domain: Domain = None, older_than: Older = None, newer_than: Newer = None,
                yes: Yes = False, as_json: AsJson = False) -> None:
    """Make queued and deferred recipients due now (postqueue -f / -i)."""
    if all_deferred:
        if state:
            raise InputError("retry: give --all-deferred or --state, not both")
        state = [RecipientState.DEFERRED.value]
    _act(ctx, "retry", ids, everything, (state, sender, recipient_domain, older_than, newer_than), yes, as_json)


@queue_app.command("hold")
def queue_hold(ctx: typer.Context, ids: Ids = None, everything: All = False, state: States = None,
               sender: Sender = None, recipient_domain: Domain = None, older_than: Older = None,
               newer_than: Newer = None, yes: Yes = False, as_json: AsJson = False) -> None:
    """Put queued and deferred recipients on hold: not attempted until released (postsuper -h)."""
    _act(ctx, "hold", ids, everything, (state, sender, recipient_domain, older_than, newer_than), yes, as_json)


@queue_app.command("release")
def queue_release(ctx: typer.Context, ids: Ids = None, everything: All = False, state: States = None,
                  sender: Sender = None, recipient_domain: Domain = None, older_than: Older = None,
                  newer_than: Newer = None, yes: Yes = False, as_json: AsJson = False) -> None:
    """Release held recipients; they are due now (postsuper -H)."""
    _act(ctx, "release", ids, everything, (state, sender, recipient_domain, older_than, newer_than), yes, as_json)


@queue_app.command("delete")
def queue_delete(ctx: typer.Context, ids: Ids = None, everything: All = False, state: States = None,
                 sender: Sender = None, recipient_domain: Domain = None, older_than: Older = None,
                 newer_than: Newer = None,
                 force: Annotated[bool, typer.Option(
                     "--force", help="Delete messages being delivered now too.")] = False,
                 yes: Yes = False, as_json: AsJson = False) -> None:
    """Delete whole messages with their recipients and attempt history (postsuper -d)."""
    _act(ctx, "delete", ids, everything, (state, sender, recipient_domain, older_than, newer_than), yes, as_json,
         force=force)


@queue_app.command("stats")
def queue_stats(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Recipients by state, the oldest waiting message, deferrals by domain, recent outcomes."""
    from mailhub.queue_admin import stats

    now = utcnow()
    s = stats(_engine(ctx), now)
    oldest_age = None if s.oldest_waiting is None else int((now - s.oldest_waiting).total_seconds())
    if as_json:
        _json({"generated_at": _iso(now), "recipients": s.by_state, "messages_waiting": s.messages_waiting,
               "oldest_waiting_created_at": _iso(s.oldest_waiting), "oldest_waiting_age_seconds": oldest_age,
               "deferred_by_domain": [{"domain": d, "recipients": n} for d, n in s.deferred_domains],
               "last_hour": s.outcomes["1h"], "last_24h": s.outcomes["24h"], "notices_pending": s.notices_pending})
        return
    console = _console()
    console.print(_table("Recipients by state", ["state", "recipients"], list(s.by_state.items())))
    oldest = "none" if oldest_age is None else f"{_age(oldest_age)} (accepted {_when(s.oldest_waiting)})"
    _say(f"Messages waiting: {s.messages_waiting}; oldest waiting: {oldest}")
    console.print(_table("Deferred recipients by domain (top 10)", ["domain", "recipients"],
                         [(_unicode(d), n) for d, n in s.deferred_domains]))
    console.print(_table("Attempts", ["outcome", "last hour", "last 24 h"],
                         [(o, s.outcomes["1h"][o], s.outcomes["24h"][o]) for o in s.outcomes["1h"]]))
    _say(f"Failure notices not yet queued to senders: {s.notices_pending}")


def _unicode(domain: str) -> str:
    try:
        return idna.decode(domain) if "xn--" in domain else domain
    except (idna.IDNAError, UnicodeError):
        return domain
