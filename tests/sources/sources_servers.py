"""Helpers for the source tests: free ports, waiting, starting and stopping real servers.

Prometheus and Alertmanager are the Debian packages' binaries, started on free loopback ports
with temporary data directories and stopped by PID; a test that needs one is skipped, with a
message, only when the binary is not installed. The exporter is a prometheus-client HTTP
server exposing the shop's metric names with values the test controls.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http.server
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import prometheus_client
import pytest
import yaml

from selfheal.sources import promfeed

PROMETHEUS = ("prometheus",)
ALERTMANAGER = ("prometheus-alertmanager", "alertmanager")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binary(names: tuple[str, ...], package: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(f"{names[0]} is not installed (Debian package '{package}': "
                f"apt-get install -y {package})")


def wait_until(check: Callable[[], bool], timeout_s: float, what: str,
               proc: subprocess.Popen[bytes] | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log else ""
            raise AssertionError(f"{what}: the process exited ({proc.returncode}): {tail}")
        if check():
            return
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-2000:] if log else ""
    raise AssertionError(f"{what}: not within {timeout_s:.0f} s. {tail}")


def ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop one process we started, by its PID: SIGTERM, then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@dataclasses.dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        stop(self.proc)


@dataclasses.dataclass
class Exporter:
    """Shop-like metrics for one replica; the test moves the values."""

    url: str
    registry: prometheus_client.CollectorRegistry
    rss: prometheus_client.Gauge
    requests: prometheus_client.Counter
    latency: prometheus_client.Histogram
    gc: prometheus_client.Histogram



@contextlib.contextmanager
def running(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    try:
        yield proc
    finally:
        stop(proc)


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a query on selfheal's SQLite database, read-only (none before it exists)."""
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []  # tables not created yet
    finally:
        con.close()


def serve(folder: Path, prometheus_url: str, port: int, rate_window: str,
          **sections: dict[str, Any]) -> tuple[subprocess.Popen[bytes], Path]:
    """`selfheal serve` as a user runs it (a subprocess of the CLI), observing the one service
    `auth` through Prometheus, state in `folder/state`; more config sections in `sections`
    (a `sources` section is merged). Returns the process and its log."""
    extra_sources = sections.pop("sources", {})
    cfg = folder / "selfheal.yaml"
    cfg.write_text(yaml.safe_dump({
        "workdir": str(folder / "state"),
        "sources": {"prometheus": {"url": prometheus_url, "rate_window": rate_window},
                    **extra_sources},
        "serve": {"host": "127.0.0.1", "port": port},
        "platform": {"kind": "none", "services": {"auth": []}},
        **sections,
    }))
    log = folder / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "selfheal.cli", "serve", "--config",
                                 str(cfg)], stdout=out, stderr=subprocess.STDOUT)
    return proc, log


def feed_tick(url: str, rate_window: str
              ) -> tuple[dict[tuple[str, str], float], promfeed.PrometheusFeed]:
    """One tick of a `PrometheusFeed` now: (service, signal) -> value, and the (closed) feed,
    which says how the tick went (`last_error`, `blind`)."""
    feed = promfeed.PrometheusFeed(url, rate_window=rate_window)

    async def collect() -> dict[tuple[str, str], float]:
        try:
            got = await feed.collect(time.time())
        finally:
            await feed.close()
        return {(s.service, s.metric): s.value for s in got.samples}

    return asyncio.run(collect()), feed


def send_json(handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
    """Answer a test server's request with 200 and a JSON `body`."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.end_headers()
    handler.wfile.write(body)
