"""The seasonal profile counts only as far as it predicts: full weight on a daily pattern,
none on noise with no pattern (whose phase bins would otherwise be learned from the noise)."""

from __future__ import annotations

import numpy as np
import pytest

from selfheal.detect import Settings, core

STEP = 300.0  # 5 minutes a row, 288 rows a day


def _offsets(shrink: float, x: np.ndarray) -> np.ndarray:
    """The seasonal offset the baseline applied at each row (expected minus the level)."""
    cfg = Settings(
        directions={}, min_scale={}, rel_floor=0.0, long_floor=1.0,
        season_period_s=86400.0, season_shrink=shrink, weekly_profile=False,
    )  # fmt: skip
    bank = core.Bank(cfg)
    bank.add_many(1)
    out = np.empty(len(x))
    for i, v in enumerate(x):
        level = bank.state()["mu"][0]
        out[i] = bank.step(i * STEP, np.array([v])).expected[0] - level
    return out


def test_no_pattern_no_seasonal_offset() -> None:
    rng = np.random.default_rng(3)
    x = 100.0 + rng.normal(0.0, 5.0, 288 * 6)
    x[0] = 100.0  # the level starts right (a level off by a constant looks like a "profile")
    tail = slice(288 * 4, None)
    plain = np.std(_offsets(0.0, x)[tail])
    shrunk = np.std(_offsets(10.0, x)[tail])
    assert plain > 0.5  # bins learned from the noise move the baseline about
    assert shrunk < 0.2 * plain


def test_daily_pattern_keeps_its_seasonal_offset() -> None:
    rng = np.random.default_rng(4)
    n = 288 * 6
    pattern = 30.0 * np.sin(2 * np.pi * np.arange(n) / 288)
    x = 100.0 + pattern + rng.normal(0.0, 1.0, n)
    tail = slice(288 * 4, None)
    plain = _offsets(0.0, x)[tail]
    shrunk = _offsets(10.0, x)[tail]
    assert np.allclose(shrunk, plain, atol=0.05 * 30.0)
    assert np.corrcoef(shrunk, pattern[tail])[0, 1] > 0.95


def _scores(weekly: bool, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The score and the seasonal offset (expected minus the level) at each row."""
    cfg = Settings(
        directions={}, min_scale={}, rel_floor=0.0, long_floor=1.0,
        season_period_s=86400.0, season_shrink=10.0, weekly_profile=weekly,
        trend_horizon_s=None,  # the trend's horizon in ticks, as the NAB configuration's
    )  # fmt: skip
    bank = core.Bank(cfg)
    bank.add_many(1)
    score = np.empty(len(x))
    offset = np.empty(len(x))
    for i, v in enumerate(x):
        level = bank.state()["mu"][0]
        step = bank.step(i * STEP, np.array([v]))
        score[i] = step.score[0]
        offset[i] = step.expected[0] - level
    return score, offset


def test_weekly_pattern_is_expected_with_the_weekly_profile() -> None:
    # busy at noon on weekdays, at midnight at weekends: the daily profile learns the weekdays
    # and the weekend is news to it every week; the weekly profile learns both
    rng = np.random.default_rng(5)
    day, week = 288, 288 * 7
    n = week * 5
    i = np.arange(n)
    weekend = i % week >= 5 * day
    phase = 2 * np.pi * i / day + np.where(weekend, np.pi, 0.0)
    x = 100.0 + 30.0 * np.sin(phase) + rng.normal(0.0, 1.0, n)
    last = weekend & (i >= 4 * week)
    daily_only, _ = _scores(False, x)
    with_week, _ = _scores(True, x)
    # the mean score over the fifth weekend (its first rows, where the phase flips, stay news)
    assert daily_only[last].mean() > 0.4  # still news to the daily profile, every weekend
    assert with_week[last].mean() < 0.5 * daily_only[last].mean()


def test_read_between_its_bins_the_weekly_profile_learns_each_bin_from_its_own_value(
) -> None:
    # the weekly pattern above at a 30 s tick, where the profiles are read between their
    # bins (30 ticks a bin: `season_between_ticks`); each bin learns what its own value
    # leaves, not what the read between two bins does (that drags every bin toward its
    # neighbour, and the week's profile flattens). A 6-hour "day" keeps it to 20,000 ticks;
    # the product's other defaults (the trend's 600 s horizon) as they are.
    period, tick = 6 * 3600.0, 30.0
    day = int(period / tick)
    week = 7 * day
    n = week * 3
    i = np.arange(n)
    weekend = i % week >= 5 * day
    pattern = 100.0 + 30.0 * np.sin(2 * np.pi * i / day + np.where(weekend, np.pi, 0.0))
    x = pattern + np.random.default_rng(5).normal(0.0, 1.0, n)
    error = {}
    for weekly in (False, True):
        cfg = Settings(directions={}, min_scale={}, rel_floor=0.0, long_floor=1.0,
                       season_period_s=period, season_shrink=10.0, weekly_profile=weekly)
        assert period / cfg.season_bins / tick >= cfg.season_between_ticks  # read between
        bank = core.Bank(cfg)
        bank.add_many(1)
        expected = np.array([bank.step(k * tick, np.array([v])).expected[0]
                             for k, v in enumerate(x)])
        error[weekly] = np.abs(expected - pattern)[weekend & (i >= 2 * week)].mean()
    # on the third weekend: daily only ~8 (the weekend is news to it), weekly ~2.9; learnt
    # from the read between, the weekly profile was ~7.6
    assert error[True] < 0.5 * error[False]


def test_no_weekly_pattern_no_weekly_offset() -> None:
    # a daily pattern and noise: the weekly bins learn the noise, and earn no weight
    rng = np.random.default_rng(6)
    n = 288 * 7 * 3
    i = np.arange(n)
    x = 100.0 + 30.0 * np.sin(2 * np.pi * i / 288) + rng.normal(0.0, 1.0, n)
    tail = slice(288 * 7 * 2, None)
    _, daily_only = _scores(False, x)
    _, with_week = _scores(True, x)
    assert np.max(np.abs(with_week[tail] - daily_only[tail])) < 0.5


def test_the_weekly_profile_is_the_same_at_any_magnitude() -> None:
    # the weekly bins are kept in half precision in units of the series' own noise scale:
    # network bytes at 1e10 or a ratio at 1e-6 learn the same profile, without overflow
    rng = np.random.default_rng(7)
    day, week = 288, 288 * 7
    i = np.arange(week * 3)
    weekend = i % week >= 5 * day
    x = 100.0 + 30.0 * np.sin(2 * np.pi * i / day + np.where(weekend, np.pi, 0.0))
    x = x + rng.normal(0.0, 1.0, len(i))
    _, unit = _scores(True, x)
    for factor in (1e8, 1e-8):
        score, offset = _scores(True, x * factor)
        assert np.isfinite(offset).all() and np.isfinite(score).all()
        assert np.allclose(offset / factor, unit, rtol=1e-3, atol=1e-3 * 30.0)


def test_the_weekly_profile_keeps_what_it_learnt_when_the_noise_falls() -> None:
    # the same weekly pattern, its noise 100x quieter after two weeks: the profile is
    # re-expressed in the new, smaller unit and keeps what it learnt: on week three's weekend
    # mornings it pulls the baseline down from the weekday peak the daily profile expects, as
    # far as it does when the noise stays as it was
    day, week = 288, 288 * 7
    i = np.arange(week * 3)
    weekend = i % week >= 5 * day
    pattern = 100.0 + 30.0 * np.sin(2 * np.pi * i / day + np.where(weekend, np.pi, 0.0))
    third = (i >= 2 * week) & weekend & (i % day == day // 4)  # weekend mornings of week 3
    offsets = []
    for late in (3.0, 0.03):
        noise = np.where(i < 2 * week, 3.0, late) * np.random.default_rng(8).normal(0, 1, len(i))
        _, daily_only = _scores(False, pattern + noise)
        _, with_week = _scores(True, pattern + noise)
        assert np.all(with_week[third] < daily_only[third] - 10.0)
        offsets.append(with_week[third])
    assert np.allclose(offsets[1], offsets[0], atol=3.0)


@pytest.mark.parametrize("inert", [{"season_period_s": 0.0}, {"season_shrink": 0.0}])
def test_a_weekly_profile_that_could_never_count_is_refused(inert: dict[str, float]) -> None:
    cfg = {"season_period_s": 86400.0, "season_shrink": 10.0, **inert}
    with pytest.raises(ValueError, match="weekly_profile needs"):
        Settings(weekly_profile=True, **cfg)
    Settings(weekly_profile=False, **cfg)  # without it, the same settings are fine


@pytest.mark.parametrize(("field", "bad"), [
    ("season_between_ticks", float("nan")), ("season_between_ticks", -1.0),
    ("trend_horizon_s", 0.0), ("trend_horizon_s", float("inf")),
    ("trend_horizon_s", float("nan"))])
def test_a_read_or_horizon_that_means_nothing_is_refused(field: str, bad: float) -> None:
    with pytest.raises(ValueError, match=field):
        Settings(**{field: bad})

