"""The HTTP side of ``mailhub serve``: metrics and health now, the JSON API later.

:func:`create_app` builds the FastAPI application; :class:`HttpService` runs it
with uvicorn on a socket bound by the caller, inside the process's event loop.
"""
from mailhub.http.app import create_app
from mailhub.http.server import HttpService

__all__ = ["HttpService", "create_app"]
