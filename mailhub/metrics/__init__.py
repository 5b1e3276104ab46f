"""Metrics in the Prometheus text exposition format 0.0.4, summed over a node's processes.

Counters, gauges and histograms have their label names fixed at creation; the
values come at use::

    DELIVERIES.labels(outcome="deferred", reason="timeout").inc()
    ACCEPT_LATENCY.observe(0.012)

Recording takes one lock and a few arithmetic steps (about a microsecond), from
any thread. A process forked from one that recorded starts again from zero: its
parent keeps reporting what it counted.

``mailhub serve`` may run several processes. Each one writes a snapshot of its
values to ``<home>/run/metrics/<pid>.json`` every few seconds and when it stops
(:class:`MetricsDir`); the process that answers ``/metrics`` adds its own live
values to the others' snapshots. The snapshot of a process that ended keeps
counting until the folder is cleared at the next start, so a counter never goes
backwards while the server runs. Gauges are summed over live processes only.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the delivery package imports this module: no import at run time
    from mailhub.delivery.transport import RecipientResult

from mailhub.metrics.core import REGISTRY, Counter, Gauge, Histogram, Registry
from mailhub.metrics.snapshots import MetricsDir

__all__ = ["ACCEPT_LATENCY", "DELIVERIES", "DELIVERY_ATTEMPT", "DELIVERY_LATENCY", "MESSAGES_ACCEPTED",
           "REASONS", "REGISTRY", "SUBMISSIONS_REFUSED", "Counter", "Gauge", "Histogram", "MetricsDir",
           "Registry", "delivery_reason"]

# ---- mailhub's metrics ---------------------------------------------------------

MESSAGES_ACCEPTED = Counter(
    "mailhub_messages_accepted_total", "Messages accepted for delivery (250 after the durable commit).")
SUBMISSIONS_REFUSED = Counter(
    "mailhub_submissions_refused_total",
    "SMTP commands (MAIL, RCPT, DATA) refused by a submission policy, by the policy's name.",
    ["policy"])
ACCEPT_LATENCY = Histogram(
    "mailhub_accept_latency_seconds",
    "From the end of DATA to the 250 reply, after the durable commit.",
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10])

REASONS = ("ok", "4xx", "5xx", "refused", "timeout", "tls", "dns", "network",
           "expired", "suspended", "internal")
DELIVERIES = Counter(
    "mailhub_deliveries_total",
    "Delivery results per recipient: outcome delivered|deferred|bounced, reason one of "
    + "|".join(REASONS) + ".",
    ["outcome", "reason"])
DELIVERY_LATENCY = Histogram(
    "mailhub_delivery_latency_seconds", "From acceptance to delivery to the next hop, per recipient.",
    [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 21600, 43200,
     86400, 172800, 432000])
DELIVERY_ATTEMPT = Histogram(
    "mailhub_delivery_attempt_seconds", "One send attempt of one message to the next hop.",
    [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 240])

# Texts our own delivery code writes (mailhub/delivery), looked for first: many
# start with a reply code of ours, which says nothing about a remote server.
_OWN_TEXTS = (("temporarily suspended", "suspended"), ("delivery time expired", "expired"),
              ("dns lookup of", "dns"), ("(dns: nxdomain)", "dns"), ("null mx, rfc 7505", "dns"),
              ("has no mx, a or aaaa record", "dns"), ("no address for any mail exchanger", "dns"),
              ("is not a valid domain name", "dns"),
              ("internal error", "internal"), ("the transport gave no result", "internal"),
              ("cannot write to the outbox", "internal"), ("the attempt took more than", "timeout"))
# A failure below SMTP has no reply code: its text names it, else it is "network".
_LINK_TEXTS = (("timed out", "timeout"), ("did not answer within", "timeout"),
               ("connection refused", "refused"), ("tls with ", "tls"), ("tls certificate", "tls"),
               ("starttls", "tls"), ("offers no tls", "tls"), ("name or service not known", "dns"),
               ("name resolution", "dns"), ("nodename nor servname", "dns"))


def delivery_reason(result: "RecipientResult") -> str:
    """The ``reason`` label for a ``RecipientResult``: always one of :data:`REASONS`,
    so the label keeps few values whatever a remote server says.

    ``ok`` when delivered; else our own texts first (suspended destination,
    DNS, internal error, attempt stopped), then a server's reply by its code's
    first digit (``5xx``, else ``4xx``: a code that makes no sense is retried, as
    ``transport.from_reply`` does), then what a failure below SMTP names
    (``refused``, ``timeout``, ``tls``, ``dns``) or ``network``. ``expired`` is
    decided when the result is recorded: :func:`mailhub.delivery.records.mark_results`
    knows it, not the transport.
    """
    if result.ok:
        return "ok"
    text = result.reply.lower()
    for marker, reason in _OWN_TEXTS:
        if marker in text:
            return reason
    if result.answered and text[:3].isdigit() and text[3:4] in (" ", "-", ""):
        return "5xx" if text[0] == "5" else "4xx"
    for marker, reason in _LINK_TEXTS:
        if marker in text:
            return reason
    return "network"
