"""After a restart the detectors rebuild their state from the stored samples.

A cold detector is blind for its warm-up and learns whatever it sees first as normal; a warm
one, replayed from the store, fires on the first bad tick after the restart. Neither warm
start nor the live tick lets the report gate learn an incident's episodes as routine.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from selfheal import config, detect, model, policy, ports
from selfheal.detect import settings as detect_settings
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


# -- the saved state: a restart keeps each series' rhythm -------------------------------------

STEP = 300.0  # a 5-minute scrape
DAY = 288


def _restartable(tmp_path: Path, store: sql.SqlStore, now: float, events: list[str],
                 **detect_cfg: Any) -> controller_mod.Controller:
    cfg = config.Config(workdir=tmp_path, platform=config.PlatformSettings(services={"shop": []}),
                        scrape=config.Scrape(interval_s=STEP), detect=config.Detect(**detect_cfg))
    return controller_mod.Controller(
        cfg, serve.ObservedPlatform({"shop": []}), store,
        policy.Gate(policy.parse(serve.OBSERVE_POLICY, "test")), {"shop": ()}, lambda: now,
        lambda e: events.append(e.message), feeds=[])


def _traffic(days: int) -> np.ndarray:
    """Requests/s of a shop: 20 at 2 a.m., 180 at 2 p.m., noise 3."""
    rng = np.random.default_rng(7)
    hour = (np.arange(DAY * days) % DAY) / 12.0
    return 100.0 + 80.0 * np.cos(2 * np.pi * (hour - 14.0) / 24.0) + rng.normal(0.0, 3.0, len(hour))


def test_a_restart_keeps_the_daily_rhythm_the_detectors_learned(tmp_path: Path) -> None:
    # a week of a daily swing, then a restart an hour after the last save, then a 30% drop at
    # the next day's peak: the restarted controller reports the drop and nothing else, as the
    # one that never stopped does; one rebuilt from 10 minutes of samples has lost the rhythm
    x = _traffic(9)
    x[8 * DAY + 14 * 12 - 6 : 8 * DAY + 14 * 12 + 18] *= 0.7
    key = ("shop", "request_rate")
    t0 = NOW - NOW % 86_400  # midnight: the rows fall on the hours their shape says
    store = sql.SqlStore(config.Config(workdir=tmp_path).database_url())
    store.add_samples([model.Sample(t=t0 + i * STEP, service="shop", metric="request_rate",
                                    value=float(x[i])) for i in range(8 * DAY)])
    events: list[str] = []
    kept = _restartable(tmp_path, store, t0, events)
    for i in range(8 * DAY):
        kept.detector.update(t0 + i * STEP, {key: float(x[i])}, _ctx())
        if i == 8 * DAY - 13:
            kept.save_state(t0 + i * STEP)
    now = t0 + 8 * DAY * STEP - STEP / 2
    restarted = _restartable(tmp_path, store, now, events)
    assert restarted.warm_start() == 12  # the hour stored since the save
    assert any("restored from their saved state (1 series" in e for e in events)
    cold = _restartable(tmp_path, store, now, events, save_state_s=0)
    assert cold.warm_start() == 2
    reports: dict[str, list[int]] = {"kept": [], "restarted": [], "cold": []}
    for i in range(8 * DAY, 9 * DAY):
        for name, ctl in (("kept", kept), ("restarted", restarted), ("cold", cold)):
            if ctl.detector.update(t0 + i * STEP, {key: float(x[i])}, _ctx()):
                reports[name].append(i)
    drop = 8 * DAY + 14 * 12 - 6
    assert reports["restarted"] == reports["kept"] == list(range(drop, drop + 24))
    # without the saved state the swing is news again: the day's climb and fall page for hours
    assert len([i for i in reports["cold"] if not drop <= i < drop + 24]) > 100
    store.close()


def _saved_times(tmp_path: Path, every: float) -> list[float | None]:
    """When the saved state was written, seen after each of four ticks 100 s apart and after
    a shutdown 50 s later."""
    store = sql.SqlStore(sql.sqlite_url(tmp_path / f"every-{every:g}.db"))
    clock = [NOW]
    cfg = config.Config(workdir=tmp_path, platform=config.PlatformSettings(services={"auth": []}),
                        detect=config.Detect(save_state_s=every))
    ctl = controller_mod.Controller(
        cfg, serve.ObservedPlatform({"auth": []}), store,
        policy.Gate(policy.parse(serve.OBSERVE_POLICY, "test")), {"auth": ()},
        lambda: clock[0], lambda e: None, feeds=[_Flapping(clock)])
    saved: list[float | None] = []

    def seen() -> None:
        got = store.load_state(controller_mod.STATE_NAME)
        saved.append(None if got is None else got[0])
        if got is not None:  # what was saved is a state the detector reads back
            assert detect.Detector.load(got[1]).series == (("auth", "error_ratio"),
                                                          ("cart", "error_ratio"))

    async def run() -> None:
        for _ in range(4):
            clock[0] += 100.0
            await ctl.tick()
            await ctl.state_saved()  # the tick writes it in a thread
            seen()
        clock[0] += 50.0
        await ctl.stop()
        seen()

    asyncio.run(run())
    store.close()
    return saved


def test_the_state_is_saved_every_save_state_s_and_at_shutdown(tmp_path: Path) -> None:
    assert _saved_times(tmp_path, 300.0) == [None, None, NOW + 300, NOW + 300, NOW + 450]
    assert _saved_times(tmp_path, 0.0) == [None] * 5


@pytest.mark.parametrize("why", ["damaged", "another seasonality", "in the future",
                                 "another tick"])
def test_a_saved_state_that_does_not_fit_is_not_used_and_the_samples_are(
        tmp_path: Path, why: str) -> None:
    store = sql.SqlStore(config.Config(workdir=tmp_path).database_url())
    rng = np.random.default_rng(3)
    store.add_samples([
        model.Sample(t=NOW - 120 + i, service="auth", metric="error_ratio",
                     value=float(abs(rng.normal(0.001, 0.0005)))) for i in range(120)])
    other = detect.Detector(detect.Settings(**detect_settings.season_overrides(
        "daily" if why == "another seasonality" else "weekly")))
    if why == "another tick":  # learned a minute apart; selfheal now ticks every 300 s
        other.update(NOW - 3060, {("auth", "error_ratio"): 0.001})
    other.update(NOW + (7200 if why == "in the future" else -3000),
                 {("auth", "error_ratio"): 0.001})
    data = other.save()
    store.save_state(controller_mod.STATE_NAME, NOW - 3000,
                     data[: len(data) // 3] if why == "damaged" else data)
    events: list[str] = []
    ctl = _restartable(tmp_path, store, NOW, events)
    assert ctl.warm_start() == 120  # the last 10 minutes of samples, as without a state
    said = [e for e in events if "saved state is not used" in e]
    assert said and {"damaged": "damaged", "another seasonality": "detect.season",
                     "in the future": "in the future",
                     "another tick": "learned from ticks 60 s apart and selfheal now ticks "
                                     "every 300 s (scrape.interval_s"}[why] in said[0]
    assert not any("restored" in e for e in events)
    store.close()


def test_a_state_learned_by_a_loop_that_lagged_is_kept(tmp_path: Path) -> None:
    # ticks due every 300 s that came every 600 s under load: the spacing learned is longer
    # than the tick, and the state still fits (a lagging loop keeps its rhythm)
    store = sql.SqlStore(config.Config(workdir=tmp_path).database_url())
    lagged = detect.Detector()
    for i in range(20):
        lagged.update(NOW - 12_000 + 600 * i, {("shop", "request_rate"): 100.0 + i % 3})
    assert lagged.spacing_s == pytest.approx(600.0)
    store.save_state(controller_mod.STATE_NAME, NOW - 600, lagged.save())
    events: list[str] = []
    _restartable(tmp_path, store, NOW, events).warm_start()
    assert any("restored from their saved state (1 series" in e for e in events), events
    store.close()


def test_a_save_that_fails_keeps_the_last_saved_state_and_says_so(tmp_path: Path) -> None:
    store = sql.SqlStore(sql.sqlite_url(tmp_path / "locked.db"))
    events: list[str] = []
    ctl = _restartable(tmp_path, store, NOW, events)
    ctl.detector.update(NOW - 10, {("shop", "request_rate"): 100.0}, _ctx())
    ctl.save_state(NOW - 10)
    ctl.detector.update(NOW, {("shop", "request_rate"): 101.0}, _ctx())
    other = sqlite3.connect(tmp_path / "locked.db", timeout=1)
    other.execute("BEGIN EXCLUSIVE")  # another writer holds the database past the timeout
    try:
        ctl.save_state(NOW)
    finally:
        other.rollback()
        other.close()
    assert any("the detectors' state was not saved" in e and "locked" in e for e in events)
    got = store.load_state(controller_mod.STATE_NAME)
    assert got is not None and got[0] == NOW - 10
    assert detect.Detector.load(got[1]).last_t == NOW - 10
    store.close()


class _SlowStore(sql.SqlStore):
    """SQLite whose saves of the detectors' state wait until the test lets them through (a
    large state, a slow disk)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.release = threading.Event()
        self.saves = 0

    def save_state(self, name: str, t: float, data: bytes) -> None:
        self.saves += 1
        assert self.release.wait(30)
        super().save_state(name, t, data)


def test_the_loop_ticks_on_while_the_state_is_written(tmp_path: Path) -> None:
    store = _SlowStore(sql.sqlite_url(tmp_path / "slow.db"))
    clock = [NOW]
    cfg = config.Config(workdir=tmp_path, platform=config.PlatformSettings(services={"auth": []}),
                        detect=config.Detect(save_state_s=300))
    ctl = controller_mod.Controller(
        cfg, serve.ObservedPlatform({"auth": []}), store,
        policy.Gate(policy.parse(serve.OBSERVE_POLICY, "test")), {"auth": ()},
        lambda: clock[0], lambda e: None, feeds=[_Flapping(clock)])

    async def run() -> None:
        for _ in range(3):  # +300 starts a save, which hangs
            clock[0] += 150.0
            await ctl.tick()
        ticked = ctl.detector.last_t
        for _ in range(4):  # ticks go on; the +600 interval does not start a second save
            clock[0] += 150.0
            await asyncio.wait_for(ctl.tick(), 10)
        assert ctl.detector.last_t == ticked + 600
        assert store.saves == 1 and store.load_state(controller_mod.STATE_NAME) is None
        store.release.set()
        await ctl.state_saved()
        got = store.load_state(controller_mod.STATE_NAME)
        assert got is not None and got[0] == NOW + 300
        # what was saved is the state of the tick that started the save, not a later one
        assert detect.Detector.load(got[1]).last_t == NOW + 300

    asyncio.run(run())
    store.close()


class _Retiring:
    """A feed of two services' request rates; `old` stops reporting after 10 ticks."""

    name = "retiring"
    kinds = frozenset({model.SignalKind.METRICS})

    def __init__(self) -> None:
        self.i = 0

    async def collect(self, now: float) -> ports.Collected:
        self.i += 1
        services = ("new", "old") if self.i <= 10 else ("new",)
        return ports.Collected(samples=tuple(
            model.Sample(t=now, service=svc, metric="request_rate", value=10.0 + self.i % 2)
            for svc in services))

    async def close(self) -> None:
        pass


def test_the_loop_says_which_idle_series_it_dropped(tmp_path: Path) -> None:
    store = sql.SqlStore(config.Config(workdir=tmp_path).database_url())
    clock = [NOW]
    events: list[str] = []
    cfg = config.Config(workdir=tmp_path,
                        platform=config.PlatformSettings(services={"new": [], "old": []}),
                        detect=config.Detect(forget_after_s=3600.0))
    ctl = controller_mod.Controller(
        cfg, serve.ObservedPlatform({"new": [], "old": []}), store,
        policy.Gate(policy.parse(serve.OBSERVE_POLICY, "test")), {"new": (), "old": ()},
        lambda: clock[0], lambda e: events.append(e.message), feeds=[_Retiring()])

    async def run() -> None:
        for _ in range(200):  # 200 minutes: idle for an hour, then the hourly check
            clock[0] += 60.0
            await ctl.tick()

    asyncio.run(run())
    assert ctl.detector.series == (("new", "request_rate"),)
    said = [e for e in events if "dropped from the detectors" in e]
    assert said == ["1 series with no value for 0.0416667 days dropped from the detectors: "
                    "old/request_rate"]
    store.close()
