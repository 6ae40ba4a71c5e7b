"""The local platform's gateway: one small reverse proxy in front of every service's replicas.

Run as its own OS process (`python -m selfheal.platforms.local.router`). Requests for
`/<service>/<path>` go round-robin to that service's replicas. The platform rewrites the routes
file atomically when replicas come and go; the router re-reads it when its mtime changes, so a
deploy can add new replicas before draining old ones and no request is lost.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Routes:
    def __init__(self, path: str) -> None:
        self.path = path
        self._mtime = -1.0
        self._table: dict[str, list[int]] = {}
        self._counters: dict[str, itertools.count[int]] = {}
        self._lock = threading.Lock()

    def pick(self, service: str) -> int | None:
        with self._lock:
            try:
                mtime = os.stat(self.path).st_mtime_ns
            except FileNotFoundError:
                mtime = -1
            if mtime != self._mtime:
                try:
                    with open(self.path, encoding="utf-8") as f:
                        self._table = {k: list(v) for k, v in json.load(f).items()}
                    self._mtime = mtime
                except (OSError, ValueError):
                    pass  # keep the last good table; the platform writes atomically
            ports = self._table.get(service) or []
            if not ports:
                return None
            n = next(self._counters.setdefault(service, itertools.count()))
            return ports[n % len(ports)]


def make_handler(routes: Routes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

        def _reply(self, code: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            parts = self.path.lstrip("/").split("/", 1)
            service, rest = parts[0], "/" + (parts[1] if len(parts) > 1 else "")
            port = routes.pick(service)
            if port is None:
                self._reply(503, json.dumps({"error": f"no replicas for {service}"}).encode())
                return
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{rest}", timeout=10) as r:
                    self._reply(r.status, r.read(), r.headers.get("Content-Type", "text/plain"))
            except urllib.error.HTTPError as e:
                self._reply(e.code, e.read())
            except (urllib.error.URLError, OSError) as e:
                self._reply(502, json.dumps({"error": f"{service}: {e}"}).encode())

    return Handler


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="selfheal local platform router")
    p.add_argument("--routes", required=True)
    p.add_argument("--ready-file", required=True)
    a = p.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(Routes(a.routes)))
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda s, f: threading.Thread(target=server.shutdown).start())
    tmp = a.ready_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, a.ready_file)
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
