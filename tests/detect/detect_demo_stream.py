"""A synthetic stream shaped like the demo: three services, a leaky deploy of auth, a rollback.

Values are drawn with noise from a seeded generator; the tests check the detector's behaviour
on them, never hard-coded outputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from selfheal import model

MB = 1e6
SERVICES = ("gateway", "auth", "catalog")


@dataclasses.dataclass(frozen=True)
class Scenario:
    baseline_s: int = 80
    leak_s: int = 60
    recovery_s: int = 60
    leak_mb_per_s: float = 7.0
    deploy: bool = True
    seed: int = 0

    @property
    def deploy_t(self) -> float:
        return float(self.baseline_s)

    @property
    def rollback_t(self) -> float:
        return float(self.baseline_s + self.leak_s)

    @property
    def end_t(self) -> float:
        return float(self.baseline_s + self.leak_s + self.recovery_s)

    def changes(self, t: float) -> tuple[model.Change, ...]:
        out = []
        if self.deploy and t >= self.deploy_t:
            out.append(model.Change(model.ChangeId("chg-1"), self.deploy_t, "auth", "deploy",
                                    "ci", "deploy auth v1.2.1", "v1.2.0", "v1.2.1"))
        if self.deploy and t >= self.rollback_t:
            out.append(model.Change(model.ChangeId("chg-2"), self.rollback_t, "auth", "rollback",
                                    "selfheal", "rollback auth to v1.2.0", "v1.2.1", "v1.2.0"))
        return tuple(out)


def _p99(rng: np.random.Generator, low: float, high: float) -> float:
    # histogram_quantile interpolates inside buckets: values cluster, with jitter
    return float(np.clip(rng.uniform(low, high) + rng.normal(0, 0.001), 0.001, None))


def stream(sc: Scenario) -> Iterator[tuple[float, dict[tuple[str, str], float]]]:
    rng = np.random.default_rng(sc.seed)
    t = 0.0
    while t < sc.end_t:
        values: dict[tuple[str, str], float] = {}
        for svc in SERVICES:
            faulty = sc.deploy and svc == "auth" and sc.deploy_t <= t < sc.rollback_t
            if faulty:
                rss = 60 * MB + sc.leak_mb_per_s * MB * (t - sc.deploy_t)
                p99 = _p99(rng, 0.025, 0.05)
                gc = abs(rng.normal(0.03, 0.01))
            else:
                rss = 25 * MB + 0.002 * MB * t
                p99 = _p99(rng, 0.005, 0.025)
                gc = abs(rng.normal(0.0, 0.0005))
            values[(svc, "rss_bytes")] = rss + rng.normal(0, 0.15 * MB)
            values[(svc, "p99_latency_s")] = p99
            values[(svc, "error_ratio")] = 0.0 if rng.random() > 0.02 else 1 / 15
            values[(svc, "request_rate")] = max(0.0, rng.normal(15, 2.5))
            values[(svc, "gc_pause_s")] = gc
        yield t, values
        t += 1.0
