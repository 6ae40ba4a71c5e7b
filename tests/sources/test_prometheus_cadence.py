"""`selfheal serve` follows Prometheus's scrape interval unless the config says otherwise.

A tick faster than the scrape reads the same value again between two scrapes (the detectors
take the steps for trends), and a rate window holding fewer than two scrapes makes every
rate() empty (the error ratio, the request rate and the p99 are missing). With the tick and
the rate window left unset, `serve.fit_to_prometheus` asks a real Prometheus how often it
scrapes and fits both; set in the config, they are kept and the start says what is wrong.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sources_servers as srv

from selfheal import config, detect
from selfheal.engine import serve
from selfheal.sources import prometheus

pytestmark = pytest.mark.timeout(120)


def targets(*intervals: str) -> list[prometheus.TargetHealth]:
    return [prometheus.TargetHealth(url=f"http://t{i}/metrics", health="up", labels=(),
                                    last_error="", last_scrape="",
                                    scrape_interval_s=prometheus.duration_s(every))
            for i, every in enumerate(intervals)]


def test_unset_tick_and_window_follow_the_usual_scrape() -> None:
    fit = prometheus.cadence(targets("15s", "15s", "1m"), 1.0, "15s", tick_set=False,
                             window_set=False)
    assert (fit.tick_s, fit.rate_window) == (15.0, "60s")
    assert "every 15 s, as often as it scrapes 2 of 3 of its targets" in fit.notes[0]
    assert "rates run over [60s], 4 scrapes" in fit.notes[1]
    # the minute-scraped target has one sample in a minute: said, with the window that fits
    assert "1 of 3 of Prometheus's targets are scraped no more than twice in [60s]" in fit.notes[2]
    assert "(240s)" in fit.notes[2]
    assert len(fit.notes) == 3


def test_a_tie_takes_the_longer_scrape_and_the_tick_stays_within_its_bound() -> None:
    fit = prometheus.cadence(targets("10s", "30s"), 1.0, "15s", tick_set=False,
                             window_set=False)
    assert (fit.tick_s, fit.rate_window) == (30.0, "120s")
    slow = prometheus.cadence(targets("10m"), 1.0, "15s", tick_set=False, window_set=False)
    assert slow.tick_s == config.MAX_TICK_S
    assert slow.rate_window == "2400s"
    # a fast scrape keeps the shortest window selfheal picks
    fast = prometheus.cadence(targets("1s", "1s"), 1.0, "15s", tick_set=False,
                              window_set=False)
    assert (fast.tick_s, fast.rate_window) == (1.0, "15s")
    assert len(fast.notes) == 1  # the tick's; the window did not change


def test_what_the_config_sets_is_kept_and_a_setting_that_cannot_work_is_named() -> None:
    fit = prometheus.cadence(targets("1m", "1m"), 1.0, "15s", tick_set=True, window_set=True)
    assert (fit.tick_s, fit.rate_window) == (1.0, "15s")
    assert "every 60 s and selfheal asks it every 1 s: between two scrapes" in fit.notes[0]
    assert "Set scrape.interval_s to 60." in fit.notes[0]
    assert "all of Prometheus's targets are scraped no more than twice in [15s]" in fit.notes[1]
    assert "(240s)" in fit.notes[1]
    fine = prometheus.cadence(targets("1m"), 60.0, "5m", tick_set=True, window_set=True)
    assert fine == prometheus.Cadence(60.0, "5m")


def test_the_services_targets_decide_and_a_fitted_tick_is_at_least_a_second() -> None:
    labelled = [prometheus.TargetHealth(url=f"http://a{i}/metrics", health="up",
                                        labels=(("service", f"svc{i}"),), last_error="",
                                        last_scrape="", scrape_interval_s=60.0)
                for i in range(2)]
    exporters = targets("15s", "15s", "15s")  # node and blackbox exporters: no service
    fit = prometheus.cadence(exporters + labelled, 1.0, "15s", tick_set=False,
                             window_set=False, service_label="service")
    assert (fit.tick_s, fit.rate_window) == (60.0, "240s")
    assert "as often as it scrapes all of its services' targets" in fit.notes[0]
    # without a labelled target, every target counts
    fit = prometheus.cadence(exporters, 1.0, "15s", tick_set=False, window_set=False,
                             service_label="service")
    assert fit.tick_s == 15.0
    fast = prometheus.cadence(targets("100ms", "100ms"), 1.0, "15s", tick_set=False,
                              window_set=False)
    assert (fast.tick_s, fast.rate_window) == (1.0, "15s")
    # a window of exactly two scrapes holds one sample at times: named
    two = prometheus.cadence(targets("30s"), 30.0, "1m", tick_set=True, window_set=True)
    assert "scraped no more than twice in [1m]" in two.notes[0]


def test_a_prometheus_that_does_not_say_ticks_as_the_saved_state_was_learned() -> None:
    fit = prometheus.cadence([], 1.0, "15s", tick_set=False, window_set=False, learned_s=60.0)
    assert (fit.tick_s, fit.rate_window) == (60.0, "240s")
    assert "every 60 s, the spacing its saved state was learned at" in fit.notes[0]
    kept = prometheus.cadence([], 5.0, "15s", tick_set=True, window_set=False,
                              learned_s=60.0)
    assert kept.tick_s == 5.0  # what the config sets wins


def test_a_prometheus_that_does_not_say_keeps_the_defaults_and_says_so() -> None:
    for none in ([], targets("")):  # no targets, or a Prometheus older than 2.33
        fit = prometheus.cadence(none, 1.0, "15s", tick_set=False, window_set=False)
        assert (fit.tick_s, fit.rate_window) == (1.0, "15s")
        assert fit.notes == ("Prometheus does not say how often it scrapes its targets, so "
                             "selfheal keeps scrape.interval_s at 1 s and "
                             "sources.prometheus.rate_window at 15s. Set scrape.interval_s to "
                             "its scrape interval and sources.prometheus.rate_window to 4 "
                             "scrape intervals.",)
        only_window = prometheus.cadence(none, 5.0, "15s", tick_set=True, window_set=False)
        assert "scrape.interval_s" not in only_window.notes[0]
        assert prometheus.cadence(none, 5.0, "1m", tick_set=True,
                                  window_set=True).notes == ()


@pytest.fixture
def slow_prometheus(prometheus_server: Callable[..., srv.Server],
                    exporter: Callable[[], srv.Exporter]) -> Iterator[srv.Server]:
    """A real Prometheus scraping one service every 16 s (a 15 s window holds one sample at
    most), with requests flowing."""
    e = exporter()
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            e.requests.labels(route="/verify", code="200").inc(9)
            e.requests.labels(route="/verify", code="500").inc(1)
            stop.wait(0.1)

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    try:
        server = prometheus_server([(e.url, {"service": "auth"})], scrape_interval="16s")
        src = prometheus.PrometheusSource(server.url)
        try:  # a Prometheus just started lists its targets within seconds
            srv.wait_until(lambda: bool(src.targets()), 30, "targets listed", server.proc,
                           server.log)
        finally:
            src.close()
        yield server
    finally:
        stop.set()
        thread.join()


def test_serve_fits_its_tick_and_rate_window_to_a_real_prometheus(
        slow_prometheus: srv.Server, tmp_path: Path) -> None:
    cfg = config.Config.model_validate({"workdir": str(tmp_path),
                                        "sources": {"prometheus": {"url": slow_prometheus.url}}})
    fitted, notes = serve.fit_to_prometheus(cfg)
    section = fitted.sources.prometheus
    assert section is not None
    assert (fitted.scrape.interval_s, section.rate_window) == (16.0, "64s")
    assert notes[0].startswith("selfheal asks Prometheus every 16 s")
    assert notes[1].startswith("rates run over [64s]")
    # the fitted window has a rate once two scrapes are in; the default window never has
    url = slow_prometheus.url
    srv.wait_until(lambda: ("auth", "error_ratio") in srv.feed_tick(url, "64s")[0], 60,
                   "two scrapes", slow_prometheus.proc, slow_prometheus.log)
    got = srv.feed_tick(url, "64s")[0]
    assert got[("auth", "error_ratio")] == pytest.approx(0.1)
    assert got[("auth", "request_rate")] > 0
    assert ("auth", "error_ratio") not in srv.feed_tick(slow_prometheus.url, "15s")[0]
    assert ("auth", "request_rate") not in srv.feed_tick(slow_prometheus.url, "15s")[0]


def test_serve_keeps_what_the_config_sets_and_says_what_cannot_work(
        slow_prometheus: srv.Server, tmp_path: Path) -> None:
    cfg = config.Config.model_validate({
        "workdir": str(tmp_path), "scrape": {"interval_s": 2},
        "sources": {"prometheus": {"url": slow_prometheus.url, "rate_window": "15s"}}})
    fitted, notes = serve.fit_to_prometheus(cfg)
    assert fitted.scrape.interval_s == 2.0
    assert fitted.sources.prometheus is not None
    assert fitted.sources.prometheus.rate_window == "15s"
    assert "Set scrape.interval_s to 16" in notes[0]
    assert "scraped no more than twice in [15s]" in notes[1]


def test_an_unreachable_prometheus_leaves_the_config_as_it_is(tmp_path: Path) -> None:
    cfg = config.Config.model_validate({
        "workdir": str(tmp_path),
        "sources": {"prometheus": {"url": f"http://127.0.0.1:{srv.free_port()}",
                                   "retries": 0, "timeout_s": 1}}})
    fitted, notes = serve.fit_to_prometheus(cfg)
    assert fitted == cfg
    assert len(notes) == 1
    assert notes[0].startswith("could not ask Prometheus how often it scrapes (")
    assert notes[0].endswith("selfheal asks it every 1 s, rates over [15s]")
    no_prometheus = config.Config.model_validate({"workdir": str(tmp_path)})
    assert serve.fit_to_prometheus(no_prometheus) == (no_prometheus, ())
    # with a saved state, it ticks as the state was learned, which keeps it usable
    fitted, notes = serve.fit_to_prometheus(cfg, 15.0)
    assert (fitted.scrape.interval_s, fitted.sources.prometheus.rate_window) == (15.0, "60s")
    assert "every 15 s, the spacing its saved state was learned at, rates over [60s]" in notes[0]


def test_the_spacing_of_a_saved_state_is_read_from_its_header(tmp_path: Path) -> None:
    from selfheal.detect import persist
    from selfheal.engine import controller as controller_mod
    from selfheal.store import sql
    cfg = config.Config.model_validate({"workdir": str(tmp_path / "new")})
    assert serve.saved_spacing(cfg) is None  # a first start: no workdir yet
    det = detect.Detector()
    for i in range(5):
        det.update(1.8e9 + 15.0 * i, {("a", "rss_bytes"): 1e8})
    (tmp_path / "new").mkdir()
    store = sql.SqlStore(cfg.database_url())
    store.save_state(controller_mod.STATE_NAME, 1.8e9, det.save())
    store.close()
    assert serve.saved_spacing(cfg) == 15.0
    assert persist.spacing(b"not a state") is None


def test_selfheal_serve_says_what_it_fitted_at_its_start(slow_prometheus: srv.Server,
                                                         tmp_path: Path) -> None:
    port = srv.free_port()
    proc, log = srv.serve(tmp_path, slow_prometheus.url, port, "15s")
    with srv.running(proc):
        srv.wait_until(lambda: srv.ready(f"http://127.0.0.1:{port}/healthz"), 30,
                       "selfheal serve healthy", proc, log)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    said = " ".join(log.read_text().split())  # the console wraps its lines
    assert "selfheal asks Prometheus every 16 s, as often as it scrapes all of its" in said
    assert "scraped no more than twice in [15s]" in said
