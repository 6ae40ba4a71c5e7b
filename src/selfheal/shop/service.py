"""One replica of a demo-shop service: a real HTTP server in its own OS process.

Started by the local platform as `python -m selfheal.shop.service …`. It serves its routes,
calls its dependencies through the platform's router, exposes `/healthz` and Prometheus
`/metrics` (requests, errors, a latency histogram, RSS, GC pauses), and writes JSON log lines
to stdout, which the platform captures to a file. Its behaviour comes from `shop.spec`; its
operational state (config, certificate, credential, regions, injected faults) from the files of
`shop.state`, re-read when they change (the credential only on SIGHUP, as a real consumer that
must be told to reload). It keeps a small in-process response cache with admin endpoints
(`/admin/cache`, POST `/admin/cache/{put,flush,load}`) that only the platform calls directly.
SIGUSR1 makes it hang (every handler blocks), the way a deadlocked process does.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pathlib
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
from selfheal.shop import state as shop_state

_LOG_LOCK = threading.Lock()
STATS_EVERY_S = 5.0
GC_WARN_S = 0.010  # a full collection longer than this is worth a warning line
REFRESH_S = 0.5  # how often the state files are checked for changes
CERT_WARN_S = 60.0  # warn about a certificate expiring within this many seconds
POOL_WARN_S = 0.2  # a request waiting this long for a backend connection is worth a warning


class Outage(Exception):
    """The replica's region is unreachable: the connection drops without an answer."""


def log(level: str, msg: str, **fields: Any) -> None:
    line = json.dumps({"ts": round(time.time(), 3), "level": level, "msg": msg, **fields})
    with _LOG_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Replica:
    """The state of one replica: its behaviour, its metrics and what it has leaked."""

    def __init__(self, service: str, version: str, replica: str, router: str,
                 state: str = "") -> None:
        self.started = time.monotonic()
        self.layout = shop_state.Layout(pathlib.Path(state)) if state else None
        self.config: dict[str, Any] = dict(shop_state.DEFAULT_CONFIG)
        self.config_error: str | None = None
        self.faults: dict[str, Any] = {}
        self.regions: dict[str, str] = {}
        self.cert: tuple[int, float] | None = None
        self.secret: dict[str, Any] | None = None
        self.cache: dict[str, Any] = {}
        self.hung = threading.Event()
        self._mtimes: dict[str, int] = {}
        self._next_refresh = 0.0
        self._state_lock = threading.Lock()
        self._pool: threading.BoundedSemaphore | None = None
        self._pool_size = -1
        self._pool_warned = 0.0
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
        # Expiry dates as exporters publish them (x509-certificate-exporter's
        # `x509_cert_not_after`): a Unix time, absent when the replica holds no such thing.
        self.expiry = prometheus_client.Gauge(
            "shop_not_after_timestamp_seconds",
            "When the certificate or credential this replica holds stops being valid",
            ["kind"], registry=self.registry,
        )
        self._sessions: list[Any] = []
        self.served = 0
        self._gc_started = 0.0
        gc.callbacks.append(self._on_gc)
        self.refresh(force=True)
        self.reload_secret()

    # -- operational state -------------------------------------------------------------------

    def _changed(self, path: Any) -> bool:
        try:
            mtime = os.stat(path).st_mtime_ns
        except FileNotFoundError:
            mtime = -1
        key = str(path)
        if self._mtimes.get(key) == mtime:
            return False
        self._mtimes[key] = mtime
        return True

    def refresh(self, force: bool = False) -> None:
        """Re-read the state files that changed (at most every REFRESH_S)."""
        if self.layout is None:
            return
        now = time.monotonic()
        with self._state_lock:
            if not force and now < self._next_refresh:
                return
            self._next_refresh = now + REFRESH_S
            name = self.service.name
            path = self.layout.config(name)
            if self._changed(path):
                config = dict(shop_state.DEFAULT_CONFIG)
                config.update(shop_state.read_json(path) or {})
                problem = shop_state.config_problem(config)
                if problem != self.config_error and problem is not None:
                    log("CRITICAL", f"config {config.get('revision', '?')} rejected: {problem}; "
                        "worker pool crashed", replica=self.replica)
                elif problem is None and self.config_error is not None:
                    log("INFO", f"config {config.get('revision', '?')} loaded; workers up",
                        replica=self.replica)
                self.config, self.config_error = config, problem
            path = self.layout.faults(name)
            if self._changed(path):
                self.faults = dict(shop_state.read_json(path) or {})
            path = self.layout.regions(name)
            if self._changed(path):
                self.regions = dict(shop_state.read_json(path) or {})
            path = self.layout.cert(name)
            if self._changed(path):
                self.cert = shop_state.cert_info(path)
                if self.cert is not None:
                    self.expiry.labels(kind="certificate").set(self.cert[1])
                    log("INFO", f"tls: loaded certificate serial {self.cert[0]:x}",
                        replica=self.replica)

    def reload_secret(self) -> None:
        """Load this service's credential from the secret store (at start and on SIGHUP)."""
        name = shop_state.SECRETS.get(self.service.name)
        if self.layout is None or name is None:
            return
        self.secret = shop_state.read_json(self.layout.secret(name))
        if self.secret is not None:
            self.expiry.labels(kind="credential").set(float(self.secret.get("expires_at", 0)))
            log("INFO", f"credential {name} v{self.secret.get('version')} loaded",
                replica=self.replica)

    def pool(self) -> threading.BoundedSemaphore | None:
        size = int(self.config.get("pool_size") or 0) or self.behaviour.pool
        if size != self._pool_size:
            self._pool_size = size
            self._pool = threading.BoundedSemaphore(size) if size > 0 else None
        return self._pool

    def warnings(self) -> None:
        """Periodic warnings a real service writes: a certificate or a credential about to
        expire."""
        if self.cert is not None:
            left = self.cert[1] - time.time()
            if 0 < left < CERT_WARN_S:
                log("WARNING", f"tls: certificate for {self.service.name} expires in "
                    f"{left:.0f} s", replica=self.replica)
        name = shop_state.SECRETS.get(self.service.name)
        if name is not None and self.secret is not None:
            left = float(self.secret.get("expires_at", 0)) - time.time()
            if 0 < left < CERT_WARN_S:
                log("WARNING", f"db: credential {name} v{self.secret.get('version')} expires "
                    f"in {left:.0f} s", replica=self.replica)

    def _failure(self, path: str) -> str | None:
        """Why this request fails before any work, from the replica's state, or None."""
        if self.faults.get("outage"):
            raise Outage(str(self.faults["outage"]))
        if self.config_error is not None:
            return (f"worker crashed: config {self.config.get('revision', '?')} rejected: "
                    f"{self.config_error}")
        if self.cert is not None and time.time() > self.cert[1]:
            return ("tls handshake failed: x509: certificate has expired "
                    f"(serial {self.cert[0]:x})")
        name = shop_state.SECRETS.get(self.service.name)
        # Without a secret store (the plain demo shop) the service needs no login.
        if name is not None and self.secret is not None \
                and time.time() > float(self.secret.get("expires_at", 0)):
            return (f"db login failed: credential {name} v{self.secret.get('version')} "
                    "expired (unauthorized)")
        if self.faults.get("novel"):
            return "order rejected by the ledger: constraint violation orders_total_check"
        entry = self.cache.get(path)
        if isinstance(entry, dict) and "corrupt" in entry:
            return f"cache entry {path} is corrupt: cannot decode {entry['corrupt']!r}"
        return None

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
        self.refresh()
        failure = self._failure(path)
        if failure is not None:
            log("ERROR", failure, replica=self.replica)
            return 500, {"error": failure}
        self.cache.setdefault(path, {"ok": True, "at": time.time()})
        if b.leak_bytes_per_request or b.leak_objects_per_request:
            # A session cache that is never evicted: the bug behind the bad deploy.
            entry = {
                "blob": bytearray(b.leak_bytes_per_request),
                "attrs": [{"k": i} for i in range(b.leak_objects_per_request)],
            }
            self._sessions.append(entry)
        if b.full_gc_every and self.served % b.full_gc_every == 0:
            gc.collect()
        work_ms = b.work_ms
        if b.warmup_s and time.monotonic() - self.started < b.warmup_s:
            work_ms += b.warmup_extra_ms
        deadline = time.perf_counter() + work_ms / 1000.0
        while time.perf_counter() < deadline:
            pass
        if b.io_ms:
            pool = self.pool()
            if pool is None:
                time.sleep(b.io_ms / 1000.0)
            else:
                asked = time.perf_counter()
                with pool:
                    waited = time.perf_counter() - asked
                    time.sleep(b.io_ms / 1000.0)
                now = time.monotonic()
                if waited > POOL_WARN_S and now - self._pool_warned > 1.0:
                    # What a connection pool writes when every connection is taken.
                    self._pool_warned = now
                    log("WARNING", f"connection pool exhausted: a request waited "
                        f"{waited * 1000:.0f} ms for one of {self._pool_size} connections",
                        replica=self.replica)
        calls = list(route.calls)
        if self.regions:
            calls += [(f"{svc}-{self.regions.get(svc, shop_spec.REGIONS[svc][0])}", sub)
                      for svc, sub in route.regional]
        for service, sub in calls:
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

        def _hang(self) -> None:
            while replica.hung.is_set():
                time.sleep(1.0)

        def do_POST(self) -> None:
            self._hang()
            path = self.path.split("?", 1)[0]
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            if path == "/admin/cache/put":
                replica.cache[str(body["key"])] = body["value"]
                out: dict[str, Any] = {"entries": len(replica.cache)}
            elif path == "/admin/cache/flush":
                out = {"flushed": dict(replica.cache)}
                replica.cache.clear()
                log("INFO", f"cache flushed ({len(out['flushed'])} entries)",
                    replica=replica.replica)
            elif path == "/admin/cache/load":
                replica.cache.clear()
                replica.cache.update(body.get("entries") or {})
                out = {"entries": len(replica.cache)}
            else:
                self._send(404, b'{"error": "no such admin endpoint"}', "application/json")
                return
            self._send(200, json.dumps(out).encode(), "application/json")

        def do_GET(self) -> None:
            self._hang()
            path = self.path.split("?", 1)[0]
            replica.refresh()
            if replica.faults.get("outage"):
                self.close_connection = True  # the region is unreachable: no answer at all
                return
            if path == "/admin/cache":
                self._send(200, json.dumps(replica.cache).encode(), "application/json")
                return
            if path == "/metrics":
                self._send(200, prometheus_client.generate_latest(replica.registry),
                           prometheus_client.CONTENT_TYPE_LATEST)
                return
            if path == "/healthz":
                # Liveness: a replica whose workers crashed on a bad config is not alive.
                ok = replica.config_error is None
                body = {"ok": ok, "service": replica.service.name,
                        "version": replica.version, "replica": replica.replica}
                self._send(200 if ok else 503, json.dumps(body).encode(), "application/json")
                return
            started = time.perf_counter()
            try:
                code, body = replica.handle(path)
            except Outage:
                self.close_connection = True
                return
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
    p.add_argument("--state", default="", help="the shop's state folder (config, TLS, ...)")
    a = p.parse_args(argv)
    replica = Replica(a.service, a.version, a.replica, a.router, a.state)
    if replica.config_error is not None:
        # A replica that starts with a bad config dies at once: restarting it cannot help.
        log("CRITICAL", f"refusing to start: config {replica.config.get('revision', '?')}: "
            f"{replica.config_error}", replica=a.replica)
        return 1
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
            if replica.hung.is_set():
                continue  # a hung process writes nothing either
            replica.refresh()
            replica.warnings()
            served = replica.served
            log("INFO", f"stats: served {served - last} requests in {STATS_EVERY_S:.0f} s",
                replica=a.replica)
            last = served

    threading.Thread(target=report, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, lambda s, f: threading.Thread(
        target=replica.reload_secret, daemon=True).start())
    signal.signal(signal.SIGUSR1, lambda s, f: replica.hung.set())
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
