"""After a restart the detectors rebuild their state from the stored samples.

A cold detector is blind for its warm-up and learns whatever it sees first as normal; a warm
one, replayed from the store, fires on the first bad tick after the restart.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from selfheal import config, detect, model, policy
from selfheal.engine import controller as controller_mod
from selfheal.engine import serve
from selfheal.store import sql

pytestmark = pytest.mark.timeout(60)
NOW = 1_800_000_000.0


def _controller(tmp_path: Path, store: sql.SqlStore) -> controller_mod.Controller:
    cfg = config.Config(workdir=tmp_path, platform=config.PlatformSettings(services={"auth": []}))
    return controller_mod.Controller(
        cfg, serve.ObservedPlatform({"auth": []}), store,
        policy.Gate(policy.parse(serve.OBSERVE_POLICY, "test")), {"auth": ()}, lambda: NOW,
        lambda e: None, feeds=[])


def test_a_warmed_detector_sees_the_first_bad_tick_a_cold_one_learns_as_normal(
        tmp_path: Path) -> None:
    store = sql.SqlStore(config.Config(workdir=tmp_path).database_url())
    rng = np.random.default_rng(3)
    store.add_samples([
        model.Sample(t=NOW - 120 + i, service="auth", metric="error_ratio",
                     value=float(abs(rng.normal(0.001, 0.0005))))
        for i in range(120)])
    warm, cold = _controller(tmp_path, store), _controller(tmp_path, store)
    assert warm.warm_start() == 120
    bad = {("auth", "error_ratio"): 0.4}
    fired_warm = warm.detector.update(NOW + 1, bad, _ctx())
    fired_cold = cold.detector.update(NOW + 1, bad, _ctx())
    assert [a.metric for a in fired_warm] == ["error_ratio"]
    assert math.isclose(fired_warm[0].baseline, 0.001, abs_tol=0.002)
    assert fired_cold == []  # still in its warm-up: it would take the fault for normal
    store.close()


def test_an_empty_store_warms_nothing(tmp_path: Path) -> None:
    store = sql.SqlStore(config.Config(workdir=tmp_path).database_url())
    assert _controller(tmp_path, store).warm_start() == 0
    store.close()


def _ctx() -> detect.Context:
    return detect.Context()


def test_warm_start_does_not_teach_the_gate_that_an_incident_was_routine(
        tmp_path: Path) -> None:
    # two services flapped to 100% errors in the stored hour; auth's flaps were an incident
    # (resolved since), cart's passed unremarked: after a restart, a new flap of cart is its
    # routine, a new flap of auth is still news
    store = sql.SqlStore(config.Config(workdir=tmp_path).database_url())
    rng = np.random.default_rng(5)
    n = 600
    flaps = range(100, n, 60)
    samples = []
    for service in ("auth", "cart"):
        x = 0.002 + np.abs(rng.normal(0.0, 0.001, n))
        for k in flaps:
            x[k : k + 4] = 1.0
        samples += [model.Sample(t=NOW - n + i, service=service, metric="error_ratio",
                                 value=float(x[i])) for i in range(n)]
    store.add_samples(samples)
    store.save_incident(model.Incident(
        id=model.IncidentId("inc-1"), service="auth", opened_at=NOW - n + 101,
        title="auth: error_ratio anomalous", anomalies=(),
        state=model.IncidentState.RESOLVED), {}, now=NOW - 30)
    ctl = _controller(tmp_path, store)
    assert ctl.warm_start() == n
    reported: set[str] = set()
    for i in range(1, 8):
        flap = {("auth", "error_ratio"): 1.0, ("cart", "error_ratio"): 1.0}
        reported |= {a.service for a in ctl.detector.update(NOW + i, flap, _ctx())}
    assert reported == {"auth"}
    store.close()
