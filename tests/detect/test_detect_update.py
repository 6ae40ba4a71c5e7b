"""`Detector.update` refuses what it cannot take before anything of the detector changes: a
caller's bad tick leaves the state as it was, and the next good tick goes on from it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from selfheal import config, detect
from selfheal.engine import controller

pytestmark = pytest.mark.timeout(60)

T0 = 1.7e9
KEYS = [("api", "p99_latency_s"), ("db", "rss_bytes")]


@pytest.mark.parametrize("t", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("rows", [False, True])
def test_a_tick_at_a_time_that_is_no_number_is_refused_changing_nothing(
        t: float, rows: bool) -> None:
    settings = controller.detector_settings(config.Detect())
    rng = np.random.default_rng(0)
    det, twin = detect.Detector(settings), detect.Detector(settings)
    for i in range(100):
        row = {k: float(100.0 + rng.normal()) for k in KEYS}
        det.update(T0 + 15.0 * i, row)
        twin.update(T0 + 15.0 * i, row)
    before = det.save()
    with pytest.raises(ValueError, match="finite number"):
        if rows:
            det.update_rows(t, np.full(det.size, 100.0))
        else:  # with a series never seen before: not registered either
            det.update(t, {**dict.fromkeys(KEYS, 100.0), ("web", "up"): 1.0})
    assert det.save() == before and det.last_t == T0 + 15.0 * 99
    good = dict.fromkeys(KEYS, 130.0)
    assert det.update(T0 + 1500.0, good) == twin.update(T0 + 1500.0, good)
    assert det.save() == twin.save()
