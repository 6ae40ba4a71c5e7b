"""The reflex baseline: what an orchestrator alone does — restart on a failed health check,
scale on CPU.

It is what selfheal is measured against in the scenario bench. Every second it probes each
replica's `/healthz` (1 s timeout) and replaces a replica after three failures in a row, and it
reads each replica's CPU time from /proc: a service whose replicas average above
`cpu_threshold` cores for `cpu_window_s` gets one more replica (up to `max_replicas`, at most
once per `cooldown_s`). It acts on the platform directly, as a kubelet or an autoscaler would,
with no diagnosis, no policy gate and no verification.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Callable, Coroutine
from typing import Any

import httpx

from selfheal import errors
from selfheal.platforms.local import platform as local


@dataclasses.dataclass(frozen=True)
class Act:
    t: float
    kind: str
    service: str
    target: str
    ok: bool
    detail: str


def cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Reflex:
    def __init__(self, platform: local.LocalPlatform, clock: Callable[[], float] = time.time,
                 *, failures: int = 3, cpu_threshold: float = 0.6, cpu_window_s: float = 5.0,
                 max_replicas: int = 6, cooldown_s: float = 30.0) -> None:
        self.p = platform
        self.clock = clock
        self.failures = failures
        self.cpu_threshold = cpu_threshold
        self.cpu_window_s = cpu_window_s
        self.max_replicas = max_replicas
        self.cooldown_s = cooldown_s
        self.acts: list[Act] = []
        self.noticed: list[tuple[float, str]] = []  # (when, what) it first saw trouble
        self._fails: dict[str, int] = {}
        self._busy: set[str] = set()
        self._cpu: dict[str, list[tuple[float, float]]] = {}
        self._last_scale: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def busy(self) -> bool:
        """An action is still under way."""
        return bool(self._tasks)

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=1.0) as http:
            try:
                while True:
                    await self._tick(http)
                    await asyncio.sleep(1.0)
            finally:
                for t in self._tasks:
                    t.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _healthy(self, http: httpx.AsyncClient, port: int) -> bool:
        try:
            r = await http.get(f"http://127.0.0.1:{port}/healthz")
        except httpx.HTTPError:
            return False
        return r.status_code == 200

    async def _tick(self, http: httpx.AsyncClient) -> None:
        now = self.clock()
        for service in list(self.p.services):
            reps = self.p.replicas(service)
            results = await asyncio.gather(*(self._healthy(http, r.port) for r in reps))
            for r, ok in zip(reps, results, strict=True):
                self._fails[r.replica] = 0 if ok else self._fails.get(r.replica, 0) + 1
                if self._fails[r.replica] >= self.failures and r.replica not in self._busy:
                    self.noticed.append((now, f"{r.replica} failed its health check"))
                    self._spawn(self._restart(service, r.replica))
            self._watch_cpu(service, now)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _restart(self, service: str, replica: str) -> None:
        self._busy.add(replica)
        try:
            change = await self.p.restart_replica(service, replica, who="reflex",
                                                  why="failed health check x3")
            self.acts.append(Act(self.clock(), "restart", service, replica, True, change.what))
        except errors.PlatformError as exc:
            self.acts.append(Act(self.clock(), "restart", service, replica, False, str(exc)))
        finally:
            self._busy.discard(replica)
            self._fails.pop(replica, None)

    def _watch_cpu(self, service: str, now: float) -> None:
        reps = self.p.replicas(service)
        total = [cpu_seconds(r.pid) for r in reps]
        if not reps or any(v is None for v in total):
            return
        hist = self._cpu.setdefault(service, [])
        hist.append((now, sum(v for v in total if v is not None) / len(reps)))
        while hist and hist[0][0] < now - self.cpu_window_s:
            hist.pop(0)
        if len(hist) < 2 or hist[-1][0] - hist[0][0] < self.cpu_window_s * 0.8:
            return
        cores = (hist[-1][1] - hist[0][1]) / (hist[-1][0] - hist[0][0])
        if cores < self.cpu_threshold or len(reps) >= self.max_replicas \
                or now - self._last_scale.get(service, 0.0) < self.cooldown_s \
                or service in self._busy:
            return
        self._last_scale[service] = now
        self.noticed.append((now, f"{service} at {cores:.2f} cores per replica"))
        self._cpu[service] = []
        self._spawn(self._scale(service, len(reps) + 1))

    async def _scale(self, service: str, to: int) -> None:
        self._busy.add(service)
        try:
            change = await self.p.scale(service, to, who="reflex", why="CPU above threshold")
            self.acts.append(Act(self.clock(), "scale", service, service, True, change.what))
        except errors.PlatformError as exc:
            self.acts.append(Act(self.clock(), "scale", service, service, False, str(exc)))
        finally:
            self._busy.discard(service)
