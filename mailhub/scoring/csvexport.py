"""CSV tables for HR (the Department of Home Affairs) that open correctly in Excel.

Two rules come from Excel rather than from RFC 4180:

- Excel reads a CSV as UTF-8 only when the file starts with a byte order mark, so files are
  written ``utf-8-sig``; without it Vietnamese names turn into mojibake.
- Excel evaluates a cell that starts with ``= + - @`` (and, after a tab or a carriage return,
  whatever follows) as a formula: a name or a subject line typed by a person could run one
  when HR opens the file (OWASP "CSV Injection"). Such text gets a leading apostrophe.

Only values that arrive as ``str`` are neutralised. Numbers are formatted here from ``int`` and
``float``, so their text is known to be a plain number and a deduction of ``-5`` stays a number
Excel can add up. The consequence for callers: pass scores as numbers, never as preformatted
text — the string ``"-5"`` is exported as ``'-5``.

Layout: comma delimiter, :data:`csv.QUOTE_MINIMAL` (so ``33,25`` is written ``"33,25"``), CRLF
line ends (the csv module's default, RFC 4180 §2).
"""
from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from pathlib import Path
from typing import TextIO

from mailhub.atomicfile import write_atomic
from mailhub.templating import VIETNAM  # Vietnam's wall clock, UTC+7 without daylight saving

__all__ = ["csv_cell", "write_csv"]

# First characters that make Excel (and LibreOffice) read a cell as a formula; a tab or a CR
# in front is skipped by some importers, which then see the formula behind it.
FORMULA_TRIGGERS = frozenset("=+-@\t\r")

_CENT = Decimal("0.01")
# Enough digits to quantize any finite float (up to ~1.8e308) to cents without overflow.
_WIDE = Context(prec=400)


def _decimal_comma(value: float | Decimal) -> str:
    """At most two decimals, rounded half up as a person reads the number, no trailing zeros,
    no thousands separator, and a decimal comma (Vietnamese convention)."""
    number = Decimal(repr(value)) if isinstance(value, float) else value
    try:
        cents = number.quantize(_CENT, rounding=ROUND_HALF_UP, context=_WIDE)
    except InvalidOperation:
        raise ValueError(f"csv_cell: cannot export the number {value!r}") from None
    text = format(cents, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text == "-0":  # -0.0, or -0.001 rounded to zero
        text = "0"
    return text.replace(".", ",")


def neutralise(text: str) -> str:
    """``text`` with a leading apostrophe when Excel would read it as a formula."""
    if text and text[0] in FORMULA_TRIGGERS:
        return "'" + text
    return text


def csv_cell(value: object) -> str:
    """The text of one cell.

    ``None`` → empty; ``bool`` → ``có``/``không``; ``int`` → digits; ``float``/``Decimal`` →
    decimal comma, at most two decimals (``33,25``, ``95``, ``0,5``); ``datetime`` →
    ``dd/mm/yyyy HH:MM`` in Vietnam time; ``date`` → ``dd/mm/yyyy``; ``str`` → itself,
    neutralised against formula injection (see the module docstring). Numbers are never
    neutralised.

    Checks: a naive ``datetime`` (its zone is unknown), a NaN or infinite number and any other
    type raise — an export must not guess.
    """
    if value is None:
        return ""
    if isinstance(value, bool):  # before int: bool is an int
        return "có" if value else "không"
    if isinstance(value, int):
        return int.__repr__(value)  # the digits, even for an IntEnum
    if isinstance(value, (float, Decimal)):
        finite = value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)
        if not finite:
            raise ValueError(f"csv_cell: cannot export the number {value!r}")
        return _decimal_comma(value)
    if isinstance(value, datetime):  # before date: datetime is a date
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"csv_cell: naive datetime {value.isoformat()} (time zone unknown)")
        return value.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M")
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, str):
        return neutralise(str.__str__(value))  # the text itself, even for a str Enum
    raise TypeError(f"csv_cell: cannot export a {type(value).__name__}")


def _write_rows(out: TextIO, headers: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    writer = csv.writer(out, delimiter=",", quoting=csv.QUOTE_MINIMAL)
    writer.writerow([csv_cell(h) for h in headers])
    count = 0
    for count, row in enumerate(rows, start=1):
        if len(row) != len(headers):
            raise ValueError(f"write_csv: row {count} has {len(row)} cells, expected {len(headers)}")
        writer.writerow([csv_cell(v) for v in row])
    return count


def write_csv(path_or_file: str | os.PathLike[str] | TextIO, headers: Sequence[str],
              rows: Iterable[Sequence[object]]) -> int:
    """Write ``headers`` then ``rows`` as an Excel-friendly CSV; return the number of data rows.

    A path is written atomically: a temporary file in the same folder, fsynced, then renamed
    over the target, so HR never opens a half-written export and an existing file is replaced
    whole or not at all. A new file is created ``0600`` (it names officials and their scores);
    a replaced file keeps its mode.

    An open text file is written as is and left open: the caller opened it, so the caller
    chose its encoding — use ``encoding="utf-8-sig", newline=""`` to get the BOM and keep the
    CRLF line ends untranslated.

    Checks: each row has as many cells as there are headers (``ValueError`` naming the row);
    each cell as :func:`csv_cell` does.
    """
    if not isinstance(path_or_file, (str, os.PathLike)):
        return _write_rows(path_or_file, headers, rows)
    path = Path(path_or_file)
    text = io.StringIO(newline="")
    count = _write_rows(text, headers, rows)  # a bad row raises before the file is touched
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o600
    write_atomic(path, text.getvalue().encode("utf-8-sig"), mode)
    return count
