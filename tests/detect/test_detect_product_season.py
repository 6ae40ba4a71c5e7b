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


def test_the_daily_ramp_is_no_trend_once_the_profile_has_learnt_it() -> None:
    x = _traffic(3, 6)
    firing = {}
    for season in ("weekly", "off"):
        # the trend's horizon 600 ticks (50 hours), as before it was counted in seconds: the
        # 10 minutes it is now never see a daily ramp as a trend, profile or not
        bank = core.Bank(detect.Settings(**settings_mod.season_overrides(season),
                                         trend_horizon_s=None))
        bank.add()
        firing[season] = np.array([bool(bank.step(T0 + i * STEP, np.array([v])).firing[0])
                                   for i, v in enumerate(x)])
    late = slice(3 * DAY, None)  # days 4 to 6
    # a flat baseline calls the morning climb and the evening fall a trend, every day
    assert firing["off"][late].mean() > 0.3
    # the trend is fitted to the value less the profile: a routine day fires nothing
    assert not firing["weekly"][late].any()
