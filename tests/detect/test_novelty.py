"""Range novelty: no look-ahead, bounded state, odd data, what it calls novel, the boost rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfheal.detect import novelty

values = st.one_of(
    st.floats(min_value=-1e9, max_value=1e9, allow_nan=False),
    st.just(math.nan),
    st.just(math.inf),
    st.just(-math.inf),
    st.just(0.0),
)
# short warm-up so that generated series reach the scoring path
SHORT = novelty.NoveltySettings(warmup_ticks=3)
CONFIGS = [SHORT, novelty.NoveltySettings(warmup_ticks=1, windows=(1, 3), hold_ticks=1)]


def _quiet_then(bursts: list[tuple[int, float, int]], length: int = 600) -> np.ndarray:
    """A noisy flat series around 10 with bursts (start, height, ticks) added."""
    rng = np.random.default_rng(7)
    x = 10.0 + rng.normal(0.0, 0.5, length)
    for start, height, ticks in bursts:
        x[start : start + ticks] += height
    return x


@pytest.mark.timeout(120)
@settings(max_examples=60, deadline=None)
@given(xs=st.lists(values, min_size=1, max_size=150), which=st.integers(0, len(CONFIGS) - 1))
def test_odd_data_never_crashes_and_novelty_is_finite_and_non_negative(
    xs: list[float], which: int
) -> None:
    out = novelty.run(np.array([xs]).T, CONFIGS[which])
    assert out.shape == (len(xs), 1)
    assert np.all(np.isfinite(out))
    assert np.all(out >= 0.0)
    missing = ~np.isfinite(np.array(xs))
    assert np.all(out[missing, 0] == 0.0)


def test_state_is_bounded_whatever_the_length() -> None:
    bank = novelty.NoveltyBank(SHORT, capacity=4)
    bank.add_many(4)
    before = bank.nbytes_per_series()
    rng = np.random.default_rng(1)
    for _ in range(3000):
        bank.step(rng.lognormal(size=4))
    assert bank.nbytes_per_series() == before
    # the windows, their envelopes, the held rows and the level: nothing grows with time
    s = SHORT
    per_series = 8 * (max(s.windows) + 3 + 2 * len(s.windows) + s.hold_ticks - 1)
    assert before == per_series


def test_growing_the_bank_keeps_the_series_it_has() -> None:
    rows = np.stack([_quiet_then([(300, 20.0, 3)]), _quiet_then([(400, -15.0, 5)])], axis=1)
    whole = novelty.run(rows, SHORT)
    bank = novelty.NoveltyBank(SHORT, capacity=1)
    bank.add_many(1)
    got = []
    for i, row in enumerate(rows):
        if i == 50:
            bank.add_many(1)
        x = row if bank.size == 2 else row[:1]
        got.append(bank.step(x)[0])
    np.testing.assert_array_equal(np.array(got), whole[:, 0])


def test_wrong_shape_is_refused() -> None:
    bank = novelty.NoveltyBank(SHORT)
    bank.add_many(3)
    with pytest.raises(ValueError, match="expected 3 values"):
        bank.step(np.zeros(2))
    with pytest.raises(ValueError, match="ticks, series"):
        novelty.run(np.zeros(5), SHORT)


@pytest.mark.parametrize(
    "change",
    [{"windows": ()}, {"windows": (0, 2)}, {"record_decay": 0.0}, {"record_decay": 1.5},
     {"hold_ticks": 0}],
)  # fmt: skip
def test_bad_settings_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        novelty.NoveltySettings(**change)  # type: ignore[arg-type]


def test_constant_and_all_missing_series_are_never_novel() -> None:
    rows = np.empty((400, 3))
    rows[:, 0] = 5.0
    rows[:, 1] = 0.0
    rows[:, 2] = math.nan
    out = novelty.run(rows, SHORT)
    assert np.all(out == 0.0)


def test_first_burst_is_novel_and_the_same_burst_again_is_not() -> None:
    x = _quiet_then([(300, 30.0, 3), (450, 30.0, 3)])
    out = novelty.run(x[:, None], SHORT)[:, 0]
    assert out[300:304].max() > 1.0
    # the repeat is no taller and no longer than the first: inside the envelope (up to the
    # noise on top of it)
    assert out[450:454].max() < 0.05
    # quiet stretches between them are no news either
    assert out[320:440].max() == 0.0


def test_a_taller_or_longer_burst_than_before_is_novel_again() -> None:
    base = [(300, 30.0, 3)]
    taller = novelty.run(_quiet_then([*base, (450, 90.0, 3)])[:, None], SHORT)[:, 0]
    longer = novelty.run(_quiet_then([*base, (450, 30.0, 8)])[:, None], SHORT)[:, 0]
    same = novelty.run(_quiet_then([*base, (450, 30.0, 3)])[:, None], SHORT)[:, 0]
    assert taller[450:454].max() > 1.0
    # as tall, but it outlasts the first: the 4- and 8-tick means beat their records
    assert longer[450:460].max() > 0.2
    assert same[450:460].max() < 0.05


def test_a_drop_below_the_range_is_novel_too() -> None:
    out = novelty.run(_quiet_then([(300, -8.0, 4)])[:, None], SHORT)[:, 0]
    assert out[300:305].max() > 1.0


def test_records_fade_when_decaying_and_hold_when_not() -> None:
    x = _quiet_then([(100, 30.0, 3), (3000, 30.0, 3)], length=3200)
    fading = novelty.NoveltySettings(warmup_ticks=3, record_decay=0.99)
    keeping = novelty.NoveltySettings(warmup_ticks=3, record_decay=1.0)
    assert novelty.run(x[:, None], fading)[3000:3004, 0].max() > 1.0
    assert novelty.run(x[:, None], keeping)[3000:3004, 0].max() < 0.05


def test_novelty_is_held_for_hold_ticks() -> None:
    x = _quiet_then([(300, 30.0, 1)])
    one = novelty.run(x[:, None], novelty.NoveltySettings(warmup_ticks=3, hold_ticks=1))[:, 0]
    two = novelty.run(x[:, None], novelty.NoveltySettings(warmup_ticks=3, hold_ticks=2))[:, 0]
    assert two[301] >= one[300] > 0.0
    assert two[300] == one[300]


unit = st.floats(min_value=0.0, max_value=1.0)
nov = st.floats(min_value=0.0, max_value=1e6)


@settings(max_examples=200, deadline=None)
@given(on=unit, n1=nov, n2=nov, power=st.floats(min_value=0.1, max_value=5.0))
def test_boost_keeps_zero_and_range_and_rises_with_novelty(
    on: float, n1: float, n2: float, power: float
) -> None:
    lo, hi = sorted((n1, n2))
    a = float(novelty.boost(np.array([on]), np.array([lo]), power)[0])
    b = float(novelty.boost(np.array([on]), np.array([hi]), power)[0])
    assert 0.0 <= a <= b < 1.0
    if on == 0.0:
        assert a == b == 0.0
    else:
        assert a > 0.0


@settings(max_examples=200, deadline=None)
@given(on=st.floats(min_value=1e-6, max_value=1.0 - 1e-6))
def test_boost_without_novelty_leaves_the_onset_alone(on: float) -> None:
    assert float(novelty.boost(np.array([on]), np.array([0.0]))[0]) == pytest.approx(on)


def test_boost_is_the_odds_rule() -> None:
    on = np.array([0.5, 0.9, 0.0, math.nan])
    nv = np.array([1.0, 0.0, 5.0, 1.0])
    got = novelty.boost(on, nv, power=2.0)
    # odds 1 * 2^2 = 4 -> 0.8; novelty 0 keeps 0.9; no onset, no score; NaN onset, no score
    np.testing.assert_allclose(got, [0.8, 0.9, 0.0, 0.0])
