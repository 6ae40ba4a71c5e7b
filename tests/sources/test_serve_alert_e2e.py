"""End to end on real servers: a Prometheus alert rule fires, Alertmanager delivers it to
`selfheal serve` over its webhook, and selfheal opens an incident for the alert's service.

`selfheal serve` runs as the user runs it (a subprocess of the CLI) and is stopped with
SIGTERM, which must end it cleanly (exit 0). Before that, the alert is resolved and the
resolved notification is recorded too, and Prometheus is stopped: serve keeps running and
reports it on `/healthz` and `/metrics`.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import sources_servers as srv

pytestmark = pytest.mark.timeout(180)


def test_alert_rule_reaches_serve_and_opens_an_incident(
        tmp_path: Path, prometheus_server: Callable[..., srv.Server],
        alertmanager_server: Callable[[str], srv.Server],
        exporter: Callable[[], srv.Exporter]) -> None:
    auth = exporter()
    threshold = 100_000_000.0
    auth.rss.set(threshold / 2)
    serve_port = srv.free_port()
    am = alertmanager_server(f"http://127.0.0.1:{serve_port}/webhooks/alertmanager")
    prom = prometheus_server(
        [(auth.url, {"service": "auth", "replica": "auth-0"})],
        rules=[{"alert": "AuthMemoryHigh",
                "expr": f'process_resident_memory_bytes{{service="auth"}} > {threshold:.0f}',
                "for": "0s", "labels": {"severity": "page"},
                "annotations": {"summary": "auth resident memory above the limit"}}],
        alertmanager=am.url.removeprefix("http://"))
    workdir = tmp_path / "state"
    proc, log = srv.serve(tmp_path, prom.url, serve_port, "5s",
                          sources={"alertmanager": {"enabled": True}})
    db = workdir / "selfheal.db"
    with srv.running(proc):
        srv.wait_until(lambda: srv.ready(f"http://127.0.0.1:{serve_port}/healthz"), 30,
                       "selfheal serve healthy", proc, log)
        assert srv.rows(db, "select id from incidents") == []
        auth.rss.set(threshold * 2)  # the leak: the rule fires on the next evaluation
        srv.wait_until(lambda: bool(srv.rows(db, "select id from incidents")), 60,
                       "an incident opened from the alert", proc, log)
        (inc_id, service, title), = srv.rows(db, "select id, service, title from incidents")
        assert service == "auth"
        assert "AuthMemoryHigh" in title
        kinds = [k for (k,) in srv.rows(db, "select kind from ledger where incident_id = "
                                         f"'{inc_id}' order by seq")]
        assert kinds[0] == "incident.opened"
        srv.wait_until(lambda: "diagnosis" in [k for (k,) in srv.rows(
            db, f"select kind from ledger where incident_id = '{inc_id}'")], 30,
            "the incident diagnosed", proc, log)
        metrics = httpx.get(f"http://127.0.0.1:{serve_port}/metrics", timeout=5).text
        assert 'selfheal_incidents_total{event="opened"} 1.0' in metrics
        assert "selfheal_loop_latency_seconds_count" in metrics
        assert 'selfheal_source_up{source="prometheus"} 1.0' in metrics
        health = httpx.get(f"http://127.0.0.1:{serve_port}/healthz", timeout=5).json()
        assert (health["ok"], health["prometheus"]) == (True, "ok")
        # The alert resolves: Alertmanager says so and selfheal records it.
        auth.rss.set(threshold / 2)
        srv.wait_until(lambda: any('"resolved"' in p for (p,) in srv.rows(
            db, "select payload from ledger where kind = 'signal.alert'")), 60,
            "the resolved notification recorded", proc, log)
        # Prometheus goes away: serve keeps running and says so.
        prom.stop()

        def blind() -> bool:
            state = httpx.get(f"http://127.0.0.1:{serve_port}/healthz", timeout=5).json()
            return "unavailable" in str(state.get("prometheus"))

        srv.wait_until(blind, 30, "/healthz reporting Prometheus down", proc, log)
        metrics = httpx.get(f"http://127.0.0.1:{serve_port}/metrics", timeout=5).text
        assert 'selfheal_source_up{source="prometheus"} 0.0' in metrics
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log.read_text()[-2000:]
    assert "stopped" in log.read_text()
