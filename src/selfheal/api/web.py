"""The workspace assembled: its routers for `create_app(..., routers=...)`, and the hub hook.

Called by the CLI (`selfheal serve`, `selfheal demo --open`): `routers(ws)` gives the read,
write and page routes; `forward(hub)` turns the controller's events into hub events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fastapi

from selfheal.api import events, pages, routes_read, routes_write
from selfheal.api import workspace as ws_mod


def routers(ws: ws_mod.Workspace) -> list[fastapi.APIRouter]:
    return [routes_read.router(ws), routes_write.router(ws), pages.router()]


def forward(hub: events.Hub) -> Callable[[Any], None]:
    """An `on_event` callback for the controller: each `Event` goes to the hub as it is."""

    def on_event(e: Any) -> None:
        hub.publish(e.t, e.stage, e.message, e.incident_id, dict(e.data))

    return on_event
