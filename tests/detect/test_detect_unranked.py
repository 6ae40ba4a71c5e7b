"""Which series `Detector.take_unranked` names: those whose moves no noise scale measures.

A metric with no floor (`Settings.min_scale`) whose series is flat between its moves (a queue
at 0 between bursts) has a noise scale of next to nothing, so its moves measure millions of
standard deviations and cannot be ranked. Such a series is named once, whichever way it moved;
a noisy series is not, even when a broken exporter sends it an absurd value, and neither is a
metric with a floor.
"""

from __future__ import annotations

import numpy as np
import pytest

from selfheal import detect

KEY = ("api", "dead_letters")


def _named(values: np.ndarray, settings: detect.Settings | None = None
           ) -> list[tuple[int, bool]]:
    """The ticks at which the series was named, each with whether that tick's report of
    the move said so too."""
    det = detect.Detector(settings or detect.Settings())
    out = []
    for i, v in enumerate(values.tolist()):
        reported = det.update(float(i), {KEY: v})
        got = det.take_unranked()
        if got:
            assert got == [KEY]
            out.append((i, any("set detect.min_scale.dead_letters" in a.explanation
                               for a in reported)))
    return out


def _bursts(n: int, size: float, every: int = 40) -> np.ndarray:
    x = np.zeros(n)
    for k in range(every - 1, n, every):
        x[k : k + 2] = size
    return x


@pytest.mark.parametrize("size", [20.0, -20.0, 1e-6])
def test_a_series_flat_at_zero_is_named_once_at_its_first_move(size: float) -> None:
    # up or down, big or tiny: with no noise at all, no scale measures a move
    assert _named(_bursts(400, size)) == [(39, True)]


@pytest.mark.parametrize("size", [20.0, 1e7])
def test_with_a_floor_nothing_is_named(size: float) -> None:
    # not even a move of ten million floors: the scale is the user's to set, and is set
    assert _named(_bursts(400, size), detect.Settings(min_scale={KEY[1]: 1.0})) == []


@pytest.mark.parametrize("bad", [1e29, -1e29, 1e300, 1e7])
def test_a_noisy_series_is_not_named_for_an_absurd_value(bad: float) -> None:
    # a broken exporter's value, for a minute, on a series with noise of its own: its scale
    # is real, and a floor would change nothing
    rng = np.random.default_rng(5)
    x = rng.normal(50.0, 5.0, 600)
    x[300:360] = bad
    assert _named(x) == []


@pytest.mark.parametrize("bad", [1e7, 1e19])
@pytest.mark.parametrize(("level", "noise"), [(50.0, 5.0), (0.0, 1.0), (100.0, 1.0)])
def test_a_noisy_series_sent_absurd_values_twice_is_not_named(
        bad: float, level: float, noise: float) -> None:
    # the first glitch fills its long residual, so that at the second its noise scale is
    # far below it, as a flat series' is below its bursts; but it never sat still
    x = np.random.default_rng(5).normal(level, noise, 2000)
    for start in (600, 900):
        x[start : start + 5] = bad
    assert _named(x) == []


def test_ten_equal_values_before_a_move_are_still_enough() -> None:
    # a queue bursting every 11 ticks, its first burst the first tick past the warm-up
    x = np.zeros(200)
    x[10::11] = 20.0
    assert [t for t, _ in _named(x)] == [10]


def test_a_series_at_zero_missing_between_some_values_is_still_named() -> None:
    # a missing value is no move: a queue whose exporter skips scrapes sits still through it
    x = _bursts(400, 20.0)
    x[np.random.default_rng(2).random(400) < 0.3] = np.nan
    x[39] = 20.0
    assert [t for t, _ in _named(x)] == [39]


@pytest.mark.parametrize("bad", [1e7, 1e19])
@pytest.mark.parametrize("noise", [0.0, 0.3])
@pytest.mark.parametrize("level", [3.0, 100.0])
def test_a_gauge_whose_scale_is_its_relative_floor_is_not_named_for_glitches(
        bad: float, noise: float, level: float) -> None:
    # a replica count, a config value: still (or rounded) at its level, its scale is the
    # share of that level the relative floor gives it, so its moves are ranked; a broken
    # exporter's value, twice, is absurd, not a sign that it needs a floor
    x = np.round(np.random.default_rng(3).normal(level, noise, 2000)) if noise else \
        np.full(2000, level)
    for start in (600, 900):
        x[start : start + 5] = bad
    assert _named(x) == []


def test_a_series_whose_scale_collapses_burst_by_burst_is_named_once_it_has() -> None:
    # it starts with a burst, so its first values give it a scale, which then shrinks with
    # each burst the clip keeps from teaching it
    x = _bursts(2000, 20.0)
    x[0:2] = 20.0
    named = _named(x)
    assert len(named) == 1 and named[0][0] > 10 * 40


def test_dropping_an_idle_series_keeps_how_long_the_others_sat_still() -> None:
    # `forget` rebuilds the rows it keeps: the queue's 35 still ticks stay, and its burst
    # 4 ticks later is named as it would be with nothing dropped
    det = detect.Detector()
    x = _bursts(80, 20.0)
    for i in range(35):
        det.update(float(i), {KEY: float(x[i]), ("old", "gone"): 1.0} if i < 5 else
                   {KEY: float(x[i])})
    assert det.forget(10.0) == [("old", "gone")]
    named = []
    for i in range(35, 80):
        det.update(float(i), {KEY: float(x[i])})
        named += [(i, key) for key in det.take_unranked()]
    assert named == [(39, KEY)]
