"""What a policy answers: permit, reject, defer, with the SMTP reply to give.

Texts are Vietnamese first, then English. SMTP replies are ASCII on the wire
(RFC 5321 §4.2; we do not offer SMTPUTF8), so :meth:`Verdict.smtp_reply` folds the
Vietnamese text to ASCII without diacritics; the full text is kept for logs,
the usage ledger and web pages.
"""
from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass, replace


class Action(enum.Enum):
    PERMIT = "permit"  # accept now, skip the rest of the list
    REJECT = "reject"  # permanent refusal (5xx)
    DEFER = "defer"  # temporary refusal (4xx): try again later


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def ascii_fold(text: str) -> str:
    """Vietnamese text without diacritics: NFD, drop combining marks, đ→d, Đ→D.

    đ/Đ do not decompose under NFD, so they are mapped by hand. Anything still
    outside ASCII becomes ``?`` so the result is always safe on an ASCII wire.
    """
    decomposed = unicodedata.normalize("NFD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    stripped = stripped.replace("đ", "d").replace("Đ", "D")
    return unicodedata.normalize("NFC", stripped).encode("ascii", "replace").decode("ascii")


@dataclass(frozen=True, slots=True)
class Verdict:
    """A policy's answer. ``code``/``status`` are the SMTP reply code and the
    RFC 3463 enhanced status code, e.g. ``550`` and ``"5.7.1"``."""

    action: Action
    code: int
    status: str
    text_vi: str
    text_en: str
    policy: str = ""  # filled in by the runner: which rule decided

    def __post_init__(self) -> None:
        first = {Action.PERMIT: "2", Action.REJECT: "5", Action.DEFER: "4"}[self.action]
        if str(self.code)[0] != first or self.status[:1] != first:
            raise ValueError(f"verdict {self.action.value} with code {self.code} {self.status}")

    @property
    def refused(self) -> bool:
        return self.action is not Action.PERMIT

    def named(self, policy: str) -> "Verdict":
        return replace(self, policy=policy)

    def smtp_reply(self) -> str:
        """One-line ASCII SMTP reply: ``550 5.7.1 <vi> / <en>``."""
        text = f"{ascii_fold(self.text_vi)} / {self.text_en}"
        text = _CONTROL.sub(" ", text)
        return f"{self.code} {self.status} {text}"


def reject(code: int, status: str, vi: str, en: str) -> Verdict:
    return Verdict(Action.REJECT, code, status, vi, en)


def defer(code: int, status: str, vi: str, en: str) -> Verdict:
    return Verdict(Action.DEFER, code, status, vi, en)


def permit() -> Verdict:
    return Verdict(Action.PERMIT, 250, "2.0.0", "Đồng ý", "OK")
