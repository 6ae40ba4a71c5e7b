"""Property: a `Detector` under the product's settings, saved and loaded at any tick, goes on
exactly as the one that never stopped, with several services, series that arrive late or
stop, a leak towards its limit, bursts, and incidents in the context.

The other save/load property (`test_detect_persist.py`) runs the default settings with the
same series every tick; this one runs what the controller runs (`detector_settings`: holds,
SLOs, limits, corroboration, growth), on its own day and on a short one that reaches the
seasonal paths in a few hundred ticks."""

from __future__ import annotations

import dataclasses
import warnings

import hostile
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfheal import config, detect
from selfheal.engine import controller

pytestmark = pytest.mark.timeout(300)

PRODUCT = controller.detector_settings(config.Detect())
# the product's settings on a four-minute day: the profiles and the memory by hour age in
SHORT_DAY = dataclasses.replace(PRODUCT, season_period_s=240.0, warmup_ticks=3,
                                report_min_episodes=1)
T0 = 1.7e9
MIB = 1024.0 * 1024.0
KEYS = [("api", "p99_latency_s"), ("api", "error_ratio"), ("db", "rss_bytes"),
        ("web", "up"), ("db", "request_rate")]
LATE, STOPS = 4, 1  # the series that arrives `late` ticks in, the one that stops as late


def _rows(seed: int, n: int, late: int) -> list[dict[tuple[str, str], float]]:
    rng = np.random.default_rng(seed)
    x = 100.0 + rng.normal(0.0, 1.0, (n, len(KEYS)))
    x[:, 3] = 1.0
    for k in range(5, n, 11):  # bursts, a different series each time
        x[k : k + 3, k % len(KEYS)] += 30.0
    # memory at ~400 MiB, leaking 2 MiB a tick from half-way: towards its 512 MiB limit
    # (the time-to-limit forecast), then past it (a limit that is not its own)
    x[:, 2] *= 4 * MIB
    x[n // 2 :, 2] += np.arange(n - n // 2) * 2 * MIB
    return [{key: float(x[i, j]) for j, key in enumerate(KEYS)
             if not (j == LATE and i < late) and not (j == STOPS and i > n - late)}
            for i in range(n)]


def _context(i: int, incidents: bool) -> detect.Context:
    return detect.Context(incidents=frozenset({"api"}) if incidents and i % 50 > 30
                          else frozenset())


def _found(det: detect.Detector, t: float, row: dict[tuple[str, str], float],
           ctx: detect.Context) -> list[tuple[str, str, str, float, bool]]:
    return [(a.id, a.detector, a.explanation, a.score, a.expected)
            for a in det.update(t, row, ctx)]


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 1000), n=st.integers(10, 300), late=st.integers(0, 200),
       cut=st.floats(0.0, 1.0), step=st.sampled_from([1.0, 7.0, 60.0]),
       incidents=st.booleans(), day=st.sampled_from(["product", "short"]))
def test_a_detector_loaded_mid_stream_goes_on_as_the_one_that_never_stopped(
        seed: int, n: int, late: int, cut: float, step: float, incidents: bool,
        day: str) -> None:
    cfg = PRODUCT if day == "product" else SHORT_DAY
    rows = _rows(seed, n, late)
    at = max(1, int(cut * (n - 1)))
    kept = detect.Detector(cfg)
    for i, row in enumerate(rows[:at]):
        kept.update(T0 + i * step, row, _context(i, incidents))
    loaded = detect.Detector.load(kept.save(), cfg)
    assert loaded.series == kept.series and loaded.spacing_s == kept.spacing_s
    for i, row in enumerate(rows[at:], start=at):
        ctx = _context(i, incidents)
        t = T0 + i * step
        assert _found(loaded, t, row, ctx) == _found(kept, t, row, ctx), i
    assert loaded.save() == kept.save()


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 1000), n=st.integers(5, 200), cut=st.floats(0.0, 1.0),
       broken=st.lists(st.tuples(st.integers(0, 199), st.integers(1, 30),
                                 st.integers(0, len(KEYS) - 1), hostile.values), max_size=6),
       tail_seed=st.integers(0, 1000), day=st.sampled_from(["product", "short"]))
def test_the_product_detector_reads_no_future_and_takes_hostile_values(
        seed: int, n: int, cut: float, broken: list[tuple[int, int, int, float]],
        tail_seed: int, day: str) -> None:
    """What the product reports at tick i depends on ticks 0..i only: two runs that share
    the first ticks and then differ (another seed, or an exporter that sends the same NaN,
    inf or +-1e308 for up to 30 ticks, in the tail only) report the same anomalies,
    explanations included, up to the cut (a detector fed tick by tick cannot see later ticks;
    this catches state shared between detectors, run one after the other). Nothing raises or
    warns (an overflow would: the growth overflow of 18bf24b fails it), and every score is in
    [0, 1]."""
    cfg = PRODUCT if day == "product" else SHORT_DAY
    rows = _rows(seed, n, late=n // 3)
    for start, ticks, j, v in broken:
        for row in rows[start : start + ticks]:
            if KEYS[j] in row:
                row[KEYS[j]] = v
    at = int(cut * n)
    other = rows[:at] + _rows(tail_seed, n, late=0)[at:]
    runs = []
    warnings.simplefilter("error")  # pytest restores the filters after the test
    for stream in (rows, other):
        det = detect.Detector(cfg)
        seen = []
        for i, row in enumerate(stream):
            found = _found(det, T0 + 60.0 * i, row, _context(i, True))
            assert all(0.0 <= score <= 1.0 for *_, score, _ in found), found
            seen.append(found)
        runs.append(seen)
    assert runs[0][:at] == runs[1][:at]
