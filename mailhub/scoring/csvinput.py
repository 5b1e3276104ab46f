"""CSV files HR and the units hand in (employment dates, document registers): read with
Vietnamese or English headers, every problem one ``InputError`` naming the file, line and field.

Excel on Windows saves "CSV UTF-8" with a BOM and, in a Vietnamese locale, may use ``;``
between fields: both are accepted.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path

from mailhub.errors import InputError


def read_rows(path: Path, headers: Mapping[str, str], required: tuple[str, ...]
              ) -> Iterator[tuple[str, dict[str, str]]]:
    """``(where, row)`` per non-empty data line: ``where`` is ``"<path>: line N"``, ``row``
    maps each known field (``headers``: lower-case header text → field) to its trimmed text."""
    try:
        content = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text (save it as \"CSV UTF-8\")") from None
    first_line = content.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(content), delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        raise InputError(f"{path}: empty file")
    columns = {headers[name.strip().lower()]: n for n, name in enumerate(header)
               if name.strip().lower() in headers}
    missing = [field for field in required if field not in columns]
    if missing:
        raise InputError(f"{path}: line 1: missing column(s) {', '.join(missing)}")
    for line, cells in enumerate(reader, start=2):
        if any(cell.strip() for cell in cells):
            yield f"{path}: line {line}", {field: cells[n].strip() if n < len(cells) else ""
                                           for field, n in columns.items()}


def parse_day(text: str, where: str) -> date:
    """``dd/mm/yyyy`` (as HR writes it) or ``yyyy-mm-dd``."""
    try:
        if len(text) == 10 and text[2] == "/" and text[5] == "/":
            return date(int(text[6:]), int(text[3:5]), int(text[:2]))
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{where}: {text!r} is not a date (dd/mm/yyyy or yyyy-mm-dd)") from None


def parse_count(text: str, where: str) -> int:
    """A whole number, 0 or more (``1.234`` and ``1 234`` as Vietnamese write thousands)."""
    digits = text.replace(".", "").replace(" ", "").replace("\u00a0", "")
    if not digits.isdigit() or len(digits) > 9:
        raise InputError(f"{where}: {text!r} is not a whole number of documents")
    return int(digits)
