"""What the queue pages show, from :mod:`mailhub.queue_admin`'s records: state and kind names
in both languages, ages, next-attempt times in Vietnam time, and outside text made visible.

Text that came from outside (addresses, header fields, remote replies) is escaped by Jinja
for HTML; here its control and bidi-override characters are written out as ``\\x1b``-style
escapes too, as ``mailhub queue`` does on a terminal, so a crafted header cannot reorder or
hide what the administrator reads. Message bodies are never read (queue_admin stops at the
header block).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailhub.queue_terms import escaped, header_fields
from mailhub.models import RecipientState
from mailhub.queue_admin import Message, MessageDetail, Stats
from mailhub.templating import vn_time

Pair = tuple[str, str]  # (Vietnamese, English)

# state → (Vietnamese, English, badge class); the text says the state, the colour only helps
STATE_LABELS: dict[str, tuple[str, str, str]] = {
    "queued": ("Chờ gửi", "Queued", "wait"),
    "sending": ("Đang gửi", "Sending", "wait"),
    "deferred": ("Hoãn, sẽ thử lại", "Deferred", "wait"),
    "held": ("Tạm giữ", "Held", ""),
    "delivered": ("Đã chuyển đi", "Delivered", "ok"),
    "bounced": ("Bị trả lại", "Bounced", "bad"),
}
KIND_LABELS: dict[str, Pair] = {
    "email": ("Thư của cán bộ", "Official's mail"),
    "invite_email": ("Giấy mời họp", "Meeting invitation"),
    "notice": ("Thông báo của hệ thống", "System notice"),
}
NOTICE_LABELS: dict[str, Pair] = {
    "": ("—", "—"), "delay": ("Đã báo chậm", "Delay notice sent"), "final": ("Đã báo lỗi", "Failure notice sent")}
ATTEMPT_LABELS: dict[str, Pair] = {
    "delivered": ("Đã chuyển đi", "Delivered"), "deferred": ("Lỗi tạm thời", "Temporary failure"),
    "bounced": ("Bị trả lại (lỗi vĩnh viễn)", "Bounced (permanent failure)")}

# C0/C1 controls but tab and newline, and the bidi marks and overrides that reorder text


def age(seconds: float) -> Pair:
    """``3 giờ 12 phút`` / ``3h 12m``: how long a message has waited."""
    s = max(0, int(seconds))
    days, hours, minutes = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if days:
        return f"{days} ngày {hours} giờ", f"{days}d {hours}h"
    if hours:
        return f"{hours} giờ {minutes} phút", f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes} phút", f"{minutes}m"
    return f"{s} giây", f"{s}s"


def next_attempt(r, now: datetime) -> Pair:
    """When a recipient is tried next (a row of queue_admin's recipient columns)."""
    if r.state == RecipientState.SENDING.value:
        if r.lease_until is not None and r.lease_until >= now:
            return "Đang gửi ngay lúc này", "Being delivered now"
        return "Ngay (lần gửi trước bị gián đoạn)", "Now (the last attempt was cut off)"
    if r.state in (RecipientState.QUEUED.value, RecipientState.DEFERRED.value):
        if r.next_attempt_at is None or r.next_attempt_at <= now:
            return "Ngay", "Now"
        when = vn_time(r.next_attempt_at)
        return when, when
    if r.state == RecipientState.HELD.value:
        return "Khi được thả", "When released"
    return "—", "—"


@dataclass(frozen=True)
class RecipientView:
    address: str
    state: str
    label: Pair
    badge: str
    attempts: int
    next: Pair
    last_reply: str
    notified: Pair


@dataclass(frozen=True)
class MessageView:
    id: str
    sender: str  # "<>" for the null sender
    kind: Pair
    size: int
    accepted: str  # Vietnam time
    age: Pair
    recipients: tuple[RecipientView, ...]
    in_flight: bool  # some recipient is being delivered now: delete would be refused


def recipient_view(r, now: datetime) -> RecipientView:
    vi, en, badge = STATE_LABELS.get(r.state, (r.state, r.state, ""))
    busy = r.state == RecipientState.SENDING.value and r.lease_until is not None and r.lease_until >= now
    return RecipientView(escaped(r.address), r.state, (vi, en), badge if not busy else "wait", r.attempts,
                         next_attempt(r, now), escaped(r.last_reply), NOTICE_LABELS.get(r.notified or "", ("—", "—")))


def message_view(m: Message, now: datetime) -> MessageView:
    recipients = tuple(recipient_view(r, now) for r in m.recipients)
    busy = any(r.state == RecipientState.SENDING.value and r.lease_until is not None and r.lease_until >= now
               for r in m.recipients)
    return MessageView(m.id, escaped(m.sender) or "<>", KIND_LABELS.get(m.kind, (m.kind, m.kind)), m.size,
                       vn_time(m.created_at), age((now - m.created_at).total_seconds()), recipients, busy)


@dataclass(frozen=True)
class AttemptView:
    at: str
    recipient: str
    outcome: Pair
    remote: str
    reply: str
    node: str


@dataclass(frozen=True)
class DetailView:
    message: MessageView
    headers: tuple[tuple[str, str], ...]  # (name, value), encoded words decoded
    headers_truncated: bool
    attempts: tuple[AttemptView, ...]


def detail_view(d: MessageDetail, now: datetime) -> DetailView:
    headers = tuple((escaped(n), escaped(v)) for n, v in header_fields(d.header_block))
    attempts = tuple(AttemptView(vn_time(a.at), escaped(a.recipient), ATTEMPT_LABELS.get(a.outcome, (a.outcome, a.outcome)),
                                 escaped(a.remote), escaped(a.reply), escaped(a.node)) for a in d.attempts)
    return DetailView(message_view(d.message, now), headers, d.header_truncated, attempts)


@dataclass(frozen=True)
class StatsView:
    states: tuple[tuple[str, Pair, int], ...]  # (state, label, recipients)
    messages_waiting: int
    oldest: str  # Vietnam time, "" when nothing waits
    oldest_age: Pair
    deferred_domains: tuple[tuple[str, int], ...]
    outcomes: tuple[tuple[Pair, int, int], ...]  # (outcome, last hour, last 24 h)
    notices_pending: int


def stats_view(s: Stats, now: datetime) -> StatsView:
    states = tuple((state, STATE_LABELS[state][:2], s.by_state.get(state, 0)) for state in STATE_LABELS)
    oldest = vn_time(s.oldest_waiting) if s.oldest_waiting else ""
    oldest_age = age((now - s.oldest_waiting).total_seconds()) if s.oldest_waiting else ("", "")
    outcomes = tuple((ATTEMPT_LABELS[o], s.outcomes["1h"][o], s.outcomes["24h"][o]) for o in s.outcomes["1h"])
    return StatsView(states, s.messages_waiting, oldest, oldest_age,
                     tuple((escaped(d), n) for d, n in s.deferred_domains), outcomes, s.notices_pending)
