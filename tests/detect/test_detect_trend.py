"""A trend's move is measured over `Settings.trend_horizon_s` at the usual spacing of the
ticks: one tick that comes late (a slow scrape, a busy loop) does not weaken its trend, and
one that comes early does not strengthen it."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from selfheal import config
from selfheal.detect import Settings
from selfheal.detect import detector as detector_mod
from selfheal.engine import controller

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


def test_a_series_missing_every_other_value_trends_at_its_own_rate() -> None:
    """A leak seen on every tick and the same leak from a flaky exporter (no value every other
    tick): the trend's rate and time to the limit are the same. Counted per value, the flaky
    one's slope was twice as steep ("0.6 MiB/s, ~9 min to the limit" against "0.3 MiB/s,
    ~16 min"), a page sent early."""
    mib = 1024.0 ** 2
    det = detector_mod.Detector(controller.detector_settings(config.Detect()))
    rng = np.random.default_rng(1)
    first: dict[str, str] = {}
    for i in range(1200):
        x = 200 * mib + max(0, i - 600) * 0.3 * mib
        values = {("full", "rss_bytes"): x + rng.normal(0, 0.2 * mib),
                  ("flaky", "rss_bytes"): x + rng.normal(0, 0.2 * mib) if i % 2 else math.nan}
        for a in det.update(T0 + i, values):
            if a.detector == "trend":
                first.setdefault(a.service, a.explanation)
    rate = {s: re.search(r"rising ([0-9.]+) MiB/s", text) for s, text in first.items()}
    ttl = {s: re.search(r"~([0-9]+) min to", text) for s, text in first.items()}
    assert set(first) == {"full", "flaky"}, first
    assert all(rate.values()) and all(ttl.values()), first
    assert rate["flaky"][1] == rate["full"][1] == "0.3"  # type: ignore[index]
    assert abs(int(ttl["flaky"][1]) - int(ttl["full"][1])) <= 3  # type: ignore[index]
