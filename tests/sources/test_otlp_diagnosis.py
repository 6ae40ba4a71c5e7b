"""Spans received over OTLP reach the diagnosis of an incident (`selfheal serve`'s wiring).

An alert opens an incident on `checkout`; the OTLP feed holds spans in which checkout's own
work got slow. The traces investigator must read them: its evidence is not "source
unavailable", and it points along the slow path. Without a trace feed it says the source is missing.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from tests import alert_payloads

from selfheal import config, model, policy
from selfheal.engine import controller as controller_mod
from selfheal.engine import serve
from selfheal.sources import alertmanager, otlp
from selfheal.store import sql

pytestmark = pytest.mark.timeout(60)


def _spans(now: float) -> list[model.Span]:
    out = []
    for i in range(400):
        t = now - 200 + i * 0.5
        slow = t > now - 7  # the incident window starts 5 s before the alert (now - 2)
        root = f"r{i}"
        dur = 0.4 if slow else 0.02
        out.append(model.Span(f"t{i}", root, "", "frontend", "GET /buy", t, t + dur + 0.004))
        out.append(model.Span(f"t{i}", f"c{i}", root, "checkout", "POST /order", t + 0.001,
                              t + 0.001 + dur))
        out.append(model.Span(f"t{i}", f"k{i}", f"c{i}", "cart", "GET /cart", t + 0.002,
                              t + 0.006))
    return out


def _diagnose(tmp_path: Path, with_traces: bool,
              section: config.Diagnose | None = None) -> model.Diagnosis:
    services: dict[str, list[str]] = {"frontend": ["checkout"], "checkout": ["cart"],
                                      "cart": []}
    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = config.Config(workdir=tmp_path, platform=config.PlatformSettings(services=services),
                        investigate=config.Investigate(patience_s=0),
                        diagnose=section or config.Diagnose())
    store = sql.SqlStore(cfg.database_url())
    alerts = alertmanager.AlertFeed()
    feeds: list[object] = [alerts]
    if with_traces:
        traces = otlp.OtlpFeed()
        traces.add_spans(_spans(time.time()))
        feeds.append(traces)
    ctl = controller_mod.Controller(
        cfg, serve.ObservedPlatform(services), store,
        policy.Gate(policy.parse(serve.OBSERVE_POLICY, "test")),
        {"frontend": ("checkout",), "checkout": ("cart",), "cart": ()}, time.time,
        lambda e: None, feeds=feeds)  # type: ignore[arg-type]

    async def run() -> model.Diagnosis:
        alerts.receive(alert_payloads.firing("CheckoutSlow", "checkout", time.time() - 2))
        await ctl.tick()
        (case,) = ctl.cases.values()
        await ctl.tasks[case.incident.id]
        diag = case.detail["diagnosis"]
        assert isinstance(diag, model.Diagnosis)
        await ctl.stop()
        return diag

    try:
        return asyncio.run(run())
    finally:
        store.close()


def test_spans_from_the_otlp_feed_are_read_by_the_traces_investigator(tmp_path: Path) -> None:
    diag = _diagnose(tmp_path, with_traces=True)
    traces = [e for e in diag.evidence if e.kind is model.SignalKind.TRACES]
    assert traces and all(e.status is model.EvidenceStatus.OK for e in traces), traces
    # the spans were read: the slow request path is placed on the call graph (where exactly
    # along checkout -> cart is the traces investigator's own business, tested elsewhere)
    assert {e.service for e in traces} & {"checkout", "cart"}, traces


def test_without_a_trace_feed_the_traces_investigator_says_so(tmp_path: Path) -> None:
    diag = _diagnose(tmp_path, with_traces=False)
    traces = [e for e in diag.evidence if e.kind is model.SignalKind.TRACES]
    assert [e.status for e in traces] == [model.EvidenceStatus.NO_DATA]


def test_the_config_diagnose_section_reaches_the_engine(tmp_path: Path) -> None:
    # traces alone support the top hypothesis: not enough by default (two kinds) ...
    assert not _diagnose(tmp_path / "a", with_traces=True).sufficient
    # ... enough for an operator who configured one kind (a looser, deliberate choice)
    one = config.Diagnose(min_independent_kinds=1)
    assert _diagnose(tmp_path / "b", with_traces=True, section=one).sufficient
