"""One replica of a demo-shop service: a real HTTP server in its own OS process.

Started by the local platform as `python -m selfheal.shop.service …`. It serves its routes,
calls its dependencies through the platform's router, exposes `/healthz` and Prometheus
`/metrics` (requests, errors, a latency histogram, RSS, GC pauses), and writes JSON log lines
to stdout, which the platform captures to a file. Its behaviour comes from `shop.spec`.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import prometheus_client

from selfheal.shop import spec as shop_spec

_LOG_LOCK = threading.Lock()
STATS_EVERY_S = 5.0
GC_WARN_S = 0.010  # a full collection longer than this is worth a warning line


def log(level: str, msg: str, **fields: Any) -> None:
    line = json.dumps({"ts": round(time.time(), 3), "level": level, "msg": msg, **fields})
    with _LOG_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Replica:
    """The state of one replica: its behaviour, its metrics and what it has leaked."""

    def __init__(self, service: str, version: str, replica: str, router: str) -> None:
        self.service = shop_spec.spec(service)
        self.version = version
        self.behaviour = self.service.versions[version]
        self.replica = replica
        self.router = router.rstrip("/")
        self.routes = {r.path: r for r in self.service.routes}
        self.registry = prometheus_client.CollectorRegistry()
        prometheus_client.ProcessCollector(registry=self.registry)
        labels = ["route", "code"]
        self.requests = prometheus_client.Counter(
            "shop_requests", "Requests served", labels, registry=self.registry
        )
        self.latency = prometheus_client.Histogram(
            "shop_request_duration_seconds",
            "Request latency",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        self.gc_pause = prometheus_client.Histogram(
            "python_gc_pause_seconds",
            "Time the garbage collector paused the process",
            ["generation"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=self.registry,
        )
        info = prometheus_client.Info("shop_build", "Build of this replica", registry=self.registry)
        info.info({"service": service, "version": version, "replica": replica})
        self._sessions: list[Any] = []
        self.served = 0
        self._gc_started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        pause = time.perf_counter() - self._gc_started
        gen = info.get("generation", 0)
        self.gc_pause.labels(generation=str(gen)).observe(pause)
        if gen == 2 and pause > GC_WARN_S:
            log(
                "WARNING",
                f"gc: full collection paused the process for {pause * 1000:.0f} ms",
                cached_sessions=len(self._sessions),
                replica=self.replica,
            )

    def handle(self, path: str) -> tuple[int, dict[str, Any]]:
        route = self.routes.get(path)
        if route is None:
            return 404, {"error": f"no route {path}"}
        b = self.behaviour
        self.served += 1
        if b.leak_bytes_per_request or b.leak_objects_per_request:
            # A session cache that is never evicted: the bug behind the bad deploy.
            entry = {
                "blob": bytearray(b.leak_bytes_per_request),
                "attrs": [{"k": i} for i in range(b.leak_objects_per_request)],
            }
            self._sessions.append(entry)
        if b.full_gc_every and self.served % b.full_gc_every == 0:
            gc.collect()
        deadline = time.perf_counter() + b.work_ms / 1000.0
        while time.perf_counter() < deadline:
            pass
        for service, sub in route.calls:
            try:
                with urllib.request.urlopen(f"{self.router}/{service}{sub}", timeout=5) as r:
                    r.read()
            except (urllib.error.URLError, OSError) as exc:
                log("ERROR", f"call to {service}{sub} failed: {exc}", replica=self.replica)
                return 502, {"error": f"dependency {service} failed"}
        return 200, {"service": self.service.name, "version": self.version}


def make_handler(replica: Replica) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return  # access logs would drown the useful lines

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, prometheus_client.generate_latest(replica.registry),
                           prometheus_client.CONTENT_TYPE_LATEST)
                return
            if path == "/healthz":
                body = {"ok": True, "service": replica.service.name,
                        "version": replica.version, "replica": replica.replica}
                self._send(200, json.dumps(body).encode(), "application/json")
                return
            started = time.perf_counter()
            code, body = replica.handle(path)
            if path in replica.routes:
                replica.latency.labels(route=path).observe(time.perf_counter() - started)
                replica.requests.labels(route=path, code=str(code)).inc()
            self._send(code, json.dumps(body).encode(), "application/json")

    return Handler


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="One replica of a demo-shop service.")
    p.add_argument("--service", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--replica", required=True)
    p.add_argument("--router", required=True)
    p.add_argument("--ready-file", required=True, help="written with the bound port when ready")
    a = p.parse_args(argv)
    replica = Replica(a.service, a.version, a.replica, a.router)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(replica))
    server.daemon_threads = True

    def stop(signum: int, frame: object) -> None:
        log("INFO", "draining and stopping", replica=a.replica, signal=signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    def report() -> None:
        # A periodic stats line, as most services write: it is also what a quiet, healthy
        # replica's log looks like, the baseline new warnings are measured against.
        last = 0
        while True:
            time.sleep(STATS_EVERY_S)
            served = replica.served
            log("INFO", f"stats: served {served - last} requests in {STATS_EVERY_S:.0f} s",
                replica=a.replica)
            last = served

    threading.Thread(target=report, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    port = server.server_address[1]
    tmp = a.ready_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(str(port))
    os.replace(tmp, a.ready_file)
    log("INFO", f"{a.service} {a.version} listening", port=port, replica=a.replica)
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
