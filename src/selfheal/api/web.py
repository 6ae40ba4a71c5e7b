"""The workspace assembled: its routers, the hub hook, and a server for `selfheal demo --open`.

Called by the CLI. `selfheal serve` opens a workspace over its database (`open_workspace`),
passes `routers(ws)` to `create_app(..., routers=...)` and forwards the controller's events
to the hub (`forward`). `selfheal demo --open` also needs its own HTTP server next to the demo
in the same event loop: `Server` starts uvicorn on a socket bound first, and stops it.
"""

from __future__ import annotations

import asyncio
import getpass
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import fastapi
import prometheus_client
import uvicorn

from selfheal import config as config_mod
from selfheal import policy
from selfheal.api import events, pages, receivers, routes_read, routes_write
from selfheal.api import workspace as ws_mod
from selfheal.engine import serve as serve_mod
from selfheal.sources import prometheus
from selfheal.store import sql


def routers(ws: ws_mod.Workspace) -> list[fastapi.APIRouter]:
    return [routes_read.router(ws), routes_write.router(ws), pages.router()]


def open_workspace(database_url: str, pol: policy.Policy, workdir: Path,
                   topology: Mapping[str, tuple[str, ...]] | None = None,
                   prometheus_cfg: config_mod.PrometheusSource | None = None,
                   ) -> ws_mod.Workspace:
    """A workspace with its own connection to the agent's database (SQLite in WAL mode lets
    the agent and the API share the file; PostgreSQL is shared anyway). With Prometheus
    configured, the charts read service series from it, as the investigations do."""
    workdir.mkdir(parents=True, exist_ok=True)
    if prometheus_cfg is None:
        return ws_mod.build(sql.SqlStore(database_url), pol, events.Hub(), workdir, topology)
    source = prometheus.PrometheusSource.from_config(prometheus_cfg)
    return ws_mod.build(serve_mod.PrometheusBackedStore(database_url, source), pol,
                        events.Hub(), workdir, topology, on_close=(source.close,))


def forward(hub: events.Hub) -> Callable[[Any], None]:
    """An `on_event` callback for the controller: each `Event` goes to the hub as it is."""

    def on_event(e: Any) -> None:
        hub.publish(e.t, e.stage, e.message, e.incident_id, dict(e.data))

    return on_event


def sign_in_link(ws: ws_mod.Workspace, url: str, role: str = "admin") -> str:
    """A fresh token for the local user, as a sign-in link (the token rides in the URL's
    fragment, which the browser never sends to a server)."""
    user = getpass.getuser()
    token, secret = ws.tokens.create(user, role, user, time.time())
    ws.store.append_ledger(time.time(), "", "token.created", {
        "token_id": token.id, "name": token.name, "role": token.role, "by": user,
        "via": "demo --open"})
    return f"{url}/login#token={secret}"


class Server:
    """The workspace (plus `/healthz` and `/metrics`) on its own port, in the running loop."""

    def __init__(self, ws: ws_mod.Workspace, host: str = "127.0.0.1", port: int = 0) -> None:
        self.ws = ws
        self.sock = serve_mod.bind(host, port)
        bound_host, bound_port = self.sock.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown}:{bound_port}"
        app = receivers.create_app(
            receivers.Receivers(body_limit_bytes=1024 * 1024,
                                registry=prometheus_client.CollectorRegistry(),
                                health=lambda: {"ok": True}),
            routers=routers(ws))
        self.server = serve_mod.QuietServer(uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off",
            timeout_graceful_shutdown=2))
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> str:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]),
                                        name="workspace")
        while not self.server.started and not self.task.done():
            await asyncio.sleep(0.01)
        if self.task.done():
            self.task.result()  # surfaces why it could not start
        return self.url

    async def stop(self) -> None:
        self.ws.hub.close()
        self.server.should_exit = True
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)
        self.sock.close()
        self.ws.close()
