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

from selfheal import config, model, policy, ports
from selfheal.engine import controller as controller_mod
from selfheal.engine import serve
from selfheal.sources import prometheus, promfeed
from selfheal.store import sql

pytestmark = pytest.mark.timeout(120)

GIB = 1024.0 ** 3


KUBELET = (  # (pod, container, limit): what cAdvisor reports on the node
    ("auth-0", "app", 2 * GIB), ("auth-0", "istio-proxy", 1 * GIB),  # a sidecar's is not auth's
    ("auth-0", "POD", 0.0), ("auth-0", "", 4 * GIB),  # the pause container; the pod's cgroup
    ("auth-1", "app", 2 * GIB), ("auth-1", "istio-proxy", 1 * GIB),
    ("cart-0", "app", 0.0),  # no limit
    ("web-0", "app", 0.5),  # the wrong unit: CPU cores
)


@pytest.fixture
def limited(prometheus_server: Callable[..., srv.Server],
            exporter: Callable[[], srv.Exporter]) -> Iterator[srv.Server]:
    """Prometheus scraping a kubelet's cAdvisor limits and the apps of auth (two replicas at
    400 and 300 MB, 2 GiB each, beside a 1 GiB sidecar), cart (no limit) and web (a limit in
    CPU cores), each app target labelled with its service, namespace, pod and container, as
    Kubernetes service discovery labels them."""
    kubelet = exporter()
    kubelet.registry.unregister(kubelet.rss)
    gauge = prometheus_client.Gauge("container_spec_memory_limit_bytes", "cgroup limit",
                                    ["namespace", "pod", "container"], registry=kubelet.registry)
    for pod, container, limit in KUBELET:
        gauge.labels(namespace="shop", pod=pod, container=container).set(limit)
    targets: list[tuple[str, dict[str, str]]] = [(kubelet.url, {})]
    for service, pod in (("auth", "auth-0"), ("auth", "auth-1"), ("cart", "cart-0"),
                         ("web", "web-0")):
        e = exporter()
        e.rss.set(400e6 if pod == "auth-0" else 300e6)
        targets.append((e.url, {"service": service, "namespace": "shop", "pod": pod,
                                "container": "app"}))
    server = prometheus_server(targets)
    src = prometheus.PrometheusSource(server.url)
    try:
        srv.wait_until(lambda: len(src.instant("container_spec_memory_limit_bytes")) == 8
                       and len(src.instant('process_resident_memory_bytes{service!=""}')) == 4,
                       30, "the limits and the apps scraped", server.proc, server.log)
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
    # the app's own container, not its sidecar; cart has none
    assert first.limits == {"rss_bytes": {"auth": 2 * GIB, "web": 0.5}}
    assert between.limits == {}, "a limit is asked once a refresh, not every tick"
    assert refreshed.limits == first.limits
    # a service's memory is its highest replica's, the one nearest its (per container) limit
    rss = {s.service: s.value for s in first.samples if s.metric == "rss_bytes"}
    assert rss == {"auth": 400e6, "cart": 300e6, "web": 300e6}
    assert feed.last_error == feed.limits_error == ""


def _asked(feed: promfeed.PrometheusFeed) -> list[float]:
    """The times the feed asks its limit queries (a spy on the real call)."""
    times: list[float] = []
    real = feed._limits

    async def spy(expr: str, now: float) -> dict[str, float]:
        times.append(now)
        return await real(expr, now)

    feed._limits = spy  # type: ignore[method-assign]
    return times


def test_a_limit_query_that_fails_is_named_until_it_answers_and_asked_again_soon(
        limited: srv.Server) -> None:
    feed = promfeed.PrometheusFeed(limited.url, rate_window="5s",
                                   limit_queries={"rss_bytes": "min by (service) ("})
    asked = _asked(feed)
    now = time.time()
    ticks = _ticks(feed, [now, now + 1.0, now + 31.0])
    assert [t.limits for t in ticks] == [{}, {}, {}]
    assert asked == [now, now + 31.0], "asked again 30 s later, not every tick nor 300 s later"
    assert feed.limits_error.startswith("rss_bytes limit: ")
    assert "bad_data" in feed.limits_error  # Prometheus's own word for the bad query
    # the signals answered: Prometheus is up, and its signals' health says so
    assert feed.last_error == "" and feed.blind is False
    assert ("auth", "rss_bytes") in {(s.service, s.metric) for s in ticks[-1].samples}


def test_limits_are_read_again_when_the_clock_is_set_back(limited: srv.Server) -> None:
    feed = promfeed.PrometheusFeed(limited.url, rate_window="5s")
    asked = _asked(feed)
    now = time.time()
    ticks = _ticks(feed, [now, now + 15.0, now - 3600.0, now - 3585.0])
    assert asked == [now, now - 3600.0]
    # an hour ago nothing was scraped yet: the query answers that no service has a limit
    assert [t.limits for t in ticks] == [{"rss_bytes": {"auth": 2 * GIB, "web": 0.5}}, {},
                                         {"rss_bytes": {}}, {}]


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
            "the value is already past it (check the query's unit): web's 0.5 (0.0 MiB), now "
            "286.1 MiB") in said
    assert said.count("limits from") == 1, "said once, not at every refresh"


def test_the_default_limit_query_is_a_signal_of_the_default_queries() -> None:
    assert set(config.DEFAULT_LIMIT_PROMQL) <= set(config.DEFAULT_PROMQL)


def test_selfheal_detect_forecasts_against_each_services_limit_as_it_was(
        tmp_path: Path, prometheus_server: Callable[..., srv.Server],
        exporter: Callable[[], srv.Exporter], selfheal_cmd: list[str]) -> None:
    """Two days of auth's memory and of its limit kept by Prometheus (backfilled): a flat day
    at 600 MiB under a 1 GiB limit, then a leak of 5% an hour until the kernel stops it at
    that limit; after the stop its owner raised the limit to 2 GiB, as it is now (scraped
    live). The leak is forecast against the limit it had then, before the stop; against
    today's 2 GiB (the old reading), or without the limit query (the control), it is not
    (only the growth check, for a series with no usable limit, sees it)."""
    end = int(time.time()) - 3600
    start = end - 2 * 86_400
    stopped = start + 86_400 + int(0.7 / 0.05 * 3600)  # 600 MiB + 70% at 5% an hour
    app_labels = 'namespace="shop",pod="auth-0",container="app"'
    rss, limit = [], []
    for t in range(start, end, 60):
        leak_h = max(0.0, (t - start - 86_400) / 3600) if t < stopped else 0.0
        wobble = ((t * 7919) % 97 - 48) / 48 * 2 * 1024 ** 2  # +-2 MiB, deterministic
        value = 600 * 1024 ** 2 * (1 + 0.05 * leak_h) + wobble
        rss.append(f'process_resident_memory_bytes{{service="auth",{app_labels}}} '
                   f'{value:.0f} {t}')
        limit.append(f"container_spec_memory_limit_bytes{{{app_labels}}} "
                     f"{GIB if t < stopped else 2 * GIB:.0f} {t}")
    history = "\n".join(["# TYPE process_resident_memory_bytes gauge", *rss,
                         "# TYPE container_spec_memory_limit_bytes gauge", *limit, "# EOF", ""])
    app, kubelet = exporter(), exporter()
    app.rss.set(600 * 1024 ** 2)
    kubelet.registry.unregister(kubelet.rss)
    prometheus_client.Gauge(
        "container_spec_memory_limit_bytes", "cgroup limit", ["namespace", "pod", "container"],
        registry=kubelet.registry).labels(namespace="shop", pod="auth-0",
                                          container="app").set(2 * GIB)
    prom = prometheus_server([(app.url, {"service": "auth", "namespace": "shop",
                                         "pod": "auth-0", "container": "app"}),
                              (kubelet.url, {})], history=history)
    src = prometheus.PrometheusSource(prom.url)
    try:
        srv.wait_until(lambda: bool(src.instant(config.DEFAULT_LIMIT_PROMQL["rss_bytes"])), 30,
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
        # the leak's day up to the kernel's stop (the fall at the stop is news either way)
        found[arm] = [ep for ep in episodes if ep["metric"] == "rss_bytes"
                      and start + 86_400 < ep["started_at"] < stopped]
        if arm == "limit":
            said = " ".join(res.stderr.split())
            assert ("rss_bytes limits of 1 service(s) from Prometheus, as they were over the "
                    "range (read every 300 s)") in said
            assert "auth 1024.0 MiB (was 512.0 MiB)" in said
            assert "auth 2048.0 MiB (was 1024.0 MiB)" in said, "the raise is said, when"
    # without a limit (the 512 MiB default is behind auth) only the growth check sees it,
    # hours in, with no time to the limit
    assert all(ep["detector"] == "growth" for ep in found["control"])
    assert found["limit"], "the leak is forecast against the limit auth had then"
    first = found["limit"][0]
    assert first["observed"] < GIB
    assert "to the 1024.0 MiB limit" in first["explanation"]


class _Feed:
    """A feed whose ticks the test writes: the samples and the limits it brings."""

    name = "prometheus"
    kinds = frozenset({model.SignalKind.METRICS})

    def __init__(self) -> None:
        self.next = ports.Collected()

    async def collect(self, now: float) -> ports.Collected:
        return self.next

    async def close(self) -> None:
        pass


def test_the_engine_says_what_it_did_with_the_limits_once_and_writes_it_down(
        tmp_path: Path) -> None:
    now = 1_800_000_000.0
    cfg = config.Config(workdir=tmp_path, platform=config.PlatformSettings(
        services={"auth": [], "cart": []}))
    store = sql.SqlStore(cfg.database_url())
    feed = _Feed()
    events: list[str] = []
    ctl = controller_mod.Controller(
        cfg, serve.ObservedPlatform({"auth": [], "cart": []}), store,
        policy.Gate(policy.parse(serve.OBSERVE_POLICY, "test")), {"auth": (), "cart": ()},
        lambda: now, lambda e: events.append(e.message), feeds=[feed])
    rss = tuple(model.Sample(t=now, service=svc, metric="rss_bytes", value=300e6)
                for svc in ("auth", "cart"))

    def tick(limits: dict[str, dict[str, float]]) -> list[str]:
        feed.next = ports.Collected(samples=rss, limits=limits)
        before = len(events)
        asyncio.run(ctl.tick())
        return [m for m in events[before:] if "limits from" in m]

    # a query that gives none of the services watched (no `service` on its series) is said
    assert tick({"rss_bytes": {}}) == [
        "rss_bytes limits from prometheus: the limit query gave none of the 2 service(s) "
        "watched, so their limit is the 512.0 MiB of detect.limits (is `service` on its "
        "series?)"]
    assert tick({"rss_bytes": {}}) == [], "once, not at every refresh"
    said = tick({"rss_bytes": {"auth": 2 * GIB, "cart": 0.5}})
    assert said == ["rss_bytes limits from prometheus: auth 2048.0 MiB (was 512.0 MiB); not "
                    "used, as the value is already past it (check the query's unit): cart's "
                    "0.5 (0.0 MiB), now 286.1 MiB"]
    assert tick({"rss_bytes": {"auth": 2 * GIB, "cart": 0.5}}) == []
    written = [e.payload for e in store.ledger() if e.kind == "signal.limits"]
    assert [w["limits"] for w in written] == [{}, {"auth": 2 * GIB, "cart": 0.5}]
    assert written[1]["refused"] == {"cart": 0.5}
    store.close()


def test_history_in_short_chunks_reads_each_limit_a_few_hours_at_a_time(
        prometheus_server: Callable[..., srv.Server], monkeypatch: pytest.MonkeyPatch) -> None:
    """A big fleet's history comes in chunks of minutes; its limits are read ahead, several
    hours a query, not once a chunk. Each chunk still brings the limits in force over it,
    as they were: auth's was raised from 1 to 1.5 GiB, then to 2 GiB, mid-history."""
    end = int(time.time()) // 300 * 300 - 3600
    start = end - 8 * 3600
    raised = (start + 2 * 3600 + 420, start + 5 * 3600 + 60)  # not on the 300 s readings

    def limit_at(t: float) -> float:
        return GIB * (1.0 + 0.5 * sum(t >= r for r in raised))

    app_labels = 'namespace="shop",pod="auth-0",container="app"'
    rss = [f'process_resident_memory_bytes{{service="auth",{app_labels}}} {600e6:.0f} {t}'
           for t in range(start - 600, end + 600, 60)]
    limit = [f"container_spec_memory_limit_bytes{{{app_labels}}} {limit_at(t):.0f} {t}"
             for t in range(start - 600, end + 600, 60)]
    prom = prometheus_server([], history="\n".join([
        "# TYPE process_resident_memory_bytes gauge", *rss,
        "# TYPE container_spec_memory_limit_bytes gauge", *limit, "# EOF", ""]))
    monkeypatch.setattr(prometheus, "HISTORY_CHUNK_POINTS", 40)  # 40 ticks: chunks of minutes
    src = prometheus.PrometheusSource(
        prom.url, queries={"rss_bytes": config.DEFAULT_PROMQL["rss_bytes"]},
        limit_queries=config.DEFAULT_LIMIT_PROMQL, rate_window="1m")
    asked: list[str] = []
    real = src.range

    def counted(expr: str, *args: float | None, **kw: float | None) -> list[prometheus.Series]:
        asked.append(expr)
        return real(expr, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(src, "range", counted)
    try:
        srv.wait_until(lambda: bool(real(config.DEFAULT_LIMIT_PROMQL["rss_bytes"], start,
                                         start + 600, 300)), 30, "the backfilled blocks read",
                       prom.proc, prom.log)
        asked.clear()
        chunks = list(src.chunks(start, end, 60.0))
    finally:
        src.close()
    assert len(chunks) >= 10
    assert len(asked) == 2, asked  # 8 hours: two reads of at least 6 hours
    replayed = 0
    for chunk in chunks:
        steps = chunk.limits["rss_bytes"]
        for t in chunk.t:
            in_force = [limits for at, limits in steps if at <= t][-1]
            # what a reading every 300 s saw, as `serve` reads it
            assert in_force == {"auth": limit_at(t // 300 * 300)}, (t, steps)
            replayed += 1
    assert replayed == 8 * 60
