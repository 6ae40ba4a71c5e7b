"""The second detector family of the NAB score (adaptive-resonance categories): no look-ahead,
no crash on odd data, what it calls a new shape, and the confirmation rule."""

from __future__ import annotations

import math

import hostile
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfheal.bench import nab_art

# short windows and few categories, so that generated series reach the cap and every path
SMALL = [
    nab_art.ArtSettings(blocks=3, block_rows=1),
    nab_art.ArtSettings(blocks=2, block_rows=2, categories=2, vigilance=0.95),
]


@pytest.mark.timeout(120)
@settings(max_examples=80, deadline=None)
@given(**hostile.futures(), which=st.integers(0, len(SMALL) - 1))
def test_creations_read_no_future(
    head: list[float], tail_a: list[float], tail_b: list[float], which: int
) -> None:
    # two series that share their first rows make the same categories on them
    cfg = SMALL[which]
    a = nab_art.creations(np.array(head + tail_a), cfg)
    b = nab_art.creations(np.array(head + tail_b), cfg)
    np.testing.assert_array_equal(a[: len(head)], b[: len(head)])
    assert a.dtype == np.bool_ and len(a) == len(head) + len(tail_a)


# `nab.run` end to end with the family's confirmation reads no future either: the property
# test of tests/detect/test_detect_core_props.py runs it with `SMALL[0]`.


def test_a_repeated_shape_is_learnt_and_a_new_one_is_a_creation() -> None:
    # a daily-like wave repeated 20 times: categories are made while the first waves are
    # seen, none once it is known; a flat stretch where the wave should be is a new shape
    wave = np.sin(np.linspace(0.0, 2.0 * math.pi, 48, endpoint=False))
    x = np.tile(wave, 20)
    x[800:848] = 0.0
    made = nab_art.creations(x, nab_art.ArtSettings())
    assert made[:200].any()
    assert not made[400:800].any()
    assert made[800:860].any()


def test_odd_values_do_not_poison_the_categories() -> None:
    # a NaN or infinite sample is read as the last value, so it neither stretches the range
    # nor makes every later window new: the shape is known again a window after it
    x = np.tile(np.array([1.0, 2.0, 3.0, 2.0]), 100)
    cfg = nab_art.ArtSettings()
    clean = nab_art.creations(x, cfg)
    x[300] = math.nan
    x[301] = math.inf
    odd = nab_art.creations(x, cfg)
    np.testing.assert_array_equal(odd[:300], clean[:300])
    assert not odd[300 + cfg.blocks * cfg.block_rows + 4 :].any()


def test_confirm_multiplies_an_onsets_odds_and_never_makes_one() -> None:
    cfg = nab_art.ArtSettings(gain=3.0, ticks=2)
    onset = np.array([0.0, 0.5, 0.5, 0.5, 0.9, 0.0])
    made = np.array([False, False, True, False, False, True])
    got = nab_art.confirm(onset, made, cfg)
    # rows 2 (a creation on it) and 3 (one row before) are confirmed: odds 1 -> 4
    np.testing.assert_allclose(got, [0.0, 0.5, 0.8, 0.8, 0.9, 0.0])
    # a creation without an onset scores nothing; a score stays below 1
    assert got[5] == 0.0
    assert nab_art.confirm(np.array([1.0]), np.array([True]), cfg)[0] < 1.0


def test_bad_settings_are_refused() -> None:
    for bad in ({"vigilance": 0.0}, {"rate": 1.5}, {"blocks": 0}, {"ticks": 0},
                {"gain": -1.0}, {"choice": 0.0}):  # fmt: skip
        with pytest.raises(ValueError):
            nab_art.ArtSettings(**bad)  # type: ignore[arg-type]
