"""The shop's service-level objective, measured from outside as a customer sees it.

A probe sends a request to the shop's entry service every half second (browse, cart, buy in
turn) and records whether it succeeded and how long it took. The objective holds over a window
when at most `max_error_ratio` of the probes failed and their p90 latency stays within
`latency_factor` times the baseline's p90 plus `latency_slack_s`. Used by the scenario bench
for both agents, so selfheal and the reflex baseline are judged by the same yardstick.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time

import httpx

PATHS = ("/frontend/browse", "/frontend/cart", "/frontend/buy")


@dataclasses.dataclass(frozen=True)
class Probe:
    t: float
    ok: bool
    latency_s: float


@dataclasses.dataclass(frozen=True)
class Objective:
    window_s: float = 10.0
    max_error_ratio: float = 0.05
    latency_factor: float = 3.0
    latency_slack_s: float = 0.15


def p90(values: list[float]) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


@dataclasses.dataclass(frozen=True)
class Health:
    """The objective over one window: met or not, and the figures behind the verdict."""

    met: bool
    error_ratio: float
    p90_s: float
    probes: int


def judge(probes: list[Probe], start: float, end: float, baseline_p90: float,
          objective: Objective) -> Health:
    inside = [p for p in probes if start <= p.t < end]
    if not inside:
        return Health(False, math.nan, math.nan, 0)  # no answer at all is not a met objective
    errors = sum(1 for p in inside if not p.ok)
    ratio = errors / len(inside)
    lat = p90([p.latency_s for p in inside])
    bound = baseline_p90 * objective.latency_factor + objective.latency_slack_s
    return Health(ratio <= objective.max_error_ratio and lat <= bound, ratio, lat, len(inside))


class Prober:
    """Probes the shop through its router until stopped; keeps every probe."""

    def __init__(self, router_url: str, interval_s: float = 0.5, timeout_s: float = 3.0) -> None:
        self.router_url = router_url
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.probes: list[Probe] = []

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=self.timeout_s) as http:
            n = 0
            while True:
                path = PATHS[n % len(PATHS)]
                n += 1
                started = time.time()
                t0 = time.perf_counter()
                try:
                    r = await http.get(f"{self.router_url}{path}")
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.probes.append(Probe(started, ok, time.perf_counter() - t0))
                await asyncio.sleep(max(0.0, self.interval_s - (time.perf_counter() - t0)))

    def baseline_p90(self, start: float, end: float) -> float:
        lat = [p.latency_s for p in self.probes if start <= p.t < end and p.ok]
        return p90(lat) if lat else 0.05
