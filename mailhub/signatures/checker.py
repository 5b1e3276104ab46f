"""The relay's step for document submissions: which mode applies to a message
(``[[documents.rules]]``) and, for those, what its signatures are, checked in a
worker thread under ``[documents] timeout_seconds``.

The trust roots are read once, when the relay starts (``mailhub serve`` again after
adding a CA certificate to the folder).
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailhub.signatures.outcome import DocumentCheck
from mailhub.signatures.rules import document_mode

if TYPE_CHECKING:
    from mailhub.config import Config

log = logging.getLogger("mailhub.signatures")


@dataclass(frozen=True)
class Examined:
    mode: str | None                 # "record", "require", or None: not a document submission
    check: DocumentCheck | None = None  # None when not checked
    failed: bool = False             # the check raised or took too long


class DocumentChecker:
    def __init__(self, config: Config, executor: Executor | None = None) -> None:
        self._rules = config.documents.rules
        self._timeout = config.documents.timeout_seconds
        self._executor = executor
        self._roots = None
        if self._rules:  # pyHanko is imported here, at start, not by the first submission
            from mailhub.signatures.examine import examine
            from mailhub.signatures.trust import load_trust_roots

            self._examine = examine
            self._roots = load_trust_roots(config.trust_roots_path)
            if not self._roots.certificates:
                log.warning("no trust roots in %s: every document signature will count as signed-invalid",
                            config.trust_roots_path)

    async def examine(self, data: bytes, rcpts: list[str]) -> Examined:
        mode = document_mode(self._rules, rcpts)
        if mode is None:
            return Examined(None)
        loop = asyncio.get_running_loop()
        try:
            check = await asyncio.wait_for(loop.run_in_executor(self._executor, self._examine, data, self._roots),
                                           self._timeout)
        except Exception as exc:  # noqa: BLE001  (a timeout too): fail closed for "require"
            error_id = uuid.uuid4().hex[:12]
            log.error("document signatures not checked (%s, error id %s, mode %s)",
                      type(exc).__name__, error_id, mode)
            return Examined(mode, None, failed=True)
        return Examined(mode, check)
