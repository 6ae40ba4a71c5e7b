"""At a first start the detectors learn each series' rhythm from Prometheus's history.

A real Prometheus serves three days of a service's request counters, backfilled with promtool
the way an operator imports old data: traffic that swings with the time of day, Poisson noise
on every 15 s count. A controller that starts with nothing saved reads those days through
`PrometheusSource.history` and, on the fourth day, stays quiet on the same rhythm that a
controller without history reports as anomalous, while an error jump still pages at once.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import sources_servers as srv
import yaml

from selfheal import config, detect, errors, model, policy
from selfheal.detect import persist
from selfheal.engine import controller as controller_mod
from selfheal.engine import serve
from selfheal.sources import prometheus
from selfheal.store import sql

pytestmark = pytest.mark.timeout(240)

SCRAPE_S = 15
DAY = 86_400
RATE_WINDOW_S = 60


class Shop:
    """One service's request counters: 20-100 requests a second by the time of day, 1% of them
    failing, each 15 s count drawn from a Poisson law."""

    def __init__(self, start: int, seed: int = 7) -> None:
        self.start = start - start % SCRAPE_S
        self.rng = np.random.default_rng(seed)
        self.t = self.start
        self.ok = 0.0
        self.failed = 0.0
        self.recent: list[tuple[int, float, float]] = []  # (t, ok, failed) counts per scrape

    def mean_rate(self, t: float) -> float:
        return 60.0 + 40.0 * math.sin(2 * math.pi * (t % DAY) / DAY)

    def advance(self, error_share: float = 0.01) -> tuple[int, float, float]:
        """The next scrape's cumulative (t, ok, failed) counters."""
        expected = self.mean_rate(self.t) * SCRAPE_S
        failed = float(self.rng.poisson(expected * error_share))
        ok = float(self.rng.poisson(expected * (1 - error_share)))
        self.ok += ok
        self.failed += failed
        self.recent = [*self.recent[-(RATE_WINDOW_S // SCRAPE_S) + 1:], (self.t, ok, failed)]
        out = (self.t, self.ok, self.failed)
        self.t += SCRAPE_S
        return out

    def rates(self) -> dict[tuple[str, str], float]:
        """request_rate and error_ratio over the last minute, as the default PromQL reads
        them with a 1 m rate window."""
        ok = sum(r[1] for r in self.recent)
        failed = sum(r[2] for r in self.recent)
        total = ok + failed
        return {("auth", "request_rate"): total / RATE_WINDOW_S,
                ("auth", "error_ratio"): failed / total if total else math.nan}

    def openmetrics(self, until: int, failing: tuple[int, int] = (0, 0)) -> str:
        """The counters until `until`, as promtool backfills them; 20% of requests fail in
        the `failing` (start, end) interval."""
        rows: list[tuple[int, float, float]] = []
        while self.t < until:
            rows.append(self.advance(0.2 if failing[0] <= self.t < failing[1] else 0.01))
        lines = ["# HELP shop_requests_total Requests served.",
                 "# TYPE shop_requests_total counter"]
        for code, col in (("200", 1), ("500", 2)):
            lines += [f'shop_requests_total{{service="auth",code="{code}"}} {r[col]:.0f} {r[0]}'
                      for r in rows]
        return "\n".join([*lines, "# EOF", ""])


def _controller(tmp_path: Path, source: prometheus.PrometheusSource | None, now: float,
                events: list[str], history_s: float = 3 * DAY, tick_s: float = 60.0
                ) -> controller_mod.Controller:
    tmp_path.mkdir(exist_ok=True)
    cfg = config.Config(workdir=tmp_path, platform=config.PlatformSettings(
        services={"auth": []}), detect=config.Detect(history_s=history_s),
        scrape=config.Scrape(interval_s=tick_s))
    store = (serve.PrometheusBackedStore(cfg.database_url(), source) if source
             else sql.SqlStore(cfg.database_url()))
    return controller_mod.Controller(
        cfg, serve.ObservedPlatform({"auth": []}), store,
        policy.Gate(policy.parse(serve.OBSERVE_POLICY, "test")), {"auth": ()}, lambda: now,
        lambda e: events.append(e.message), feeds=[], history=source)


def _reported(ctl: controller_mod.Controller, t: float,
              values: dict[tuple[str, str], float]) -> list[model.Anomaly]:
    return ctl.detector.update(t, values, detect.Context())


def _profile_span(ctl: controller_mod.Controller, key: tuple[str, str]) -> float:
    """Max minus min of the learned daily profile of one series (its saved state)."""
    keys, _, arrays = persist.decode(ctl.detector.save(), DAY)
    profile = arrays["core.season"][keys.index(key)]
    return float(profile.max() - profile.min())


@pytest.mark.parametrize("tick_s", [60, 15])
def test_a_first_start_learns_the_daily_rhythm_from_prometheus_history(
        tmp_path: Path, prometheus_server: Callable[..., srv.Server], tick_s: int) -> None:
    # the backfilled days end at the last midnight (UTC) at least an hour ago: nothing
    # overlaps what Prometheus holds in memory, and every run sees the same times of day
    end = (int(time.time()) - 3600) // DAY * DAY
    shop = Shop(end - 3 * DAY, seed=int(os.environ.get("HISTORY_SEED", "7")))
    prom = prometheus_server([], history=shop.openmetrics(end))
    source = prometheus.PrometheusSource(prom.url, rate_window="1m", step_s=15.0)
    events: list[str] = []
    warm = _controller(tmp_path / "warm", source, shop.t, events, tick_s=tick_s)
    cold = _controller(tmp_path / "cold", None, shop.t, [], tick_s=tick_s)
    warm.warm_start()
    cold.warm_start()
    # what was learned is the rhythm: before watching anything, the request rate has a
    # daily profile, what the level does not follow of the swing by the hour (measured: a
    # span of 40 requests a second at a 60 s tick, 14 at 15 s); the cold start knows nothing
    assert _profile_span(warm, ("auth", "request_rate")) > 5.0
    assert cold.detector.series == ()
    learned = [m for m in events if m.startswith("learned ")]
    assert learned and "2 series" in learned[0], events
    # ~3 days a tick apart (the last 10 minutes are replayed from Prometheus at its own step)
    ticks = int(learned[0].split()[1])
    assert 3 * DAY // tick_s - 600 // tick_s - 2 <= ticks <= 3 * DAY // tick_s

    # the fourth day, minute by minute: the same rhythm, then errors jump to 20% at noon
    reported: dict[str, list[tuple[float, str]]] = {"warm": [], "cold": []}
    jump_at = None
    while shop.t < end + DAY:
        noon = shop.t >= end + DAY // 2
        if noon and jump_at is None:
            jump_at = shop.t
        for _ in range(tick_s // SCRAPE_S):
            shop.advance(error_share=0.2 if noon else 0.01)
        values = shop.rates()
        for name, ctl in (("warm", warm), ("cold", cold)):
            reported[name] += [(shop.t, a.metric) for a in _reported(ctl, shop.t, values)]
    minutes = {name: len({t // 60 for t, m in got if t < jump_at and m == "request_rate"})
               for name, got in reported.items()}
    # the history, read a tick apart, adds no report on the same rhythm. (Without history,
    # the first day's swing at a 60 s tick was reported for hours, 169-336 minutes in a
    # quarter day over 8 times of day, as a trend, while the trend's horizon was 600 ticks,
    # 10 hours there; in seconds, 600 s, it is not: 0 with or without history)
    assert minutes["warm"] <= minutes["cold"], reported["warm"]
    first_error = min(t for t, m in reported["warm"] if m == "error_ratio")
    assert first_error - jump_at <= 3 * 60  # at the first minutes of the jump


def test_history_comes_in_chunks_on_the_step_grid_without_repeats(
        tmp_path: Path, prometheus_server: Callable[..., srv.Server],
        monkeypatch: pytest.MonkeyPatch) -> None:
    end = int(time.time()) - 3600
    shop = Shop(end - DAY // 4)
    prom = prometheus_server([], history=shop.openmetrics(end))
    source = prometheus.PrometheusSource(prom.url, rate_window="1m")
    start, stop = end - DAY // 4 + 301.0, end - 17.0
    monkeypatch.setattr(prometheus, "HISTORY_CHUNK_S", 1800.0)  # 12 chunks of 30 minutes
    chunked = list(source.history(start, stop, 60.0, skip={"cert_ttl_s"}))
    monkeypatch.setattr(prometheus, "HISTORY_CHUNK_S", float(DAY))
    whole = list(source.history(start, stop, 60.0, skip={"cert_ttl_s"}))  # 1 hour, the rest
    # a fleet's chunks are bounded by points: 2 series, 20 points, so 10 minutes after the
    # first hour
    monkeypatch.setattr(prometheus, "HISTORY_CHUNK_POINTS", 20)
    spans: list[float] = []
    asked = source.range_columns

    def counted(expr: str, start: float, end: float, *args: Any, **kw: Any) -> Any:
        if "shop_requests_total" in expr and "code" not in expr:  # request_rate's query
            spans.append(end - start)
        return asked(expr, start, end, *args, **kw)

    monkeypatch.setattr(source, "range_columns", counted)
    bounded = list(source.history(start, stop, 60.0, skip={"cert_ttl_s"}))
    assert spans[0] == 59 * 60.0 and set(spans[1:-1]) == {9 * 60.0}
    assert bounded == whole
    times = [t for t, _ in chunked]
    first = math.ceil(start / 60.0) * 60.0
    assert times == [first + 60.0 * k for k in range(len(times))]
    assert times[-1] < stop <= times[-1] + 60.0
    assert chunked == whole
    assert {k for _, v in chunked for k in v} == {("auth", "request_rate"),
                                                  ("auth", "error_ratio")}


def test_a_prometheus_that_does_not_answer_leaves_the_start_as_it_was(
        tmp_path: Path) -> None:
    source = prometheus.PrometheusSource(f"http://127.0.0.1:{srv.free_port()}", retries=0,
                                         timeout_s=1.0)
    events: list[str] = []
    ctl = _controller(tmp_path, source, 1_800_000_000.0, events)
    assert ctl.warm_start() == 0
    assert any(m.startswith("history stopped after 0 ticks") for m in events), events
    assert ctl.detector.series == ()
    with pytest.raises(errors.DataUnavailable):
        list(source.history(1_800_000_000.0 - 3600, 1_800_000_000.0, 60.0))


def test_selfheal_detect_reads_the_days_prometheus_keeps(
        tmp_path: Path, prometheus_server: Callable[..., srv.Server],
        selfheal_cmd: list[str]) -> None:
    end = (int(time.time()) - 3600) // DAY * DAY
    jump = end - DAY // 2  # errors at 20% for half an hour, the day before
    shop = Shop(end - 2 * DAY)
    prom = prometheus_server([], history=shop.openmetrics(end, failing=(jump, jump + 1800)))
    cfg = tmp_path / "selfheal.yaml"
    # one query Prometheus refuses: the others are read, and the run says what it left out
    cfg.write_text(yaml.safe_dump({"sources": {"prometheus": {
        "url": prom.url, "rate_window": "1m",
        "queries": {**config.DEFAULT_PROMQL, "p99_latency_s": "histogram_quantile(0.99, "}}}}))
    res = subprocess.run([*selfheal_cmd, "detect", "--prometheus", prom.url, "--config",
                          str(cfg), "--days", f"{(time.time() - end) / DAY + 2:.3f}", "--json",
                          "--plot", str(tmp_path / "week.html")],
                         capture_output=True, text=True, timeout=180, check=False)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert "detect: p99_latency_s left out" in res.stderr and "bad_data" in res.stderr
    assert out["file"] == prom.url
    assert out["series"] == 2  # auth's request_rate and error_ratio; nothing else was kept
    assert 2 * 1440 - 5 <= out["ticks"] <= 2 * 1440 + 1
    errors_seen = [e for e in out["episodes"] if e["metric"] == "error_ratio"]
    assert errors_seen and errors_seen[0]["opens_incident"], out["episodes"]
    assert jump <= errors_seen[0]["started_at"] <= jump + 5 * 60
    assert "error_ratio spike" in (tmp_path / "week.html").read_text()  # drawn, explained


@pytest.mark.parametrize(("args", "code", "says"), [
    (["detect"], 2, "either a FILE of samples or --prometheus URL"),
    (["detect", "x.csv", "--prometheus", "http://127.0.0.1:9"], 2, "either a FILE"),
    (["detect", "--prometheus", "ftp://prom"], 2, "--prometheus 'ftp://prom'"),
    (["detect", "--prometheus", "http://127.0.0.1:{port}", "--days", "1"], 1,
     "Prometheus unavailable"),
])
def test_selfheal_detect_prometheus_bad_input_is_one_clear_line(
        selfheal_cmd: list[str], args: list[str], code: int, says: str) -> None:
    args = [a.replace("{port}", str(srv.free_port())) for a in args]
    res = subprocess.run([*selfheal_cmd, *args], capture_output=True, text=True, timeout=120,
                         check=False)
    assert res.returncode == code, res.stderr
    assert says in res.stderr
    assert "Traceback" not in res.stderr


def test_what_would_have_paged_in_the_history_is_not_learned_as_routine(
        tmp_path: Path, prometheus_server: Callable[..., srv.Server]) -> None:
    # yesterday at 10:00 errors rose to 20% for 20 minutes, an incident had selfheal watched;
    # today the same burst at the same hour pages again: history teaches the rhythm, not that
    # a failure nobody handled here is this hour's routine
    end = (int(time.time()) - 3600) // DAY * DAY
    burst = end - DAY + 10 * 3600
    shop = Shop(end - 3 * DAY)
    prom = prometheus_server([], history=shop.openmetrics(end, failing=(burst, burst + 1200)))
    source = prometheus.PrometheusSource(prom.url, rate_window="1m", step_s=15.0)
    events: list[str] = []
    ctl = _controller(tmp_path, source, shop.t, events)
    ctl.warm_start()
    assert any(m.startswith("learned ") for m in events), events
    again = end + 10 * 3600
    paged = []
    while shop.t < again + 1800:
        for _ in range(60 // SCRAPE_S):
            shop.advance(error_share=0.2 if again <= shop.t < again + 1200 else 0.01)
        found = _reported(ctl, shop.t, shop.rates())
        paged += [shop.t for a in found if a.metric == "error_ratio"]
    assert paged and paged[0] - again <= 3 * 60, paged


@pytest.mark.slow
def test_serve_answers_while_it_learns_history_and_a_sigterm_stops_it(
        tmp_path: Path, prometheus_server: Callable[..., srv.Server]) -> None:
    # a day of history read one point a second: ~86,400 ticks, a minute or more of learning
    end = int(time.time()) - 3600
    shop = Shop(end - DAY)
    prom = prometheus_server([], history=shop.openmetrics(end))
    port = srv.free_port()
    proc, log = srv.serve(tmp_path, prom.url, port, "1m",
                          detect={"history_s": 2 * DAY, "history_step_s": 1})
    with srv.running(proc):
        def warming() -> bool:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0)
            except httpx.HTTPError:
                return False
            return r.status_code == 200 and r.json()["controller"] == "warming up"
        srv.wait_until(warming, 60, "/healthz answering while the history is learned", proc,
                       log)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()[-2000:]
    said = " ".join(log.read_text().split())
    assert "history stopped after" in said and "selfheal is stopping" in said, said[-2000:]


def test_history_a_minute_apart_is_not_read_by_a_detector_ticking_every_second(
        tmp_path: Path, prometheus_server: Callable[..., srv.Server]) -> None:
    # the level's, the noise's and the report gate's memories are counted in ticks: learned a
    # minute apart they misjudged a 1-30 s tick (more reports than no history at all)
    end = (int(time.time()) - 3600) // DAY * DAY
    shop = Shop(end - DAY)
    prom = prometheus_server([], history=shop.openmetrics(end))
    source = prometheus.PrometheusSource(prom.url, rate_window="1m")
    events: list[str] = []
    cfg = config.Config(workdir=tmp_path, platform=config.PlatformSettings(
        services={"auth": []}), detect=config.Detect(history_step_s=60.0))
    ctl = controller_mod.Controller(
        cfg, serve.ObservedPlatform({"auth": []}),
        serve.PrometheusBackedStore(cfg.database_url(), source),
        policy.Gate(policy.parse(serve.OBSERVE_POLICY, "test")), {"auth": ()}, lambda: end,
        lambda e: events.append(e.message), feeds=[], history=source)
    ctl.warm_start()
    assert any(m.startswith("history not read: its points would be 60 s apart and selfheal "
                            "ticks every 1 s") for m in events), events
    assert not any(m.startswith("learned ") for m in events)


def test_a_signal_prometheus_refuses_is_left_out_and_the_others_are_learned(
        tmp_path: Path, prometheus_server: Callable[..., srv.Server]) -> None:
    end = (int(time.time()) - 3600) // DAY * DAY
    shop = Shop(end - DAY // 4)
    prom = prometheus_server([], history=shop.openmetrics(end))
    queries = {**config.DEFAULT_PROMQL, "p99_latency_s": "histogram_quantile(0.99, "}
    source = prometheus.PrometheusSource(prom.url, queries=queries, rate_window="1m")
    skipped: list[tuple[str, str]] = []
    ticks = list(source.history(end - DAY // 4, end, 60.0, on_skip=lambda m, why:
                                skipped.append((m, why))))
    assert [m for m, _ in skipped] == ["p99_latency_s"]  # said once, then left out
    assert "bad_data" in skipped[0][1]
    assert DAY // 4 // 60 - 1 <= len(ticks) <= DAY // 4 // 60  # (the first has no rate yet)
    assert {k for _, v in ticks for k in v} == {("auth", "request_rate"),
                                                ("auth", "error_ratio")}
    only_bad = prometheus.PrometheusSource(prom.url, queries={"x": "rate(", "y": "sum("})
    with pytest.raises(errors.DataUnavailable, match="bad_data"):
        list(only_bad.history(end - 3600, end, 60.0))


class NightlyShop(Shop):
    """The same shop with a nightly batch: from 02:00 to 02:20 UTC the requests triple."""

    def mean_rate(self, t: float) -> float:
        batch = 2 * 3600 <= t % DAY < 2 * 3600 + 1200
        return super().mean_rate(t) * (3.0 if batch else 1.0)


def test_history_makes_a_nightly_batch_routine_on_the_first_night(
        tmp_path: Path, prometheus_server: Callable[..., srv.Server]) -> None:
    """What history buys beyond the daily swing: a nightly batch, tripling the traffic for
    20 minutes, seen on the three backfilled nights, is no news on the first night watched;
    a start without history reports it (the control). Measured over seeds 1-5
    (HISTORY_SEED): 20-23 reported minutes of the batch without history, 0 with it; the
    default seed, 7, passes too."""
    end = (int(time.time()) - 3600) // DAY * DAY
    shop = NightlyShop(end - 3 * DAY, seed=int(os.environ.get("HISTORY_SEED", "7")))
    prom = prometheus_server([], history=shop.openmetrics(end))
    source = prometheus.PrometheusSource(prom.url, rate_window="1m", step_s=15.0)
    warm = _controller(tmp_path / "warm", source, shop.t, [], tick_s=60)
    cold = _controller(tmp_path / "cold", None, shop.t, [], tick_s=60)
    warm.warm_start()
    cold.warm_start()
    reported: dict[str, set[float]] = {"warm": set(), "cold": set()}
    while shop.t < end + 3 * 3600:  # the first night watched, to 03:00
        for _ in range(60 // SCRAPE_S):
            shop.advance()
        values = shop.rates()
        for name, ctl in (("warm", warm), ("cold", cold)):
            reported[name] |= {shop.t // 60 for a in _reported(ctl, shop.t, values)
                               if a.metric == "request_rate"}
    batch = set(range(end // 60 + 120, end // 60 + 145))  # 02:00 to 02:25
    assert reported["cold"] & batch, "without history the first batch is news"
    assert not reported["warm"] & batch, sorted(reported["warm"])
