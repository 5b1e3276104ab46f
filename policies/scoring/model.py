"""The scoring model: which indicators count, how much, and against what target.

Loaded once from configuration (``from_mapping``), validated, frozen. The default model of the
HR issue is :data:`DEFAULT_MODEL`.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mailhub.errors import ConfigError

# Scores are out of 100 points, so the weights of a model must add up to 100.
TOTAL_POINTS = 100.0
_TOLERANCE = 1e-6

_Fail = Callable[[str, str], ConfigError]

_MODEL_KEYS = ("version", "indicators", "min_days", "deduction_per_case", "deduction_cap")
_INDICATOR_KEYS = ("code", "name_vi", "name_en", "weight", "target")


@dataclass(frozen=True)
class Indicator:
    """One measured rate: ``weight`` points at stake, full points once the rate reaches ``target``
    (a fraction in (0, 1])."""

    code: str
    name_vi: str
    name_en: str
    weight: float
    target: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise ValueError(f"{self.code}: weight must be above 0, got {self.weight}")
        if not 0 < self.target <= 1:
            raise ValueError(f"{self.code}: target must be in (0, 1], got {self.target}")


@dataclass(frozen=True)
class ScoringModel:
    """A versioned set of indicators plus the rules around them.

    ``min_days``: fewer counted working days than this gives "insufficient data", not a score.
    ``deduction_per_case`` points come off per confirmed use of an outside system, at most
    ``deduction_cap`` in a period.
    """

    version: str
    indicators: tuple[Indicator, ...]
    min_days: int = 20
    deduction_per_case: float = 5.0
    deduction_cap: float = 20.0

    def __post_init__(self) -> None:
        codes = [i.code for i in self.indicators]
        if len(set(codes)) != len(codes):
            raise ValueError(f"duplicate indicator codes in {codes}")
        total = sum(i.weight for i in self.indicators)
        if abs(total - TOTAL_POINTS) > _TOLERANCE:
            raise ValueError(f"indicator weights add up to {total}, not {TOTAL_POINTS:g}")
        if self.min_days < 0 or self.deduction_per_case < 0 or self.deduction_cap < 0:
            raise ValueError("min_days, deduction_per_case and deduction_cap must not be negative")

    @functools.cached_property
    def total_weight(self) -> float:
        return sum(i.weight for i in self.indicators)

    @functools.cached_property
    def codes(self) -> frozenset[str]:
        return frozenset(i.code for i in self.indicators)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str) -> ScoringModel:
        """A model from parsed configuration (a TOML document: top-level keys plus an
        ``[[indicators]]`` array of tables).

        Checks every key and value; a problem is a ``ConfigError`` with one line naming
        ``source`` and the key, indicators numbered from 0 as in ``indicators[1].target``.
        """
        def fail(key: str, problem: str) -> ConfigError:
            return ConfigError(f"{source}: {key}: {problem}")

        for key in data:
            if key not in _MODEL_KEYS:
                raise fail(key, "unknown key")
        version = _string(data, "version", fail)
        raw = data.get("indicators")
        if not isinstance(raw, list | tuple) or not raw:
            raise fail("indicators", "expected a non-empty list of tables")
        indicators: list[Indicator] = []
        seen: dict[str, int] = {}
        for n, item in enumerate(raw):
            indicator = _indicator(item, f"indicators[{n}]", fail)
            if indicator.code in seen:
                raise fail(f"indicators[{n}].code",
                           f"duplicate code {indicator.code!r} (also indicators[{seen[indicator.code]}])")
            seen[indicator.code] = n
            indicators.append(indicator)
        total = sum(i.weight for i in indicators)
        if abs(total - TOTAL_POINTS) > _TOLERANCE:
            raise fail("indicators", f"weights must add up to {TOTAL_POINTS:g}, got {total:g}")
        defaults = {"min_days": 20, "deduction_per_case": 5.0, "deduction_cap": 20.0}
        if "min_days" in data:
            value = data["min_days"]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise fail("min_days", f"expected a whole number of days, 0 or more, got {value!r}")
            defaults["min_days"] = value
        for key in ("deduction_per_case", "deduction_cap"):
            if key in data:
                value = data[key]
                if not _is_number(value) or value < 0:
                    raise fail(key, f"expected a number, 0 or more, got {value!r}")
                defaults[key] = float(value)
        return cls(version=version, indicators=tuple(indicators), **defaults)


def _is_number(value: object) -> bool:
    # TOML booleans are Python bools, which are ints: true is not a weight.
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _string(data: Mapping[str, Any], key: str, fail: _Fail, prefix: str = "") -> str:
    if key not in data:
        raise fail(prefix + key, "required")
    value = data[key]
    if not isinstance(value, str) or not value.strip():
        raise fail(prefix + key, f"expected a non-empty string, got {value!r}")
    return value


def _indicator(item: object, where: str, fail: _Fail) -> Indicator:
    if not isinstance(item, Mapping):
        raise fail(where, f"expected a table, got {type(item).__name__}")
    for key in item:
        if key not in _INDICATOR_KEYS:
            raise fail(f"{where}.{key}", "unknown key")
    code, name_vi, name_en = (_string(item, k, fail, f"{where}.") for k in ("code", "name_vi", "name_en"))
    for key in ("weight", "target"):
        if key not in item:
            raise fail(f"{where}.{key}", "required")
    weight, target = item["weight"], item["target"]
    if not _is_number(weight) or weight <= 0:
        raise fail(f"{where}.weight", f"expected a number above 0, got {weight!r}")
    if not _is_number(target) or not 0 < target <= 1:
        raise fail(f"{where}.target", f"expected a number in (0, 1], got {target!r}")
    return Indicator(code, name_vi, name_en, float(weight), float(target))


DEFAULT_MODEL = ScoringModel(
    version="2026.1",
    indicators=(
        Indicator("I1", "Tỷ lệ dùng hệ thống thư công vụ", "City-system share", 35.0, 1.0),
        Indicator("I2", "Tỷ lệ ngày hoạt động", "Active days", 25.0, 0.8),
        Indicator("I3", "Tỷ lệ giấy mời họp điện tử", "Electronic invitations", 20.0, 1.0),
        Indicator("I4", "Tỷ lệ văn bản gửi UBND có chữ ký số hợp lệ", "Signed submissions", 20.0, 1.0),
    ),
)
