"""Each service's own limit of a signal (its memory limit), read from a real Prometheus.

The exporters expose cAdvisor's `container_spec_memory_limit_bytes` as a kubelet does: one row
per container, the pause container (`POD`) and the pod's own cgroup (`container=""`) beside
the app's, and 0 for a container without a limit. The default limit query keeps the apps'
limits, per service, and drops the unlimited ones.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import prometheus_client
import pytest
import sources_servers as srv
import yaml

from selfheal import config, ports
from selfheal.sources import prometheus, promfeed

pytestmark = pytest.mark.timeout(120)

GIB = 1024.0 ** 3


@pytest.fixture
def limited(prometheus_server: Callable[..., srv.Server],
            exporter: Callable[[], srv.Exporter]) -> Iterator[srv.Server]:
    """Prometheus scraping auth's two replicas (a 2 GiB limit each), cart's one (none) and
    web's one, whose limit is in the wrong unit (0.5, CPU cores)."""
    targets = []
    for service, replica, limit in (("auth", "auth-0", 2 * GIB), ("auth", "auth-1", 2 * GIB),
                                    ("cart", "cart-0", 0.0), ("web", "web-0", 0.5)):
        e = exporter()
        e.rss.set(300e6)
        gauge = prometheus_client.Gauge("container_spec_memory_limit_bytes", "cgroup limit",
                                        ["container"], registry=e.registry)
        gauge.labels(container="app").set(limit)
        gauge.labels(container="POD").set(0.0)
        gauge.labels(container="").set(4 * GIB)  # the pod's cgroup: app and sidecars
        targets.append((e.url, {"service": service, "replica": replica}))
    server = prometheus_server(targets)
    src = prometheus.PrometheusSource(server.url)
    try:
        srv.wait_until(lambda: len(src.instant("container_spec_memory_limit_bytes")) == 12, 30,
                       "every replica's limits scraped", server.proc, server.log)
    finally:
        src.close()
    yield server


def _ticks(feed: promfeed.PrometheusFeed, times: list[float]) -> list[ports.Collected]:
    async def run() -> list[ports.Collected]:
        try:
            return [await feed.collect(t) for t in times]
        finally:
            await feed.close()
    return asyncio.run(run())


def test_the_feed_reads_each_services_limit_at_start_and_every_refresh(
        limited: srv.Server) -> None:
    now = time.time()
    feed = promfeed.PrometheusFeed(limited.url, rate_window="5s", limit_refresh_s=2.0)
    first, between, refreshed = _ticks(feed, [now, now + 1.0, now + 2.0])
    assert first.limits == {"rss_bytes": {"auth": 2 * GIB, "web": 0.5}}, "cart has none"
    assert between.limits == {}, "a limit is asked once a refresh, not every tick"
    assert refreshed.limits == first.limits
    assert ("auth", "rss_bytes") in {(s.service, s.metric) for s in first.samples}
    assert feed.last_error == ""


def test_a_limit_query_that_fails_is_named_and_the_signals_still_come(
        limited: srv.Server) -> None:
    feed = promfeed.PrometheusFeed(limited.url, rate_window="5s",
                                   limit_queries={"rss_bytes": "min by (service) ("})
    (tick,) = _ticks(feed, [time.time()])
    assert tick.limits == {}
    assert feed.last_error.startswith("rss_bytes limit: ")
    assert "bad_data" in feed.last_error  # Prometheus's own word for the bad query
    assert feed.blind is False
    assert ("auth", "rss_bytes") in {(s.service, s.metric) for s in tick.samples}


def test_selfheal_serve_says_which_limits_it_took(limited: srv.Server, tmp_path: Path) -> None:
    port = srv.free_port()
    proc, log = srv.serve(tmp_path, limited.url, port, "5s", scrape={"interval_s": 1})
    with srv.running(proc):
        srv.wait_until(lambda: "limits from" in log.read_text(), 60,
                       "the limits event", proc, log)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    said = " ".join(log.read_text().split())  # the console wraps its lines
    assert ("rss_bytes limits from prometheus: auth 2048.0 MiB (was 512.0 MiB); not used, as "
            "the value is already past it (check the query's unit): web's 0.0 MiB (now "
            "286.1 MiB)") in said


def test_the_default_limit_query_is_a_signal_of_the_default_queries() -> None:
    assert set(config.DEFAULT_LIMIT_PROMQL) <= set(config.DEFAULT_PROMQL)


def test_selfheal_detect_forecasts_against_each_services_limit(
        tmp_path: Path, prometheus_server: Callable[..., srv.Server],
        exporter: Callable[[], srv.Exporter], selfheal_cmd: list[str]) -> None:
    """Two days of auth's memory kept by Prometheus (backfilled): a flat day at 1 GiB, then a
    leak of 5% an hour; its 2 GiB limit is scraped live. The leak is forecast against that
    limit; without the limit query (the control) the day's leak is never reported."""
    end = int(time.time()) - 3600
    start = end - 2 * 86_400
    rows = []
    for t in range(start, end, 60):
        leak_h = max(0.0, (t - start - 86_400) / 3600)
        wobble = ((t * 7919) % 97 - 48) / 48 * 2 * 1024 ** 2  # +-2 MiB, deterministic
        rows.append(f'process_resident_memory_bytes{{service="auth"}} '
                    f'{GIB * (1 + 0.05 * leak_h) + wobble:.0f} {t}')
    history = "\n".join(["# TYPE process_resident_memory_bytes gauge", *rows, "# EOF", ""])
    e = exporter()
    e.registry.unregister(e.rss)  # only the limit is live; the memory is the history's
    prometheus_client.Gauge("container_spec_memory_limit_bytes", "cgroup limit", ["container"],
                            registry=e.registry).labels(container="app").set(2 * GIB)
    prom = prometheus_server([(e.url, {"service": "auth"})], history=history)
    src = prometheus.PrometheusSource(prom.url)
    try:
        srv.wait_until(lambda: bool(src.instant("container_spec_memory_limit_bytes")), 30,
                       "the limit scraped", prom.proc, prom.log)
    finally:
        src.close()
    days = f"{(time.time() - start) / 86_400:.3f}"
    found = {}
    for arm, section in (("limit", {}), ("control", {"limit_queries": {}})):
        cfg = tmp_path / f"{arm}.yaml"
        cfg.write_text(yaml.safe_dump({"sources": {"prometheus": {
            "url": prom.url, "rate_window": "1m", **section}}}))
        res = subprocess.run([*selfheal_cmd, "detect", "--prometheus", prom.url, "--config",
                              str(cfg), "--days", days, "--step", "60", "--json"],
                             capture_output=True, text=True, timeout=180, check=False)
        assert res.returncode == 0, res.stderr
        episodes = json.loads(res.stdout.strip().splitlines()[-1])["episodes"]
        found[arm] = [ep for ep in episodes if ep["metric"] == "rss_bytes"
                      and ep["started_at"] > start + 86_400]
        if arm == "limit":
            said = " ".join(res.stderr.split())
            assert "rss_bytes limits of 1 service(s) from Prometheus" in said
    assert found["control"] == []
    assert found["limit"], "the leak is forecast against auth's own limit"
    first = found["limit"][0]
    assert first["observed"] < 2 * GIB
    assert "to the 2048.0 MiB limit" in first["explanation"]
