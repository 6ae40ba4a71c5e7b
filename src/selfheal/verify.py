"""Verification: did the action bring the service back to its baseline? (design invariant 4)

Pure functions over samples the runtime gathered. `verify_service` compares the service's
signals after the action with its own pre-incident baseline; `compare_canary` compares the
canary replica with the replicas still running the old version. Missing data fails a check:
a verification that cannot see is not a pass.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Mapping, Sequence

from selfheal import model

Series = Mapping[str, Sequence[model.Sample]]


@dataclasses.dataclass(frozen=True)
class Settings:
    latency_factor: float = 1.5        # p99 may be at most this times its baseline…
    latency_slack_s: float = 0.010     # …plus this much (bucket quantisation, noise)
    slope_slack_bytes_s: float = 400_000.0  # RSS may still drift this much per second
    error_slack: float = 0.02
    min_points: int = 4
    usual_quantile: float = 0.9
    """A level is back to normal within this quantile of its baseline (or the factor)."""


def _values(samples: Sequence[model.Sample]) -> list[float]:
    return [s.value for s in samples if not math.isnan(s.value)]


def slope(samples: Sequence[model.Sample]) -> float:
    """Theil–Sen slope (units per second): robust to a single odd scrape. NaN if < 2 points."""
    pts = [(s.t, s.value) for s in samples if not math.isnan(s.value)]
    if len(pts) < 2:
        return math.nan
    if len(pts) > 60:  # keep it cheap: an evenly thinned subset keeps the estimate honest
        step = len(pts) / 60
        pts = [pts[int(i * step)] for i in range(60)]
    slopes = [(b[1] - a[1]) / (b[0] - a[0]) for i, a in enumerate(pts) for b in pts[i + 1:]
              if b[0] > a[0]]
    return statistics.median(slopes) if slopes else math.nan


def _median(samples: Sequence[model.Sample]) -> float:
    vals = _values(samples)
    return statistics.median(vals) if vals else math.nan


def _check_slope(name: str, base: Sequence[model.Sample], after: Sequence[model.Sample],
                 s: Settings) -> model.Check:
    b, a = slope(base), slope(after)
    bound = max(0.0, b if not math.isnan(b) else 0.0) * 2 + s.slope_slack_bytes_s
    ok = len(_values(after)) >= s.min_points and not math.isnan(a) and a <= bound
    return model.Check(name=name, passed=ok, observed=a, baseline=b, bound=bound,
                       detail=f"{name}: {a / 1e6:+.2f} MB/s against a baseline of "
                       f"{(b if not math.isnan(b) else 0) / 1e6:+.2f} MB/s (bound "
                       f"{bound / 1e6:.2f} MB/s)")


def _quantile(samples: Sequence[model.Sample], q: float) -> float:
    vals = sorted(_values(samples))
    return vals[min(len(vals) - 1, int(q * len(vals)))] if vals else math.nan


def _check_level(name: str, base: Sequence[model.Sample], after: Sequence[model.Sample],
                 factor: float, slack: float, s: Settings, unit: str, scale: float) -> model.Check:
    b, a = _median(base), _median(after)
    # Back to normal means within what the baseline itself did: its median times the factor,
    # or its own bad moments (the 90th percentile) on a noisy host, whichever is larger.
    usual_high = _quantile(base, s.usual_quantile)
    bound = max((b if not math.isnan(b) else 0.0) * factor,
                usual_high if not math.isnan(usual_high) else 0.0) + slack
    ok = len(_values(after)) >= s.min_points and not math.isnan(a) and a <= bound
    return model.Check(name=name, passed=ok, observed=a, baseline=b, bound=bound,
                       detail=f"{name}: median {a * scale:.1f}{unit} against a baseline of "
                       f"{b * scale:.1f}{unit} (bound {bound * scale:.1f}{unit})")


def verify_service(baseline: Series, after: Series, now: float,
                   settings: Settings = Settings()) -> model.Verification:
    """The service is back when memory stopped climbing and latency and errors are normal."""
    s = settings
    empty: Sequence[model.Sample] = ()
    checks: tuple[model.Check, ...] = (
        _check_slope("memory slope", baseline.get("rss_bytes", empty),
                     after.get("rss_bytes", empty), s),
        _check_level("p99 latency", baseline.get("p99_latency_s", empty),
                     after.get("p99_latency_s", empty), s.latency_factor, s.latency_slack_s,
                     s, " ms", 1000.0),
        _check_level("error ratio", baseline.get("error_ratio", empty),
                     after.get("error_ratio", empty), 1.0, s.error_slack, s, "%", 100.0),
    )
    # An idle service has no error ratio (no requests): that one check may abstain.
    err = checks[2]
    if math.isnan(err.observed) and not _values(after.get("request_rate", empty)):
        checks = checks[:2]
    return model.Verification(at=now, passed=all(c.passed for c in checks), checks=checks)


def compare_canary(canary: Series, others: Series, now: float,
                   settings: Settings = Settings()) -> model.Verification:
    """The canary must be clearly better than the old replicas on the signals that broke."""
    s = settings
    empty: Sequence[model.Sample] = ()
    c_slope = slope(canary.get("rss_bytes", empty))
    o_slope = slope(others.get("rss_bytes", empty))
    bound = s.slope_slack_bytes_s + max(0.0, 0.0 if math.isnan(o_slope) else o_slope) * 0.25
    mem = model.Check(
        name="canary memory slope", passed=not math.isnan(c_slope) and c_slope <= bound,
        observed=c_slope, baseline=o_slope, bound=bound,
        detail=f"canary {c_slope / 1e6:+.2f} MB/s vs old replicas {o_slope / 1e6:+.2f} MB/s")
    c_p99 = _median(canary.get("p99_latency_s", empty))
    o_p99 = _median(others.get("p99_latency_s", empty))
    lbound = (0.0 if math.isnan(o_p99) else o_p99) * 1.2 + s.latency_slack_s
    lat = model.Check(
        name="canary p99 latency", passed=not math.isnan(c_p99) and c_p99 <= lbound,
        observed=c_p99, baseline=o_p99, bound=lbound,
        detail=f"canary p99 {c_p99 * 1000:.1f} ms vs old replicas {o_p99 * 1000:.1f} ms")
    return model.Verification(at=now, passed=mem.passed and lat.passed, checks=(mem, lat),
                              scope="canary")
