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

import asyncio
import json
import logging
import math
import os
import re
import threading
import time
from bisect import bisect_left
from pathlib import Path
from typing import Any, Iterable

log = logging.getLogger("mailhub.metrics")

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")

Key = tuple[str, ...]  # label values, in the order of the metric's label names


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    """Go's float syntax, which Prometheus parses: +Inf, -Inf, NaN, 1.0, 2.5e-05."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class _CounterValue:
    """One labelled series of a counter."""

    __slots__ = ("_lock", "value")

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        with self._lock:
            self.value += amount

    def _reset(self, lock: threading.Lock) -> None:
        self._lock, self.value = lock, 0.0


class _GaugeValue(_CounterValue):
    """One labelled series of a gauge."""

    __slots__ = ()

    def inc(self, amount: float = 1.0) -> None:
        with self._lock:
            self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        with self._lock:
            self.value -= amount

    def set(self, value: float) -> None:
        self.value = float(value)


class _HistogramValue:
    __slots__ = ("_lock", "_bounds", "counts", "sum")

    def __init__(self, lock: threading.Lock, bounds: tuple[float, ...]) -> None:
        self._lock = lock
        self._bounds = bounds
        self.counts = [0] * len(bounds)  # per bucket, not cumulative; the last is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        i = bisect_left(self._bounds, value)  # the first bound >= value: Prometheus' "le"
        with self._lock:
            self.counts[i] += 1
            self.sum += value

    def _reset(self, lock: threading.Lock) -> None:
        self._lock, self.counts, self.sum = lock, [0] * len(self._bounds), 0.0


class _Metric:
    kind = ""

    def __init__(self, name: str, help: str, labelnames: Iterable[str] = (),
                 registry: "Registry | None" = None) -> None:
        self.name, self.help, self.labelnames = name, help, tuple(labelnames)
        if not _NAME.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        for label in self.labelnames:
            if not _LABEL.match(label) or label.startswith("__") or label == "le":
                raise ValueError(f"{name}: invalid label name {label!r}")
        self._lock = threading.Lock()
        self._series: dict[Key, Any] = {}
        if not self.labelnames:
            self._only = self._series[()] = self._new()
        (REGISTRY if registry is None else registry).register(self)

    def _new(self) -> Any:
        raise NotImplementedError

    def labels(self, *values: object, **named: object) -> Any:
        """The series for these label values (all of them, by position or by name)."""
        if named:
            if values or len(named) != len(self.labelnames) or not named.keys() <= set(self.labelnames):
                raise ValueError(f"{self.name}: expected labels {', '.join(self.labelnames)}")
            values = tuple(named[n] for n in self.labelnames)
        key = tuple(v if isinstance(v, str) else str(v) for v in values)
        series = self._series.get(key)
        if series is None:
            if len(key) != len(self.labelnames) or not self.labelnames:
                raise ValueError(f"{self.name}: expected labels {', '.join(self.labelnames) or '(none)'}")
            with self._lock:
                series = self._series.setdefault(key, self._new())
        return series

    def _samples(self) -> list:
        with self._lock:
            return [[list(key), s.value] for key, s in self._series.items()]

    def _after_fork(self) -> None:
        """In a forked child: start from zero, with a lock no other thread can hold.
        The series objects stay: callers may keep one from ``labels()``."""
        self._lock = threading.Lock()
        for series in self._series.values():
            series._reset(self._lock)


class Counter(_Metric):
    kind = "counter"

    def _new(self) -> _CounterValue:
        return _CounterValue(self._lock)

    def inc(self, amount: float = 1.0) -> None:
        self._only.inc(amount)


class Gauge(_Metric):
    kind = "gauge"

    def _new(self) -> _GaugeValue:
        return _GaugeValue(self._lock)

    def set(self, value: float) -> None:
        self._only.set(value)

    def inc(self, amount: float = 1.0) -> None:
        self._only.inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        self._only.dec(amount)


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help: str, buckets: Iterable[float], labelnames: Iterable[str] = (),
                 registry: "Registry | None" = None) -> None:
        bounds = sorted(float(b) for b in buckets if b != math.inf)
        if not bounds or len(set(bounds)) != len(bounds):
            raise ValueError(f"{name}: buckets must be distinct numbers")
        self.bounds = (*bounds, math.inf)
        super().__init__(name, help, labelnames, registry)

    def _new(self) -> _HistogramValue:
        return _HistogramValue(self._lock, self.bounds)

    def observe(self, value: float) -> None:
        self._only.observe(value)

    def _samples(self) -> list:
        with self._lock:
            return [[list(key), list(s.counts), s.sum] for key, s in self._series.items()]


class Registry:
    """Metrics in the order they were defined; renders the text format."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}

    def register(self, metric: _Metric) -> None:
        if metric.name in self._metrics:
            raise ValueError(f"metric {metric.name} is defined twice")
        self._metrics[metric.name] = metric

    def snapshot(self) -> dict[str, dict]:
        """This process's values as plain JSON-able data."""
        return {m.name: {"type": m.kind, "samples": m._samples(),
                         **({"buckets": list(m.bounds[:-1])} if isinstance(m, Histogram) else {})}
                for m in self._metrics.values()}

    def merge(self, snapshots: Iterable[dict[str, dict]]) -> dict[str, dict[Key, Any]]:
        """Sum snapshots, series by series. Samples of unknown metrics, or of a
        histogram with other buckets (another mailhub version), are left out."""
        merged: dict[str, dict[Key, Any]] = {name: {} for name in self._metrics}
        for snapshot in snapshots:
            for name, data in snapshot.items():
                metric = self._metrics.get(name)
                if metric is None or data.get("type") != metric.kind:
                    continue
                into = merged[name]
                if isinstance(metric, Histogram):
                    if [*data.get("buckets", ()), math.inf] != list(metric.bounds):
                        continue
                    for labels, counts, total in data["samples"]:
                        old = into.get(tuple(labels), ([0] * len(counts), 0.0))
                        into[tuple(labels)] = ([a + b for a, b in zip(old[0], counts)], old[1] + total)
                else:
                    for labels, value in data["samples"]:
                        into[tuple(labels)] = into.get(tuple(labels), 0.0) + value
        return merged

    def render(self, snapshots: Iterable[dict[str, dict]] | None = None) -> str:
        """The exposition text of ``snapshots`` summed (default: this process's values)."""
        merged = self.merge([self.snapshot()] if snapshots is None else snapshots)
        lines: list[str] = []
        for name, metric in self._metrics.items():
            lines.append(f"# HELP {name} {_escape_help(metric.help)}")
            lines.append(f"# TYPE {name} {metric.kind}")
            for key, value in sorted(merged[name].items()):
                pairs = [f'{n}="{_escape_label(v)}"' for n, v in zip(metric.labelnames, key)]
                if not isinstance(metric, Histogram):
                    lines.append(f"{name}{_braces(pairs)} {_number(value)}")
                    continue
                counts, total = value
                running = 0
                for bound, count in zip(metric.bounds, counts):
                    running += count
                    le = f'le="{_number(bound)}"'
                    lines.append(f"{name}_bucket{_braces([*pairs, le])} {running}")
                lines.append(f"{name}_sum{_braces(pairs)} {_number(total)}")
                lines.append(f"{name}_count{_braces(pairs)} {running}")
        return "\n".join(lines) + "\n"

    def _after_fork(self) -> None:
        for metric in self._metrics.values():
            metric._after_fork()


def _braces(pairs: list[str]) -> str:
    return "{" + ",".join(pairs) + "}" if pairs else ""


REGISTRY = Registry()
os.register_at_fork(after_in_child=REGISTRY._after_fork)


class MetricsDir:
    """The folder where a node's processes leave their snapshots (``<pid>.json``)."""

    def __init__(self, path: Path, registry: Registry = REGISTRY) -> None:
        self.path = Path(path)
        self.registry = registry
        self._failing = False

    @classmethod
    def under(cls, home: Path) -> "MetricsDir":
        return cls(Path(home) / "run" / "metrics")

    def clear(self) -> None:
        """Forget earlier runs: at ``serve`` start, before any process writes."""
        self.path.mkdir(parents=True, exist_ok=True)
        for entry in self.path.iterdir():
            if entry.suffix in (".json", ".tmp"):
                entry.unlink(missing_ok=True)

    def write(self) -> None:
        """This process's snapshot, atomically (a reader sees the old file or the new)."""
        pid = os.getpid()
        data = {"pid": pid, "written_at": time.time(), "metrics": self.registry.snapshot()}
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / f".{pid}.json.tmp"
        tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, self.path / f"{pid}.json")

    async def run(self, stop: asyncio.Event, interval: float = 5.0) -> None:
        """Write every ``interval`` seconds until ``stop`` is set, then once more."""
        try:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), interval)
                except TimeoutError:
                    await asyncio.to_thread(self._write_logged)
        finally:
            self._write_logged()

    def _write_logged(self) -> None:
        try:
            self.write()
        except OSError as exc:
            if not self._failing:  # once per run of failures, not every few seconds
                log.warning("cannot write metrics snapshot to %s: %s", self.path, exc)
            self._failing = True
        else:
            self._failing = False

    def _others(self) -> Iterable[dict[str, dict]]:
        own = os.getpid()
        for entry in self.path.glob("*.json"):
            try:
                data = json.loads(entry.read_bytes())
                pid, metrics = int(data["pid"]), data["metrics"]
            except (OSError, ValueError, KeyError, TypeError):
                continue  # removed meanwhile, or not ours: nothing to add
            if pid == own:
                continue  # our live values are newer
            if not _alive(pid):  # what it counted stays; its gauges ended with it
                metrics = {n: d for n, d in metrics.items() if d.get("type") != "gauge"}
            yield metrics

    def render(self) -> str:
        """This process's live values plus every other snapshot in the folder."""
        return self.registry.render([self.registry.snapshot(), *self._others()])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


def delivery_reason(result: Any) -> str:
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
    if getattr(result, "answered", True) and text[:3].isdigit() and text[3:4] in (" ", "-", ""):
        return "5xx" if text[0] == "5" else "4xx"
    for marker, reason in _LINK_TEXTS:
        if marker in text:
            return reason
    return "network"
