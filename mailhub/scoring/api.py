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
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine

from mailhub.config import Config
from mailhub.errors import InputError
from mailhub.http.auth import ApiAuth, ApiError, ApiRoute, Caller, Problem, error_responses
from mailhub.scoring import access, periodstore

PeriodText = Annotated[str, Query(min_length=4, max_length=23, description="2026, 2026-H1, 2026-Q3, 2026-07 "
                                                                          "or 2026-01-15..2026-03-31",
                                  examples=["2026-Q3"])]


# ---- the documents (for the OpenAPI schema: the answer is PeriodScores.to_dict as it is) ----

class PeriodOut(BaseModel):
    label: str
    start: str = Field(description="ISO 8601 date")
    end: str = Field(description="ISO 8601 date")


class IndicatorOut(BaseModel):
    code: str
    name_vi: str
    name_en: str
    weight: float
    target: float
    level: str = Field(description='"official" or "unit"')


class ScoresOut(BaseModel):
    """The scores of a period as far as the caller may see them (docs/scoring.md)."""

    model_config = ConfigDict(extra="allow")
    period: PeriodOut
    model_version: str
    indicators: list[IndicatorOut]
    working_days: int
    computed_at: str = Field(description="ISO 8601, UTC")
    data_until: Optional[str] = Field(description="The newest ledger event counted (ISO 8601); null: none")
    closed_at: Optional[str] = Field(None, description="Set once HR closed the period: the results are frozen")
    closed_by: Optional[str] = None
    officials: list[dict[str, Any]] = Field(
        [], description="Each official: email, name, unit, unit_name, days_by_unit, activity (counts), score "
                        "(status, total, parts, notes) and bursts. Left out with by=unit")
    units: list[dict[str, Any]] = Field(
        [], description="Each unit: score (unit, headcount, total, explanation_vi, …), kind, parent, rank, "
                        "group_size, issued, issued_electronic, activity. Left out with by=official")


class ClosedPeriodOut(BaseModel):
    period: str
    start: str = Field(description="ISO 8601 date")
    end: str = Field(description="ISO 8601 date")
    closed_by: str
    closed_at: str = Field(description="ISO 8601")
    model_version: str


def scores_router(engine: Engine, config: Config) -> APIRouter:
    router = APIRouter(prefix="/api/v1/scores", tags=["scores"], route_class=ApiRoute,
                       responses=error_responses(401, 403, 500, 503))
    auth = ApiAuth(engine)
    hr = auth.requiring(*sorted(access.SEE_ALL))

    @router.get("", summary="Scores of a period, as far as the caller may see them", operation_id="getScores",
                response_model=None,
                responses={200: {"model": ScoresOut, "description": "The scores"}, **error_responses(422)})
    async def scores(period: PeriodText, caller: Caller = Depends(auth),
                     unit: Annotated[Optional[str], Query(max_length=64, description="Only this unit and the "
                                                          "units under it (HR, admin, the unit's leader)")] = None,
                     by: Annotated[Optional[Literal["official", "unit"]],
                                   Query(description="Keep only this list")] = None) -> dict[str, Any]:
        """HR and administrators see every score, a unit leader their unit's, anyone else their own
        (then `unit` is refused with 403). A period that is not valid or has not begun is a 422."""
        try:
            result = await asyncio.to_thread(periodstore.scores_for, engine, config, period)
            shown = access.visible(result, caller.email, caller.unit_code, caller.roles, unit)
        except access.NotAllowed as exc:
            raise ApiError(403, "Tài khoản không được xem điểm này.", str(exc)) from None
        except InputError as exc:
            raise ApiError(422, "Kỳ không hợp lệ.", str(exc), errors=[Problem(field="period", message=str(exc))]
                           ) from None
        return shown.to_dict(by)

    @router.get("/periods", summary="Closed periods: who closed them and when", operation_id="listClosedPeriods",
                response_model=list[ClosedPeriodOut])
    async def periods(caller: Caller = Depends(hr)) -> list[dict[str, Any]]:
        """Every closed period, oldest first (HR and administrators)."""
        rows = await asyncio.to_thread(periodstore.closed_periods, engine)
        return [{"period": label, "start": start.isoformat(), "end": end.isoformat(), "closed_by": by,
                 "closed_at": at.isoformat(), "model_version": version}
                for label, start, end, by, at, version in rows]

    return router
