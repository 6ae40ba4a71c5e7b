"""Fixtures for the source tests: real Prometheus, Alertmanager and a small exporter.

Prometheus and Alertmanager are the Debian packages' binaries, started on free loopback ports
with temporary data directories and stopped by PID; a test that needs one is skipped, with a
message, only when the binary is not installed. The exporter is a prometheus-client HTTP
server exposing the shop's metric names with values the test controls.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from wsgiref import simple_server

import prometheus_client
import pytest
import sources_servers as srv
import yaml


def _exporters() -> Iterator[Callable[[], srv.Exporter]]:
    servers: list[simple_server.WSGIServer] = []

    def make() -> srv.Exporter:
        reg = prometheus_client.CollectorRegistry()
        e = srv.Exporter(
            url="", registry=reg,
            rss=prometheus_client.Gauge("process_resident_memory_bytes", "RSS", registry=reg),
            requests=prometheus_client.Counter("shop_requests", "Requests", ["route", "code"],
                                               registry=reg),
            latency=prometheus_client.Histogram(
                "shop_request_duration_seconds", "Latency", ["route"], registry=reg,
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)),
            gc=prometheus_client.Histogram("python_gc_pause_seconds", "GC", ["generation"],
                                           registry=reg))
        port = srv.free_port()
        httpd = simple_server.make_server(
            "127.0.0.1", port, prometheus_client.make_wsgi_app(reg),
            handler_class=_QuietHandler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        e.url = f"127.0.0.1:{port}"
        return e

    yield make
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def exporter() -> Iterator[Callable[[], srv.Exporter]]:
    yield from _exporters()


@pytest.fixture(scope="module")
def module_exporter() -> Iterator[Callable[[], srv.Exporter]]:
    yield from _exporters()


class _QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def _prometheus(tmp_path: Path) -> Iterator[Callable[..., srv.Server]]:
    started: list[srv.Server] = []

    def start(targets: list[tuple[str, dict[str, str]]], *, rules: list[dict[str, object]]
              | None = None, alertmanager: str | None = None,
              history: str | None = None, scrape_interval: str = "1s") -> srv.Server:
        exe = srv.binary(srv.PROMETHEUS, "prometheus")
        folder = tmp_path / f"prometheus-{len(started)}"
        folder.mkdir()
        if history is not None:
            # past samples (OpenMetrics text with timestamps) written as TSDB blocks by
            # promtool, as an operator backfills: Prometheus serves them like scraped ones
            (folder / "history.om").write_text(history)
            subprocess.run([srv.binary(("promtool",), "prometheus"), "tsdb",
                            "create-blocks-from", "openmetrics", "--quiet",
                            str(folder / "history.om"), str(folder / "data")],
                           check=True, capture_output=True, timeout=120)
        cfg: dict[str, object] = {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": "1s",
                       "scrape_timeout": "900ms"},
            "scrape_configs": [{"job_name": "shop", "static_configs": [
                {"targets": [t], "labels": labels} for t, labels in targets]}],
        }
        if rules:
            (folder / "rules.yml").write_text(yaml.safe_dump(
                {"groups": [{"name": "selfheal-test", "interval": "1s", "rules": rules}]}))
            cfg["rule_files"] = [str(folder / "rules.yml")]
        if alertmanager:
            cfg["alerting"] = {"alertmanagers": [{"static_configs": [
                {"targets": [alertmanager]}]}]}
        (folder / "prometheus.yml").write_text(yaml.safe_dump(cfg))
        port = srv.free_port()
        log = folder / "prometheus.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [exe, f"--config.file={folder / 'prometheus.yml'}",
                 f"--web.listen-address=127.0.0.1:{port}",
                 f"--storage.tsdb.path={folder / 'data'}"],
                stdout=out, stderr=subprocess.STDOUT, cwd=folder)
        server = srv.Server(f"http://127.0.0.1:{port}", proc, log)
        started.append(server)
        srv.wait_until(lambda: srv.ready(server.url + "/-/ready"), 30, "Prometheus ready",
                       proc, log)
        return server

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def prometheus_server(tmp_path: Path) -> Iterator[Callable[..., srv.Server]]:
    """Start Prometheus scraping `targets` [(host:port, labels)] every second (or every
    `scrape_interval`), after backfilling `history` (OpenMetrics text) when given."""
    yield from _prometheus(tmp_path)


@pytest.fixture(scope="module")
def module_prometheus_server(tmp_path_factory: pytest.TempPathFactory
                             ) -> Iterator[Callable[..., srv.Server]]:
    """The same, shared by the tests of one module (read-only use only)."""
    yield from _prometheus(tmp_path_factory.mktemp("prometheus"))


@pytest.fixture
def alertmanager_server(tmp_path: Path) -> Iterator[Callable[[str], srv.Server]]:
    """Start Alertmanager (clustering off) delivering every alert to `webhook_url` at once."""
    started: list[srv.Server] = []

    def start(webhook_url: str) -> srv.Server:
        exe = srv.binary(srv.ALERTMANAGER, "prometheus-alertmanager")
        folder = tmp_path / f"alertmanager-{len(started)}"
        folder.mkdir()
        (folder / "alertmanager.yml").write_text(yaml.safe_dump({
            "route": {"receiver": "selfheal", "group_by": ["alertname", "service"],
                      "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": "selfheal", "webhook_configs": [
                {"url": webhook_url, "send_resolved": True}]}],
        }))
        port = srv.free_port()
        log = folder / "alertmanager.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [exe, f"--config.file={folder / 'alertmanager.yml'}",
                 f"--web.listen-address=127.0.0.1:{port}",
                 f"--storage.path={folder / 'data'}", "--cluster.listen-address="],
                stdout=out, stderr=subprocess.STDOUT, cwd=folder)
        server = srv.Server(f"http://127.0.0.1:{port}", proc, log)
        started.append(server)
        srv.wait_until(lambda: srv.ready(server.url + "/-/ready"), 30, "Alertmanager ready", proc,
                   log)
        return server

    yield start
    for s in started:
        s.stop()


