"""History answers off the step grid are refused with a clear error, and cost no more memory
than their points.

A chunk of history is held on the times its series have (`prom_columns.chunk`): Prometheus
answers every series on the query's grid, but a proxy's or a broken answer may not, and
distinct times a series would grow the chunk as the points squared. A fake answers here: a
real Prometheus cannot be made to answer off its grid.
"""

from __future__ import annotations

import http.server
import json
import math
import threading
import tracemalloc
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import sources_servers as srv

from selfheal import config, errors, policy
from selfheal.engine import controller as controller_mod
from selfheal.engine import serve
from selfheal.sources import prometheus
from selfheal.store import sql

pytestmark = pytest.mark.timeout(120)

SERVICES = 200
STEP = 60.0
NOW = 1_800_000_000.0  # a multiple of STEP
QUERIES = {"request_rate": "r", "error_ratio": "e"}


class _Proxy(http.server.BaseHTTPRequestHandler):
    """query_range answers for SERVICES services, each point on the query's step grid,
    except for the queries in `off` that start at `off_from` or later: there each service's
    points are a few milliseconds off the grid, each service at its own times."""

    off: frozenset[str] = frozenset()
    off_from = -math.inf

    def do_GET(self) -> None:
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        start, end, step = (float(q[k][0]) for k in ("start", "end", "step"))
        off = q["query"][0] in self.off and start >= self.off_from
        times = [start + k * step for k in range(round((end - start) / step) + 1)]
        result = [{"metric": {"service": f"s{j}"},
                   "values": [[t + (0.002 * (j + 1) if off else 0.0), "1"] for t in times]}
                  for j in range(SERVICES)]
        body = json.dumps({"status": "success",
                           "data": {"resultType": "matrix", "result": result}}).encode()
        srv.send_json(self, body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def proxy() -> Iterator[type[_Proxy]]:
    """The proxy's handler class (set `off` and `off_from` on it) and its server."""
    handler = type("Proxy", (_Proxy,), {})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    handler.url = f"http://127.0.0.1:{httpd.server_port}"  # type: ignore[attr-defined]
    try:
        yield handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def _source(proxy: type[_Proxy]) -> prometheus.PrometheusSource:
    return prometheus.PrometheusSource(proxy.url, retries=0,  # type: ignore[attr-defined]
                                       queries=QUERIES)


def test_an_answer_off_the_grid_is_refused_and_costs_no_more_than_its_points(
        proxy: type[_Proxy]) -> None:
    proxy.off = frozenset(QUERIES.values())
    src = _source(proxy)
    error = ""
    tracemalloc.start()
    try:
        # an hour a minute apart: 60 points a series, 24,000 points in the two answers
        list(src.chunks(NOW - 3600, NOW, STEP))
    except errors.DataUnavailable as exc:
        error = str(exc)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        src.close()
    # held on the times of all its series, the chunk was 12,000 times x 400 series (43 MB)
    assert peak < 16e6
    assert "points off the step grid" in error and "query_range 'e'" in error, error


def test_a_signal_answered_off_the_grid_is_left_out_and_the_others_are_read(
        proxy: type[_Proxy]) -> None:
    proxy.off = frozenset({QUERIES["error_ratio"]})
    src = _source(proxy)
    skipped: list[tuple[str, str]] = []
    try:
        chunks = list(src.chunks(NOW - 3600, NOW, STEP,
                                 on_skip=lambda signal, why: skipped.append((signal, why))))
    finally:
        src.close()
    assert [s for s, _ in skipped] == ["error_ratio"]
    assert f"{SERVICES * 60} points off the step grid" in skipped[0][1]
    assert [c.t.tolist() for c in chunks] == [[NOW - 3600 + STEP * k for k in range(60)]]
    assert {m for _, m in chunks[0].keys} == {"request_rate"}


def test_history_that_goes_off_the_grid_keeps_what_was_learned_before(
        tmp_path: Path, proxy: type[_Proxy]) -> None:
    # three hours of history: the first chunk (an hour) on the grid, the next (two hours)
    # off it for every signal
    span = 3 * 3600.0
    end = NOW - controller_mod.WARM_START_S
    proxy.off = frozenset(QUERIES.values())
    proxy.off_from = end - span + 3600
    cfg = config.Config(workdir=tmp_path, platform=config.PlatformSettings(
        services={"s0": []}), detect=config.Detect(history_s=span),
        scrape=config.Scrape(interval_s=STEP))
    events: list[str] = []
    src = _source(proxy)
    ctl = controller_mod.Controller(
        cfg, serve.ObservedPlatform({"s0": []}), sql.SqlStore(cfg.database_url()),
        policy.Gate(policy.parse(serve.OBSERVE_POLICY, "test")), {"s0": ()}, lambda: NOW,
        lambda e: events.append(e.message), feeds=[], history=src)
    try:
        ctl.warm_start()
    finally:
        src.close()
    stopped = [m for m in events if m.startswith("history stopped after 60 ticks: ")]
    assert stopped and "points off the step grid" in stopped[0], events
    assert any(m.startswith("learned 60 ticks of history (400 series") for m in events), events
    # nothing of the refused chunk was learned: the last tick is the first chunk's last
    assert ctl.detector.last_t == end - span + 3600 - STEP
