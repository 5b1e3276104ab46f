"""Who may see which scores: HR and administrators every score, a unit leader their unit's
(and the units directly under it), every other official only their own."""
from __future__ import annotations

from mailhub.errors import InputError
from mailhub.scoring.results import PeriodScores

SEE_ALL = frozenset({"hr", "admin"})


class NotAllowed(InputError):
    """The caller asked for scores their roles do not show them."""


def visible(scores: PeriodScores, email: str, unit: str, roles: frozenset[str],
            wanted_unit: str | None = None) -> PeriodScores:
    """The part of ``scores`` the caller (``email`` of ``unit`` with ``roles``) may see,
    narrowed to ``wanted_unit`` if given. Asking for a unit one may not see is ``NotAllowed``."""
    if roles & SEE_ALL:
        return scores.for_unit(wanted_unit) if wanted_unit else scores
    if "leader" in roles:
        mine = scores.for_unit(unit)
        if wanted_unit is None or wanted_unit == unit:
            return mine
        if any(u.code == wanted_unit for u in mine.units):
            return scores.for_unit(wanted_unit)
        raise NotAllowed(f"unit {wanted_unit}: a unit leader sees only their unit and the units under it")
    if wanted_unit is not None:
        raise NotAllowed("unit: an official sees only their own score")
    return scores.for_official(email)
