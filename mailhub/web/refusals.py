"""Refused mail (``/console/refusals``, admin): the attempts the policies refused, from the
usage ledger.

First the count per policy for the chosen days (by default the last 7, Vietnam time), each
with what the rule means; then the refusals themselves, newest first and a page at a time:
time, official and unit, the rule, the reply the client got and the client address (a
refusal's recipients are not recorded: most come at MAIL or RCPT, before there are any).
Filters: rule, official, days. Reads only.
"""
from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from mailhub.models import utcnow
from mailhub.templating import VIETNAM
from mailhub.web.pages import Console, Visitor
from mailhub.web.refusal_form import DEFAULT_DAYS, parse_refusal_filter
from mailhub.web.refusal_policies import POLICY_LABELS, policy_label
from mailhub.web.refusal_query import counts_by_policy, refusals

PER_PAGE = 50
PERIODS = (7, 30, 90)  # quick choices, in days up to today


def router(console: Console) -> APIRouter:
    router = APIRouter()

    @router.get("/refusals")
    async def refused_mail(request: Request, who: Visitor = Depends(console.allow("admin"))) -> Response:
        today = utcnow().astimezone(VIETNAM).date()
        fields = {k: request.query_params.getlist(k) for k in request.query_params.keys()}
        form = parse_refusal_filter(fields, today)
        counts, rows, total = [], [], 0
        if not form.errors:
            counts = await asyncio.to_thread(counts_by_policy, console.engine, form.filter)
            rows, total = await asyncio.to_thread(refusals, console.engine, form.filter,
                                                  (form.page - 1) * PER_PAGE, PER_PAGE)
        pages = max(1, -(-total // PER_PAGE))
        periods = [(days, form.query({"from": (today - timedelta(days=days - 1)).isoformat(),
                                      "to": today.isoformat()})) for days in PERIODS]
        return console.render(request, who, "refusals/list", status=400 if form.errors else 200, form=form,
                              counts=[(name, policy_label(name), n) for name, n in counts],
                              total_counted=sum(n for _, n in counts), rows=rows, total=total, page=form.page,
                              pages=pages, labels=POLICY_LABELS, policy_label=policy_label, periods=periods,
                              default_days=DEFAULT_DAYS)

    return router
