"""How the scenario bench scores a run: SLO restoration and harmful actions (pure)."""

from __future__ import annotations

import pytest

from selfheal.bench import scenarios as bench
from selfheal.scenarios import slo

pytestmark = pytest.mark.timeout(30)

OBJ = slo.Objective(window_s=10.0, max_error_ratio=0.05, latency_factor=3.0,
                    latency_slack_s=0.15)


def _probes(bad_from: float, bad_to: float, end: float = 100.0) -> list[slo.Probe]:
    return [slo.Probe(t / 2, not (bad_from <= t / 2 < bad_to), 0.03)
            for t in range(int(end * 2))]


def test_restoration_is_the_start_of_the_last_good_stretch() -> None:
    probes = _probes(20.0, 40.0)
    violated, good_from = bench._restored_at(probes, 10.0, 100.0, 0.03, OBJ, stable_s=15.0)
    assert violated
    assert good_from == pytest.approx(50.0, abs=1.0)  # 40 s + a window of clean probes


def test_a_failure_still_on_at_the_end_is_not_restored() -> None:
    probes = _probes(20.0, 100.0)
    violated, good_from = bench._restored_at(probes, 10.0, 100.0, 0.03, OBJ, stable_s=15.0)
    assert violated and good_from is None


def test_harm_is_a_wrong_target_or_a_worse_slo_after_the_action() -> None:
    probes = _probes(60.0, 100.0)  # the SLO breaks 10 s after an action at t=50
    acts = [bench.Action(50.0, "restart", "cart", "full", True),
            bench.Action(30.0, "restart", "auth", "full", True),
            bench.Action(20.0, "restart", "cart", "full", True)]
    marked = bench._harm(acts, frozenset({"cart"}), "resolve", probes, 0.03, OBJ, 100.0)
    assert [a.harmful for a in marked] == [True, True, False]
    assert "worse" in marked[0].why_harmful and "auth" in marked[1].why_harmful


def test_a_fix_that_turns_fast_failures_into_normal_successes_is_not_harm() -> None:
    # a crash loop fails requests in 20 ms; after the fix they succeed in a normal 150 ms
    probes = [slo.Probe(t / 2, t / 2 >= 50, 0.02 if t / 2 < 50 else 0.15) for t in range(200)]
    fix = [bench.Action(50.0, "config_revert", "checkout", "full", True)]
    assert not bench._harm(fix, frozenset({"checkout"}), "resolve", probes, 0.15, OBJ,
                           100.0)[0].harmful
    # the same move far beyond the objective (base p90 x3 + 150 ms) is harm
    slow = [slo.Probe(p.t, p.ok, 0.02 if p.t < 50 else 0.9) for p in probes]
    assert bench._harm(fix, frozenset({"checkout"}), "resolve", slow, 0.15, OBJ,
                       100.0)[0].harmful
