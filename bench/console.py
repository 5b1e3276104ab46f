"""Benchmark: HR's score pages in the web console for a large city, through `mailhub serve`.

Data: the cached city of ``bench/scoring_setup.py`` (50,000 officials in 348 units, 20 million
ledger events over 2026; built once, about 6 minutes, not timed), with its months rolled up
(as `mailhub serve` keeps them) and an HR account added. `mailhub serve` runs as a child
process on that database, as an operator starts it; the benchmark signs in as HR over HTTP
and times what HR waits for, each request ``--runs`` times:

- ``units (first)``: ``/console/scores?period=2026-Q3``, the period computed (cold cache);
- ``units``: the same page again (the period from the console's cache: rendering 348 units
  with their explanations and the ranking charts' data);
- ``+ trend (first)`` / ``+ trend``: the page with the year's trend asked for (``trend=1``):
  the year's other quarters computed once, then cached;
- ``officials p1`` / ``officials p400``: the officials view, first and a far page (100 rows);
- ``ranking.svg``, ``trend.svg``: the charts (the trend computes each quarter of the year once);
- ``download.xlsx`` / ``download.csv``: every official and unit of the period.

Run: ``.venv/bin/python bench/console.py [--database sqlite|postgresql] [--runs 3]``.
Progress on stderr, figures on stdout (wall seconds, response bytes, the server's CPU seconds).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import scoring_setup  # noqa: E402

from mailhub import directory  # noqa: E402
from mailhub.config import config_from_mapping  # noqa: E402
from mailhub.db import make_engine  # noqa: E402
from mailhub.scoring.rollup import roll_up  # noqa: E402
from policies.scoring.periods import parse_period  # noqa: E402

HR = "nhansu.benchmark@hcm.gov.vn"
PASSWORD = "mat-khau-do-kiem-2026"
NOW = datetime(2027, 1, 15, 3, tzinfo=timezone.utc)  # 2026 is over: every month can be rolled up
PERIOD = "2026-Q3"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """Keeps the session cookie; never follows redirects."""

    def __init__(self, port: int) -> None:
        self.port, self.cookies = port, {}

    def request(self, method: str, path: str, form: dict | None = None) -> tuple[int, bytes, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body, headers["Content-Type"] = urlencode(form).encode(), "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            for header in response.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(header).items():
                    self.cookies[name] = morsel.value
            return response.status, data, dict(response.headers)
        finally:
            conn.close()

    def sign_in(self) -> None:
        _, page, _ = self.request("GET", "/console/signin")
        csrf = re.search(rb'name="csrf" value="([^"]+)"', page)[1].decode()
        status, _, _ = self.request("POST", "/console/signin", {"csrf": csrf, "email": HR, "password": PASSWORD})
        if status != 303:
            raise SystemExit(f"sign-in as {HR} failed ({status})")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_quiet(pid: int, log) -> None:
    """Until the server has used no CPU for 3 s (its start-up rollup of the current months)."""
    last, still = cpu_seconds(pid), 0
    while still < 3:
        time.sleep(1)
        now = cpu_seconds(pid)
        still = still + 1 if now - last < 0.02 else 0
        last = now
    log("server idle")


def prepare(database: str, args, log) -> str:
    if database == "sqlite":
        url = scoring_setup.cached_sqlite(scoring_setup.VAR / "scoring_50000_20000000_2026_1.db")
    else:
        url = scoring_setup.cached_postgres(args.pg_url)
    engine = make_engine(url)
    try:
        period = parse_period(PERIOD)
        log(f"{database}: rolling up 2026 (not timed)")
        roll_up(engine, period.start.replace(month=1, day=1), period.end.replace(month=12, day=31), now=NOW)
        domains = config_from_mapping({"domains": {"official": [scoring_setup.DOMAIN],
                                                   "subdomains_of": [scoring_setup.DOMAIN]}}, "bench").domains
        if directory.find_official(engine, HR) is None:
            directory.add_official(engine, domains, HR, "Đỗ Đo Kiểm", "UBND", ["official", "hr"], None, PASSWORD)
        else:
            directory.set_password(engine, HR, PASSWORD)
    finally:
        engine.dispose()
    return url


def serve(url: str, home: Path, log) -> tuple[subprocess.Popen, int]:
    port = free_port()
    config = home / "mailhub.toml"
    config.write_text(
        f'[server]\nhome = "{home}"\nhostname = "bench.local"\n'
        f'[listen]\nsubmission = "127.0.0.1:0"\nsubmissions = "127.0.0.1:0"\nhttp = "127.0.0.1:{port}"\n'
        f'[database]\nurl = {json.dumps(url)}\n'
        f'[domains]\nofficial = ["{scoring_setup.DOMAIN}"]\nsubdomains_of = ["{scoring_setup.DOMAIN}"]\n',
        encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILHUB_")}
    mailhub = [sys.executable, "-m", "mailhub", "--config", str(config)]
    subprocess.run([*mailhub, "init"], check=True, env=env, capture_output=True)
    proc = subprocess.Popen([*mailhub, "serve", "--only", "submission"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if "http listening on port" in line:
            break
    else:
        raise SystemExit("mailhub serve did not start")
    log(f"mailhub serve (pid {proc.pid}) on port {port}")
    return proc, port


def measure(database: str, args, log) -> dict:
    url = prepare(database, args, log)
    with tempfile.TemporaryDirectory(prefix="mailhub-bench-console-") as folder:
        proc, port = serve(url, Path(folder), log)
        try:
            wait_quiet(proc.pid, log)
            client = Client(port)
            client.sign_in()
            q = f"period={PERIOD}"
            pages = [("units (first)", f"/console/scores?{q}", 1),
                     ("units", f"/console/scores?{q}", args.runs),
                     ("+ trend (first)", f"/console/scores?{q}&trend=1", 1),
                     ("+ trend", f"/console/scores?{q}&trend=1", args.runs),
                     ("officials p1", f"/console/scores?{q}&view=official", args.runs),
                     ("officials p400", f"/console/scores?{q}&view=official&page=400", args.runs),
                     ("ranking.svg", f"/console/scores/chart/ranking.svg?{q}&group=district", args.runs),
                     ("trend.svg", "/console/scores/chart/trend.svg?year=2026", args.runs),
                     ("download.xlsx", f"/console/scores/download.xlsx?{q}", args.runs),
                     ("download.csv", f"/console/scores/download.csv?{q}&view=official", args.runs)]
            rows = []
            for name, path, runs in pages:
                walls, cpus, size = [], [], 0
                for n in range(runs):
                    log(f"{database}: {name} {n + 1}/{runs}")
                    cpu, wall = cpu_seconds(proc.pid), time.perf_counter()
                    status, body, _ = client.request("GET", path)
                    walls.append(time.perf_counter() - wall)
                    cpus.append(cpu_seconds(proc.pid) - cpu)
                    if status != 200:
                        raise SystemExit(f"{path}: HTTP {status}")
                    size = len(body)
                rows.append({"page": name, "walls": walls, "median": statistics.median(walls),
                             "cpu": statistics.median(cpus), "bytes": size})
        finally:
            proc.terminate()
            proc.wait(30)
    return {"database": database, "pages": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="sqlite", choices=("sqlite", "postgresql"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pg-url", default=os.environ.get("MAILHUB_TEST_DATABASE_URL", scoring_setup.DEFAULT_PG_URL))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.database, args, scoring_setup.print_to_stderr)
    if args.json:
        print(json.dumps({"machine": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          **result}, indent=2))
        return
    print(f"console, HR signed in; 50,000 officials, 348 units, {PERIOD}; {args.database}; {os.cpu_count()} cores")
    print(f"{'page':<16} {'wall s (runs)':<28} {'median':>7} {'server cpu s':>12} {'bytes':>11}")
    for r in result["pages"]:
        runs = " / ".join(f"{w:.2f}" for w in r["walls"])
        print(f"{r['page']:<16} {runs:<28} {r['median']:>7.2f} {r['cpu']:>12.2f} {r['bytes']:>11,}")


if __name__ == "__main__":
    main()
