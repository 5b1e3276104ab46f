"""Benchmark: a quarter's HR scores for every official and unit of a large city.

Data (built once and cached by ``bench/scoring_setup.py``, not timed): 50,000 officials in 348
units, 20 million usage-ledger events over 2026, meetings, employment changes. The target in
issue 6: a quarter's scores for every official and unit in under 5 seconds on this 2-core
machine, on SQLite and on PostgreSQL.

What is timed, per database:

- ``rollup``: rolling the quarter's three months of ledger up into ``usage_month`` from
  nothing (what ``mailhub serve`` otherwise does soon after each day ends, rebuilding the
  current month once a day);
- ``quarter``: :func:`mailhub.scoring.engine.compute` for 2026-Q3 with the rollup current — the
  time HR waits — ``--runs`` times; wall and this process's CPU seconds;
- ``direct``: the same counts straight from the events (one ``GROUP BY`` per official and day
  over the quarter: what a quarter would cost without the rollup), for the ratio.

Run: ``.venv/bin/python bench/scoring.py [--database sqlite,postgresql] [--officials N]
[--events N] [--runs 3] [--json]``. Progress on stderr, figures on stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import scoring_setup  # noqa: E402

from mailhub.db import make_engine  # noqa: E402
from mailhub.scoring.counts import daily_counts  # noqa: E402
from mailhub.scoring.engine import compute  # noqa: E402
from mailhub.scoring.modelfile import SHIPPED_HOLIDAYS, SHIPPED_MODEL, load_holidays, load_model  # noqa: E402
from mailhub.scoring.rollup import roll_up  # noqa: E402
from policies.scoring.periods import parse_period  # noqa: E402

TARGET_SECONDS = 5.0
NOW = datetime(2027, 1, 15, 3, tzinfo=timezone.utc)  # the year is over: every month can be rolled up


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def run(database: str, args) -> dict:
    log = scoring_setup.print_to_stderr
    if database == "sqlite":
        url = scoring_setup.cached_sqlite(scoring_setup.VAR / f"scoring_{args.officials}_{args.events}_2026_1.db",
                                          officials=args.officials, events=args.events)
    else:
        url = scoring_setup.cached_postgres(args.pg_url, officials=args.officials, events=args.events)
    engine = make_engine(url)
    models, holidays = load_model(SHIPPED_MODEL), load_holidays(SHIPPED_HOLIDAYS)
    period = parse_period(args.period)
    result: dict = {"database": database}

    log(f"{database}: rolling up {period}'s months from nothing")
    months, wall, cpu = timed(lambda: roll_up(engine, period.start, period.end, now=NOW, rebuild=True))
    result["rollup"] = {"wall": wall, "cpu": cpu, "months": len(months)}

    walls, cpus, scores = [], [], None
    for n in range(args.runs):
        log(f"{database}: quarter {period} run {n + 1}/{args.runs}")
        scores, wall, cpu = timed(lambda: compute(engine, period, models, holidays, now=NOW))
        walls.append(wall)
        cpus.append(cpu)
    scored = sum(1 for o in scores.officials if o.score.total is not None)
    result["quarter"] = {"walls": walls, "cpus": cpus, "median": statistics.median(walls),
                         "officials": len(scores.officials), "scored": scored, "units": len(scores.units),
                         "flagged": sum(1 for o in scores.officials if o.bursts),
                         "events_in_quarter": int(sum(o.activity.sent + o.activity.refused_outside
                                                      for o in scores.officials))}

    log(f"{database}: the quarter's counts straight from the events (no rollup)")

    def direct() -> int:
        with engine.connect() as conn:
            return len(daily_counts(conn, period.start, period.end))
    rows, wall, cpu = timed(direct)
    result["direct"] = {"wall": wall, "cpu": cpu, "rows": rows}
    engine.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="sqlite,postgresql")
    parser.add_argument("--officials", type=int, default=scoring_setup.OFFICIALS)
    parser.add_argument("--events", type=int, default=scoring_setup.EVENTS)
    parser.add_argument("--period", default="2026-Q3")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pg-url", default=os.environ.get("MAILHUB_TEST_DATABASE_URL", scoring_setup.DEFAULT_PG_URL))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [run(database, args) for database in args.database.split(",")]
    if args.json:
        print(json.dumps({"machine": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "results": results}, indent=2))
        return
    print(f"{args.officials:,} officials, {args.events:,} events in 2026; {args.period}; "
          f"{os.cpu_count()} cores; target {TARGET_SECONDS:g} s")
    print(f"{'database':<11} {'quarter s (runs)':<26} {'cpu s':>6} {'vs target':>9} {'direct s':>9} "
          f"{'rollup s/month':>14} {'officials':>9} {'scored':>7} {'units':>5} {'flagged':>7}")
    for r in results:
        q = r["quarter"]
        runs = " / ".join(f"{w:.2f}" for w in q["walls"])
        print(f"{r['database']:<11} {runs:<26} {statistics.median(q['cpus']):>6.2f} "
              f"{q['median'] / TARGET_SECONDS:>8.2f}× {r['direct']['wall']:>9.2f} {r['rollup']['wall'] / r['rollup']['months']:>14.1f} "
              f"{q['officials']:>9,} {q['scored']:>7,} {q['units']:>5} {q['flagged']:>7}")
    print("quarter: median of the runs over the target (below 1.00× meets it); direct: the quarter's "
          "per-official-and-day counts from the events alone, without the rollup")


if __name__ == "__main__":
    main()
