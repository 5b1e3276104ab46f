"""The queue pages' inputs, read and checked: the filter form (the same choices as the options
of ``mailhub queue list``) and the action form (retry, hold, release, delete).

Pure functions of the submitted fields (a name → list of values mapping, as a query string or
a url-encoded form gives it). Every value is checked here; a bad one becomes a
:class:`FieldError` naming the field in both languages, never an exception. The parsing of
durations and domain names is the CLI's own (:mod:`mailhub.cli_queue`), so a filter means
the same thing on the page and on the command line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence
from urllib.parse import urlencode

from mailhub.queue_terms import domain_spellings, parse_duration
from mailhub.errors import InputError
from mailhub.queue_admin import NOT_FINAL, STATES, Filters

ACTIONS = ("retry", "hold", "release", "delete")
SCOPES = ("selected", "matching")  # the checked messages, or every message the filter selects
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
MAX_IDS = MAX_LIMIT  # a page shows at most MAX_LIMIT messages to check
_MESSAGE_ID = re.compile(r"[0-9a-f]{32}")  # as mailhub.queue.new_queue_id makes them
_ID_PREFIX = re.compile(r"[0-9a-fA-F]{8,32}")  # a path may name a message by a unique prefix, as the CLI
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")

Fields = Mapping[str, Sequence[str]]


@dataclass(frozen=True)
class FieldError:
    field: str  # the input's id, for the message to point at
    vi: str
    en: str


@dataclass(frozen=True)
class QueueQuery:
    """A checked filter form. ``values``: what the form shows back (the visitor's text)."""

    filters: Filters
    limit: int
    values: dict[str, object]
    errors: tuple[FieldError, ...] = ()
    narrowed: bool = False  # some filter other than the default was given

    def query(self, **extra: str) -> str:
        """The filter as a query string (the checked values only), for links and redirects."""
        if self.errors:
            return urlencode(extra)
        pairs = [("state", s) for s in self.values["states"]]  # type: ignore[union-attr]
        pairs += [(k, str(self.values[k])) for k in ("sender", "domain", "older", "newer") if self.values[k]]
        if self.limit != DEFAULT_LIMIT:
            pairs.append(("limit", str(self.limit)))
        return urlencode(pairs + list(extra.items()))


@dataclass(frozen=True)
class ActionForm:
    action: str
    scope: str
    ids: tuple[str, ...]
    sure: bool
    errors: tuple[FieldError, ...] = field(default=())


def _one(fields: Fields, name: str) -> str:
    values = fields.get(name) or [""]
    return values[-1].strip()


def _text(fields: Fields, name: str, limit: int, label: tuple[str, str], errors: list[FieldError]) -> str:
    value = _one(fields, name)
    if len(value) > limit or _CONTROL.search(value):
        errors.append(FieldError(name, f"Trường “{label[0]}”: tối đa {limit} ký tự, không có ký tự điều khiển.",
                                 f"Field “{label[1]}”: at most {limit} characters, no control characters."))
        return ""
    return value


def parse_filters(fields: Fields) -> QueueQuery:
    """The filter form's fields: ``state`` (repeated), ``sender``, ``domain``, ``older``,
    ``newer``, ``limit``. Empty fields select nothing; no state: every state not final."""
    errors: list[FieldError] = []
    states: list[str] = []
    for value in (v.strip().lower() for v in fields.get("state") or () if v.strip()):
        if value not in STATES:
            errors.append(FieldError("state", "Trường “Trạng thái”: giá trị không hợp lệ.",
                                     "Field “State”: not a valid state."))
            break
        if value not in states:
            states.append(value)
    sender = _text(fields, "sender", 320, ("Người gửi", "Sender"), errors)
    domain = _text(fields, "domain", 253, ("Tên miền người nhận", "Recipient domain"), errors)
    domains: tuple[str, ...] = ()
    if domain:
        try:
            domains = domain_spellings(domain)
        except InputError:
            errors.append(FieldError("domain", "Trường “Tên miền người nhận”: không phải tên miền hợp lệ.",
                                     "Field “Recipient domain”: not a valid domain name."))
    ages, texts = {}, {}
    for name, label in (("older", ("Cũ hơn", "Older than")), ("newer", ("Mới hơn", "Newer than"))):
        text = texts[name] = _text(fields, name, 32, label, errors)
        if text:
            try:
                ages[name] = parse_duration(text, name)
            except InputError:
                errors.append(FieldError(name, f"Trường “{label[0]}”: cần một khoảng thời gian như 30m, 4h, 2d "
                                               f"hoặc 1w (m: phút, h: giờ, d: ngày, w: tuần).",
                                         f"Field “{label[1]}”: expected a duration such as 30m, 4h, 2d or 1w."))
    limit_text = _one(fields, "limit")
    limit = DEFAULT_LIMIT
    if limit_text:
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
            errors.append(FieldError("limit", f"Trường “Số thư tối đa”: cần một số từ 1 đến {MAX_LIMIT}.",
                                     f"Field “Messages at most”: expected a number from 1 to {MAX_LIMIT}."))
        else:
            limit = int(limit_text)
    values = dict(states=states, sender=sender, domain=domain, older=texts["older"], newer=texts["newer"],
                  limit=limit)
    # "<>" is the null sender (our own notices), as `--sender '<>'`
    envelope_sender = sender.removeprefix("<").removesuffix(">") if sender else None
    filters = Filters(states=tuple(states) or NOT_FINAL, sender=envelope_sender, domains=domains,
                      older_than=ages.get("older"), newer_than=ages.get("newer"))
    narrowed = bool(states or sender or domain or ages)
    return QueueQuery(filters, limit, values, tuple(errors), narrowed)


def parse_action(fields: Fields) -> ActionForm:
    """The action form: ``action`` (one of :data:`ACTIONS`), ``scope`` (``selected``: the
    checked ``id`` fields; ``matching``: the filter), ``sure`` (needed to delete)."""
    errors: list[FieldError] = []
    action = _one(fields, "action")
    if action not in ACTIONS:
        errors.append(FieldError("action", "Thao tác không hợp lệ.", "Not a valid action."))
    scope = _one(fields, "scope") or "selected"
    if scope not in SCOPES:
        errors.append(FieldError("scope", "Trường “Áp dụng cho”: giá trị không hợp lệ.",
                                 "Field “Apply to”: not a valid choice."))
    ids = tuple(dict.fromkeys(v.strip().lower() for v in fields.get("id") or () if v.strip()))
    if len(ids) > MAX_IDS or not all(_MESSAGE_ID.fullmatch(i) for i in ids):
        errors.append(FieldError("id", "Trường “Thư đã chọn”: mã thư không hợp lệ.",
                                 "Field “Selected messages”: not a valid message id."))
    elif scope == "selected" and not ids and not errors:
        errors.append(FieldError("id", "Chưa chọn thư nào: hãy đánh dấu các thư cần xử lý, hoặc chọn "
                                       "“Tất cả thư khớp bộ lọc”.",
                                 "No message selected: check the messages, or choose “Every message the "
                                 "filter matches”."))
    sure = _one(fields, "sure") == "yes"
    if action == "delete" and not sure:
        errors.append(FieldError("sure", "Để xóa thư, hãy đánh dấu ô “Tôi chắc chắn”. Chưa có gì bị xóa.",
                                 "To delete, check “I am sure”. Nothing was deleted."))
    return ActionForm(action, scope, ids, sure, tuple(errors))


def valid_path_id(text: str) -> bool:
    """A message named in a path: an id, or a prefix of at least 8 hex digits."""
    return bool(_ID_PREFIX.fullmatch(text))
