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


def test_a_series_whose_scale_collapses_burst_by_burst_is_named_once_it_has() -> None:
    # it starts with a burst, so its first values give it a scale, which then shrinks with
    # each burst the clip keeps from teaching it
    x = _bursts(2000, 20.0)
    x[0:2] = 20.0
    named = _named(x)
    assert len(named) == 1 and named[0][0] > 10 * 40


# --- the floor a named series takes (`Settings.unranked_floor`)

def _told(values: np.ndarray, settings: detect.Settings | None = None,
          det: detect.Detector | None = None) -> list[int]:
    """The ticks at which the series was reported."""
    det = det or detect.Detector(settings or detect.Settings())
    return [i for i, v in enumerate(values.tolist()) if det.update(float(i), {KEY: v})]


def _queue(n: int = 2400, big: int = 2200) -> np.ndarray:
    x = _bursts(n, 20.0)
    x[big : big + 2] = 400.0
    return x


def test_a_series_still_between_bursts_takes_a_floor_and_its_larger_burst_is_reported(
        ) -> None:
    # the dead-letter queue with no floor: once its scale has collapsed, it takes one of
    # its bursts' mean size over the ticks, forgets what it learned on no scale, learns its
    # bursts again and reports the one 20 times larger
    x, big = _queue(), 2200
    det = detect.Detector()
    told = _told(x, det=det)
    assert 0.5 < det.auto_floor(KEY) < 2.0  # two ticks of 20 every 40
    assert any(big <= t < big + 4 for t in told)
    # after the few bursts the new memory is reported for, the routine is routine again
    assert not [t for t in told if big - 400 <= t < big or t >= big + 4]
    # without it the same series never reports the larger burst: the gap this closes
    blind = _told(x, detect.Settings(unranked_floor=0.0))
    assert not any(big <= t < big + 4 for t in blind)


def test_a_metric_with_a_floor_of_its_own_takes_none() -> None:
    det = detect.Detector(detect.Settings(min_scale={KEY[1]: 1e-9}))
    _told(_queue(), det=det)
    assert det.auto_floor(KEY) == 0.0


@pytest.mark.parametrize("rounded", [False, True])
def test_a_noisy_series_sent_absurd_values_again_and_again_takes_no_floor(
        rounded: bool) -> None:
    # a broken exporter on a real series: its long residual fills with the absurd values,
    # and a floor from it would blind the series; it never sits still, so it takes none, and
    # a tripling afterwards is reported exactly as with no such floor at all
    rng = np.random.default_rng(11)
    x = rng.normal(100.0, 1.0, 3000)
    if rounded:
        x = np.round(x)
    for start in (600, 900, 1200, 1500):
        x[start : start + 5] = 1e7
    x[2500:2530] = 300.0
    det = detect.Detector()
    told = _told(x, det=det)
    assert det.auto_floor(KEY) == 0.0
    assert [t for t in told if t >= 2500] == \
        [t for t in _told(x, detect.Settings(unranked_floor=0.0)) if t >= 2500]
    assert any(2500 <= t < 2510 for t in told)


def test_the_floor_outlasts_the_idle_series_dropped_around_it() -> None:
    # `forget` rebuilds every row it keeps; the floor given is not the config's, and stays
    det = detect.Detector()
    x = _queue(1600, 1590)
    for i, v in enumerate(x[:1500].tolist()):
        det.update(float(i), {KEY: v, ("old", "gone"): 1.0} if i < 10 else {KEY: v})
    floor = det.auto_floor(KEY)
    assert floor > 0
    assert det.forget(100.0) == [("old", "gone")]
    assert det.auto_floor(KEY) == floor
    told = [i for i, v in enumerate(x[1500:].tolist(), start=1500)
            if det.update(float(i), {KEY: v})]
    assert told == [1590, 1591]  # routine bursts learned; the larger one still measured
