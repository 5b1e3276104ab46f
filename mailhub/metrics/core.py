"""Counter, Gauge, Histogram and the Registry that renders them in the Prometheus
text exposition format 0.0.4. Recording takes one lock and a few arithmetic
steps, from any thread; a forked child starts again from zero."""
from __future__ import annotations

import logging
import math
import os
import re
import threading
from bisect import bisect_left
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
