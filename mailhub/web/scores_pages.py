"""(being built)"""
from __future__ import annotations

from fastapi import APIRouter

from mailhub.web.pages import Console


def router(console: Console) -> APIRouter:
    return APIRouter()
