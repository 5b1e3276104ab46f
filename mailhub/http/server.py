"""uvicorn inside mailhub's own event loop, on a socket mailhub bound.

mailhub owns the process: it handles SIGTERM and SIGINT, configures logging and
chooses the event loop (uvloop). uvicorn only serves HTTP on the socket it is given.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any, Iterator

import uvicorn

log = logging.getLogger("mailhub.http")


class _Server(uvicorn.Server):
    """uvicorn's server without its signal handlers, telling when it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.startup_done = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # mailhub's own handlers stay in place

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.startup_done.set()


class HttpService:
    """Serve ``app`` on ``sock`` (bound and listening; the service closes it at stop).

    ``graceful_seconds``: how long :meth:`stop` lets requests in progress finish.
    ``trusted_proxies``: addresses or networks whose X-Forwarded-For gives the client's address.
    """

    def __init__(self, app: Any, sock: socket.socket, *, graceful_seconds: int = 5,
                 trusted_proxies: tuple[str, ...] = ()) -> None:
        self._sock = sock
        self.port: int = sock.getsockname()[1]
        config = uvicorn.Config(
            app, log_config=None, log_level="warning", access_log=False,
            # X-Forwarded-For only from the configured proxies ([listen] http_trusted_proxies)
            proxy_headers=bool(trusted_proxies), forwarded_allow_ips=list(trusted_proxies) or None,
            server_header=False, headers=[("server", "mailhub")],
            lifespan="on", ws="none", timeout_graceful_shutdown=graceful_seconds)
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Return once the socket is served; raise RuntimeError if startup failed."""
        self._task = asyncio.get_running_loop().create_task(self._serve(), name="http-server")
        ready = asyncio.ensure_future(self._server.startup_done.wait())
        await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if not self._server.started:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
            self._sock.close()
            raise RuntimeError(f"HTTP server on port {self.port} did not start (see the log)")

    async def _serve(self) -> None:
        try:
            await self._server.serve(sockets=[self._sock])
        except SystemExit:  # uvicorn exits this way when the app's startup fails
            log.error("HTTP server on port %d could not start", self.port)

    async def stop(self) -> None:
        """Stop taking connections, let requests in progress finish, close the socket."""
        if self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._task = None
