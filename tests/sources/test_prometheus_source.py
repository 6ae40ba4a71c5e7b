"""The Prometheus source against a real Prometheus scraping a real exporter.

The exporter's values are set by the test, so every expected number below is computed from
what was exposed, then read back through `/api/v1/query_range`, `/api/v1/query`,
`/api/v1/series` and `/api/v1/targets`.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sources_servers as srv

from selfheal import config, errors
from selfheal.engine import serve
from selfheal.sources import prometheus, promfeed

pytestmark = pytest.mark.timeout(120)


def _drive(e: srv.Exporter, stop: threading.Event, rss: float, ok_per_step: int,
           errors_per_step: int, latency_s: float) -> None:
    """Serve traffic with a fixed shape: ok/error mix and one latency for every request."""
    e.rss.set(rss)
    while not stop.is_set():
        e.requests.labels(route="/verify", code="200").inc(ok_per_step)
        e.requests.labels(route="/verify", code="500").inc(errors_per_step)
        for _ in range(ok_per_step + errors_per_step):
            e.latency.labels(route="/verify").observe(latency_s)
        e.gc.labels(generation="2").observe(0.002)
        stop.wait(0.1)


@pytest.fixture(scope="module")
def scraped(module_prometheus_server: Callable[..., srv.Server],
            module_exporter: Callable[[], srv.Exporter]
            ) -> Iterator[tuple[srv.Server, dict[str, float]]]:
    """Prometheus scraping two services with different, known traffic shapes (shared by the
    read-only tests of this module)."""
    auth, cart = module_exporter(), module_exporter()
    shape = {"auth_rss": 123_456_789.0, "cart_rss": 55_000_000.0, "auth_err": 1 / 5,
             "cart_err": 0.0, "auth_latency": 0.03, "cart_latency": 0.007}
    stop = threading.Event()
    threads = [
        threading.Thread(target=_drive, args=(auth, stop, shape["auth_rss"], 4, 1,
                                              shape["auth_latency"]), daemon=True),
        threading.Thread(target=_drive, args=(cart, stop, shape["cart_rss"], 5, 0,
                                              shape["cart_latency"]), daemon=True),
    ]
    for t in threads:
        t.start()
    server = module_prometheus_server([(auth.url, {"service": "auth", "replica": "auth-0"}),
                                (cart.url, {"service": "cart", "replica": "cart-0"})])
    src = prometheus.PrometheusSource(server.url, rate_window="5s", step_s=1.0)
    # Enough scrapes for a 5 s rate window: wait until every signal answers for both.
    srv.wait_until(lambda: {s.label("service") for s in src.instant(
        prometheus.expand(config.DEFAULT_PROMQL["error_ratio"], "5s"))} == {"auth", "cart"},
        40, "two services with rates", server.proc, server.log)
    yield server, shape
    stop.set()
    src.close()


def test_query_range_round_trip_over_scraped_data(
        scraped: tuple[srv.Server, dict[str, float]]) -> None:
    server, shape = scraped
    src = prometheus.PrometheusSource(server.url, rate_window="5s", step_s=1.0)
    end = time.time()
    start = end - 20
    for svc in ("auth", "cart"):
        rss = src.query(svc, "rss_bytes", start, end)
        assert rss, f"no rss_bytes for {svc}"
        assert all(s.service == svc and s.metric == "rss_bytes" for s in rss)
        assert {s.value for s in rss} == {shape[f"{svc}_rss"]}
        assert all(start - 1 <= s.t <= end + 1 for s in rss)
        errs = [s.value for s in src.query(svc, "error_ratio", start, end)
                if not math.isnan(s.value)]
        assert errs, f"no error_ratio for {svc}"
        assert errs[-1] == pytest.approx(shape[f"{svc}_err"], abs=1e-9)
        p99 = [s.value for s in src.query(svc, "p99_latency_s", start, end)
               if not math.isnan(s.value)]
        # Every request took the same time, so p99 lies in that observation's bucket.
        bounds = (0.005, 0.01, 0.025, 0.05, 0.1)
        upper = next(b for b in bounds if b >= shape[f"{svc}_latency"])
        lower = max((b for b in bounds if b < shape[f"{svc}_latency"]), default=0.0)
        assert p99 and all(lower <= v <= upper for v in p99)
        rate = [s.value for s in src.query(svc, "request_rate", start, end)]
        assert rate and rate[-1] > 0
    assert src.query("auth", "not_a_configured_signal", start, end) == []
    src.close()


def test_series_targets_and_instant(scraped: tuple[srv.Server, dict[str, float]]) -> None:
    server, shape = scraped
    src = prometheus.PrometheusSource(server.url)
    now = time.time()
    labels = [dict(x) for x in src.series(['process_resident_memory_bytes{job="shop"}'],
                                          now - 60, now)]
    assert {(d["service"], d["replica"]) for d in labels} == {("auth", "auth-0"),
                                                               ("cart", "cart-0")}
    targets = src.targets()
    assert len(targets) == 2
    assert {t.health for t in targets} == {"up"}
    assert {t.scrape_interval_s for t in targets} == {1.0}  # the fixture scrapes every 1s
    fit = prometheus.cadence(targets, 1.0, "15s", tick_set=True, window_set=True)
    assert fit == prometheus.Cadence(1.0, "15s")  # nothing to say
    assert "Set scrape.interval_s to 1." in prometheus.cadence(
        targets, 0.5, "15s", tick_set=True, window_set=True).notes[0]
    vec = src.instant('process_resident_memory_bytes{service="cart"}')
    assert [s.points[-1][1] for s in vec] == [shape["cart_rss"]]
    src.close()


def test_feed_gives_service_level_signals(scraped: tuple[srv.Server, dict[str, float]]) -> None:
    server, shape = scraped
    values, feed = srv.feed_tick(server.url, "5s")
    assert feed.last_error == ""
    assert feed.blind is False
    assert values[("auth", "rss_bytes")] == shape["auth_rss"]
    assert values[("auth", "error_ratio")] == pytest.approx(shape["auth_err"])
    assert values[("cart", "error_ratio")] == pytest.approx(0.0)
    # every default signal answers, except the expiry dates this exporter does not export
    assert {m for _, m in values} == set(config.DEFAULT_PROMQL) - {"cert_ttl_s",
                                                                  "credential_ttl_s"}
    assert values[("auth", "up")] == 1.0  # Prometheus' own scrape health, per service


def test_bad_promql_is_an_error_with_the_upstream_message(
        prometheus_server: Callable[..., srv.Server]) -> None:
    server = prometheus_server([])
    slept: list[float] = []
    src = prometheus.PrometheusSource(server.url, retries=3, sleep=slept.append)
    with pytest.raises(errors.DataUnavailable, match="bad_data"):
        src.instant("sum by (")
    assert slept == [], "a bad query must not be retried"
    src.close()


def test_down_prometheus_raises_data_unavailable_after_retries() -> None:
    port = srv.free_port()  # nothing listens here
    slept: list[float] = []
    src = prometheus.PrometheusSource(f"http://127.0.0.1:{port}", retries=2, backoff_s=0.25,
                                      timeout_s=1.0, sleep=slept.append)
    with pytest.raises(errors.DataUnavailable, match="after 3 attempt"):
        src.query("auth", "rss_bytes", time.time() - 60, time.time())
    assert slept == [0.25, 0.5]
    src.close()


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Answers 503 to the first `fail` requests, then a valid empty vector."""

    fail = 0
    seen = 0

    def do_GET(self) -> None:
        type(self).seen += 1
        if type(self).seen <= type(self).fail:
            self.send_response(503)
            self.end_headers()
            self.wfile.write(b"overloaded")
            return
        body = b'{"status":"success","data":{"resultType":"vector","result":[]}}'
        srv.send_json(self, body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.mark.parametrize(("fail", "retries", "answers"), [(2, 2, True), (3, 2, False)])
def test_retries_on_5xx_then_gives_up(fail: int, retries: int, answers: bool) -> None:
    handler = type("Flaky", (_Flaky,), {"fail": fail, "seen": 0})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        src = prometheus.PrometheusSource(f"http://127.0.0.1:{httpd.server_port}",
                                          retries=retries, sleep=lambda _: None)
        if answers:
            assert src.instant("up") == []
        else:
            with pytest.raises(errors.DataUnavailable, match="HTTP 503"):
                src.instant("up")
        assert handler.seen == retries + 1  # every attempt reached the server
        src.close()
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_feed_reports_a_blind_tick_without_samples() -> None:
    feed = promfeed.PrometheusFeed(f"http://127.0.0.1:{srv.free_port()}", timeout_s=1.0)

    async def collect() -> int:
        try:
            return len((await feed.collect(time.time())).samples)
        finally:
            await feed.close()

    assert asyncio.run(collect()) == 0
    assert "unavailable" in feed.last_error
    assert set(config.DEFAULT_PROMQL) <= {p.split(":")[0] for p in feed.last_error.split("; ")}
    assert feed.blind is True


def test_investigation_fails_fast_after_a_blind_tick(tmp_path: Path) -> None:
    """Investigation queries block the loop, so a blind last tick short-circuits them."""
    down = f"http://127.0.0.1:{srv.free_port()}"
    feed = promfeed.PrometheusFeed(down, timeout_s=1.0)
    slept: list[float] = []
    source = prometheus.PrometheusSource(down, retries=2, sleep=slept.append)
    store = serve.PrometheusBackedStore(f"sqlite:///{tmp_path / 'db'}", source, feed)
    try:
        with pytest.raises(errors.DataUnavailable, match="after 3 attempt"):
            store.query("auth", "rss_bytes", 0, 10)  # no tick yet: the source itself tries
        assert len(slept) == 2
        asyncio.run(feed.collect(time.time()))
        with pytest.raises(errors.DataUnavailable, match="did not answer on the last tick"):
            store.query("auth", "rss_bytes", 0, 10)
        assert len(slept) == 2, "the breaker must not call Prometheus"
    finally:
        asyncio.run(feed.close())
        store.close()
        source.close()


class _Garbage(http.server.BaseHTTPRequestHandler):
    """A proxy or a broken server in front of Prometheus: 200 with the wrong body."""

    body = b""

    def do_GET(self) -> None:
        srv.send_json(self, type(self).body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.mark.parametrize(("body", "call"), [
    (b"<html>login required</html>", "instant"),
    (b"[1, 2]", "instant"),
    (b'{"status":"success","data":{"resultType":"matrix","result":[{"values":[["x", 1]]}]}}',
     "range"),
    (b'{"status":"success","data":{"resultType":"vector","result":[{"value":"1"}]}}',
     "instant"),
    (b'{"status":"success","data":{"resultType":"matrix","result":[{"values":[["x", 1]]}]}}',
     "history"),
    (b'{"status":"success","data":{"resultType":"matrix","result":[{"values":[[1, 2, 3]]}]}}',
     "history"),
    (b'{"status":"success","data":{"resultType":"matrix","result":[{"values":[["NaN", "1"]]}]'
     b'}}', "history"),
    (b'{"status":"success","data":{"resultType":"matrix","result":[{"values":{"a": 1}}]}}',
     "history"),
    (b'{"status":"success","data":[1, 2]}', "series"),
    (b'{"status":"success","data":{"droppedTargets":[]}}', "targets"),
])
def test_malformed_answers_are_data_unavailable(body: bytes, call: str) -> None:
    handler = type("Garbage", (_Garbage,), {"body": body})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    src = prometheus.PrometheusSource(f"http://127.0.0.1:{httpd.server_port}", retries=0,
                                      queries={"request_rate": "up"})
    calls: dict[str, Callable[[], object]] = {
        "instant": lambda: src.instant("up"),
        "range": lambda: src.range("up", 0, 10),
        "series": lambda: src.series(["up"], 0, 10),
        "targets": src.targets,
        "history": lambda: list(src.history(0, 600, 60.0)),
    }
    try:
        with pytest.raises(errors.DataUnavailable):
            calls[call]()
    finally:
        src.close()
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize(("text", "seconds"), [
    ("15s", 15.0), ("1m", 60.0), ("1m30s", 90.0), ("500ms", 0.5), ("2h", 7200.0),
    ("", math.nan), ("15", math.nan), ("1x", math.nan), ("s15", math.nan), ("1m 30s", math.nan)])
def test_prometheus_durations(text: str, seconds: float) -> None:
    got = prometheus.duration_s(text)
    assert got == seconds or (math.isnan(got) and math.isnan(seconds))


def test_history_holds_the_points_range_gives_as_a_dict_a_tick_would() -> None:
    """Columns read as `range` reads each series: a value Prometheus gives as "NaN" (or
    anything that is not a number) is a NaN point, a point it does not give is absent, a
    series without a service is left out; a service met twice takes the later series' value
    where both have one, in the place of the first; a time given twice keeps its last value."""
    body = {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"service": "b"}, "values": [[0, "1"], [60, "NaN"], [120, "+Inf"]]},
        {"metric": {"service": "a"}, "values": [[60, "2"], [180, "x"], [180, "3"]]},
        {"metric": {"job": "x"}, "values": [[0, "9"]]},
        {"metric": {"service": "b", "pod": "2"}, "values": [[120, "4"], [180, "5"]]},
        {"metric": {"service": "c"}, "values": [[120, "6"], [0, "7"]]},
        {"metric": {"service": "d"}, "values": []}]}}
    handler = type("Fixed", (_Garbage,), {"body": json.dumps(body).encode()})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    queries = {"request_rate": "r", "error_ratio": "e"}
    src = prometheus.PrometheusSource(f"http://127.0.0.1:{httpd.server_port}", retries=0,
                                      queries=queries)
    try:
        got = list(src.history(0, 240, 60.0))
        want: dict[float, dict[tuple[str, str], float]] = {}  # as the source read it before
        for metric in queries:
            for s in src.range("x", 0, 180, 60.0):
                if s.label("service"):
                    for t, v in s.points:
                        want.setdefault(t, {})[(s.label("service"), metric)] = v
    finally:
        src.close()
        httpd.shutdown()
        httpd.server_close()
    assert repr(got) == repr(sorted(want.items()))
    # at 180 s only b's second series has a point: b comes after a there
    assert list(got[3][1])[:2] == [("a", "request_rate"), ("b", "request_rate")]
    assert got[3][1][("b", "request_rate")] == 5.0
