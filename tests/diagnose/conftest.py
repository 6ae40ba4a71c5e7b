"""Shared builders for the diagnosis tests: the demo shop's incident window, generated."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest

from selfheal import diagnose, model

T0 = 1_700_000_000.0
SERVICES = ("frontend", "auth", "catalog", "cart", "checkout")
TOPOLOGY = {
    "frontend": ("auth", "catalog", "cart", "checkout"),
    "checkout": ("cart", "catalog"),
}
DEPLOY_AT = T0 + 40.0
END = T0 + 90.0


def demo_window(seed: int = 0, theories: tuple[str, ...] = ()) -> diagnose.Window:
    """The demo's bad deploy of auth: leaking memory, slower, GC warnings in its logs."""
    rng = np.random.default_rng(seed)
    metrics: dict[tuple[str, str], list[model.Sample]] = {}
    logs: list[model.LogRecord] = []
    for service in SERVICES:
        rss0 = float(rng.uniform(40e6, 80e6))
        for step in range(91):
            t = T0 + step
            after = t - DEPLOY_AT
            bad = service == "auth" and after > 0
            rss = rss0 + rng.normal(0, 0.3e6) + (7e6 * after if bad else 0.0)
            p99 = 0.005 + rng.normal(0, 0.0003)
            if bad:
                p99 = float(rng.uniform(0.025, 0.05))
            elif service == "frontend" and after > 1:
                p99 = float(rng.uniform(0.012, 0.02))
            values = {
                "rss_bytes": rss,
                "p99_latency_s": p99,
                "error_ratio": abs(rng.normal(0.001, 0.0003)),
                "request_rate": 20 + rng.normal(0, 1),
                "gc_pause_s": (0.05 if bad else 0.001) + abs(rng.normal(0, 0.0002)),
            }
            for metric, value in values.items():
                metrics.setdefault((service, metric), []).append(
                    model.Sample(t=t, service=service, metric=metric, value=float(value))
                )
            for _ in range(int(rng.integers(3, 6))):
                ms = int(rng.integers(2, 9))
                path = str(rng.choice(["/", "/items", "/login", "/cart"]))
                logs.append(
                    model.LogRecord(
                        t + float(rng.uniform(0, 1)),
                        service,
                        "INFO",
                        f"handled GET {path} in {ms} ms status=200",
                    )
                )
            if bad:
                logs.append(
                    model.LogRecord(
                        t + 0.5,
                        service,
                        "WARNING",
                        f"gc: full collection paused the process for {rng.integers(30, 90)} ms",
                    )
                )
    anomaly = model.Anomaly(
        id=model.AnomalyId("a1"),
        service="auth",
        metric="rss_bytes",
        detector="test",
        started_at=DEPLOY_AT + 2,
        detected_at=DEPLOY_AT + 5,
        score=10.0,
        baseline=60e6,
        observed=100e6,
        explanation="rss climbing",
    )
    incident = model.Incident(
        id=model.IncidentId("inc-1"),
        service="auth",
        opened_at=DEPLOY_AT + 5,
        title="auth memory",
        anomalies=(anomaly,),
    )
    change = model.Change(
        id=model.ChangeId("c1"),
        t=DEPLOY_AT,
        service="auth",
        kind="deploy",
        who="ci-bot",
        what="deploy auth 1.2.1",
        from_version="1.2.0",
        to_version="1.2.1",
    )
    return diagnose.Window(
        incident=incident,
        start=DEPLOY_AT - 5,
        end=END,
        baseline_start=T0,
        baseline_end=DEPLOY_AT - 5,
        metrics=metrics,
        logs=logs,
        changes=(change,),
        spans=None,
        topology=TOPOLOGY,
        theories=theories,
    )


@pytest.fixture
def make_demo() -> Callable[..., diagnose.Window]:
    return demo_window


def without(window: diagnose.Window, **fields: object) -> diagnose.Window:
    return dataclasses.replace(window, **fields)  # type: ignore[arg-type]
