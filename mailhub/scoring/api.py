"""The HR scores on the JSON API: ``GET /api/v1/scores?period=2026-Q3[&unit=CODE][&by=official|unit]``.

Every official with an API token may call it and sees what :mod:`mailhub.scoring.access`
allows: HR and administrators every score, a unit leader their unit's, anyone else their own.
The answer is the JSON form of :class:`~mailhub.scoring.results.PeriodScores` (explanations in
Vietnamese, the model version, when the data was last updated, whether the period is closed),
with ``officials`` or ``units`` left out when ``by`` names the other. ``GET
/api/v1/scores/periods`` lists the closed periods (HR and administrators).
"""
from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal, Optional

from fastapi import APIRouter, Depends, Query
from sqlalchemy.engine import Engine

from mailhub.config import Config
from mailhub.errors import InputError
from mailhub.http.auth import ApiAuth, ApiError, ApiRoute, Caller, error_responses
from mailhub.scoring import access, periodstore

PeriodText = Annotated[str, Query(min_length=4, max_length=23, description="2026, 2026-H1, 2026-Q3, 2026-07 "
                                                                          "or 2026-01-15..2026-03-31")]


def scores_router(engine: Engine, config: Config) -> APIRouter:
    router = APIRouter(prefix="/api/v1/scores", tags=["scores"], route_class=ApiRoute,
                       responses=error_responses(401, 403, 422, 503))
    auth = ApiAuth(engine)
    hr = auth.requiring(*sorted(access.SEE_ALL))

    @router.get("", summary="Scores of a period, as far as the caller may see them")
    async def scores(period: PeriodText, caller: Caller = Depends(auth),
                     unit: Annotated[Optional[str], Query(max_length=64)] = None,
                     by: Optional[Literal["official", "unit"]] = None) -> dict[str, Any]:
        try:
            result = await asyncio.to_thread(periodstore.scores_for, engine, config, period)
            shown = access.visible(result, caller.email, caller.unit_code, caller.roles, unit)
        except access.NotAllowed as exc:
            raise ApiError(403, "Tài khoản không được xem điểm này.", str(exc)) from None
        except InputError as exc:
            raise ApiError(422, "Kỳ không hợp lệ.", str(exc)) from None
        return shown.to_dict(by)

    @router.get("/periods", summary="Closed periods: who closed them and when")
    async def periods(caller: Caller = Depends(hr)) -> list[dict[str, Any]]:
        rows = await asyncio.to_thread(periodstore.closed_periods, engine)
        return [{"period": label, "start": start.isoformat(), "end": end.isoformat(), "closed_by": by,
                 "closed_at": at.isoformat(), "model_version": version}
                for label, start, end, by, at, version in rows]

    return router
