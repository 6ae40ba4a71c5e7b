"""End to end on real servers: `selfheal serve` saves what its detectors learned and a restart
takes it back; a damaged saved state is not used, and the restart says so and runs on.

A real Prometheus scrapes a real exporter; `selfheal serve` runs as the user runs it (a
subprocess of the CLI) and is stopped with SIGTERM each time.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sources_servers as srv
import yaml

from selfheal import config, detect, policy
from selfheal.engine import controller as controller_mod
from selfheal.engine import serve
from selfheal.sources import prometheus
from selfheal.store import sql

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


def test_a_restarted_serve_takes_back_what_its_detectors_learned(
        tmp_path: Path, prometheus_server: Callable[..., srv.Server],
        exporter: Callable[[], srv.Exporter]) -> None:
    auth = exporter()
    auth.rss.set(50_000_000.0)
    prom = prometheus_server([(auth.url, {"service": "auth", "replica": "auth-0"})])
    port = srv.free_port()
    workdir = tmp_path / "state"
    cfg = tmp_path / "selfheal.yaml"
    cfg.write_text(yaml.safe_dump({
        "workdir": str(workdir),
        "sources": {"prometheus": {"url": prom.url, "rate_window": "5s"}},
        "serve": {"host": "127.0.0.1", "port": port},
        "platform": {"kind": "none", "services": {"auth": []}},
    }))
    db = workdir / "selfheal.db"

    def run_once(name: str, until: Callable[[], bool], what: str) -> str:
        log = tmp_path / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "selfheal.cli", "serve", "--config",
                                     str(cfg)], stdout=out, stderr=subprocess.STDOUT)
        with srv.running(proc):
            srv.wait_until(lambda: srv.ready(f"http://127.0.0.1:{port}/healthz"), 30,
                           "selfheal serve healthy", proc, log)
            srv.wait_until(until, 60, what, proc, log)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0, log.read_text()[-2000:]
        return " ".join(log.read_text().split())  # the console wraps long lines

    # first run: nothing saved yet; it stops once the detectors have seen auth's series
    first = run_once("first", lambda: bool(srv.rows(
        db, "select 1 from samples where service = 'auth' and metric = 'rss_bytes' "
            "and replica = ''")), "auth's memory scraped")
    assert "restored" not in first
    (name, saved_at, data), = srv.rows(db, "select name, t, data from saved_state")
    assert name == "detector"
    learned = detect.Detector.load(bytes(data))
    assert ("auth", "rss_bytes") in learned.series
    assert learned.last_t is not None and learned.last_t <= saved_at

    # second run: the saved state is taken back, and saved again at its shutdown
    second = run_once("second", lambda: bool(srv.rows(
        db, f"select 1 from samples where t > {saved_at + 2}")), "new samples scraped")
    assert f"detectors restored from their saved state ({len(learned.series)} series" \
        in second, second[-2000:]
    assert "ticks stored since their saved state" in second
    (later,), = srv.rows(db, "select t from saved_state")
    assert later > saved_at

    # a damaged state: not used, said, and the run goes on from the stored samples
    con = sqlite3.connect(db)
    con.execute("update saved_state set data = ?", (b"PK\x03\x04 no longer a state",))
    con.commit()
    con.close()
    third = run_once("third", lambda: True, "started")
    assert "saved state is not used: the saved detector state is damaged" in third
    assert "detectors warmed from" in third and "Traceback" not in third


def _saved_long_ago(url: str, tmp_path: Path, now: float, ago: float) -> None:
    """A state saved `ago` seconds before `now`, of auth's memory (one value a second, the
    controller's tick, for 24 minutes before that), written to the SQL store at `url`."""
    store = sql.SqlStore(url)
    cfg = config.Config(workdir=tmp_path, platform=config.PlatformSettings(services={"auth": []}))
    det = detect.Detector(controller_mod.detector_settings(cfg.detect))
    for i in range(1440):
        det.update(now - ago - 1440 + i, {("auth", "rss_bytes"): 5e7 + 1e5 * (i % 7)})
    store.save_state(controller_mod.STATE_NAME, now - ago, det.save())
    store.close()


def _observer(tmp_path: Path, store: sql.SqlStore, now: float,
              events: list[str]) -> controller_mod.Controller:
    cfg = config.Config(workdir=tmp_path, platform=config.PlatformSettings(services={"auth": []}))
    return controller_mod.Controller(
        cfg, serve.ObservedPlatform({"auth": []}), store,
        policy.Gate(policy.parse(serve.OBSERVE_POLICY, "test")), {"auth": ()}, lambda: now,
        lambda e: events.append(e.message), feeds=[])


def test_after_a_long_gap_the_restored_series_are_caught_up_from_prometheus(
        tmp_path: Path, prometheus_server: Callable[..., srv.Server],
        exporter: Callable[[], srv.Exporter]) -> None:
    # selfheal was down for two hours; Prometheus kept scraping. The SQL store has no samples
    # of that time, so the series to replay are those the restored detectors know too.
    auth = exporter()
    auth.rss.set(50_000_000.0)
    prom = prometheus_server([(auth.url, {"service": "auth", "replica": "auth-0"})])
    source = prometheus.PrometheusSource(prom.url, rate_window="5s", step_s=1.0)
    srv.wait_until(lambda: len(source.query("auth", "rss_bytes", time.time() - 60,
                                            time.time())) >= 5, 40, "auth's memory scraped",
                   prom.proc, prom.log)
    url = sql.sqlite_url(tmp_path / "selfheal.db")
    now = time.time()
    _saved_long_ago(url, tmp_path, now, ago=7200.0)
    store = serve.PrometheusBackedStore(url, source)
    events: list[str] = []
    try:
        ticks = _observer(tmp_path, store, now, events).warm_start()
    finally:
        store.close()
        source.close()
    assert ticks >= 5, events
    assert any("restored from their saved state (1 series" in e for e in events)
    assert any(f"caught up on the {ticks} ticks stored in the last 3600 s" in e
               for e in events), events


def test_prometheus_down_at_start_keeps_the_restored_state_and_starts(tmp_path: Path) -> None:
    url = sql.sqlite_url(tmp_path / "selfheal.db")
    now = time.time()
    _saved_long_ago(url, tmp_path, now, ago=120.0)
    source = prometheus.PrometheusSource(f"http://127.0.0.1:{srv.free_port()}", retries=0,
                                         timeout_s=1.0)
    store = serve.PrometheusBackedStore(url, source)
    events: list[str] = []
    try:
        ctl = _observer(tmp_path, store, now, events)
        assert ctl.warm_start() == 0
    finally:
        store.close()
        source.close()
    assert ("auth", "rss_bytes") in ctl.detector.series
    assert any("no stored samples to warm the detectors from" in e for e in events), events
