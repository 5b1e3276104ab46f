"""The score pages' downloads, made by the exporters HR already uses from the command line
(:mod:`mailhub.scoring.xlsxexport`, :mod:`mailhub.scoring.tables` for the CSV,
:mod:`mailhub.scoring.report` for the PDF), so a file from the console and one from
``mailhub scores --format xlsx`` hold the same figures.

The exporters that write files write them atomically to a path: they write into a private
temporary folder here, read back and removed. Blocking (the PDF takes seconds for a city): call
from a worker thread.
"""
from __future__ import annotations

import io
import re
import tempfile
from pathlib import Path

from mailhub.scoring import tables
from mailhub.scoring.report import write_report
from mailhub.scoring.results import PeriodScores
from mailhub.scoring.xlsxexport import write_xlsx

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv; charset=utf-8"
PDF = "application/pdf"
_UNSAFE = re.compile(r"[^A-Za-z0-9-]+")


def filename(stem: str, period_label: str, unit: str | None, suffix: str) -> str:
    """``diem-thi-dua-2026-Q3[-UNIT].xlsx``: ASCII letters, digits and dashes only, so the
    name is safe in a ``Content-Disposition`` header and on any file system."""
    parts = [stem, period_label.replace("..", "-den-")] + ([unit] if unit else [])
    return "-".join(_UNSAFE.sub("_", p) for p in parts) + suffix


def disposition(name: str) -> str:
    return f'attachment; filename="{name}"'


def xlsx_bytes(scores: PeriodScores, unit: str | None) -> bytes:
    with tempfile.TemporaryDirectory(prefix="mailhub-xlsx-") as folder:
        path = Path(folder) / "scores.xlsx"
        write_xlsx(scores, path, unit=unit)
        return path.read_bytes()


def csv_bytes(scores: PeriodScores, by: str, unit: str | None) -> bytes:
    """UTF-8 with a byte order mark (Excel reads it as UTF-8 only then), CRLF line ends."""
    text = io.StringIO(newline="")
    tables.write_scores_csv(scores, by, text, unit=unit)
    return text.getvalue().encode("utf-8-sig")


def pdf_bytes(scores: PeriodScores, locale: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix="mailhub-report-") as folder:
        path = Path(folder) / "report.pdf"
        write_report(scores, path, locale)
        return path.read_bytes()
