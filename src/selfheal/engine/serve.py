"""The long-running agent behind `selfheal serve`: sources, controller and HTTP in one loop.

Called by `selfheal.cli.serve_cmd`. It builds the store, the policy gate and the feeds the
config names (Prometheus, the Alertmanager webhook, OTLP/HTTP), runs the controller and a
uvicorn server in one asyncio loop, and stops both cleanly on SIGTERM or Ctrl-C. The HTTP
application itself belongs to the faces (`selfheal.api`); the caller passes a factory that
turns the `Parts` built here into an ASGI app, so this runtime module never imports a face.

When Prometheus is configured it is also the `MetricSource` investigations read
(`PrometheusBackedStore`): the diagnosis queries `query_range` over the incident window, and
a Prometheus that cannot answer makes the metrics evidence NO_DATA.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import socket
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any

import prometheus_client
import uvicorn

from selfheal import config as config_mod
from selfheal import errors, model, policy, ports
from selfheal.detect import persist
from selfheal.engine import controller as controller_mod
from selfheal.sources import alertmanager, otlp, prometheus, promfeed
from selfheal.store import sql

OBSERVE_POLICY = """\
# selfheal serve with platform `none`: observe only (diagnose and report, never act).
version: 1
modes:
  default: observe
rules: []
"""


@dataclasses.dataclass(frozen=True)
class Parts:
    """What the HTTP face needs from the runtime (see `selfheal.api.Receivers`)."""

    body_limit_bytes: int
    registry: prometheus_client.CollectorRegistry
    health: Callable[[], dict[str, Any]]
    alerts: alertmanager.AlertFeed | None
    otlp: otlp.OtlpFeed | None


AppFactory = Callable[[Parts], Any]
"""Builds the ASGI application from the runtime's parts (the CLI passes `selfheal.api`'s)."""


class ObservedPlatform:
    """The `none` platform: services selfheal watches but may not change.

    Reads answer from the config; every mutating call raises a non-retryable `PlatformError`,
    so even a permissive policy cannot act through it.
    """

    name = "none"

    def __init__(self, services: dict[str, list[str]]) -> None:
        self.services = dict(services)

    def targets(self) -> list[ports.Target]:
        return []

    def replicas(self, service: str) -> list[ports.Replica]:
        return []

    def version(self, service: str) -> str:
        return ""

    def previous_version(self, service: str) -> str | None:
        return None

    def known_versions(self, service: str) -> list[str]:
        return []

    def changes(self) -> list[model.Change]:
        return []

    def _refuse(self, what: str) -> errors.PlatformError:
        return errors.PlatformError(f"platform 'none' is observe-only: cannot {what}",
                                    retryable=False)

    async def deploy(self, service: str, version: str, *, who: str, why: str,
                     kind: str = "deploy") -> model.Change:
        raise self._refuse(f"deploy {service} {version}")

    async def replace_replicas(self, service: str, version: str, count: int, *, who: str,
                               why: str) -> model.Change:
        raise self._refuse(f"replace replicas of {service}")

    async def restart_replica(self, service: str, replica: str, *, who: str,
                              why: str) -> model.Change:
        raise self._refuse(f"restart {replica}")

    async def scale(self, service: str, replicas: int, *, who: str, why: str) -> model.Change:
        raise self._refuse(f"scale {service}")


class PrometheusBackedStore(sql.SqlStore):
    """The SQL store, except that service-level metric series come from Prometheus.

    Incidents, the ledger, logs and changes stay in SQL; `query` for a service (no replica)
    goes to `/api/v1/query_range` and raises `DataUnavailable` when Prometheus cannot answer.
    """

    def __init__(self, url: str, source: prometheus.PrometheusSource,
                 feed: promfeed.PrometheusFeed | None = None) -> None:
        super().__init__(url)
        self.source = source
        self.feed = feed

    def query(self, service: str, metric: str, start: float, end: float,
              replica: str = "") -> list[model.Sample]:
        if replica:
            return super().query(service, metric, start, end, replica=replica)
        if self.feed is not None and self.feed.blind:
            # A breaker: these calls block the loop, so do not wait for timeouts and retries
            # when the last tick already found Prometheus unreachable.
            raise errors.DataUnavailable("Prometheus did not answer on the last tick: "
                                         f"{self.feed.last_error[:300]}")
        return self.source.query(service, metric, start, end)


class ServeMetrics:
    """selfheal's own Prometheus metrics, fed from the controller's events."""

    def __init__(self) -> None:
        self.registry = prometheus_client.CollectorRegistry()
        r = self.registry
        self.incidents = prometheus_client.Counter(
            "selfheal_incidents", "Incident transitions", ["event"], registry=r)
        self.actions = prometheus_client.Counter(
            "selfheal_actions", "Actions run on the platform, by phase", ["phase"], registry=r)
        self.decisions = prometheus_client.Counter(
            "selfheal_decisions", "Policy gate decisions, by verdict", ["verdict"], registry=r)
        self.errors = prometheus_client.Counter(
            "selfheal_tick_errors", "Ticks that failed on the outside world", registry=r)
        self.loop = prometheus_client.Histogram(
            "selfheal_loop_latency_seconds", "Duration of one controller tick", registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
        self.source_up = prometheus_client.Gauge(
            "selfheal_source_up", "1 when the source answered its last poll", ["source"],
            registry=r)

    def observe(self, e: controller_mod.Event) -> None:
        if e.stage == "detect" and e.incident_id:
            # the stage's other events say what the detectors did (restored, warmed, learned
            # history, dropped series); only the one naming an incident opened it
            self.incidents.labels(event="opened").inc()
        elif e.stage == "resolved":
            self.incidents.labels(event="resolved").inc()
        elif e.stage == "escalate":
            self.incidents.labels(event="escalated").inc()
        elif e.stage in ("canary", "act", "undo") and (e.stage != "canary"
                                                       or "watching" in e.message):
            self.actions.labels(phase="full" if e.stage == "act" else e.stage).inc()
        elif e.stage == "gate":
            self.decisions.labels(verdict=e.message.split(" ", 1)[0]).inc()
        elif e.stage == "error":
            self.errors.inc()


class MeteredController(controller_mod.Controller):
    """The controller, timing each tick for `selfheal_loop_latency_seconds`."""

    metrics: ServeMetrics | None = None
    last_tick: float | None = None
    prometheus_feed: promfeed.PrometheusFeed | None = None

    async def tick(self) -> None:
        started = time.perf_counter()
        try:
            await super().tick()
        finally:
            if self.metrics is not None:
                self.metrics.loop.observe(time.perf_counter() - started)
                if self.prometheus_feed is not None:
                    self.metrics.source_up.labels(source="prometheus").set(
                        0 if self.prometheus_feed.last_error else 1)
            self.last_tick = self.clock()


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the caller owns SIGTERM and Ctrl-C."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def load_policy(cfg: config_mod.Config) -> policy.Policy:
    if cfg.policy is not None:
        return policy.load(cfg.policy)
    if cfg.platform.kind == "none":
        return policy.parse(OBSERVE_POLICY, "<built-in observe-only policy>")
    return policy.parse(policy.default_text(), "<built-in policy>")


FIT_TIMEOUT_S = 2.0
"""How long the start waits for Prometheus's list of targets (once, no retry)."""


def saved_spacing(cfg: config_mod.Config) -> float | None:
    """The spacing of ticks the detectors' saved state was learned at (None: no state)."""
    if cfg.storage.url is None and not cfg.workdir.exists():
        return None  # a first start: nothing saved yet
    store = sql.SqlStore(cfg.database_url())
    try:
        saved = store.load_state(controller_mod.STATE_NAME)
    finally:
        store.close()
    return persist.spacing(saved[1]) if saved is not None else None


def fit_to_prometheus(cfg: config_mod.Config, learned_s: float | None = None
                      ) -> tuple[config_mod.Config, tuple[str, ...]]:
    """The config with the tick and the rate window fitted to how often Prometheus scrapes
    the services' targets, where the file left them unset (`prometheus.cadence`), and what to
    say about it. Asks Prometheus's /api/v1/targets once, briefly. When Prometheus cannot
    answer or does not say, an unset tick is the spacing the saved state was learned at
    (`learned_s`, `saved_spacing`), so a restart while Prometheus is down keeps the state it
    learned; without one the config stays as it is. The note says which."""
    section = cfg.sources.prometheus
    if section is None:
        return cfg, ()
    source = prometheus.PrometheusSource(section.url, queries=section.queries,
                                         service_label=section.service_label,
                                         timeout_s=min(section.timeout_s, FIT_TIMEOUT_S),
                                         retries=0)
    failed = ""
    try:
        targets = source.targets()
    except errors.DataUnavailable as exc:
        targets, failed = [], str(exc)
    finally:
        source.close()
    tick_set = "interval_s" in cfg.scrape.model_fields_set
    window_set = "rate_window" in section.model_fields_set
    fit = prometheus.cadence(targets, cfg.scrape.interval_s, section.rate_window,
                             tick_set=tick_set, window_set=window_set,
                             service_label=section.service_label, learned_s=learned_s)
    notes = fit.notes
    if failed:
        notes = (f"could not ask Prometheus how often it scrapes ({failed}): selfheal asks it "
                 f"every {fit.tick_s:g} s"
                 + (", the spacing its saved state was learned at"
                    if learned_s is not None and not tick_set else "")
                 + f", rates over [{fit.rate_window}]",)
    update: dict[str, object] = {}
    if fit.tick_s != cfg.scrape.interval_s:
        update["scrape"] = cfg.scrape.model_copy(update={"interval_s": fit.tick_s})
    if fit.rate_window != section.rate_window:
        update["sources"] = cfg.sources.model_copy(update={
            "prometheus": section.model_copy(update={"rate_window": fit.rate_window})})
    return (cfg.model_copy(update=update) if update else cfg), notes


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything starts so a taken port fails fast."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise errors.ConfigError("serve", "serve.port",
                                 f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def run(cfg: config_mod.Config, pol: policy.Policy, make_app: AppFactory,
              on_event: Callable[[controller_mod.Event], None], *,
              on_ready: Callable[[str], None] | None = None,
              clock: Callable[[], float] = time.time, notes: Sequence[str] = ()) -> None:
    """Serve until SIGTERM, Ctrl-C or cancellation; `on_ready(url)` once it listens. `notes`
    (what `fit_to_prometheus` chose) are said as the start's first events."""
    cfg.workdir.mkdir(parents=True, exist_ok=True)
    prom_cfg = cfg.sources.prometheus
    source = prometheus.PrometheusSource.from_config(prom_cfg) if prom_cfg else None
    prom_feed = promfeed.PrometheusFeed.from_config(prom_cfg) if prom_cfg else None
    store: sql.SqlStore = (PrometheusBackedStore(cfg.database_url(), source, prom_feed)
                           if source else sql.SqlStore(cfg.database_url()))
    feeds: list[ports.Feed] = []
    if prom_feed is not None:
        feeds.append(prom_feed)
    alerts = (alertmanager.AlertFeed(cfg.sources.alertmanager.service_label)
              if cfg.sources.alertmanager.enabled else None)
    if alerts is not None:
        feeds.append(alerts)
    otlp_feed = otlp.OtlpFeed() if cfg.sources.otlp.enabled else None
    if otlp_feed is not None:
        feeds.append(otlp_feed)
    metrics = ServeMetrics()

    def event(e: controller_mod.Event) -> None:
        metrics.observe(e)
        on_event(e)

    topology = {s: tuple(callees) for s, callees in cfg.platform.services.items()}
    ctl = MeteredController(cfg, ObservedPlatform(cfg.platform.services), store,
                            policy.Gate(pol), topology, clock, event, feeds=feeds,
                            history=source)
    ctl.metrics = metrics
    ctl.prometheus_feed = prom_feed
    runner: asyncio.Task[None] | None = None
    warming: asyncio.Task[int] | None = None

    def health() -> dict[str, Any]:
        running = runner is not None and not runner.done()
        # alive while it learns what it missed (a first start reads days of history)
        catching_up = runner is None and warming is not None and not warming.done()
        state: dict[str, Any] = {"ok": running or catching_up,
                                 "controller": "running" if running else
                                 "warming up" if catching_up else "stopped",
                                 "last_tick": ctl.last_tick,
                                 "feeds": [f.name for f in feeds],
                                 "open_incidents": sum(
                                     1 for c in ctl.cases.values()
                                     if c.incident.state not in controller_mod.TERMINAL)}
        if prom_feed is not None:
            state["prometheus"] = prom_feed.last_error or "ok"
            if prom_feed.limit_queries:
                state["prometheus_limits"] = prom_feed.limits_error or "ok"
        return state

    app = make_app(Parts(body_limit_bytes=cfg.serve.body_limit_bytes,
                         registry=metrics.registry, health=health, alerts=alerts,
                         otlp=otlp_feed))
    sock = bind(cfg.serve.host, cfg.serve.port)
    host, port = sock.getsockname()[:2]
    server = QuietServer(uvicorn.Config(app, log_level="warning", access_log=False,
                                    lifespan="off", timeout_graceful_shutdown=2))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled = (signal.SIGTERM, signal.SIGINT)
    for sig in handled:
        loop.add_signal_handler(sig, stop.set)
    web: asyncio.Task[None] | None = None
    try:
        for left in ctl.recover():
            on_event(controller_mod.Event(clock(), "recover", f"incident {left} was "
                                          "interrupted by a restart and has been escalated",
                                          left))
        for note in notes:
            event(controller_mod.Event(clock(), "config", note))
        web = asyncio.create_task(server.serve(sockets=[sock]), name="http")
        while not server.started and not web.done():
            await asyncio.sleep(0.01)
        if web.done():
            web.result()  # surfaces why the server could not start
        if on_ready is not None:
            on_ready(f"http://{'[' + host + ']' if ':' in host else host}:{port}")
        stopper = asyncio.create_task(stop.wait())
        # the watched system kept running while selfheal was down: catch up first, in a
        # thread (a first start's days of history take a while; /healthz answers meanwhile,
        # and a stop interrupts it between two ticks)
        warming = asyncio.create_task(asyncio.to_thread(ctl.warm_start), name="warm start")
        done, _ = await asyncio.wait({warming, web, stopper},
                                     return_when=asyncio.FIRST_COMPLETED)
        if warming in done:  # else a stop (or a crashed server) came first: see `finally`
            warming.result()
            runner = asyncio.create_task(ctl.run(), name="controller")
            done, _ = await asyncio.wait({runner, web, stopper},
                                         return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        for task in done - {stopper}:
            task.result()  # a crashed controller or server is a bug: let it surface
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        server.should_exit = True
        if web is not None:
            await asyncio.gather(web, return_exceptions=True)
        if warming is not None:  # a thread: stopped between two ticks, then waited for
            ctl.halt()
            await asyncio.gather(warming, return_exceptions=True)
        await ctl.stop()
        if runner is not None:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        sock.close()
        store.close()
        if source is not None:
            source.close()
