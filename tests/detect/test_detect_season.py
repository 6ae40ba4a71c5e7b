"""The seasonal profile counts only as far as it predicts: full weight on a daily pattern,
none on noise with no pattern (whose phase bins would otherwise be learned from the noise)."""

from __future__ import annotations

import numpy as np

from selfheal.detect import Settings, core

STEP = 300.0  # 5 minutes a row, 288 rows a day


def _offsets(shrink: float, x: np.ndarray) -> np.ndarray:
    """The seasonal offset the baseline applied at each row (expected minus the level)."""
    cfg = Settings(
        directions={}, min_scale={}, rel_floor=0.0, long_floor=1.0,
        season_period_s=86400.0, season_shrink=shrink,
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
