"""The sentences anomalies carry: a slope in a unit that shows it."""

from __future__ import annotations

import pytest

from selfheal.detect import explain


@pytest.mark.parametrize(("per_s", "shown"), [
    (3 * 1024 * 1024, "3.0 MiB/s"),        # the demo's leak
    (0.02 * 1024 * 1024, "1.2 MiB/min"),   # per second it would read 0.0 MiB/s
    (1e-5 * 1024 * 1024, "0.0 MiB/h"),     # nothing to show at any unit: the last one
])
def test_a_slow_trend_is_explained_per_minute_or_hour(per_s: float, shown: str) -> None:
    assert explain.rate("rss_bytes", per_s) == shown
    text = explain.trend("rss_bytes", per_s, 1e8, 2e8, limit=None, ttl_s=float("inf"))
    assert f"rising {shown} against" in text


@pytest.mark.parametrize(("metric", "value", "shown"), [
    ("error_ratio", 1e300, "1e+302%"), ("rss_bytes", 1e300, "9.537e+293 MiB"),
    ("error_ratio", 0.0123, "1.23%"), ("rss_bytes", 2.0 * 1024 ** 3, "2048.0 MiB"),
])
def test_a_value_too_big_to_read_is_said_in_four_digits(metric: str, value: float,
                                                          shown: str) -> None:
    """A broken exporter's 1e300 is not a 300-digit number in the explanation."""
    assert explain.fmt(metric, value) == shown
    text = explain.level(metric, "level_shift", 0.01, value, 1e300)
    assert len(text) < 160 and "by 1e+300 robust" in text


@pytest.mark.parametrize(("z", "floored", "hint"), [
    (2e13, False, True),   # a series flat at 0 between bursts, no floor for its metric
    (2e13, True, False),   # a floor was set: the number is the move's own size
    (75.0, False, False),  # a scale to measure by
])
def test_a_move_beyond_any_noise_scale_says_which_floor_to_set(
        z: float, floored: bool, hint: bool) -> None:
    text = explain.level("dead_letters", "spike", 0.0, 20.0, z, floored=floored)
    assert ("set detect.min_scale.dead_letters" in text) is hint
