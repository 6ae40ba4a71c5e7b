"""After a restart the detectors rebuild their state from the stored samples.

A cold detector is blind for its warm-up and learns whatever it sees first as normal; a warm
one, replayed from the store, fires on the first bad tick after the restart. Neither warm
start nor the live tick lets the report gate learn an incident's episodes as routine.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import numpy as np
import pytest

from selfheal import config, detect, model, policy, ports
from selfheal.engine import controller as controller_mod
from selfheal.engine import serve
from selfheal.store import sql

pytestmark = pytest.mark.timeout(60)
NOW = 1_800_000_000.0


def _controller(tmp_path: Path, store: sql.SqlStore, clock: list[float] | None = None,
                feeds: list[ports.Feed] | None = None) -> controller_mod.Controller:
    cfg = config.Config(workdir=tmp_path, platform=config.PlatformSettings(services={"auth": []}))
    now = clock or [NOW]
    return controller_mod.Controller(
        cfg, serve.ObservedPlatform({"auth": []}), store,
        policy.Gate(policy.parse(serve.OBSERVE_POLICY, "test")), {"auth": ()}, lambda: now[0],
        lambda e: None, feeds=feeds or [])


def test_a_warmed_detector_sees_the_first_bad_tick_a_cold_one_learns_as_normal(
        tmp_path: Path) -> None:
    store = sql.SqlStore(config.Config(workdir=tmp_path).database_url())
    rng = np.random.default_rng(3)
    store.add_samples([
        model.Sample(t=NOW - 120 + i, service="auth", metric="error_ratio",
                     value=float(abs(rng.normal(0.001, 0.0005))))
        for i in range(120)])
    warm, cold = _controller(tmp_path, store), _controller(tmp_path, store)
    assert warm.warm_start() == 120
    bad = {("auth", "error_ratio"): 0.4}
    fired_warm = warm.detector.update(NOW + 1, bad, _ctx())
    fired_cold = cold.detector.update(NOW + 1, bad, _ctx())
    assert [a.metric for a in fired_warm] == ["error_ratio"]
    assert math.isclose(fired_warm[0].baseline, 0.001, abs_tol=0.002)
    assert fired_cold == []  # still in its warm-up: it would take the fault for normal
    store.close()


def test_an_empty_store_warms_nothing(tmp_path: Path) -> None:
    store = sql.SqlStore(config.Config(workdir=tmp_path).database_url())
    assert _controller(tmp_path, store).warm_start() == 0
    store.close()


def _ctx() -> detect.Context:
    return detect.Context()


def test_warm_start_does_not_teach_the_gate_that_an_incident_was_routine(
        tmp_path: Path) -> None:
    # two services flapped to 100% errors in the stored hour; auth's flaps were an incident
    # (resolved since), cart's passed unremarked: after a restart, a new flap of cart is its
    # routine, a new flap of auth is still news
    store = sql.SqlStore(config.Config(workdir=tmp_path).database_url())
    rng = np.random.default_rng(5)
    n = 600
    flaps = range(100, n, 60)
    samples = []
    for service in ("auth", "cart"):
        x = 0.002 + np.abs(rng.normal(0.0, 0.001, n))
        for k in flaps:
            x[k : k + 4] = 1.0
        samples += [model.Sample(t=NOW - n + i, service=service, metric="error_ratio",
                                 value=float(x[i])) for i in range(n)]
    store.add_samples(samples)
    store.save_incident(model.Incident(
        id=model.IncidentId("inc-1"), service="auth", opened_at=NOW - n + 101,
        title="auth: error_ratio anomalous", anomalies=(),
        state=model.IncidentState.RESOLVED), {}, now=NOW - 30)
    ctl = _controller(tmp_path, store)
    assert ctl.warm_start() == n
    reported: set[str] = set()
    for i in range(1, 8):
        flap = {("auth", "error_ratio"): 1.0, ("cart", "error_ratio"): 1.0}
        reported |= {a.service for a in ctl.detector.update(NOW + i, flap, _ctx())}
    assert reported == {"auth"}
    store.close()


class _Flapping:
    """A feed of two services' error ratios that flap to 100% every 60 ticks."""

    name = "flapping"
    kinds = frozenset({model.SignalKind.METRICS})

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.i = 0

    async def collect(self, now: float) -> ports.Collected:
        self.i += 1
        value = 1.0 if self.i >= 100 and self.i % 60 < 4 else 0.002 + 0.001 * (self.i % 3)
        return ports.Collected(samples=tuple(
            model.Sample(t=now, service=svc, metric="error_ratio", value=value)
            for svc in ("auth", "cart")))

    async def close(self) -> None:
        pass


def test_the_live_tick_does_not_teach_the_gate_that_an_open_incident_is_routine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # auth has an open incident while both services flap: cart's flaps become its routine,
    # auth's stay news
    store = sql.SqlStore(config.Config(workdir=tmp_path).database_url())
    clock = [NOW]
    ctl = _controller(tmp_path, store, clock, [_Flapping(clock)])
    opened: list[model.Incident] = []
    # cart's first flaps would open an incident and start its investigation: record it instead,
    # so that cart has none and only auth's open incident is in the detector's context
    monkeypatch.setattr(ctl, "_open", opened.append)
    ctl.cases["inc-1"] = controller_mod.Case(
        incident=model.Incident(id=model.IncidentId("inc-1"), service="auth", opened_at=NOW,
                                title="auth: error_ratio anomalous", anomalies=(),
                                state=model.IncidentState.DIAGNOSED),
        detail={}, timeline=[])

    async def run() -> None:
        for _ in range(600):
            clock[0] += 1.0
            await ctl.tick()

    asyncio.run(run())
    reported: set[str] = set()
    for i in range(1, 8):
        flap = {("auth", "error_ratio"): 1.0, ("cart", "error_ratio"): 1.0}
        reported |= {a.service for a in ctl.detector.update(clock[0] + i, flap, _ctx())}
    assert reported == {"auth"}
    assert {inc.service for inc in opened} == {"cart"}  # its first flaps were reported
    store.close()
