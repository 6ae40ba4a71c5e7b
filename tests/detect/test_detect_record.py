"""Surprise against the recent record: an event smaller than one seen lately is less news,
while a new record keeps all of its surprise."""

from __future__ import annotations

import numpy as np

from selfheal.detect import Settings, core


def _surprise(record_decay: float, x: np.ndarray) -> np.ndarray:
    cfg = Settings(
        directions={}, min_scale={}, rel_floor=0.0, long_floor=1.0, warmup_ticks=20,
        record_decay=record_decay,
    )  # fmt: skip
    bank = core.Bank(cfg)
    bank.add_many(1)
    return np.array([bank.step(float(i), np.array([v])).surprise[0] for i, v in enumerate(x)])


def _odds(p: float) -> float:
    return float(p / (1.0 - p))


def test_an_event_below_the_recent_record_is_less_surprising() -> None:
    rng = np.random.default_rng(5)
    x = 10.0 + rng.normal(0.0, 1.0, 1500)
    big, small = 400, 700
    x[big] += 80.0  # the record
    x[small] += 25.0  # a smaller event soon after
    plain = _surprise(0.0, x)
    rec = _surprise(0.9995, x)
    assert plain[big] > 0.5 and rec[big] == plain[big]  # a record keeps its surprise
    assert plain[small] > 0.0
    # in odds (the surprise is zl / (1 + zl)): damped by the ratio of the log strengths
    assert _odds(rec[small]) < 0.8 * _odds(plain[small])
    assert np.all(rec <= plain + 1e-12)  # the ratio is capped at one: it only ever damps


def test_the_record_fades() -> None:
    rng = np.random.default_rng(6)
    x = 10.0 + rng.normal(0.0, 1.0, 6000)
    x[400] += 80.0
    x[5500] += 25.0  # long after the record: its memory has faded (0.999 ** 5100 < 0.01)
    plain = _surprise(0.0, x)
    rec = _surprise(0.999, x)
    assert rec[5500] > 0.0
    assert _odds(rec[5500]) >= 0.95 * _odds(plain[5500])
