"""The scoring model and the holiday calendar, read from their TOML files in ``config/``.

The model file holds the officials' model (:meth:`ScoringModel.from_mapping`) and a ``[unit]``
table: ``officials_weight`` and the unit-level ``[[unit.indicators]]`` (U1). The holiday file
is a list of ``[[holidays]]`` tables with ``date`` and ``name``. Each problem is one
:class:`~mailhub.errors.ConfigError` line naming the file and the key.
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from mailhub.errors import ConfigError
from policies.scoring.model import TOTAL_POINTS, ScoringModel

SHIPPED_DIR = Path(__file__).resolve().parent.parent.parent / "config"
SHIPPED_MODEL = SHIPPED_DIR / "scoring" / "model-2026.1.toml"
SHIPPED_HOLIDAYS = SHIPPED_DIR / "holidays.toml"

_UNIT_KEYS = ("officials_weight", "indicators")
# What mailhub can measure (mailhub.scoring.engine): a model may weigh these, and only these.
OFFICIAL_MEASURES = ("I1", "I2", "I3", "I4")
UNIT_MEASURES = ("U1",)


@dataclass(frozen=True)
class ModelSet:
    """The officials' model, the units' model (``None`` without unit indicators), the share of
    a unit's score that comes from its officials, and the file's text (kept with a closed
    period)."""

    officials: ScoringModel
    units: ScoringModel | None
    officials_weight: float
    text: str

    @property
    def version(self) -> str:
        return self.officials.version


@dataclass(frozen=True)
class Holidays:
    """Days off other than weekends, with their names."""

    days: dict[date, str]

    @property
    def dates(self) -> frozenset[date]:
        return frozenset(self.days)


def _read_toml(path: Path, what: str) -> tuple[dict[str, Any], str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the {what} is not UTF-8 text") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def parse_model(text: str, source: str) -> ModelSet:
    """A model set from the text of a model file (``source`` names it in errors)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    unit = data.pop("unit", {})
    if not isinstance(unit, dict):
        raise ConfigError(f"{source}: unit: expected a table")
    officials = ScoringModel.from_mapping(data, source)
    _known(officials, OFFICIAL_MEASURES, f"{source}: indicators")
    for key in unit:
        if key not in _UNIT_KEYS:
            raise ConfigError(f"{source}: unit.{key}: unknown key")
    weight = unit.get("officials_weight", 1.0 if "indicators" not in unit else 0.7)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not (
            math.isfinite(weight) and 0 <= weight <= 1):
        raise ConfigError(f"{source}: unit.officials_weight: expected a number from 0 to 1, got {weight!r}")
    units = None
    if "indicators" in unit:
        # The unit model shares the file's version; its min_days does not apply to units.
        units = ScoringModel.from_mapping({"version": officials.version, "min_days": 0,
                                           "indicators": unit["indicators"]}, f"{source}: unit")
        _known(units, UNIT_MEASURES, f"{source}: unit.indicators")
    elif weight != 1.0:
        raise ConfigError(f"{source}: unit.officials_weight: {weight} needs [[unit.indicators]] "
                          f"(without them a unit's score is its officials' points, out of {TOTAL_POINTS:g})")
    return ModelSet(officials, units, float(weight), text)


def _known(model: ScoringModel, measures: tuple[str, ...], where: str) -> None:
    for n, indicator in enumerate(model.indicators):
        if indicator.code not in measures:
            raise ConfigError(f"{where}[{n}].code: {indicator.code!r} is not measured by mailhub "
                              f"(known: {', '.join(measures)})")


def load_model(path: Path) -> ModelSet:
    _, text = _read_toml(path, "scoring model")
    return parse_model(text, str(path))


def parse_holidays(data: dict[str, Any], source: str) -> Holidays:
    for key in data:
        if key != "holidays":
            raise ConfigError(f"{source}: {key}: unknown key (expected [[holidays]])")
    items = data.get("holidays", [])
    if not isinstance(items, list):
        raise ConfigError(f"{source}: holidays: expected [[holidays]] tables")
    days: dict[date, str] = {}
    for n, item in enumerate(items):
        where = f"{source}: holidays[{n}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: expected a table with date and name")
        unknown = set(item) - {"date", "name"}
        if unknown:
            raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown key")
        day, name = item.get("date"), item.get("name", "")
        # TOML dates are date objects; a datetime (2026-01-01T00:00) is not a day.
        if type(day) is not date:
            raise ConfigError(f"{where}.date: expected a date such as 2026-09-02, got {day!r}")
        if not isinstance(name, str):
            raise ConfigError(f"{where}.name: expected text, got {name!r}")
        if day in days:
            raise ConfigError(f"{where}.date: {day} is listed twice")
        days[day] = name
    return Holidays(days)


def load_holidays(path: Path) -> Holidays:
    data, _ = _read_toml(path, "holiday calendar")
    return parse_holidays(data, str(path))
