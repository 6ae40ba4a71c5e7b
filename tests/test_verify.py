"""Verification (invariant 4): back to the baseline, or not; and blind is never a pass."""

from __future__ import annotations

import numpy as np

from selfheal import model, verify

T0 = 1_800_000_000.0


def _series(values: dict[str, list[float]], start: float) -> dict[str, list[model.Sample]]:
    return {m: [model.Sample(start + i, "checkout", m, float(v)) for i, v in enumerate(vs)]
            for m, vs in values.items()}


def _baseline(rng: np.random.Generator, noisy: bool) -> dict[str, list[model.Sample]]:
    n = 60
    p99 = (rng.lognormal(np.log(0.15), 0.5, n) if noisy
           else 0.05 + rng.normal(0, 0.001, n))
    return _series({"p99_latency_s": list(p99), "error_ratio": [0.0] * n,
                    "rss_bytes": list(3e7 + rng.normal(0, 1e5, n)),
                    "request_rate": [20.0] * n}, T0)


def _after(p99: float, err: float = 0.0, leak: float = 0.0,
           n: int = 10) -> dict[str, list[model.Sample]]:
    return _series({"p99_latency_s": [p99] * n, "error_ratio": [err] * n,
                    "rss_bytes": [3e7 + leak * i for i in range(n)],
                    "request_rate": [20.0] * n}, T0 + 100)


def _passed(base: dict[str, list[model.Sample]], after: dict[str, list[model.Sample]]
            ) -> dict[str, bool]:
    v = verify.verify_service(base, after, T0 + 120)
    assert v.passed == all(c.passed for c in v.checks)
    return {c.name: c.passed for c in v.checks}


def test_a_level_within_what_a_noisy_baseline_did_is_back_to_normal() -> None:
    rng = np.random.default_rng(7)
    base = _baseline(rng, noisy=True)
    high = sorted(s.value for s in base["p99_latency_s"])[int(0.9 * 60)]
    median = sorted(s.value for s in base["p99_latency_s"])[30]
    assert high > 1.5 * median  # the noise this test is about
    assert _passed(base, _after(p99=high))["p99 latency"]
    assert not _passed(base, _after(p99=3 * high))["p99 latency"]


def test_a_quiet_baseline_keeps_the_factor_bound() -> None:
    base = _baseline(np.random.default_rng(1), noisy=False)
    assert _passed(base, _after(p99=0.06))["p99 latency"]
    assert not _passed(base, _after(p99=0.2))["p99 latency"]


def test_errors_still_high_or_memory_still_climbing_fail() -> None:
    base = _baseline(np.random.default_rng(2), noisy=False)
    assert not _passed(base, _after(p99=0.05, err=0.3))["error ratio"]
    assert not _passed(base, _after(p99=0.05, leak=5e6))["memory slope"]
    assert all(_passed(base, _after(p99=0.05)).values())


def test_no_data_after_the_action_is_not_a_pass() -> None:
    base = _baseline(np.random.default_rng(3), noisy=False)
    v = verify.verify_service(base, {}, T0 + 120)
    assert not v.passed
