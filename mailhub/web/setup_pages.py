"""The IT department's page of DKIM keys, DNS records and settings (``/console/setup``).

Read-only: the settings come from the configuration file loaded at start and are changed
there (they take effect when ``mailhub serve`` restarts); keys are made by ``mailhub init``.
Secrets in the configuration are never shown (:mod:`mailhub.web.setup_secrets`).
"""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from mailhub.config import ENV_OVERRIDES
from mailhub.web.pages import Console, Visitor, language, translator
from mailhub.web.setup_keys import all_domains_dkim, name_and_value
from mailhub.web.setup_settings import config_sections, effective_paths


def router(console: Console) -> APIRouter:
    routes = APIRouter()

    @routes.get("/setup")
    async def setup(request: Request, who: Visitor = Depends(console.allow("admin"))) -> Response:
        config = console.config
        t = translator(language(request))
        domains = [(dkim, [(record, *name_and_value(record)) for record in dkim.records])
                   for dkim in await asyncio.to_thread(all_domains_dkim, config)]
        return console.render(request, who, "setup/index", title=t("DKIM và cấu hình", "DKIM and settings"),
                              domains=domains, sections=config_sections(config),
                              paths=effective_paths(config), source=config.source,
                              env_vars=sorted(ENV_OVERRIDES))

    return routes
