"""The product detector learns a series' daily rhythm (`detect.season`, default weekly): from
its second day, the baseline follows the hour of the day, so a drop that the daily swing would
hide is reported, and the daily ramp is no trend."""

from __future__ import annotations

import numpy as np

from selfheal import detect
from selfheal.detect import core
from selfheal.detect import settings as settings_mod

STEP = 300.0  # 5 minutes a row
DAY = 288
T0 = 1.7e9  # an epoch time: the profile places each value by its hour of the day


def _traffic(seed: int, days: int) -> np.ndarray:
    """Requests/s of a shop: 20 at 2 a.m., 180 at 2 p.m., with noise."""
    rng = np.random.default_rng(seed)
    hour = (np.arange(DAY * days) % DAY) / 12.0
    return 100.0 + 80.0 * np.cos(2 * np.pi * (hour - 14.0) / 24.0) + rng.normal(0.0, 3.0, len(hour))


def _reported_days(cfg: detect.Settings, x: np.ndarray) -> dict[int, list[int]]:
    """Day -> rows at which the product detector reported an anomaly of the series."""
    det = detect.Detector(cfg)
    out: dict[int, list[int]] = {}
    for i, v in enumerate(x):
        if det.update(T0 + i * STEP, {("shop", "request_rate"): float(v)}):
            out.setdefault(i // DAY, []).append(i)
    return out


def test_a_drop_at_the_daily_peak_is_reported_with_the_daily_profile() -> None:
    drop = slice(8 * DAY + 14 * 12 - 6, 8 * DAY + 14 * 12 + 18)  # 13:30-15:30 on day 8
    for seed in (0, 1):
        x = _traffic(seed, 9)
        x[drop] *= 0.7  # 30% of the traffic lost for two hours at the busiest time
        weekly = _reported_days(detect.Settings(), x)
        off = _reported_days(detect.Settings(**settings_mod.season_overrides("off")), x)
        # with the profile: quiet on the routine days once it has learnt them, and the drop
        # is reported as it starts
        assert not any(weekly.get(d) for d in range(2, 8)), weekly.keys()
        assert weekly.get(8) and drop.start <= weekly[8][0] < drop.start + 3
        # a flat baseline swings with the day: its scale is the swing, and the drop is lost
        assert not off.get(8)


def _baseline_error(cfg: detect.Settings, x: np.ndarray) -> np.ndarray:
    """|value - baseline| at each row."""
    bank = core.Bank(cfg)
    bank.add()
    expected = np.array([bank.step(T0 + i * STEP, np.array([v])).expected[0]
                         for i, v in enumerate(x)])
    return np.abs(x - expected)


def test_the_profile_enters_the_baseline_from_the_second_day() -> None:
    x = _traffic(2, 4)
    weekly = _baseline_error(detect.Settings(), x)
    off = _baseline_error(detect.Settings(**settings_mod.season_overrides("off")), x)
    # the first day the baseline is the level alone (one afternoon is no daily pattern) ...
    np.testing.assert_array_equal(weekly[:DAY], off[:DAY])
    # ... and from the second it follows the hour of the day: on days 3 and 4 it is nearer the
    # traffic than a flat level that lags the swing
    assert weekly[2 * DAY:].mean() < 0.6 * off[2 * DAY:].mean()


def _firing(cfg: detect.Settings, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whether the series fires at each row, and whether its trend is what fires."""
    bank = core.Bank(cfg)
    bank.add()
    steps = [bank.step(T0 + i * STEP, np.array([v])) for i, v in enumerate(x)]
    firing = np.array([bool(st.firing[0]) for st in steps])
    return firing, firing & np.array([int(st.detector[0]) == core.TREND for st in steps])


def test_the_daily_ramp_is_no_trend_once_the_profile_has_learnt_it() -> None:
    x = _traffic(3, 6)
    firing = {}
    for season in ("weekly", "off"):
        # the trend's horizon 600 ticks (50 hours), as before it was counted in seconds
        firing[season], _ = _firing(detect.Settings(**settings_mod.season_overrides(season),
                                                    trend_horizon_s=None), x)
    late = slice(3 * DAY, None)  # days 4 to 6
    # a flat baseline calls the morning climb and the evening fall a trend, every day
    assert firing["off"][late].mean() > 0.3
    # the trend is fitted to the value less the profile: a routine day fires nothing
    assert not firing["weekly"][late].any()
    # the product's horizon, 600 s (two rows here), never sees the daily ramp as a trend,
    # profile or not, from the first day; and from day 4 nothing fires
    for season in ("weekly", "off"):
        default, trend = _firing(detect.Settings(**settings_mod.season_overrides(season)), x)
        assert not trend.any(), (season, np.flatnonzero(trend)[:10])
        assert not default[late].any(), season


def _reported_minutes(cfg: detect.Settings, tick_s: float, days: int) -> list[int]:
    """Minutes from the second day on in which the product detector reported one of four
    series of a daily swing (20-100 requests a second, a 60 s rate of Poisson counts) watched
    every `tick_s`."""
    rng = np.random.default_rng(11)
    det = detect.Detector(cfg)
    t0 = T0 - T0 % 86_400
    reported: set[tuple[int, int]] = set()
    for i in range(int(days * 86_400 / tick_s)):
        t = t0 + i * tick_s
        rate = 60.0 + 40.0 * np.sin(2 * np.pi * ((t + np.arange(4) * 3 * 3600) % 86_400)
                                     / 86_400)
        values = rng.poisson(rate * 60.0) / 60.0
        got = det.update(t, {(f"s{k}", "request_rate"): float(v) for k, v in enumerate(values)})
        if t - t0 >= 2 * 86_400:
            reported |= {(int(a.service[1:]), int(t // 60)) for a in got}
    return sorted(m for _, m in reported)


def test_at_a_fine_tick_the_profile_is_read_between_its_hours_and_an_hour_start_is_no_shift(
) -> None:
    # read as steps, the hourly profile jumps at each hour's start; at a 30 s tick the level
    # follows the value within ~25 minutes, so the jump shows as a level shift in the first
    # minutes of an hour. Read between the hours' means, the swing is quiet.
    steps = _reported_minutes(detect.Settings(season_between_ticks=float("inf")), 30.0, 4)
    assert len(steps) >= 10
    assert all(m % 60 < 20 for m in steps), steps
    assert _reported_minutes(detect.Settings(), 30.0, 4) == []
