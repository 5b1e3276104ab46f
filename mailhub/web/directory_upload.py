"""A directory CSV uploaded through the console: the multipart form read within a size
limit, and the import's outcome in a shape a page can show.

The import itself is :func:`mailhub.csvimport.import_directory` (all rows or none); its
problems arrive as one :class:`~mailhub.errors.InputError` whose lines read
``FILE:LINE: field: problem``, split here into rows of a table.
"""
from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from fastapi import Request
from sqlalchemy.engine import Engine
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException  # what Request.form() raises for a bad body
from starlette.formparsers import MultiPartException
from starlette.types import Message

from mailhub.config import DomainsConfig
from mailhub.csvimport import ImportReport, import_directory
from mailhub.errors import InputError

MAX_UPLOAD = 10 * 1024 * 1024  # about 80,000 rows: a whole city's directory in one file
MAX_FIELD = 4096  # the form's text fields (the CSRF token)


class UploadTooLarge(Exception):
    """The request body is longer than the limit (said by Content-Length, or counted)."""


class BadUpload(Exception):
    """The body is not a multipart form that can be read."""


async def read_upload_form(request: Request, limit: int = MAX_UPLOAD) -> FormData:
    """The posted ``multipart/form-data`` form (at most one file), refused before parsing
    when Content-Length is over ``limit`` and while streaming once ``limit`` bytes came.
    The caller closes the form (``await form.close()``)."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isascii() or not length.isdigit()):
        raise BadUpload("Content-Length")
    if length is not None and int(length) > limit:
        raise UploadTooLarge()
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise UploadTooLarge()
        return message

    try:
        return await Request(request.scope, counted).form(max_files=1, max_fields=4, max_part_size=MAX_FIELD)
    except (HTTPException, MultiPartException, ValueError) as exc:
        raise BadUpload(str(exc)) from None


@dataclass(frozen=True)
class Problem:
    line: int | None  # None: the file as a whole (not UTF-8, unreadable)
    field: str  # the CSV column, "header" or "row"
    text: str


@dataclass
class ImportOutcome:
    report: ImportReport | None = None  # set when the file was imported
    problems: list[Problem] = field(default_factory=list)  # set when nothing was stored


_LINE = re.compile(r"(\d+): ([A-Za-z_]+): (.*)")
_SUMMARY = re.compile(r"\d+ problem\(s\); nothing imported")


def problems_from(message: str, path: str) -> list[Problem]:
    """The problems of an :class:`InputError` from :func:`import_directory` on ``path``, with
    the (temporary) file name taken out; the closing summary line is dropped."""
    problems = []
    for text in message.splitlines():
        rest = text[len(path):].lstrip(":").strip() if text.startswith(path) else text.strip()
        if not rest or _SUMMARY.fullmatch(rest):
            continue
        match = _LINE.fullmatch(rest)
        problems.append(Problem(int(match[1]), match[2], match[3]) if match else Problem(None, "", rest))
    return problems


def import_upload(engine: Engine, domains: DomainsConfig, source: BinaryIO) -> ImportOutcome:
    """Import the uploaded file (blocking: run it in a worker thread). The copy lives in a
    private temporary folder (0700) only while the import runs: it holds personal data."""
    with tempfile.TemporaryDirectory(prefix="mailhub-import-") as folder:
        path = Path(folder) / "upload.csv"
        with path.open("wb") as out:
            shutil.copyfileobj(source, out)
        try:
            return ImportOutcome(report=import_directory(engine, path, domains))
        except InputError as exc:
            return ImportOutcome(problems=problems_from(str(exc), str(path)))
