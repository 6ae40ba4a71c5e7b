"""`selfheal demo --prometheus`: a real Prometheus and Alertmanager beside the demo shop.

Called by `selfheal.engine.demo` when the flag is given. It starts Prometheus scraping every
replica of the shop (a `file_sd` target file regenerated from the platform's targets on each
tick, so replicas started by a rollback are scraped too), with an alert rule on the growth of
auth's resident memory, and Alertmanager delivering that alert to selfheal's webhook, served
here by the same receiver application as `selfheal serve`. The alert reaches the controller
through an `AlertFeed` and opens or joins the incident. Both servers run in
`<workdir>/prometheus-demo/` and are stopped by PID on the way out; a run killed outright
leaves their PIDs in `pids.json` there, and the next run reaps them first.

The HTTP application is built by a factory the CLI passes in, so this runtime module does not
import a face.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml

from selfheal import errors, model, ports
from selfheal.engine import serve
from selfheal.sources import alertmanager

PROMETHEUS_BINARIES = ("prometheus",)
ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")
ALERT = "AuthMemoryGrowing"
RULE = ('max by (service) (deriv(process_resident_memory_bytes{service="auth"}[20s])) '
        "> 400000")
"""auth's resident memory growing faster than 400 kB/s (the verify stage's slope slack)."""



@dataclasses.dataclass(frozen=True)
class Options:
    """What `--prometheus` needs from the face: the receiver app factory."""

    make_app: serve.AppFactory
    startup_timeout_s: float = 30.0
    alert_for: str = "20s"
    """How long the growth must last before the alert fires. Diagnosis has no alerts
    investigator yet, so an alert alone is thin evidence: the demo's alert is meant to join
    the incident that detection opened, not to open it first."""


def find_binaries() -> tuple[str, str]:
    """The Prometheus and Alertmanager executables, or a clear error naming the packages."""
    prom = next((p for n in PROMETHEUS_BINARIES if (p := shutil.which(n))), None)
    am = next((p for n in ALERTMANAGER_BINARIES if (p := shutil.which(n))), None)
    if prom is None or am is None:
        missing = [name for name, path in (("prometheus", prom),
                                           ("prometheus-alertmanager", am)) if path is None]
        raise errors.ConfigError(
            "--prometheus", "", f"needs Prometheus and Alertmanager; not found: "
            f"{', '.join(missing)}. Install the Debian packages: "
            "apt-get install -y prometheus prometheus-alertmanager")
    return prom, am


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def file_sd(targets: Iterable[ports.Target]) -> list[dict[str, Any]]:
    """Prometheus `file_sd` groups: one per replica, labelled service/replica/version."""
    out = []
    for t in sorted(targets, key=lambda t: t.replica):
        hostport = t.url.split("//", 1)[-1].split("/", 1)[0]
        out.append({"targets": [hostport], "labels": {"service": t.service,
                                                      "replica": t.replica,
                                                      "version": t.version}})
    return out


class TargetSync:
    """A feed that brings nothing in: on each tick it rewrites the `file_sd` file when the
    platform's replicas changed, so Prometheus follows rollbacks and restarts."""

    name = "prometheus-targets"
    kinds: frozenset[model.SignalKind] = frozenset()

    def __init__(self, path: Path, targets: Callable[[], Iterable[ports.Target]]) -> None:
        self.path = path
        self.targets = targets
        self._last = ""

    def sync(self) -> None:
        text = json.dumps(file_sd(self.targets()), indent=1)
        if text != self._last:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.path)  # atomic: Prometheus never reads half a file
            self._last = text

    async def collect(self, now: float) -> ports.Collected:
        self.sync()
        return ports.Collected()

    async def close(self) -> None:
        return None


class Stack:
    """Prometheus, Alertmanager and the webhook receiver for one demo run."""

    def __init__(self, workdir: Path, targets: Callable[[], Iterable[ports.Target]],
                 options: Options) -> None:
        self.prom_exe, self.am_exe = find_binaries()
        self.options = options
        self.folder = workdir / "prometheus-demo"
        self.alerts = alertmanager.AlertFeed()
        self.targets = TargetSync(self.folder / "targets.json", targets)
        self.feeds: list[ports.Feed] = [self.targets, self.alerts]
        self.procs: list[subprocess.Popen[bytes]] = []
        self._server: uvicorn.Server | None = None
        self._web: asyncio.Task[None] | None = None
        self.prometheus_url = ""
        self.alertmanager_url = ""
        self.webhook_url = ""

    @property
    def pidfile(self) -> Path:
        return self.folder / "pids.json"

    def _spawn(self, argv: list[str], log_name: str) -> subprocess.Popen[bytes]:
        with (self.folder / log_name).open("ab") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                    cwd=self.folder, start_new_session=True)
        self.procs.append(proc)
        # Written before anything waits on it: a run killed with SIGKILL (no atexit) leaves
        # this file, and the next run reaps what it names.
        self.pidfile.write_text(json.dumps([p.pid for p in self.procs]), encoding="utf-8")
        return proc

    def reap_leftovers(self) -> list[int]:
        """Kill servers a killed earlier run left behind, by the PIDs it recorded; a PID is
        only killed if its command line still names this run's folder (PIDs get reused)."""
        try:
            pids = [int(p) for p in json.loads(self.pidfile.read_text(encoding="utf-8"))]
        except (OSError, ValueError, TypeError):
            return []
        killed = []
        for pid in pids:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if str(self.folder).encode() in cmdline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
        self.pidfile.unlink(missing_ok=True)
        return killed

    async def _wait_ready(self, url: str, proc: subprocess.Popen[bytes], what: str) -> None:
        deadline = time.monotonic() + self.options.startup_timeout_s
        async with httpx.AsyncClient(timeout=1.0) as http:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise errors.PlatformError(f"{what} exited with {proc.returncode}; see "
                                               f"{self.folder}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(url + "/-/ready")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise errors.PlatformError(f"{what} not ready after {self.options.startup_timeout_s:.0f}"
                                   f" s; see {self.folder}")

    async def start(self) -> None:
        """Start the receiver, Alertmanager, then Prometheus; each must answer ready."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.reap_leftovers()
        atexit.register(self.kill_now)
        sock = serve.bind("127.0.0.1", 0)
        self.webhook_url = (f"http://127.0.0.1:{sock.getsockname()[1]}"
                            "/webhooks/alertmanager")
        app = self.options.make_app(serve.Parts(
            body_limit_bytes=1024 * 1024, registry=serve.ServeMetrics().registry,
            health=lambda: {"ok": True}, alerts=self.alerts, otlp=None))
        server = serve.QuietServer(uvicorn.Config(app, log_level="warning", access_log=False,
                                             lifespan="off"))
        self._server = server
        self._web = asyncio.create_task(server.serve(sockets=[sock]), name="demo-webhook")

        am_port, prom_port = _free_port(), _free_port()
        (self.folder / "alertmanager.yml").write_text(yaml.safe_dump({
            "route": {"receiver": "selfheal", "group_by": ["alertname", "service"],
                      "group_wait": "1s", "group_interval": "5s", "repeat_interval": "1h"},
            "receivers": [{"name": "selfheal", "webhook_configs": [
                {"url": self.webhook_url, "send_resolved": True}]}],
        }), encoding="utf-8")
        am = self._spawn([self.am_exe, f"--config.file={self.folder / 'alertmanager.yml'}",
                          f"--web.listen-address=127.0.0.1:{am_port}",
                          f"--storage.path={self.folder / 'alertmanager-data'}",
                          "--cluster.listen-address="], "alertmanager.log")
        self.alertmanager_url = f"http://127.0.0.1:{am_port}"

        self.targets.sync()
        (self.folder / "rules.yml").write_text(yaml.safe_dump({"groups": [{
            "name": "selfheal-demo", "interval": "2s", "rules": [{
                "alert": ALERT, "expr": RULE, "for": self.options.alert_for,
                "labels": {"severity": "page"},
                "annotations": {"summary": "auth's resident memory keeps growing",
                                "description": "RSS grows faster than 400 kB/s"}}]}]}),
            encoding="utf-8")
        (self.folder / "prometheus.yml").write_text(yaml.safe_dump({
            # Every 2 s: enough for a 20 s deriv(), and light on a laptop running the shop.
            "global": {"scrape_interval": "2s", "evaluation_interval": "2s",
                       "scrape_timeout": "1500ms"},
            "rule_files": [str(self.folder / "rules.yml")],
            "alerting": {"alertmanagers": [{"static_configs": [
                {"targets": [f"127.0.0.1:{am_port}"]}]}]},
            "scrape_configs": [{"job_name": "shop", "file_sd_configs": [
                {"files": [str(self.targets.path)], "refresh_interval": "2s"}]}],
        }), encoding="utf-8")
        prom = self._spawn([self.prom_exe, f"--config.file={self.folder / 'prometheus.yml'}",
                            f"--web.listen-address=127.0.0.1:{prom_port}",
                            f"--storage.tsdb.path={self.folder / 'prometheus-data'}"],
                           "prometheus.log")
        self.prometheus_url = f"http://127.0.0.1:{prom_port}"
        await self._wait_ready(self.alertmanager_url, am, "Alertmanager")
        await self._wait_ready(self.prometheus_url, prom, "Prometheus")

    def kill_now(self) -> None:
        """Last resort at interpreter exit: SIGKILL what is still running."""
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)

    async def stop(self) -> None:
        """SIGTERM each process by PID, then SIGKILL after 10 s; stop the receiver."""
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while any(p.poll() is None for p in self.procs) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        self.kill_now()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        if all(p.poll() is not None for p in self.procs):
            self.pidfile.unlink(missing_ok=True)
        if self._server is not None:
            self._server.should_exit = True
        if self._web is not None:
            await asyncio.gather(self._web, return_exceptions=True)
        atexit.unregister(self.kill_now)

