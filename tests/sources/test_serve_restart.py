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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sources_servers as srv
import yaml

from selfheal import detect

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []  # tables not created yet
    finally:
        con.close()


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
    first = run_once("first", lambda: bool(_rows(
        db, "select 1 from samples where service = 'auth' and metric = 'rss_bytes' "
            "and replica = ''")), "auth's memory scraped")
    assert "restored" not in first
    (name, saved_at, data), = _rows(db, "select name, t, data from saved_state")
    assert name == "detector"
    learned = detect.Detector.load(bytes(data))
    assert ("auth", "rss_bytes") in learned.series
    assert learned.last_t is not None and learned.last_t <= saved_at

    # second run: the saved state is taken back, and saved again at its shutdown
    second = run_once("second", lambda: bool(_rows(
        db, f"select 1 from samples where t > {saved_at + 2}")), "new samples scraped")
    assert f"detectors restored from their saved state ({len(learned.series)} series" \
        in second, second[-2000:]
    assert "ticks stored since their saved state" in second
    (later,), = _rows(db, "select t from saved_state")
    assert later > saved_at

    # a damaged state: not used, said, and the run goes on from the stored samples
    con = sqlite3.connect(db)
    con.execute("update saved_state set data = ?", (b"PK\x03\x04 no longer a state",))
    con.commit()
    con.close()
    third = run_once("third", lambda: True, "started")
    assert "saved state is not used: the saved detector state is damaged" in third
    assert "detectors warmed from" in third and "Traceback" not in third
