"""The growth check (`detect.growth`): a steady rise of a limit-type series with no usable
limit is reported once, in words; what only looks like one (a daily swing, a cache warming up,
a deploy's step, a sawtooth, a rise that stopped) is not.

Series run at a 60 s tick (10 min for the property tests) from a fixed start; no wall clock.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfheal import config, detect, errors, model
from selfheal.detect import growth, persist
from selfheal.engine import controller

MIB = 1024.0 * 1024.0
T0 = 1_800_000_000.0  # a Friday, 8:00 UTC
DAY = 86_400.0
KEY = ("web", "rss_bytes")
NO_LIMIT = {"rss_bytes": math.inf}


def _settings(season: str = "weekly", limits: dict[str, float] | None = None
              ) -> detect.Settings:
    """The product detector, with no known limit for memory by default."""
    base = controller.detector_settings(config.Detect(season=season))
    return dataclasses.replace(base, limits=NO_LIMIT if limits is None else limits)


def _run(value: Callable[[float, np.random.Generator], float], days: float, *,
         tick: float = 60.0, settings_: detect.Settings | None = None,
         det: detect.Detector | None = None, context: detect.Context | None = None,
         start: float = 0.0) -> tuple[detect.Detector, list[model.Anomaly]]:
    """Feed `value(seconds since T0, rng)` from `start` for `days`; the growth anomalies."""
    det = det or detect.Detector(settings_ or _settings())
    rng = np.random.default_rng(7)
    found = []
    for i in range(int(days * DAY / tick)):
        s = start + i * tick
        found += [a for a in det.update(T0 + s, {KEY: value(s, rng)}, context)
                  if a.detector == "growth"]
    return det, found


def _leak(rate_h: float, from_s: float = DAY) -> Callable[[float, np.random.Generator], float]:
    """1 GiB, flat (noise 2 MiB) until `from_s`, then `rate_h` of it more an hour."""
    def value(s: float, rng: np.random.Generator) -> float:
        return 1024 * MIB * (1 + rate_h * max(0.0, s - from_s) / 3600) \
            + rng.normal(0, 2 * MIB)
    return value


# ---------------------------------------------------------------------- found, once, said


@pytest.mark.parametrize("rate_h", [0.02, 0.05, 0.10])
def test_a_slow_leak_with_no_limit_is_reported_once_within_hours(rate_h: float) -> None:
    _, found = _run(_leak(rate_h), days=2.5)
    assert len(found) == 1, [a.explanation for a in found]
    a = found[0]
    hours = (a.detected_at - T0 - DAY) / 3600
    assert 4.0 <= hours <= 8.0
    assert not a.expected and a.score >= 0.7  # a finding on its own (`fuse`)
    assert a.metric == "rss_bytes" and a.service == "web"
    assert a.started_at >= T0 + DAY - 3600  # the rise, not the flat day before it
    assert "rss_bytes of web rose" in a.explanation and "steadily" in a.explanation
    assert "no limit is known for it, so no time to OOM" in a.explanation
    # the rate it gives is the leak's (the buckets' means, as measured)
    said = float(a.explanation.split("steadily (")[1].split("%/h")[0])
    assert said == pytest.approx(rate_h * 100, rel=0.15)


def test_a_limit_the_service_is_past_is_said_so() -> None:
    # the default 512 MiB of rss_bytes is behind a 1 GiB service: not its own limit
    _, found = _run(_leak(0.05), days=1.5, settings_=_settings(limits={"rss_bytes": 512 * MIB}))
    assert len(found) == 1
    assert "past the 512.0 MiB limit, which cannot be its own" in found[0].explanation


def test_a_usable_limit_leaves_the_leak_to_the_time_to_limit_forecast() -> None:
    det = detect.Detector(_settings(limits={"rss_bytes": 512 * MIB}))
    det.set_limits("rss_bytes", {"web": 4096 * MIB})
    _, found = _run(_leak(0.05), days=2.0, det=det)
    assert found == []


def test_the_growth_of_a_metric_with_no_limit_entry_is_not_watched() -> None:
    det = detect.Detector(_settings(limits={}))
    _, found = _run(_leak(0.05), days=1.5, det=det)
    assert found == []


def test_a_new_rise_after_the_last_one_stopped_is_reported_again() -> None:
    def value(s: float, rng: np.random.Generator) -> float:
        # up 5%/h for 8 h, flat for 6 h, up again 5%/h
        h = max(0.0, s - DAY) / 3600
        up = min(h, 8.0) + max(0.0, h - 14.0)
        return 1024 * MIB * (1 + 0.05 * up) + rng.normal(0, 2 * MIB)
    _, found = _run(value, days=2.0)
    assert len(found) == 2
    assert (found[1].detected_at - T0 - DAY) / 3600 > 14.0


# ---------------------------------------------------------------------- quiet


def _daily(s: float, rng: np.random.Generator) -> float:
    """Memory following traffic: +-30% over the day, noise 2%."""
    return 1024 * MIB * (1 + 0.3 * math.sin(2 * math.pi * s / DAY)) \
        * (1 + rng.normal(0, 0.02))


def _warm_up(s: float, rng: np.random.Generator) -> float:
    """1 GiB; restarted at 30 h: 200 MiB, filling its cache to 1 GiB in ~2 h, then flat."""
    if s < 30 * 3600:
        return 1024 * MIB + rng.normal(0, 2 * MIB)
    age = s - 30 * 3600
    return (200 + 824 * (1 - math.exp(-age / 2400))) * MIB + rng.normal(0, 2 * MIB)


def _step_up(s: float, rng: np.random.Generator) -> float:
    """A deploy at 30 h raises memory by 30%."""
    return 1024 * MIB * (1.3 if s >= 30.5 * 3600 else 1.0) + rng.normal(0, 2 * MIB)


def _sawtooth(period_s: float) -> Callable[[float, np.random.Generator], float]:
    """Up 30% over each period, then back (GC, a periodic flush)."""
    def value(s: float, rng: np.random.Generator) -> float:
        return 1024 * MIB * (1 + 0.3 * (s % period_s) / period_s) + rng.normal(0, 2 * MIB)
    return value


def _stops(s: float, rng: np.random.Generator) -> float:
    """Up 10%/h for 2 h at 30 h, then flat."""
    h = min(max(0.0, s - 30 * 3600) / 3600, 2.0)
    return 1024 * MIB * (1 + 0.1 * h) + rng.normal(0, 2 * MIB)


def test_a_daily_swing_of_memory_following_traffic_is_no_growth() -> None:
    _, found = _run(_daily, days=3.0)
    assert found == [], [a.explanation for a in found]


def _weekdays(leak_from_day: float = math.inf) -> Callable[[float, np.random.Generator], float]:
    """Memory following a working week's traffic: +40% from 6:00 to 20:00 on weekdays, +10%
    at weekends (T0 is a Friday); and a leak of 5% an hour from `leak_from_day` on."""
    def value(s: float, rng: np.random.Generator) -> float:
        t = T0 + s
        monday_first = int((t // DAY + 3) % 7)  # the epoch was a Thursday
        hour = (t % DAY) / 3600
        day = max(0.0, math.sin(math.pi * (hour - 6) / 14)) if 6 <= hour <= 20 else 0.0
        leak = 0.05 * max(0.0, s - leak_from_day * DAY) / 3600
        return 1024 * MIB * (1 + (0.4 if monday_first < 5 else 0.1) * day + leak) \
            + rng.normal(0, 2 * MIB)
    return value


def _weekday(a: model.Anomaly) -> str:
    return ("Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed")[int(a.detected_at // DAY % 7)]


@pytest.mark.parametrize("season", ["weekly", "daily"])
def test_a_monday_morning_rises_over_sunday_but_not_over_last_monday(season: str) -> None:
    # 13 days from a Friday: two Mondays. Against Sunday alone, each Monday morning is a
    # steady rise of 28% (the daily seasonality's control); against the Monday before too,
    # the second is none. The first has no Monday before it to be judged against.
    _, found = _run(_weekdays(), days=13.0, settings_=_settings(season=season))
    days = [(_weekday(a), int(a.detected_at // DAY)) for a in found]
    first_monday = int(T0 // DAY) + 3
    if season == "weekly":
        assert days == [("Mon", first_monday)], [a.explanation for a in found]
    else:
        assert days == [("Mon", first_monday), ("Mon", first_monday + 7)]


def test_a_leak_in_the_second_week_rises_over_both_the_day_and_the_week_before() -> None:
    # a Saturday leak, 8 days in: judged against Friday and the Saturday before
    # (the first Monday, with no Monday before it, is reported too: the test above)
    _, found = _run(_weekdays(leak_from_day=8.0), days=9.0)
    leak = [a for a in found if a.detected_at > T0 + 8 * DAY]
    assert len(leak) == 1 and _weekday(leak[0]) == "Sat", [a.explanation for a in found]
    assert 4 * 3600 <= leak[0].detected_at - (T0 + 8 * DAY) <= 8 * 3600


@pytest.mark.parametrize("season", ["weekly", "off"])
@pytest.mark.parametrize("case", [_warm_up, _step_up, _sawtooth(600.0), _sawtooth(7200.0),
                                  _stops], ids=["warm-up", "step-up", "sawtooth-10min",
                                                "sawtooth-2h", "stops-after-2h"])
def test_what_only_looks_like_a_leak_is_no_growth(
        case: Callable[[float, np.random.Generator], float], season: str) -> None:
    # with the seasonality off, the rules alone judge from the first hour (no day of
    # profile to wait for)
    _, found = _run(case, days=2.5, settings_=_settings(season=season))
    assert found == [], [a.explanation for a in found]


# ---------------------------------------------------------------------- context


def test_a_rise_seen_in_a_maintenance_window_is_expected_then_reported_after_it() -> None:
    # the rise is first seen ~5 h into the leak (DAY + 5 h); maintenance covers 4-6 h
    window = (T0 + DAY + 4 * 3600, T0 + DAY + 6.5 * 3600, "web")
    _, found = _run(_leak(0.05), days=1.5, context=detect.Context(maintenance=(window,)))
    inside = [a for a in found if a.expected]
    after = [a for a in found if not a.expected]
    assert inside and all(window[0] <= a.detected_at <= window[1] for a in inside)
    assert "maintenance window" in inside[0].explanation
    assert len(after) == 1 and after[0].detected_at > window[1]


# ---------------------------------------------------------------------- persistence


def test_a_restart_mid_rise_reports_it_as_the_uninterrupted_detector_does() -> None:
    _, whole = _run(_leak(0.05), days=1.5)
    det, before = _run(_leak(0.05), days=1.1)  # 2.4 h into the leak
    assert before == []
    det = detect.Detector.load(det.save(), det.settings)
    _, after = _run(_leak(0.05), days=0.4, det=det, start=1.1 * DAY)
    # (the noise after the restart is drawn afresh: the value now differs)
    assert [(a.detected_at, a.explanation.split(" (now")[0]) for a in after] == \
        [(a.detected_at, a.explanation.split(" (now")[0]) for a in whole]


def test_a_state_saved_before_the_growth_check_still_loads() -> None:
    det, _ = _run(_leak(0.0), days=0.2)
    keys, (last_t, dt), arrays = persist.decode(det.save(), det.settings.season_period_s)
    assert any(k.startswith("growth.") for k in arrays)
    old = {k: v for k, v in arrays.items() if not k.startswith("growth.")}
    data = persist.encode(keys, last_t, dt, det.settings.season_period_s, old)
    loaded = detect.Detector.load(data, det.settings)
    assert loaded.series == (KEY,)
    # and it goes on to find a leak (the rings start afresh: a day, then the leak)
    _, found = _run(_leak(0.05, from_s=1.3 * DAY), days=1.4, det=loaded, start=0.2 * DAY)
    assert found


def test_a_state_whose_growth_rows_do_not_fit_is_refused() -> None:
    det, _ = _run(_leak(0.0), days=0.1)
    keys, (last_t, dt), arrays = persist.decode(det.save(), det.settings.season_period_s)
    arrays["growth.rows"] = np.array([5], np.int64)
    data = persist.encode(keys, last_t, dt, det.settings.season_period_s, arrays)
    with pytest.raises(errors.StateUnusable):
        detect.Detector.load(data, det.settings)


def test_forgetting_other_series_keeps_each_ring_with_its_series() -> None:
    det = detect.Detector(_settings())
    gone = ("old", "rss_bytes")
    for i in range(60):  # a series that goes quiet before the leak's
        det.update(T0 - 3600 + i * 60, {gone: 500 * MIB, ("old", "p99_latency_s"): 0.1})
    _, found = _run(_leak(0.05), days=1.5, det=det)
    det.forget(T0 + 1.0)
    assert gone not in det.series and KEY in det.series
    _, again = _run(_leak(0.05, from_s=1.5 * DAY), days=0.6, det=det, start=1.5 * DAY)
    assert len(found) == 1 and again  # its ring went on (a new rise, seen again)


# ---------------------------------------------------------------------- properties


@settings(max_examples=15, deadline=None)
@given(steps=st.lists(st.floats(-0.03, 0.06), min_size=60, max_size=60),
       cut=st.integers(10, 50))
def test_the_state_is_bounded_and_never_reads_the_future(steps: list[float], cut: int
                                                         ) -> None:
    """Hourly moves of a random walk at a 10 min tick (seasonality off: the rules judge from
    the first hour): what is reported up to an hour does not depend on what comes after it,
    and the state holds `growth_buckets` buckets whatever the length."""
    tick = 600.0

    def walk(tail: float) -> list[model.Anomaly]:
        det = detect.Detector(_settings(season="off"))
        level, out = 1024 * MIB, []
        for h, move in enumerate(steps):
            step = move if h < cut else tail
            for k in range(6):
                level *= 1 + step / 6
                out += [a for a in det.update(T0 + (h * 6 + k) * tick, {KEY: level})
                        if a.detector == "growth"]
        _, (_, _), arrays = persist.decode(det.save(), 0.0)
        assert arrays["growth.ring"].shape == (1, det.settings.growth_buckets)
        return [a for a in out if a.detected_at < T0 + cut * 3600]

    assert walk(0.05) == walk(-0.05)


def test_settings_refuse_growth_windows_that_cannot_work() -> None:
    with pytest.raises(ValueError, match="growth_min_buckets"):
        detect.Settings(growth_min_buckets=13)
    with pytest.raises(ValueError, match="growth_bucket_s"):
        detect.Settings(growth_bucket_s=math.nan)
    with pytest.raises(ValueError, match="growth_rel"):
        detect.Settings(growth_rel=-0.1)
    assert growth.GrowthBank(detect.Settings(growth_rel=0.0)).on is False


def test_values_too_big_to_be_memory_overflow_nothing() -> None:
    """A broken exporter's ±1.7e308 for memory: no overflow (numpy warnings are errors here),
    every bucket sum stays finite, and the state saves and loads."""
    det = detect.Detector(controller.detector_settings(config.Detect()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(3 * 360):
            x = (1.7e308 if i % 2 else -1.7e308) if i % 7 else 1.0
            det.update(1_800_000_000.0 + 10.0 * i, {("a", "rss_bytes"): x})
    sums = det._arrays()["growth.f.sum"]
    assert sums.size and np.isfinite(sums).all()
    detect.Detector.load(det.save(), det.settings)
