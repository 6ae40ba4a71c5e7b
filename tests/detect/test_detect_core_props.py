"""Property tests of the vectorised core (with the report gate `Detector` puts on it, and the
range-novelty channel the NAB score adds): no look-ahead, bounded state, no crash on odd data."""

from __future__ import annotations

import dataclasses
import math

import hostile
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfheal.bench import nab, nab_art
from selfheal.detect import Settings, core, news, novelty
from selfheal.detect import settings as settings_mod

FIELDS = ("score", "strength", "surprise", "onset", "firing", "news")

SEASONAL = dataclasses.replace(
    Settings(), season_period_s=10.0, season_bins=5, warmup_ticks=3, weekly=True,
    season_shrink=10.0, record_decay=0.999, weekly_profile=True,
)
# the NAB configuration (transient score, long-memory floor, record scaling), with a short
# warm-up and period so that the short generated series reach every path
NAB_LIKE = dataclasses.replace(
    nab.nab_settings(), warmup_ticks=3, surprise_min_n=2, season_period_s=10.0, season_bins=5
)
CONFIGS = [Settings(warmup_ticks=3), SEASONAL, NAB_LIKE]
NOVELTY_CONFIGS = [
    novelty.NoveltySettings(warmup_ticks=3),
    novelty.NoveltySettings(warmup_ticks=1, windows=(1, 3), hold_ticks=1),
]


def _run(cfg: Settings, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Steps a bank with one series per column; returns each field as (ticks, series)."""
    bank = core.Bank(cfg)
    bank.add_many(rows.shape[1], direction=0)
    gate = news.NewsBank(cfg)
    out: dict[str, list[np.ndarray]] = {f: [] for f in FIELDS}
    for i, row in enumerate(rows):
        step = bank.step(float(i), row)
        told = gate.step(step.firing, step.strength, step.ttl_ticks)
        for f in FIELDS[:-1]:
            out[f].append(np.asarray(getattr(step, f), dtype=float).copy())
        out["news"].append(told.astype(float))
    return {f: np.array(v) for f, v in out.items()}


@pytest.mark.timeout(120)
@settings(max_examples=60, deadline=None)
@given(**hostile.futures(), which=st.integers(0, len(CONFIGS) - 1))
def test_no_detector_reads_the_future(
    head: list[float], tail_a: list[float], tail_b: list[float], which: int
) -> None:
    n = max(len(tail_a), len(tail_b))
    a = head + tail_a + [math.nan] * (n - len(tail_a))
    b = head + tail_b + [math.nan] * (n - len(tail_b))
    rows = np.array([a, b]).T
    res = _run(CONFIGS[which], rows)
    # the range-novelty channel and the NAB score it boosts (short warm-up, two window sets)
    res["novelty"] = novelty.run(rows, NOVELTY_CONFIGS[which % len(NOVELTY_CONFIGS)])
    res["nab"] = novelty.boost(res["onset"], res["novelty"])
    k = len(head)
    for f, got in res.items():
        np.testing.assert_array_equal(got[:k, 0], got[:k, 1], err_msg=f)


@pytest.mark.timeout(120)
@settings(max_examples=60, deadline=None)
@given(xs=st.lists(hostile.values, min_size=1, max_size=120),
       which=st.integers(0, len(CONFIGS) - 1))
def test_odd_data_never_crashes_and_scores_stay_in_range(xs: list[float], which: int) -> None:
    rows = np.array([xs]).T
    res = _run(CONFIGS[which], rows)
    nov = novelty.run(rows, NOVELTY_CONFIGS[which % len(NOVELTY_CONFIGS)])
    assert np.all(np.isfinite(nov)) and np.all(nov >= 0.0)  # a distance, not a probability
    res["nab"] = novelty.boost(res["onset"], nov)
    for f in ("score", "surprise", "onset", "nab"):
        assert np.all(np.isfinite(res[f])), f
        assert np.all((res[f] >= 0.0) & (res[f] <= 1.0)), f


@pytest.mark.parametrize("cfg", CONFIGS)
def test_constant_and_all_missing_series_are_quiet(cfg: Settings) -> None:
    rows = np.empty((300, 3))
    rows[:, 0] = 5.0
    rows[:, 1] = 0.0
    rows[:, 2] = math.nan
    res = _run(cfg, rows)
    assert not res["firing"].any()
    assert np.all(res["score"] == 0.0)


@pytest.mark.parametrize(
    "cfg", [*CONFIGS, Settings(), Settings(**settings_mod.season_overrides("daily"))]
)
def test_state_is_bounded(cfg: Settings) -> None:
    rng = np.random.default_rng(1)
    bank = core.Bank(cfg, capacity=64)
    bank.add_many(64)
    gate = news.NewsBank(cfg)
    size = bank.nbytes_per_series()
    for i in range(3000):
        x = rng.normal(1e6, 1e5, 64) * (1 + i)  # growing without bound
        x[rng.random(64) < 0.1] = math.nan
        x[rng.random(64) < 0.01] *= 1e3  # and bursts: episodes for the report gate to learn
        step = bank.step(float(i), x)
        gate.step(step.firing, step.strength, step.ttl_ticks)
        if i == 0:
            gate_size = gate.nbytes_per_series()
    assert bank.nbytes_per_series() == size
    assert gate.nbytes_per_series() == gate_size and gate.size == 64
    assert size + gate_size <= 1024
    # the accumulators stay finite: the regression is exponentially weighted, not cumulative
    for name, arr in bank.state().items():
        assert np.all(np.isfinite(arr) | (name in ("start", "limit"))), name
    gated = gate.state()
    for name, arr in gated.items():
        assert np.all(np.isfinite(arr)), name
    assert cfg.report_z == 0 or gated["n"].max() > 0  # the gate did learn episodes


def test_spike_and_shift_are_seen_on_noise() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(100.0, 2.0, 400)
    x[250] = 160.0
    x[320:] += 15.0
    res = _run(Settings(), x[:, None])
    assert res["score"][250, 0] >= 0.5
    assert res["firing"][322:330, 0].any()
    assert res["score"][60:249, 0].max() < 0.5


def test_a_daily_batch_spike_stops_surprising_but_a_new_one_does() -> None:
    cfg = dataclasses.replace(Settings(), season_period_s=86400.0, warmup_ticks=20)
    bank = core.Bank(cfg)
    bank.add()
    rng = np.random.default_rng(3)
    per_day = 288  # 5-minute ticks
    surprise_at: dict[tuple[int, int], float] = {}
    for i in range(8 * per_day):
        day, slot = divmod(i, per_day)
        x = 100.0 + rng.normal(0.0, 1.0)
        if slot == 120:  # the nightly batch job at 10:00
            x += 60.0
        if day == 7 and slot == 180:  # something new at 15:00 on the last day
            x += 60.0
        step = bank.step(i * 300.0, np.array([x]))
        surprise_at[(day, slot)] = float(step.surprise[0])
    assert surprise_at[(0, 120)] > 0.5  # the first time, it is news
    assert surprise_at[(7, 120)] < 0.5 * surprise_at[(0, 120)]
    assert surprise_at[(7, 180)] > surprise_at[(7, 120)]


@pytest.mark.parametrize("cfg", NOVELTY_CONFIGS)
def test_novelty_of_extreme_magnitudes_is_finite(cfg: novelty.NoveltySettings) -> None:
    rows = np.array([[0.0] * 10 + [1.7e308, -1.7e308] * 5 + [1.0] * 5]).T
    with np.errstate(over="raise", invalid="raise"):  # no infinity on the way either
        nov = novelty.run(rows, cfg)
    assert np.all(np.isfinite(nov))


@pytest.mark.timeout(120)
@settings(max_examples=40, deadline=None)
@given(**hostile.futures())
def test_the_nab_score_with_its_jump_height_boost_reads_no_future(
    head: list[float], tail_a: list[float], tail_b: list[float]
) -> None:
    # `nab.run` end to end (core, range novelty, the |z| of the last rows, the second
    # family's confirmation with windows short enough for these series): two files that
    # share their first rows score them the same, whatever follows
    def nab_file(xs: list[float]) -> nab.NabFile:
        v = np.array(xs, dtype=float)
        return nab.NabFile("t/x.csv", ("",) * len(v), 10.0 * np.arange(len(v)), v, ())

    got = nab.run(
        [nab_file(head + tail_a), nab_file(head + tail_b)], NAB_LIKE, novel=NOVELTY_CONFIGS[0],
        art=nab_art.ArtSettings(blocks=3, block_rows=1),
    )
    k = len(head)
    np.testing.assert_array_equal(got[0][:k], got[1][:k])
    assert all(np.all((s >= 0.0) & (s <= 1.0)) for s in got)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("per_series", [False, True])
def test_the_bank_refuses_a_tick_at_no_finite_time_changing_nothing(
        bad: float, per_series: bool) -> None:
    """Called directly (as the NAB bench does), the core refuses a NaN or infinite time, one
    for all series or one series' own, before any of its state moves."""
    bank = core.Bank(SEASONAL)
    bank.add_many(3, direction=0)
    for i in range(20):
        bank.step(float(i), np.array([1.0, 2.0, 3.0]) + i % 3)
    before = {k: v.copy() for k, v in bank.arrays().items()}
    t = np.array([20.0, bad, 20.0]) if per_series else bad
    with pytest.raises(ValueError, match="finite number"):
        bank.step(t, np.array([9.0, 9.0, 9.0]))
    after = bank.arrays()
    assert before.keys() == after.keys()
    for k, v in before.items():
        np.testing.assert_array_equal(v, after[k], err_msg=k)
