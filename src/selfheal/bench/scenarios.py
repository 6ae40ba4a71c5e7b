"""The healing scenario bench: each scenario on real processes, with selfheal and with reflexes.

Called by `selfheal bench scenarios`. For one (scenario, agent) run it starts the shop with
regions (seven services, real processes) and steady load, starts the agent (selfheal's
controller with the embedded scraper, log tail and the default policy; or the reflex
baseline), lets a baseline build up, injects the scenario's failure and watches until the shop
meets its objective again and the agent is done, or the time runs out. The outside SLO probe
judges both agents the same way. Every process is stopped before the next run.

Figures per run: resolved (the SLO holds at the end, no human needed; for a scenario that
must be escalated, an escalation with no action; for one that must be left alone, no action),
time to detect and to diagnose (from the moment the failure bites), MTTR (until the SLO holds
again for good), actions, harmful actions (on a service the scenario does not involve, or
after which the SLO got worse) and whether the agent called a human.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import json
import math
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from selfheal import config as config_mod
from selfheal import model, policy
from selfheal.engine import controller as controller_mod
from selfheal.platforms.local import platform as local
from selfheal.scenarios import catalog, reflex, slo
from selfheal.shop import spec as shop_spec
from selfheal.sources import logtail, scrape
from selfheal.store import sql

Agent = Literal["selfheal", "reflex", "none"]
AGENTS: tuple[Agent, ...] = ("selfheal", "reflex")
"""The agents the bench compares; "none" (no agent at all) shows the failure left alone."""


@dataclasses.dataclass(frozen=True)
class Settings:
    baseline_s: float = 30.0
    timeout_s: float = 100.0
    """How long after the injection a run may take before it counts as not resolved."""
    stable_s: float = 15.0
    """The SLO must hold this long (and at the end) for a run to count as resolved."""
    quiet_s: float = 60.0
    """How long a run of a 'leave alone' or 'escalate' scenario watches after the failure."""
    rps: float = 20.0
    replicas: int = 2
    objective: slo.Objective = dataclasses.field(default_factory=slo.Objective)


@dataclasses.dataclass(frozen=True)
class Action:
    t: float
    kind: str
    service: str
    phase: str
    ok: bool
    harmful: bool = False
    why_harmful: str = ""


@dataclasses.dataclass(frozen=True)
class Run:
    name: str
    agent: Agent
    expect: str
    resolved: bool
    ttd_s: float | None
    ttdiag_s: float | None
    mttr_s: float | None
    actions: int
    harmful_actions: int
    escalated: bool
    slo_violated: bool
    detail: tuple[Action, ...] = ()
    note: str = ""
    wall_s: float = 0.0
    false_alarms: int = 0
    """Escalated incidents about services the scenario did not touch (detector noise)."""

    def row(self) -> dict[str, Any]:
        """The JSON contract of issue #8 (plus a few extra keys for the report)."""
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 1)

        return {"name": self.name, "agent": self.agent, "resolved": self.resolved,
                "ttd_s": r(self.ttd_s), "ttdiag_s": r(self.ttdiag_s), "mttr_s": r(self.mttr_s),
                "actions": self.actions, "harmful_actions": self.harmful_actions,
                "escalated": self.escalated, "expect": self.expect,
                "slo_violated": self.slo_violated, "note": self.note,
                "false_alarms": self.false_alarms,
                "action_detail": [{"t": round(a.t, 1), "kind": a.kind, "service": a.service,
                                   "phase": a.phase, "ok": a.ok, "harmful": a.harmful,
                                   "why_harmful": a.why_harmful} for a in self.detail],
                "wall_s": round(self.wall_s, 1)}


def _restored_at(probes: list[slo.Probe], since: float, end: float, base_p90: float,
                 objective: slo.Objective, stable_s: float) -> tuple[bool, float | None]:
    """(violated at all after `since`, start of the final stretch where the SLO holds)."""
    step = 1.0
    t = since
    violated = False
    good_from: float | None = None
    while t + objective.window_s <= end:
        h = slo.judge(probes, t, t + objective.window_s, base_p90, objective)
        if not h.met:
            violated = True
            good_from = None
        elif good_from is None:
            good_from = t + objective.window_s  # the first moment the window is all good
        t += step
    if good_from is not None and end - good_from < stable_s:
        good_from = None
    return violated, good_from


def _harm(actions: list[Action], targets: frozenset[str], expect: str,
          probes: list[slo.Probe], base_p90: float, objective: slo.Objective,
          end: float) -> list[Action]:
    """Mark actions on a service the scenario does not involve, or after which the SLO got
    worse (error ratio up by 10 points, or p90 doubled and out of the objective; 5-20 s after
    against 10 s before)."""
    out = []
    for a in actions:
        why = ""
        if a.service not in targets and a.phase != "undo":
            why = f"acted on {a.service}, which {'nothing' if not targets else 'the scenario'}" \
                  f" {'needed' if not targets else 'does not involve'}"
        elif a.t + 20 <= end:
            before = slo.judge(probes, a.t - 10, a.t, base_p90, objective)
            after = slo.judge(probes, a.t + 5, a.t + 20, base_p90, objective)
            # Slower only counts when it is also out of the objective: requests that fail
            # fast while a service crash-loops are quick, and a fix that makes them succeed
            # again brings their latency back to normal, which is not harm.
            bound = base_p90 * objective.latency_factor + objective.latency_slack_s
            if not math.isnan(before.error_ratio) and not math.isnan(after.error_ratio) and (
                    after.error_ratio > before.error_ratio + 0.10
                    or (after.p90_s > 2 * before.p90_s + 0.1 and after.p90_s > bound)):
                why = (f"SLO worse after it: errors {before.error_ratio:.0%} -> "
                       f"{after.error_ratio:.0%}, p90 {before.p90_s * 1000:.0f} -> "
                       f"{after.p90_s * 1000:.0f} ms")
        out.append(dataclasses.replace(a, harmful=bool(why), why_harmful=why))
    return out


async def run_one(scn: catalog.Scenario, agent: Agent, workdir: Path, settings: Settings,
                  log: Callable[[str], None] = lambda s: None) -> Run:
    """One scenario with one agent, from a fresh shop to a clean machine."""
    started_wall = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = config_mod.Config(workdir=workdir)
    platform = local.LocalPlatform(workdir, catalog.shop_services(settings.replicas), time.time)
    prober: slo.Prober | None = None
    tasks: list[asyncio.Task[None]] = []
    store: sql.SqlStore | None = None
    ctl: controller_mod.Controller | None = None
    ref: reflex.Reflex | None = None
    events: list[controller_mod.Event] = []
    events_file = (workdir / "events.log").open("a", encoding="utf-8")

    def on_event(e: controller_mod.Event) -> None:
        events.append(e)
        events_file.write(json.dumps({"t": round(e.t, 2), "stage": e.stage,
                                      "message": e.message, "incident": e.incident_id}) + "\n")
        events_file.flush()
        log(f"{e.stage}: {e.message}")

    try:
        await platform.start()
        await platform.table.spawn(
            "loadgen", [sys.executable, "-m", "selfheal.shop.loadgen", "--router",
                        platform.router_url, "--rps", str(settings.rps), "--duration",
                        str(settings.baseline_s + settings.timeout_s + 120)],
            platform.rundir / "logs" / "loadgen.out", workdir)
        prober = slo.Prober(platform.router_url)
        tasks.append(asyncio.create_task(prober.run(), name="slo-probe"))
        if agent == "selfheal":
            (workdir / "selfheal.db").unlink(missing_ok=True)
            store = sql.SqlStore(cfg.database_url())
            gate = policy.Gate(policy.parse(policy.default_text(), "built-in default policy"))
            tailer = logtail.LogTailer(platform.rundir / "logs", lambda r: r.rsplit("-", 1)[0])
            tailer.skip_existing()
            scraper = scrape.Scraper(platform.targets, window_s=cfg.scrape.window_s,
                                     timeout_s=cfg.scrape.timeout_s)
            ctl = controller_mod.Controller(cfg, platform, store, gate,
                                            shop_spec.dependencies(regions=True), time.time,
                                            on_event, feeds=[scraper, tailer])
            tasks.append(asyncio.create_task(ctl.run(), name="controller"))
        elif agent == "reflex":
            ref = reflex.Reflex(platform)
            tasks.append(asyncio.create_task(ref.run(), name="reflex"))
        base_start = time.time()
        await asyncio.sleep(settings.baseline_s)
        base_p90 = prober.baseline_p90(base_start + 5, time.time())
        t_inject = time.time()
        injected = await scn.inject(platform)
        t0 = injected.at
        log(f"injected: {injected.what}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.timeout_s + max(0.0, t0 - time.time())
        watch_min = settings.quiet_s if scn.expect != "resolve" else 0.0
        healed_at: float | None = None
        while loop.time() < deadline:
            await asyncio.sleep(1.0)
            if scn.healed is not None and time.time() >= t0:
                ok = await scn.healed(platform)
                healed_at = (healed_at or time.time()) if ok else None
            for t in tasks:
                if t.done():
                    t.result()  # surfaces a crashed controller, reflex or probe
            now = time.time()
            if agent == "none" and now >= t0 + settings.objective.window_s:
                if _restored_at(prober.probes, t0, now, base_p90, settings.objective,
                                settings.stable_s)[0]:
                    break  # left alone, the failure broke the SLO: that is all to show
                continue
            if now < t0 + max(watch_min, settings.stable_s + settings.objective.window_s):
                continue
            violated, good_from = _restored_at(prober.probes, t0, now, base_p90,
                                               settings.objective, settings.stable_s)
            busy = ctl is not None and any(
                c.incident.state not in controller_mod.TERMINAL
                and c.incident.state != model.IncidentState.AWAITING_APPROVAL
                for c in ctl.cases.values())
            busy = busy or (ref is not None and ref.busy)
            if busy:
                continue
            if scn.expect != "resolve" and now >= t0 + watch_min:
                break
            fixed = healed_at is not None if scn.healed is not None else violated
            if fixed and good_from is not None and (violated or now - (healed_at or now)
                                                    >= settings.stable_s):
                break
        end = time.time()
        return _measure(scn, agent, t_inject, injected, prober, base_p90, end, settings, ctl,
                        store, ref, time.perf_counter() - started_wall, healed_at)
    finally:
        if ctl is not None:
            await ctl.stop()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await platform.stop()
        if store is not None:
            store.close()
        events_file.close()


def _about(case: controller_mod.Case, involved: frozenset[str]) -> bool:
    """Whether an incident is about the scenario's failure (where it opened or where its
    diagnosis placed the cause)."""
    diag = case.detail.get("diagnosis")
    top = diag.top if isinstance(diag, model.Diagnosis) else None
    return case.incident.service in involved or (top is not None and top.service in involved)


def _measure(scn: catalog.Scenario, agent: Agent, t_inject: float, injected: catalog.Injected,
             prober: slo.Prober, base_p90: float, end: float, settings: Settings,
             ctl: controller_mod.Controller | None, store: sql.SqlStore | None,
             ref: reflex.Reflex | None, wall: float, healed_at: float | None) -> Run:
    t0 = injected.at
    violated, good_from = _restored_at(prober.probes, t0, end, base_p90, settings.objective,
                                       settings.stable_s)
    actions: list[Action] = []
    ttd = ttdiag = None
    escalated = False
    false_alarms = 0
    notes = []
    if ctl is not None and store is not None:
        involved = scn.involved()
        cases = [c for c in ctl.cases.values() if c.incident.opened_at >= t_inject]
        opened = [c.incident.opened_at for c in cases if _about(c, involved)]
        if opened:
            ttd = max(0.0, min(opened) - t0)  # 0: seen before it bit (warnings)
        for c in cases:
            about = _about(c, involved)
            for e in store.ledger(c.incident.id):
                if e.kind == "diagnosis" and about and (ttdiag is None or e.ts - t0 < ttdiag):
                    ttdiag = max(0.0, e.ts - t0)
                if e.kind == "execution.result":
                    x = e.payload["execution"]
                    actions.append(Action(float(x["finished_at"]), x["action"]["kind"],
                                          x["action"]["service"], x.get("phase", ""),
                                          x["status"] == "succeeded"))
            if c.incident.state in (model.IncidentState.ESCALATED,
                                    model.IncidentState.AWAITING_APPROVAL):
                reason = (c.detail.get("outcome") or {}).get("reason") or c.incident.state.value
                if about:
                    escalated = True
                    notes.append(f"{c.incident.service}: {reason}"[:200])
                else:
                    false_alarms += 1
                    notes.append(f"false alarm on {c.incident.service}: {reason}"[:200])
    if ref is not None:
        if ref.noticed:
            ttd = max(0.0, ref.noticed[0][0] - t0)
        actions = [Action(a.t, a.kind, a.service, "full", a.ok) for a in ref.acts]
    actions = _harm(actions, scn.targets, scn.expect, prober.probes, base_p90,
                    settings.objective, end)
    harmful = sum(1 for a in actions if a.harmful)
    notes += [a.why_harmful for a in actions if a.harmful]
    if scn.healed is not None:
        # Ground truth decides whether the fault is gone; the SLO must hold at the end too.
        # Healed before the SLO ever broke counts: the failure was stopped before it bit.
        fixed = healed_at is not None
        restored = good_from if violated else healed_at
    else:
        fixed = violated
        restored = good_from
    mttr = (restored - t0) if (fixed and good_from is not None and restored is not None) \
        else None
    if scn.expect == "resolve":
        resolved = mttr is not None and not escalated
    elif scn.expect == "escalate":
        forward = [a for a in actions if a.phase != "undo"]
        resolved = escalated and not forward
    else:
        resolved = not actions and not escalated
    return Run(scn.name, agent, scn.expect, resolved, ttd, ttdiag,
               mttr if scn.expect == "resolve" else None, len(actions), harmful, escalated,
               violated, tuple(actions), "; ".join(notes)[:400], wall, false_alarms)


def totals(runs: list[Run]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for agent in AGENTS:
        mine = [r for r in runs if r.agent == agent]
        if not mine:
            continue
        mttrs = [r.mttr_s for r in mine if r.mttr_s is not None]
        out[agent] = {
            "runs": len(mine), "resolved": sum(r.resolved for r in mine),
            "median_mttr_s": round(statistics.median(mttrs), 1) if mttrs else None,
            "actions": sum(r.actions for r in mine),
            "harmful_actions": sum(r.harmful_actions for r in mine),
            "escalations": sum(r.escalated for r in mine),
            "false_alarms": sum(r.false_alarms for r in mine),
        }
    return out


async def run_suite(names: list[str], agents: tuple[Agent, ...], repeat: int, workdir: Path,
                    settings: Settings, on_run: Callable[[Run], None],
                    log: Callable[[str], None] = lambda s: None, parallel: int = 1,
                    verbose: bool = False) -> list[Run]:
    """Every (repeat, scenario, agent) run, `parallel` at a time, in the order listed.

    Parallel runs each get their own OS process (one shop, one agent, one event loop each,
    so one agent's diagnosis never delays another's tick) and their own workdir and ports.
    """
    jobs = [(name, agent, workdir / f"{name}-{agent}-{i + 1}")
            for i in range(repeat) for name in names for agent in agents]
    for _, _, wd in jobs:
        with contextlib.suppress(FileNotFoundError):
            (wd / "events.log").unlink()
    if parallel <= 1:
        runs = []
        for name, agent, wd in jobs:
            run = await run_one(catalog.by_name(name), agent, wd, settings,
                                _prefixed(log, f"[{name}/{agent}] "))
            runs.append(run)
            on_run(run)
        return runs
    loop = asyncio.get_running_loop()
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(parallel, mp_context=ctx) as pool:
        futures = [loop.run_in_executor(pool, _run_in_process, name, agent, str(wd), settings,
                                        verbose) for name, agent, wd in jobs]
        for fut in asyncio.as_completed(futures):
            on_run(await fut)
        return [f.result() for f in futures]


def _run_in_process(name: str, agent: Agent, workdir: str, settings: Settings,
                    verbose: bool) -> Run:
    """One run in a worker process of `run_suite` (its narration goes to stderr)."""
    def say(line: str) -> None:
        print(f"[{name}/{agent}] {line}", file=sys.stderr, flush=True)

    return asyncio.run(run_one(catalog.by_name(name), agent, Path(workdir), settings,
                               say if verbose else (lambda s: None)))


def _prefixed(log: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    def say(line: str) -> None:
        log(prefix + line)
    return say
