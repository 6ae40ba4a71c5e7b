"""The demo scenario: a small shop on real processes, a bad deploy, and the loop healing it.

Called by `selfheal demo`. It wires the embedded default (SQLite store, embedded scraper, log
tail, local platform), starts the shop and a load generator, lets a baseline build up, deploys
`auth` v1.2.1 (which leaks memory) as a CI bot would, and runs the controller until the
incident is resolved or escalated. Every process it starts is stopped on the way out.
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import math
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from selfheal import config as config_mod
from selfheal import errors, model, policy, scribe
from selfheal.engine import controller as controller_mod
from selfheal.engine import prometheus_demo
from selfheal.platforms.local import platform as local
from selfheal.platforms.local import remedies
from selfheal.shop import spec as shop_spec
from selfheal.sources import logtail, scrape
from selfheal.store import sql

SCENARIO = "bad-deploy-memory-leak"
BAD_SERVICE, BAD_VERSION = "auth", "1.2.1"


@dataclasses.dataclass
class Result:
    scenario: str = SCENARIO
    fault_injected_at: float | None = None
    detected_at: float | None = None
    incident: dict[str, Any] | None = None
    mttr_s: float | None = None
    postmortem: str | None = None
    ledger: str = ""
    finished: bool = False
    changes: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The `--json` object of `selfheal demo`."""
        detail = (self.incident or {}).get("detail", {})
        top = ((detail.get("diagnosis") or {}).get("hypotheses") or [None])[0]
        executions = detail.get("executions") or []
        outcome = detail.get("outcome") or {}
        verification = detail.get("verification") or {}
        changes = [c for c in self.changes if c["t"] <= (self.detected_at or math.inf)]
        return {
            "scenario": self.scenario,
            "fault_injected_at": self.fault_injected_at,
            "detected_at": self.detected_at,
            "incident": (self.incident or {}).get("id"),
            "diagnosis": None if top is None else {
                "service": top["service"], "cause": scribe.root_cause(top, changes),
                "fault": top["fault"], "confidence": round(top["probability"], 3),
                "sufficient": (detail.get("diagnosis") or {}).get("sufficient"),
                "evidence": [f"{e['kind']}: {e['observation']}" for e in top["evidence_for"]],
            },
            "actions": [{"kind": x["action"]["kind"], "target": x["action"]["service"],
                         "phase": x.get("phase", ""), "status": x["status"]}
                        for x in executions],
            "verified": bool(verification.get("passed")) and bool(outcome.get("resolved")),
            "rolled_back": bool(outcome.get("rolled_back")),
            "escalated": bool(outcome.get("escalated")),
            "mttr_s": None if self.mttr_s is None else round(self.mttr_s, 1),
            "postmortem": self.postmortem,
            "ledger": self.ledger,
        }


def _fault_case(ctl: controller_mod.Controller, since: float) -> controller_mod.Case | None:
    """The incident about the injected fault: opened after it, not merged into another, and
    about auth (by where it opened or where diagnosis placed it)."""
    for c in ctl.cases.values():
        if c.incident.opened_at < since or c.incident.state == model.IncidentState.MERGED:
            continue
        diag = c.detail.get("diagnosis")
        top = diag.top if isinstance(diag, model.Diagnosis) else None
        if BAD_SERVICE in (c.incident.service, top.service if top else None):
            return c
    return None


def shop_services(replicas: int) -> list[local.ServiceDef]:
    return [local.ServiceDef(s.name, tuple(s.versions), s.initial_version, replicas,
                             local.shop_command()) for s in shop_spec.SHOP]


async def run(cfg: config_mod.Config, pol: policy.Policy,
              on_event: Callable[[controller_mod.Event], None],
              on_phase: Callable[[str, float], None],
              prometheus: prometheus_demo.Options | None = None) -> Result:
    """Run the whole demo; `on_phase(name, seconds)` announces a timed wait for a progress bar.
    With `prometheus`, a real Prometheus and Alertmanager watch the shop too (`--prometheus`)."""
    cfg.workdir.mkdir(parents=True, exist_ok=True)
    store = sql.SqlStore(cfg.database_url())
    result = Result(ledger=str(cfg.workdir / "selfheal.db") if cfg.storage.url is None
                    else cfg.storage.url)
    platform = local.LocalPlatform(cfg.workdir, shop_services(cfg.demo.replicas), time.time)
    atexit.register(platform.table.kill_all_now)
    gate = policy.Gate(pol)
    tailer = logtail.LogTailer(platform.rundir / "logs", lambda r: r.rsplit("-", 1)[0])
    scraper = scrape.Scraper(platform.targets, window_s=cfg.scrape.window_s,
                             timeout_s=cfg.scrape.timeout_s)
    stack = (prometheus_demo.Stack(cfg.workdir, platform.targets, prometheus)
             if prometheus is not None else None)
    ctl = controller_mod.Controller(cfg, platform, store, gate, shop_spec.dependencies(),
                                    time.time, on_event,
                                    feeds=[scraper, tailer, *(stack.feeds if stack else [])])
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    if main_task is not None:
        loop.add_signal_handler(signal.SIGTERM, main_task.cancel)
    runner: asyncio.Task[None] | None = None
    try:
        for left in ctl.recover():
            on_event(controller_mod.Event(time.time(), "recover",
                                          f"incident {left} was interrupted by a restart and "
                                          "has been escalated", left))
        on_phase("starting the shop (5 services, real processes)", 0)
        await platform.start()
        if platform.adopted:  # the same processes ran on: their history is still theirs
            ctl.warm_start()
        tailer.skip_existing()
        if stack is not None:
            on_phase("starting Prometheus and Alertmanager", 0)
            await stack.start()
            on_event(controller_mod.Event(time.time(), "sources", f"Prometheus "
                                          f"{stack.prometheus_url} scrapes the shop; "
                                          f"Alertmanager {stack.alertmanager_url} delivers "
                                          f"to {stack.webhook_url}"))
        await platform.table.spawn(
            "loadgen", [sys.executable, "-m", "selfheal.shop.loadgen", "--router",
                        platform.router_url, "--rps", str(cfg.demo.rps), "--duration",
                        str(cfg.demo.timeout_s + 60)],
            platform.rundir / "logs" / "loadgen.out", cfg.workdir)
        runner = asyncio.create_task(ctl.run(), name="controller")
        on_phase("learning the baseline under load", cfg.demo.baseline_s)
        await asyncio.sleep(cfg.demo.baseline_s)
        sha = await remedies.ship(platform, BAD_SERVICE, BAD_VERSION, "sessions.py",
                                  "SESSIONS = []  # cache every session in memory\n",
                                  "cache sessions in memory")
        change = await platform.deploy(BAD_SERVICE, BAD_VERSION, who="ci-bot",
                                       why=f"release 1.2.1: cache sessions in memory "
                                           f"({sha[:8] or 'no repository'})")
        result.fault_injected_at = change.t
        on_phase("watching the new release", 0)
        deadline = loop.time() + cfg.demo.timeout_s
        case: controller_mod.Case | None = None
        while loop.time() < deadline:
            case = _fault_case(ctl, change.t) or case
            if case is not None and result.detected_at is None:
                result.detected_at = case.incident.opened_at
            if case is not None and case.incident.state in controller_mod.TERMINAL \
                    and "postmortem" in case.detail:
                break
            if runner.done():
                runner.result()  # surfaces a crashed controller
            await asyncio.sleep(0.25)
        if case is not None:
            row = store.incident(case.incident.id)
            result.incident = row
            detail = (row or {}).get("detail", {})
            outcome = detail.get("outcome") or {}
            result.postmortem = detail.get("postmortem")
            if outcome.get("resolved") and result.fault_injected_at is not None:
                result.mttr_s = float(outcome["resolved_at"]) - result.fault_injected_at
            result.finished = case.incident.state in controller_mod.TERMINAL
            result.changes = [model.to_jsonable(c) for c in platform.changes()]
        return result
    finally:
        if runner is not None:
            await ctl.stop()
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        else:
            await scraper.close()
        if stack is not None:
            await stack.stop()
        await platform.stop()
        atexit.unregister(platform.table.kill_all_now)
        if main_task is not None:
            loop.remove_signal_handler(signal.SIGTERM)
        store.close()


def check_ready(cfg: config_mod.Config) -> None:
    """Refuse to start on a workdir that is not a directory we can write."""
    if cfg.workdir.exists() and not cfg.workdir.is_dir():
        raise errors.ConfigError(str(cfg.workdir), "workdir", "exists and is not a directory")

