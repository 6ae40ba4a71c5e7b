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
