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
