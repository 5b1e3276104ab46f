"""``mailhub scores`` and ``mailhub report``: HR's usage scores from the command line.

- ``scores --period 2026-Q3 [--unit CODE] [--by official|unit] [--format table|csv|xlsx|json]
  [--out FILE]`` — the scores (closed periods as frozen, open ones computed now); csv and xlsx
  need ``--out``.
- ``scores close --period 2026-Q3 --by-name EMAIL`` — freeze a period that is over.
- ``scores periods`` — the closed periods.
- ``scores import-register FILE`` — units' document registers (U1); ``scores
  import-employment FILE`` — employment dates and transfers; ``scores deduct EMAIL --day
  DD/MM/YYYY --note TEXT [--cases N] --by-name EMAIL`` — a confirmed use of an outside system.
- ``scores rollup [--period P] [--rebuild]`` — bring the ledger's monthly rollup up to date
  (``mailhub serve`` does it daily; ``--rebuild`` after events were loaded for past days).
- ``report --period 2026-Q3 --out report.pdf|report.html [--locale vi|en]`` — the quarterly
  report to the Department of Information and Communications.
"""
from __future__ import annotations

import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from mailhub.errors import InputError
from mailhub.scoring import tables
from mailhub.scoring.results import PeriodScores
from mailhub.templating import VIETNAM

scores_app = typer.Typer(help="HR usage scores per official and unit (Department of Home Affairs).",
                         invoke_without_command=True)
FORMATS = ("table", "csv", "xlsx", "json")
LEVELS = ("official", "unit")
PeriodOption = Annotated[Optional[str], typer.Option(
    "--period", help="2026, 2026-H1, 2026-Q3, 2026-07 or 2026-01-15..2026-03-31")]

# The terminal shows the columns that fit a screen; csv/xlsx/json carry every column.
_TERMINAL = {"official": ("Email", "Họ và tên", tables.UNIT_CODE, "Ngày công được tính", tables.TOTAL, "Kết quả"),
             "unit": (tables.GROUP, tables.RANK, tables.UNIT_CODE, tables.UNIT_NAME, "Số cán bộ",
                      "Điểm cán bộ", tables.TOTAL)}


def _state(ctx: typer.Context):
    return ctx.find_root().obj


def _compute(ctx: typer.Context, period: str | None) -> PeriodScores:
    from mailhub.scoring.periodstore import scores_for

    if not period:
        raise InputError("--period: required (e.g. 2026-Q3)")
    state = _state(ctx)
    started = time.monotonic()
    with Console(stderr=True).status(f"Computing the scores of {period}…"):
        scores = scores_for(state.engine(), state.config(), period)
    ctx.meta["scores_computed"] = (f"{len(scores.officials)} officials, {len(scores.units)} units "
                                   f"({time.monotonic() - started:.1f} s)")
    return scores


def _done(ctx: typer.Context) -> None:
    """Say on stderr what was computed and how long it took, once the output is written."""
    typer.echo(ctx.meta["scores_computed"], err=True)


@scores_app.callback()
def scores(ctx: typer.Context, period: PeriodOption = None,
           unit: Annotated[Optional[str], typer.Option("--unit", help="Only this unit and those under it")] = None,
           by: Annotated[str, typer.Option("--by", help="official | unit")] = "official",
           fmt: Annotated[str, typer.Option("--format", help="table | csv | xlsx | json")] = "table",
           out: Annotated[Optional[Path], typer.Option("--out", help="Write to this file")] = None) -> None:
    """Show or export the scores of a period."""
    if ctx.invoked_subcommand is not None:
        return
    if by not in LEVELS:
        raise InputError(f"--by: expected official or unit, got {by!r}")
    if fmt not in FORMATS:
        raise InputError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt in ("csv", "xlsx") and out is None:
        raise InputError(f"--out: required with --format {fmt} (the file to write)")
    result = _compute(ctx, period)
    if unit is not None and not any(u.code == unit for u in result.units):
        raise InputError(f"--unit: {unit!r} has no score in {result.period.label}")
    if fmt == "csv":
        rows = tables.write_scores_csv(result, by, out, unit=unit)
        typer.echo(f"{out}: {rows} rows")
    elif fmt == "xlsx":
        from mailhub.scoring.xlsxexport import write_xlsx

        write_xlsx(result, out, unit=unit)
        typer.echo(f"{out}: sheets Tổng quan, Đơn vị, Cán bộ")
    elif fmt == "json":
        shown = result.for_unit(unit) if unit else result
        text = json.dumps(shown.to_dict(by), ensure_ascii=False, indent=2)
        if out is None:
            typer.echo(text)
        else:
            from mailhub.atomicfile import write_atomic

            write_atomic(out, text.encode("utf-8"), 0o600)
            typer.echo(f"{out}: {len(shown.officials if by == 'official' else shown.units)} {by}s")
    else:
        _print_table(result, by, unit)
    _done(ctx)


def _print_table(result: PeriodScores, by: str, unit: str | None) -> None:
    table = tables.official_table(result, unit) if by == "official" else tables.unit_table(result, unit)
    wanted = [table.headers.index(h) for h in _TERMINAL[by]]
    shown = RichTable(title=table.title_vi, title_justify="left")
    for n in wanted:
        shown.add_column(table.headers[n], justify="right" if n != wanted[0] else "left")
    for row in table.rows:
        shown.add_row(*(Text(_cell(row[n])) for n in wanted))
    wide = not sys.stdout.isatty() and not os.environ.get("COLUMNS")
    console = Console(highlight=False, width=200 if wide else None)
    for label, value in tables.summary_rows(result, unit).rows[:8]:
        console.print(f"{label}: {_cell(value)}", highlight=False)
    console.print(shown)


def _cell(value: object) -> str:
    from policies.scoring.formula import vn_number

    if value is None:
        return "—"
    if isinstance(value, float):
        return vn_number(value, keep_zero=True)
    if hasattr(value, "astimezone"):
        return value.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M")
    if hasattr(value, "strftime"):
        return value.strftime("%d/%m/%Y")
    return str(value)


@scores_app.command("close")
def close(ctx: typer.Context, period: PeriodOption = None,
          by_name: Annotated[str, typer.Option("--by-name", help="Who closes it (HR's address)")] = "") -> None:
    """Freeze a period that is over: its scores stay as they are now, with the model used."""
    from mailhub.scoring.periodstore import close_period

    if not period:
        raise InputError("--period: required (e.g. 2026-Q3)")
    state = _state(ctx)
    result = close_period(state.engine(), state.config(), period, by_name)
    typer.echo(f"{result.period.label} closed by {result.closed_by} at "
               f"{result.closed_at.astimezone(VIETNAM):%d/%m/%Y %H:%M} (model {result.model_version}, "
               f"{len(result.officials)} officials, {len(result.units)} units)")


@scores_app.command("periods")
def periods(ctx: typer.Context) -> None:
    """The closed periods: who closed them and when."""
    from mailhub.scoring.periodstore import closed_periods

    rows = closed_periods(_state(ctx).engine())
    for label, start, end, by, at, version in rows:
        typer.echo(f"{label}\t{start:%d/%m/%Y}–{end:%d/%m/%Y}\tclosed by {by} "
                   f"{at.astimezone(VIETNAM):%d/%m/%Y %H:%M}\tmodel {version}")
    if not rows:
        typer.echo("no closed period")


@scores_app.command("import-register")
def import_register(ctx: typer.Context, file: Path) -> None:
    """Units' document registers (CSV: Mã đơn vị, Tháng, Văn bản ban hành, Văn bản điện tử)."""
    from mailhub.scoring.inputs import import_register as run

    typer.echo(f"{file}: {run(_state(ctx).engine(), file)} unit-months stored")


@scores_app.command("import-employment")
def import_employment(ctx: typer.Context, file: Path) -> None:
    """Employment dates and transfers (CSV: Email, Mã đơn vị, Từ ngày, Đến ngày)."""
    from mailhub.scoring.employment import import_employment as run

    typer.echo(f"{file}: {run(_state(ctx).engine(), file)} assignments stored")


@scores_app.command("deduct")
def deduct(ctx: typer.Context, email: str,
           day: Annotated[str, typer.Option("--day", help="When it happened (dd/mm/yyyy)")],
           note: Annotated[str, typer.Option("--note", help="What was confirmed")],
           by_name: Annotated[str, typer.Option("--by-name", help="Who confirmed it (HR's address)")],
           cases: Annotated[int, typer.Option("--cases")] = 1) -> None:
    """Record a confirmed use of an outside mail system (points off, capped)."""
    from mailhub import directory
    from mailhub.scoring.csvinput import parse_day
    from mailhub.scoring.inputs import record_deduction

    engine = _state(ctx).engine()
    address = directory.normalise_email(email)
    if directory.find_official(engine, address) is None:
        raise InputError(f"{address}: no such official")
    if not by_name.strip():
        raise InputError("--by-name: say who confirmed it")
    record_deduction(engine, address, parse_day(day, "--day"), cases, note, by_name.strip())
    typer.echo(f"{address}: {cases} case(s) recorded for {day}")


@scores_app.command("rollup")
def rollup_command(ctx: typer.Context, period: PeriodOption = None,
                   rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild the months from the events")] = False
                   ) -> None:
    """Bring the ledger's monthly rollup up to date (default: the last 12 months)."""
    from mailhub.models import utcnow
    from mailhub.scoring.rollup import roll_up
    from policies.scoring.periods import parse_period

    state = _state(ctx)
    today = utcnow().astimezone(VIETNAM).date()
    chosen = parse_period(period, today=today) if period else None
    start, end = (chosen.start, chosen.end) if chosen else (today - timedelta(days=365), today)
    months = roll_up(state.engine(), start, end, rebuild=rebuild,
                     grace=timedelta(minutes=state.config().scoring.rollup_grace_minutes))
    typer.echo(f"rolled up: {', '.join(months) or 'nothing to do'}")


def report(ctx: typer.Context, period: PeriodOption = None,
           out: Annotated[Optional[Path], typer.Option("--out", help="report.pdf or report.html")] = None,
           locale: Annotated[str, typer.Option("--locale", help="vi | en")] = "vi") -> None:
    """The quarterly report on the use of the city's mail system (PDF or HTML)."""
    from mailhub.scoring.report import write_report

    if out is None:
        raise InputError("--out: required (report.pdf or report.html)")
    if locale not in ("vi", "en"):
        raise InputError(f"--locale: expected vi or en, got {locale!r}")
    result = _compute(ctx, period)
    write_report(result, out, locale)
    typer.echo(f"{out}: report for {result.period.label_vi}")
    _done(ctx)
