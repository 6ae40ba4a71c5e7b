"""The live event stream: the controller's events fanned out to Server-Sent Events clients.

The runtime's `on_event` callback (in `selfheal serve` and `selfheal demo --open`) calls
`Hub.publish`; every open `/api/events` stream gets its own bounded queue. A short history is
kept so a page that opens mid-incident (or reconnects with `Last-Event-ID`) sees what it
missed. Changes made through the API are published here too, so every open page updates.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import math
import threading
from collections.abc import AsyncIterator, Mapping
from typing import Any

from selfheal import model

HISTORY = 1000
QUEUE = 500
_CLOSE = "\x00close"
HEARTBEAT_S = 15.0
STREAM_S = 10.0
"""One response lasts at most this long; EventSource reconnects with `Last-Event-ID` and
misses nothing. Bounded so that a server shutting down never waits long on an open page."""


def _jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    out = model.to_jsonable(dict(data))
    return out if isinstance(out, dict) else {}


def _clean(value: Any) -> Any:
    """JSON has no NaN: a missing number becomes null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


class Hub:
    """Fan-out of events to subscribers, safe to publish from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 1
        self._history: collections.deque[dict[str, Any]] = collections.deque(maxlen=HISTORY)
        self._subs: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any]]]] = []
        self.closed = False

    def close(self) -> None:
        """End every open stream now (the server is going away)."""
        self.closed = True
        with self._lock:
            subs = list(self._subs)
        for loop, queue in subs:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_offer, queue, {"id": 0, "stage": _CLOSE})

    def publish(self, t: float, stage: str, message: str, incident_id: str = "",
                data: Mapping[str, Any] | None = None) -> dict[str, Any]:
        with self._lock:
            event = {"id": self._next, "t": t, "stage": stage, "message": message,
                     "incident_id": incident_id, "data": _clean(_jsonable(data or {}))}
            self._next += 1
            self._history.append(event)
            subs = list(self._subs)
        for loop, queue in subs:
            with contextlib.suppress(RuntimeError):  # a loop that closed under us
                loop.call_soon_threadsafe(_offer, queue, event)
        return event

    def history(self, after: int = 0, incident_id: str = "") -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self._history if e["id"] > after
                    and (not incident_id or e["incident_id"] == incident_id)]

    @contextlib.contextmanager
    def subscribe(self) -> Any:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE)
        entry = (asyncio.get_running_loop(), queue)
        with self._lock:
            self._subs.append(entry)
        try:
            yield queue
        finally:
            with self._lock:
                self._subs.remove(entry)

    async def stream(self, after: int, incident_id: str, limit: int | None,
                     heartbeat_s: float = HEARTBEAT_S,
                     max_s: float = STREAM_S) -> AsyncIterator[str]:
        """SSE frames: the missed history first, then live events; a comment line every
        `heartbeat_s` keeps proxies from closing an idle stream. Stops after `limit` events,
        after `max_s` seconds, or when the hub closes."""
        sent = 0
        last = after
        loop = asyncio.get_running_loop()
        end = loop.time() + max_s
        with self.subscribe() as queue:
            yield "retry: 1000\n\n"
            for event in self.history(after, incident_id):
                yield frame(event)
                last = event["id"]
                sent += 1
                if limit is not None and sent >= limit:
                    return
            while not self.closed and (left := end - loop.time()) > 0:
                try:
                    event = await asyncio.wait_for(queue.get(), min(heartbeat_s, left))
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if event.get("stage") == _CLOSE:
                    return
                if event["id"] <= last or (incident_id and event["incident_id"] != incident_id):
                    continue
                yield frame(event)
                last = event["id"]
                sent += 1
                if limit is not None and sent >= limit:
                    return


def _offer(queue: asyncio.Queue[dict[str, Any]], event: dict[str, Any]) -> None:
    """A reader that fell too far behind loses its oldest events, never the publisher's time."""
    if queue.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()
    queue.put_nowait(event)


def frame(event: Mapping[str, Any]) -> str:
    """One SSE message; the stage is inside the data (unnamed events reach `onmessage`)."""
    return f"id: {event['id']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"
