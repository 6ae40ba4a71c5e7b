"""After an extreme stretch (a broken exporter's hour at 100x the level and more), the noise
scale comes back within minutes once the residuals stay far below it (`quick_fall`) and the
hour has not taught the seasonal profiles (`profile_rise_s`), so the series' next real anomaly
is seen; and steady noise keeps the scale it had."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import older
import pytest

from selfheal import detect
from selfheal.detect import core, persist

T0 = 1.7e9
KEY = ("api", "p99_latency_s")
TICK = 15.0


def _first_report(settings: detect.Settings, bad: float, after: int,
                  warm: int = 3000) -> int | None:
    """`warm` ticks (12.5 h) of N(100, 1) at 15 s, an hour at `bad`, `after` ticks back at
    100, then a tripling: the tick of the tripling at which it is reported (None: not in 100
    ticks)."""
    det = detect.Detector(settings)
    rng = np.random.default_rng(1)
    i = 0
    for i in range(warm):
        assert not det.update(T0 + TICK * i, {KEY: float(100 + rng.normal())})
    for _ in range(240):
        i += 1
        det.update(T0 + TICK * i, {KEY: bad})
    for _ in range(after):
        i += 1
        det.update(T0 + TICK * i, {KEY: float(100 + rng.normal())})
    for k in range(100):
        i += 1
        if det.update(T0 + TICK * i, {KEY: float(300 + rng.normal())}):
            return k
    return None


@pytest.mark.parametrize(("bad", "after"), [(1e4, 40), (1e29, 60)])
def test_a_tripling_after_an_absurd_hour_is_reported(bad: float, after: int) -> None:
    # 10 minutes (15 after 1e29) back at the level: seen within its hold (~90 s)
    got = _first_report(detect.Settings(), bad, after)
    assert got is not None and got <= 8
    # without the quick fall the scale is still tens to hundreds of times the noise: unseen
    # (until 50 minutes after 1e4, 75 after 1e29)
    assert _first_report(dataclasses.replace(detect.Settings(), quick_fall=0.0), bad, after) is None


def test_an_absurd_hour_on_the_third_day_does_not_teach_the_profiles() -> None:
    # two days in, the daily and weekly profiles count: the hour at 1e4 left them ~500 off
    # (the noise is 1), and the tripling 10 minutes later was unseen for 75-100 minutes
    warm = 2 * 5760
    got = _first_report(detect.Settings(), 1e4, 40, warm)
    assert got is not None and got <= 8
    old = dataclasses.replace(detect.Settings(), profile_rise_s=0.0)
    assert _first_report(old, 1e4, 40, warm) is None


def test_steady_noise_keeps_its_scale() -> None:
    # the quick fall needs the short memory far below the scale: plain noise never gets there
    rng = np.random.default_rng(7)
    x = np.vstack([100 + rng.normal(size=20_000), 5 + rng.standard_t(3, size=20_000),
                   np.abs(rng.normal(size=20_000))]).T
    scales = []
    for quick in (0.1, 0.0):
        bank = core.Bank(dataclasses.replace(detect.Settings(), quick_fall=quick,
                                             season_period_s=0.0, weekly_profile=False))
        bank.add_many(3, direction=1, floor=0.0, rel_floor=0.0)
        seen = []
        for i, row in enumerate(x):
            seen.append(bank.step(T0 + TICK * i, row).scale)
        scales.append(np.mean(seen[1000:], axis=0))
    np.testing.assert_allclose(scales[0], scales[1], rtol=0.01)


def test_a_state_of_the_last_format_loads_with_its_scale_as_the_short_memory() -> None:
    det = detect.Detector()
    rng = np.random.default_rng(4)
    for i in range(200):
        det.update(T0 + 60 * i, {("api", "latency_p99"): float(100.0 + rng.normal(0.0, 1.0))})
    arrays, blob = older.as_format(det, 2, "core.a.dquick", "core.a.sslow")
    restored = detect.Detector.load(blob)
    got = persist.decode(restored.save(), det.settings.season_period_s)[2]
    np.testing.assert_array_equal(got["core.a.dquick"], arrays["core.a.dev"])
    assert (got["core.a.sslow"] == core.HUGE).all()
    # and its next tick clips the profiles by the noise scale, as a young series' would
    restored.update(T0 + 60 * 200, {("api", "latency_p99"): 100.0})
    now = restored._arrays()
    assert 0.0 < now["core.a.sslow"][0] < core.HUGE


def _swing(det: detect.Detector, start: int, days: int) -> None:
    for i in range(start, start + 288 * days):
        hour = (i % 288) / 12.0
        det.update(T0 + 300.0 * i, {("shop", "request_rate"):
                                    100.0 + 30.0 * np.sin(2 * np.pi * hour / 24.0)})


def test_a_state_saved_with_the_clip_off_still_learns_its_profiles() -> None:
    # saved with profile_rise_s 0 (its slow scale never kept: 0), loaded with the clip on:
    # the profiles learn on (a slow scale of 0 clipped every lesson to nothing)
    det = detect.Detector(dataclasses.replace(detect.Settings(), profile_rise_s=0.0))
    _swing(det, 0, 1)
    restored = detect.Detector.load(det.save())
    before = restored._arrays()["core.season"].astype(np.float64).copy()
    assert (restored._arrays()["core.a.sslow"] == 0.0).all()
    _swing(restored, 288, 2)
    moved = np.abs(restored._arrays()["core.season"].astype(np.float64) - before).max()
    assert moved > 1.0


def test_a_tick_after_a_long_gap_keeps_the_state_finite() -> None:
    bank = core.Bank(detect.Settings())
    bank.add()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow in the clip's rise would warn
        for i in range(100):
            bank.step(T0 + 15.0 * i, np.array([100.0 + (i % 3)]))
        bank.step(T0 + 15.0 * 100 + 4e6, np.array([101.0]))  # 46 days later
    assert all(np.isfinite(v).all() for k, v in bank.state().items()
               if k not in ("start", "cut_age", "limit"))  # none open, no cut, no limit


@pytest.mark.parametrize(("field", "value"), [
    ("quick_fall", -0.1), ("quick_fall", 1.0), ("quick_fall", float("nan")),
    ("alpha_quick", 0.0), ("alpha_quick", 1.5), ("profile_rise_s", -1.0),
    ("profile_rise_s", float("inf")), ("profile_rise_s", float("nan")),
])
def test_settings_out_of_range_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        detect.Settings(**{field: value})


@pytest.mark.parametrize("sd", [5.0, 20.0])
def test_a_new_noisy_series_is_not_reported_while_its_scale_grows(sd: float) -> None:
    # N(50, sd) from its first value: its level and scale start as the mean and mean absolute
    # deviation of its first values, not at the noise floor (1% of the level) that the Huber
    # clip then held down for hours, reporting plain noise all the while
    def reports(settings: detect.Settings) -> int:
        det = detect.Detector(settings)
        rng = np.random.default_rng(3)
        return sum(len(det.update(T0 + 60.0 * i, {("db", "queue_depth"):
                                                  float(rng.normal(50.0, sd))}))
                   for i in range(480))
    assert reports(detect.Settings()) == 0
    assert reports(dataclasses.replace(detect.Settings(), cold_unclipped=False)) > 20
