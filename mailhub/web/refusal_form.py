"""The refused-mail page's filter (``GET /console/refusals``), read and checked.

Fields: ``policy`` (a name of :data:`~mailhub.web.refusal_policies.POLICY_LABELS`),
``official`` (an address), ``from`` and ``to`` (days in Vietnam time, ``yyyy-mm-dd`` as a
date input sends them, or ``dd/mm/yyyy`` typed by hand; both included), ``page``. Without
dates: the last 7 days, today included. A pure function of the fields and today's date; a
bad value is a :class:`~mailhub.web.queue_filters.FieldError` naming the field.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Mapping, Sequence
from urllib.parse import urlencode

from mailhub.templating import VIETNAM
from mailhub.web.queue_filters import FieldError
from mailhub.web.refusal_policies import POLICY_LABELS
from mailhub.web.refusal_query import RefusalFilter

DEFAULT_DAYS, MAX_DAYS, MAX_PAGE = 7, 366, 100_000
_ISO, _VN = re.compile(r"(\d{4})-(\d{2})-(\d{2})"), re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
_ADDRESS = re.compile(r"[^\s@\x00-\x1f\x7f]{1,64}@[^\s@\x00-\x1f\x7f]{1,255}")


@dataclass(frozen=True)
class RefusalForm:
    filter: RefusalFilter
    first: date  # the period's days, both included
    last: date
    page: int
    values: dict[str, str]  # what the form shows back
    errors: tuple[FieldError, ...] = ()

    def query(self, changes: Mapping[str, object] | None = None) -> str:
        """The checked filter as a query string (for paging and links), with ``changes``."""
        pairs: dict[str, object] = {"from": self.first.isoformat(), "to": self.last.isoformat()}
        if self.filter.policy:
            pairs["policy"] = self.filter.policy
        if self.filter.official:
            pairs["official"] = self.filter.official
        pairs |= changes or {}
        return urlencode({k: str(v) for k, v in pairs.items() if v is not None})


def _one(fields: Mapping[str, Sequence[str]], name: str) -> str:
    values = fields.get(name) or [""]
    return values[-1].strip()


def _day(text: str) -> date | None:
    iso, vn = _ISO.fullmatch(text), _VN.fullmatch(text)
    try:
        if iso:
            found = date(int(iso[1]), int(iso[2]), int(iso[3]))
        elif vn:
            found = date(int(vn[3]), int(vn[2]), int(vn[1]))
        else:
            return None
    except ValueError:
        return None
    return found if 2000 <= found.year <= 2100 else None


def start_of(day: date) -> datetime:
    """Midnight at the start of a Vietnam day, in UTC."""
    return datetime.combine(day, time(), VIETNAM).astimezone(timezone.utc)


def parse_refusal_filter(fields: Mapping[str, Sequence[str]], today: date) -> RefusalForm:
    errors: list[FieldError] = []
    policy = _one(fields, "policy")
    if policy and policy not in POLICY_LABELS:
        errors.append(FieldError("policy", "Trường “Quy tắc”: không có quy tắc này.", "Field “Rule”: no such rule."))
        policy = ""
    official = _one(fields, "official").lower()
    if official and (len(official) > 320 or not _ADDRESS.fullmatch(official)):
        errors.append(FieldError("official", "Trường “Cán bộ”: cần một địa chỉ email, ví dụ an@hcm.gov.vn.",
                                 "Field “Official”: expected an email address, e.g. an@hcm.gov.vn."))
        official = ""
    days = {}
    for name, label, default in (("from", ("Từ ngày", "From"), today - timedelta(days=DEFAULT_DAYS - 1)),
                                 ("to", ("Đến ngày", "To"), today)):
        text = _one(fields, name)
        days[name] = _day(text) if text else default
        if days[name] is None:
            errors.append(FieldError(name, f"Trường “{label[0]}”: cần một ngày dạng dd/mm/yyyy.",
                                     f"Field “{label[1]}”: expected a date as dd/mm/yyyy."))
            days[name] = default
    first, last = days["from"], days["to"]
    if not errors and first > last:
        errors.append(FieldError("from", "“Từ ngày” phải trước hoặc bằng “Đến ngày”.",
                                 "“From” must not be after “To”."))
    elif not errors and (last - first).days + 1 > MAX_DAYS:
        errors.append(FieldError("from", f"Khoảng thời gian tối đa là {MAX_DAYS} ngày.",
                                 f"The period is at most {MAX_DAYS} days."))
    page_text = _one(fields, "page")
    page = 1
    if page_text:
        if not page_text.isdigit() or not 1 <= int(page_text) <= MAX_PAGE:
            errors.append(FieldError("page", "Trường “Trang”: cần một số nguyên dương.",
                                     "Field “Page”: expected a positive whole number."))
        else:
            page = int(page_text)
    values = {"policy": policy, "official": official, "from": first.isoformat(), "to": last.isoformat()}
    if errors:  # show back what was typed, so the visitor can correct it
        values |= {k: _one(fields, k)[:320] for k in ("official", "from", "to")}
    refusal_filter = RefusalFilter(start_of(first), start_of(last + timedelta(days=1)), policy or None,
                                   official or None)
    return RefusalForm(refusal_filter, first, last, page, values, tuple(errors))
