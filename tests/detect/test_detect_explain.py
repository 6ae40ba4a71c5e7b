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
