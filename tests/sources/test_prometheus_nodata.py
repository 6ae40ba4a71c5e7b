"""Missing data is not good news: Prometheus dying while an incident is being investigated
makes the diagnosis' metrics evidence NO_DATA, where the same investigation with Prometheus
up reads real series.

The controller runs in-process with the serve runtime's pieces (the observe-only platform,
the Prometheus-backed store, an Alertmanager feed); the alert is handed to the feed as the
webhook route would, and Prometheus is stopped by PID the moment the incident opens.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sources_servers as srv
from tests import alert_payloads

from selfheal import config, model, policy
from selfheal.engine import controller as controller_mod
from selfheal.engine import serve
from selfheal.sources import alertmanager, prometheus

pytestmark = pytest.mark.timeout(120)


def _metrics_evidence(ctl: controller_mod.Controller, inc_id: str) -> model.Evidence:
    diag = ctl.cases[inc_id].detail["diagnosis"]
    assert isinstance(diag, model.Diagnosis)
    found = [e for e in diag.evidence if e.kind == model.SignalKind.METRICS]
    assert len(found) >= 1, diag.evidence
    return found[0]


def test_prometheus_stopped_mid_investigation_gives_no_data(
        tmp_path: Path, prometheus_server: Callable[..., srv.Server],
        exporter: Callable[[], srv.Exporter]) -> None:
    auth = exporter()
    auth.rss.set(50_000_000)
    auth.requests.labels(route="/verify", code="200").inc(10)
    prom = prometheus_server([(auth.url, {"service": "auth", "replica": "auth-0"})])
    source = prometheus.PrometheusSource(prom.url, rate_window="5s", step_s=1.0, retries=1,
                                         backoff_s=0.1, timeout_s=2.0)
    # A baseline before the incident window (which starts 5 s before the alert) and a few
    # points inside it: 12 one-second steps of scraped data.
    srv.wait_until(lambda: len(source.query("auth", "rss_bytes", time.time() - 60,
                                            time.time())) >= 12, 40, "scraped rss samples",
                   prom.proc, prom.log)
    cfg = config.Config(workdir=tmp_path / "state",
                        platform=config.PlatformSettings(services={"auth": []}))
    cfg.workdir.mkdir()
    store = serve.PrometheusBackedStore(cfg.database_url(), source)
    feed = alertmanager.AlertFeed()
    kill_on_open: list[bool] = [False]
    events: list[controller_mod.Event] = []

    def on_event(e: controller_mod.Event) -> None:
        events.append(e)
        if e.stage == "detect" and kill_on_open[0]:
            prom.stop()  # Prometheus dies as the investigation starts

    ctl = controller_mod.Controller(
        cfg, serve.ObservedPlatform({"auth": []}), store,
        policy.Gate(policy.parse(serve.OBSERVE_POLICY, "test")), {"auth": ()}, time.time,
        on_event, feeds=[feed])

    async def incident(fingerprint: str) -> str:
        before = set(ctl.cases)
        feed.receive(alert_payloads.firing("AuthMemoryHigh", "auth", time.time() - 2, fingerprint))
        await ctl.tick()
        (new,) = set(ctl.cases) - before
        await ctl.tasks[new]
        return new

    async def scenario() -> tuple[str, str]:
        try:
            up = await incident("fp-up")
            kill_on_open[0] = True
            down = await incident("fp-down")
            return up, down
        finally:
            await ctl.stop()

    up, down = asyncio.run(scenario())
    store.close()
    source.close()
    assert prom.proc.poll() is not None, "Prometheus should have been stopped"
    with_prom = _metrics_evidence(ctl, up)
    assert with_prom.status != model.EvidenceStatus.NO_DATA, with_prom.observation
    blind = _metrics_evidence(ctl, down)
    assert blind.status == model.EvidenceStatus.NO_DATA
    assert "unavailable" in blind.observation
    said = [e.message for e in events if e.incident_id == down and e.stage == "diagnose"]
    assert any("metrics unavailable" in m and prom.url.split("//")[1] in m for m in said)
