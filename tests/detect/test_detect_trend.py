"""A trend's move is measured over `Settings.trend_horizon_s` at the usual spacing of the
ticks: one tick that comes late (a slow scrape, a busy loop) does not weaken its trend, and
one that comes early does not strengthen it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from selfheal.detect import Settings
from selfheal.detect import detector as detector_mod

T0 = 1_700_000_000.0
RAMP = 600  # the tick (1 s apart) the ramp starts at, after a flat, quiet start
AT = 680  # the tick looked at: the ramp has been a trend for ~40 ticks


def _trend_strengths(times: list[float]) -> dict[float, float]:
    """The strength behind the score of each trend the product's `Detector` reports, by
    tick time since T0, on a clean ramp of 0.07 a second from 100 (so a move of a quarter
    of its level over the 600 s horizon, well inside the t-statistic's reach)."""
    det = detector_mod.Detector(Settings())
    noise = np.random.default_rng(3).normal(0.0, 0.1, len(times))
    out: dict[float, float] = {}
    for t, e in zip(times, noise, strict=True):
        x = 100.0 * (1.0 + 0.0007 * max(0.0, t - RAMP)) + e
        for anomaly in det.update(T0 + t, {("svc", "queue_depth"): x}):
            if anomaly.detector == "trend":
                out[t] = math.sqrt(anomaly.score / (1.0 - anomaly.score))  # the score's odds
    return out


REGULAR = [float(i) for i in range(AT + 20)]


@pytest.mark.parametrize(("arm", "times", "looked"), [
    # the tick before AT is missed: AT comes 2 s after the one before
    ("late", [t for t in REGULAR if t != AT - 1], float(AT)),
    # an extra tick half a second before AT
    ("early", sorted([*REGULAR, AT - 0.5]), AT - 0.5),
])
def test_one_odd_gap_does_not_move_its_trend(arm: str, times: list[float], looked: float
                                             ) -> None:
    regular = _trend_strengths(REGULAR)
    odd = _trend_strengths(times)
    assert float(AT) in regular, "the ramp is a trend at the regular spacing"
    # the horizon in ticks followed this tick's gap: half the strength late, double early
    assert odd.get(looked, 0.0) == pytest.approx(regular[float(AT)], rel=0.2), arm
