"""A level shift that lasts is news where a one-tick spike of its height is routine.

A series whose routine is one-tick spikes of 8-12 robust standard deviations (GC pauses, a
cache refresh) teaches the report gate that strengths up to ~2.3 are its routine. A level
shift's own strength is capped (the CUSUM at `cusum_cap`), and its first tick is no taller
than those spikes, so a shift of 12 that lasted two hours was never reported. The gate now
also weighs what an episode has held so far (`Settings.report_held_ticks`: the z-score of the
mean of up to 4 of its ticks), and the spike holds no more than its peak.
"""

from __future__ import annotations

import numpy as np
import older
import pytest

from selfheal import detect
from selfheal.detect import news, persist

KEY = ("api", "latency_ms")
T0 = 1_700_000_000.0
DT = 60.0
DAY = int(86_400 / DT)
SHIFT_AT = DAY + DAY // 2
SHIFT_TICKS = 120


def _spiky(seed: int, shift_sd: float = 0.0) -> np.ndarray:
    """N(100, 5) a minute for two days, a one-tick spike of 8-12 sds every ~2 hours, and a
    shift of `shift_sd` sds for the two hours from `SHIFT_AT`."""
    rng = np.random.default_rng(seed)
    x = 100.0 + 5.0 * rng.standard_normal(2 * DAY)
    spikes = np.arange(60, 2 * DAY, 120) + rng.integers(-10, 10, size=len(range(60, 2 * DAY, 120)))
    x[spikes] += 5.0 * rng.uniform(8.0, 12.0, size=len(spikes))
    x[SHIFT_AT : SHIFT_AT + SHIFT_TICKS] += 5.0 * shift_sd
    return x


def _reported(x: np.ndarray, settings: detect.Settings) -> dict[int, str]:
    """Tick -> explanation of every tick at which the series was reported."""
    det = detect.Detector(settings)
    out: dict[int, str] = {}
    for i, v in enumerate(x.tolist()):
        for a in det.update(T0 + DT * i, {KEY: v}):
            out[i] = a.explanation
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_a_shift_as_tall_as_the_routine_spikes_is_reported_once_it_has_lasted(seed: int) -> None:
    x = _spiky(seed, shift_sd=12.0)
    window = range(SHIFT_AT, SHIFT_AT + SHIFT_TICKS)
    told = _reported(x, detect.Settings())
    first = min(i for i in told if i in window)
    # a few minutes in, and the explanation says it is the lasting that made it news
    assert first - SHIFT_AT <= 5
    assert "held for" in told[first]
    assert f"({first - SHIFT_AT + 1} ticks)" in told[first]
    # the peak tick alone: the shift is routine by its height, for all of its two hours
    assert not set(_reported(x, detect.Settings(report_held_ticks=0))) & set(window)


def test_a_shift_half_as_tall_as_the_routine_spikes_stays_routine_and_so_do_they() -> None:
    # 4 ticks' evidence at most: a lasting shift counts up to twice its mean height, so one
    # of 6 sds beside routine spikes of 8-12 is routine however long it lasts (uncapped, it
    # was news 6-13 ticks in), and how long an episode lasts beyond that adds nothing
    window = range(SHIFT_AT, SHIFT_AT + SHIFT_TICKS)
    assert not set(_reported(_spiky(2, shift_sd=6.0), detect.Settings())) & set(window)
    uncapped = detect.Settings(report_held_ticks=10**9)
    assert set(_reported(_spiky(2, shift_sd=6.0), uncapped)) & set(window)
    # with no shift, what the second day reports is what the peak tick alone reports: the
    # one-tick spikes hold no more than their peak
    base = _reported(_spiky(2), detect.Settings())
    assert [i for i in base if i > DAY] == [
        i for i in _reported(_spiky(2), detect.Settings(report_held_ticks=0)) if i > DAY]


def _bank() -> news.NewsBank:
    return news.NewsBank(detect.Settings(report_days=0.0))


def _step(bank: news.NewsBank, firing: list[bool], z: list[float],
          strength: float = 1.0) -> np.ndarray:
    n = len(firing)
    return bank.step(np.array(firing), np.full(n, strength), np.full(n, np.inf),
                     z=np.array(z, dtype=np.float64))


def test_an_episode_holds_the_sum_of_its_ticks_over_their_root_and_starts_afresh() -> None:
    bank = _bank()
    for z in (12.0, 12.0, 12.0):
        _step(bank, [True], [z])
    assert bank.held(0) == (3, pytest.approx(12.0))
    # the peak memory holds the held strength, 12 * sqrt(3) / z_spike
    assert bank.state()["peak"][0] == pytest.approx(np.log1p(12 * np.sqrt(3) / 6), rel=1e-6)
    # beyond 4 ticks, more of the same adds nothing: 12 * sqrt(4) / 6
    for _ in range(3):
        _step(bank, [True], [12.0])
    assert bank.held(0) == (6, pytest.approx(12.0))
    assert bank.state()["peak"][0] == pytest.approx(np.log1p(12 * 2 / 6), rel=1e-6)
    # a missing value adds nothing and is not counted; a move the good way adds nothing
    _step(bank, [True], [np.nan])
    _step(bank, [True], [-6.0])
    assert bank.held(0) == (7, pytest.approx(72.0 / 7))
    # it ends: nothing held; the next episode counts from its own first tick
    _step(bank, [False], [0.0])
    assert bank.held(0) == (0, 0.0)
    _step(bank, [True], [3.0])
    assert bank.held(0) == (1, pytest.approx(3.0))


def test_a_one_tick_spike_and_its_clearing_ticks_hold_no_more_than_the_peak() -> None:
    bank = _bank()
    peaks = []
    for z in (12.0, 1.0, 0.3, -0.5):
        _step(bank, [True], [z])
        peaks.append(float(bank.state()["peak"][0]))
    assert max(peaks) == pytest.approx(np.log1p(12.0 / 6.0), rel=1e-6)


def test_absurd_z_scores_stay_finite_and_the_state_still_saves_and_loads() -> None:
    # a collapsed scale measures an ordinary burst at 1e13 sds, a broken exporter at inf
    det = detect.Detector()
    for i in range(60):
        det.update(T0 + DT * i, {KEY: 0.0})
    for i in range(60, 70):
        det.update(T0 + DT * i, {KEY: 1e30 if i % 2 else float("inf")})
    ticks, mean = det._news.held(0)
    assert ticks > 0 and np.isfinite(mean)
    again = detect.Detector.load(det.save())
    assert again._news.held(0) == (ticks, mean)


def test_a_state_of_format_4_loads_with_nothing_held() -> None:
    det = detect.Detector()
    x = _spiky(0, shift_sd=12.0)[: SHIFT_AT + 3]
    for i, v in enumerate(x.tolist()):
        det.update(T0 + DT * i, {KEY: v})
    assert det._news.held(0)[0] > 0
    arrays, blob = older.as_format(det, 4, "news.f.zsum", "news.f.zk")
    loaded = detect.Detector.load(blob)
    assert loaded._news.held(0) == (0, 0.0)
    got = persist.decode(loaded.save(), det.settings.season_period_s)[2]
    for name, value in arrays.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)
