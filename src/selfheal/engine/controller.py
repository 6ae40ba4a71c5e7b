"""The controller: the runtime that drives the loop over real sources and a real platform.

Each tick it scrapes metrics, tails logs and syncs changes into the store, runs detection and
correlation, and starts one task per new incident. The incident task runs the stages in order —
diagnose, plan, gate, canary, act, verify, keep or undo — writing each transition to the ledger
before it takes effect and persisting the incident's state after it. Stages stay pure; every
read and write of the outside world happens here or in the adapters.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from selfheal import config as config_mod
from selfheal import correlate, detect, diagnose, errors, model, plan, ports, scribe, verify
from selfheal.engine import executor as executor_mod
from selfheal.policy import gate as gate_mod
from selfheal.sources import scrape
from selfheal.store import sql

TERMINAL = (model.IncidentState.RESOLVED, model.IncidentState.ESCALATED,
            model.IncidentState.MERGED)
BASELINE_S = 120.0


@dataclasses.dataclass(frozen=True)
class Event:
    """Something worth telling a human who is watching, as it happens."""

    t: float
    stage: str
    message: str
    incident_id: str = ""
    data: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Case:
    """The mutable working record of one incident while its task runs."""

    incident: model.Incident
    detail: dict[str, Any]
    timeline: list[dict[str, Any]]


class Controller:
    def __init__(self, cfg: config_mod.Config, platform: Any, store: sql.SqlStore,
                 gate: gate_mod.Gate, topology: Mapping[str, tuple[str, ...]],
                 clock: Callable[[], float], on_event: Callable[[Event], None],
                 feeds: Sequence[ports.Feed]) -> None:
        self.cfg = cfg
        self.platform: ports.Platform = platform
        self.store = store
        self.gate = gate
        self.topology = dict(topology)
        self.clock = clock
        self.on_event = on_event
        self.executor = executor_mod.Executor(platform, store, gate.verifier, clock)
        self.feeds = list(feeds)
        self.kinds = frozenset(k for f in self.feeds for k in f.kinds)
        self.detector = detect.Detector(detect.Settings())
        self.cases: dict[str, Case] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.quiet_until: dict[str, float] = {}
        # Which incident owns the remediation of a service: one remedy per service at a time.
        self.remediating: dict[str, model.IncidentId] = {}
        self._seen_changes: set[str] = set()
        self._maintenance = tuple((m.start, m.end, m.service) for m in cfg.maintenance)
        self._stopping = asyncio.Event()

    # -- plumbing --------------------------------------------------------------------------

    def emit(self, stage: str, message: str, incident_id: str = "", **data: Any) -> None:
        self.on_event(Event(self.clock(), stage, message, incident_id, data))

    def record(self, case: Case, kind: str, payload: dict[str, Any]) -> model.LedgerEntry:
        """Write-ahead: the ledger entry is durable before the caller acts on it."""
        entry = self.store.append_ledger(self.clock(), case.incident.id, kind, payload)
        case.timeline.append({"t": entry.ts, "kind": kind, "seq": entry.seq})
        return entry

    def persist(self, case: Case, state: model.IncidentState | None = None) -> None:
        if state is not None:
            case.incident = dataclasses.replace(case.incident, state=state)
        case.detail["timeline"] = case.timeline
        self.store.save_incident(case.incident, case.detail, now=self.clock())

    def recover(self) -> list[str]:
        """Incidents a killed run left open go to a human: the platform was reset under them."""
        left = []
        for row in self.store.incidents():
            if row["state"] in {s.value for s in TERMINAL}:
                continue
            now = self.clock()
            self.store.append_ledger(now, row["id"], "escalation", {
                "reason": "selfheal stopped while this incident was in state "
                f"{row['state']}; its processes were reaped on restart, so a human must check"})
            inc = model.Incident(id=model.IncidentId(row["id"]), service=row["service"],
                                 opened_at=row["opened_at"], title=row["title"], anomalies=(),
                                 state=model.IncidentState.ESCALATED)
            detail = dict(row["detail"])
            detail["outcome"] = {"resolved": False, "escalated": True,
                                 "reason": "interrupted by a restart of selfheal"}
            self.store.save_incident(inc, detail, now=now)
            left.append(row["id"])
        return left

    # -- the tick --------------------------------------------------------------------------

    async def tick(self) -> None:
        now = self.clock()
        got = await asyncio.gather(*(f.collect(now) for f in self.feeds))
        samples = [s for c in got for s in c.samples]
        self.store.add_samples(samples)
        self.store.add_logs([r for c in got for r in c.logs])
        for change in self.platform.changes():
            if change.id in self._seen_changes:
                continue
            self._seen_changes.add(change.id)
            self.store.add_change(change)
            self.store.append_ledger(change.t, "", "signal.change", {"change": change})
            self.emit("change", f"{change.who}: {change.what}", service=change.service)
        self._alerts([a for c in got for a in c.alerts], now)
        values = {(s.service, s.metric): s.value for s in samples if not s.replica}
        recent = tuple(self.store.changes_between(now - 600, now))
        if getattr(self.platform, "shared_host", False):
            # Every service shares one machine: starting or stopping any replica disturbs all
            # of them for a moment, so each change opens a settle window host-wide ("*").
            recent += tuple(dataclasses.replace(c, service="*") for c in recent)
        context = detect.Context(changes=recent, maintenance=self._maintenance,
                                 settle_s=self.cfg.detect.settle_s)
        anomalies = self.detector.update(now, values, context)
        active = {c.incident.service: c.incident.id for c in self.cases.values()
                  if c.incident.state not in TERMINAL}
        active.update(self.remediating)  # a service being healed belongs to that incident
        for c in self.cases.values():  # a merged incident's service stays with its owner
            owner = c.detail.get("outcome", {}).get("merged_into")
            if owner in self.cases and self.cases[owner].incident.state not in TERMINAL:
                active.setdefault(c.incident.service, owner)
        result = correlate.correlate(
            detect.fuse(anomalies), open_incidents=active, topology=self.topology,
            quiet_until=self.quiet_until, now=now,
            new_id=lambda: model.IncidentId(f"inc-{uuid.uuid4().hex[:8]}"))
        for incident_id, finding in result.joined:
            case = self.cases[incident_id]
            related = case.detail.setdefault("related", [])
            if finding.service not in related:  # one ledger entry per symptomatic service
                related.append(finding.service)
                self.record(case, "signal.related", {"service": finding.service,
                                                     "summary": finding.summary})
                self.persist(case)
                self.emit("correlate", f"{finding.summary} — a symptom of "
                          f"{case.incident.service}'s incident, joined to it", incident_id)
        for inc in result.new:
            self._open(inc)

    def _open(self, inc: model.Incident) -> None:
        case = Case(incident=inc, detail={"anomalies": inc.anomalies, "alerts": inc.alerts},
                    timeline=[])
        self.cases[inc.id] = case
        recent = [c for c in self.store.changes_between(inc.opened_at - 600, inc.opened_at)
                  if c.service == inc.service]
        self.record(case, "incident.opened", {"incident": inc, "recent_changes": recent})
        self.persist(case)
        lead = inc.anomalies[0] if inc.anomalies else None
        self.emit("detect", inc.title, inc.id, explanation=lead.explanation if lead else "")
        self.tasks[inc.id] = asyncio.create_task(self._handle(case), name=inc.id)

    def _alerts(self, alerts: Sequence[model.Alert], now: float) -> None:
        """A firing alert joins its service's open incident or opens one; resolved alerts
        are recorded on the incident they joined."""
        for alert in alerts:
            case = next((c for c in self.cases.values() if c.incident.service == alert.service
                         and c.incident.state not in TERMINAL), None)
            if case is not None:
                case.incident = dataclasses.replace(
                    case.incident, alerts=(*case.incident.alerts, alert))
                self.record(case, "signal.alert", {"alert": alert, "joined": True})
                self.persist(case)
                continue
            if alert.status != "firing" or not alert.service:
                self.store.append_ledger(now, "", "signal.alert", {"alert": alert,
                                                                   "joined": False})
                continue
            self._open(model.Incident(
                id=model.IncidentId(f"inc-{uuid.uuid4().hex[:8]}"), service=alert.service,
                opened_at=now, title=f"{alert.service}: alert {alert.name} firing",
                anomalies=(), alerts=(alert,)))

    async def run(self) -> None:
        """Tick until `stop()`; a tick failing on the outside world is reported and the loop
        goes on (a bug still surfaces)."""
        interval = self.cfg.scrape.interval_s
        loop = asyncio.get_running_loop()
        nxt = loop.time()
        while not self._stopping.is_set():
            try:
                await self.tick()
            except (errors.SelfhealError, OSError) as exc:
                self.emit("error", f"tick failed, retrying next tick: {exc}")
            nxt += interval
            delay = nxt - loop.time()
            if delay < 0:
                nxt = loop.time()
                delay = 0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def stop(self) -> None:
        self._stopping.set()
        for t in self.tasks.values():
            t.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        for f in self.feeds:
            await f.close()

    # -- one incident ----------------------------------------------------------------------

    def _series(self, service: str, start: float, end: float,
                replica: str = "") -> dict[str, list[model.Sample]]:
        return {m: self.store.query(service, m, start, end, replica=replica)
                for m in scrape.SIGNALS}

    async def _wait(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def _handle(self, case: Case) -> None:
        try:
            await self._investigate_and_act(case)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 — the boundary of an incident: record, escalate
            self._escalate(case, f"selfheal failed while handling this incident: "
                           f"{type(exc).__name__}: {exc}")
        finally:
            for svc, owner in list(self.remediating.items()):
                if owner == case.incident.id:
                    del self.remediating[svc]
            # The remedy is a change too: the service and its callers settle before anything
            # new may open on them.
            svc = case.incident.service
            until = self.clock() + self.cfg.detect.settle_s
            for s in [svc, *(c for c in self.topology
                             if svc in correlate.upstream_of(c, self.topology))]:
                self.quiet_until[s] = max(self.quiet_until.get(s, 0.0), until)

    async def _investigate_and_act(self, case: Case) -> None:
        inc = case.incident
        started = min([a.started_at for a in inc.anomalies]
                      + [a.starts_at for a in inc.alerts], default=inc.opened_at)
        start = started - 5.0
        now = self.clock()
        metrics: dict[tuple[str, str], list[model.Sample]] | None
        try:
            metrics = {(svc, m): s for svc in self.platform_services()
                       for m, s in self._series(svc, start - BASELINE_S, now).items()}
        except errors.DataUnavailable as exc:  # a blind metric source is NO_DATA, not "fine"
            metrics = None
            self.emit("diagnose", f"metrics unavailable: {exc}", inc.id)
        window = diagnose.Window(
            incident=inc, start=start, end=now,
            baseline_start=start - BASELINE_S, baseline_end=start,
            metrics=metrics,
            logs=(self.store.logs(None, start - BASELINE_S, now)
                  if model.SignalKind.LOGS in self.kinds else None),
            changes=self.store.changes_between(start - BASELINE_S, now),
            spans=None, topology=self.topology)
        diag = diagnose.diagnose(window, now)
        case.detail["diagnosis"] = diag
        self.record(case, "diagnosis", {"diagnosis": diag})
        self.persist(case, model.IncidentState.DIAGNOSED)
        top = diag.top
        if top is None:
            self._escalate(case, "no hypothesis explains the anomalies")
            return
        self.emit("diagnose", f"{top.service}: {top.fault.value} (p={top.probability:.2f}) — "
                  f"{top.summary}", inc.id, evidence=[e.observation for e in top.evidence_for])
        deploys = [c for c in self.store.changes_between(self.clock() - 7 * 86_400, self.clock())
                   if c.service == top.service and c.kind == "deploy"]
        facts = plan.Facts(service=top.service, version=self.platform.version(top.service),
                           replicas=len(self.platform.replicas(top.service)),
                           last_deploy=deploys[-1] if deploys else None)
        owner = self.remediating.get(top.service)
        if owner is not None and owner != inc.id:
            self._merge(case, owner, f"{top.service} is already being remediated by "
                        f"incident {owner}, for the same root cause")
            return
        self.remediating[top.service] = inc.id
        proposal = plan.propose(diag, facts, model.PlanId(f"plan-{uuid.uuid4().hex[:8]}"))
        if proposal is None:
            self._escalate(case, f"no catalogue action fits {top.service} {top.fault.value}")
            return
        case.detail["plan"] = proposal
        self.record(case, "plan", {"plan": proposal})
        self.emit("plan", f"{proposal.steps[0].describe()} — {proposal.rationale}", inc.id)
        review = self.gate.review(proposal, diag, self.clock())
        case.detail["decision"] = review.decision
        self.record(case, "decision", {"decision": review.decision,
                                       "permits": [p.id for p in review.permits]})
        d = review.decision
        self.emit("gate", f"{d.verdict.value} by rule '{d.rule}': {d.reason}", inc.id)
        if d.verdict != model.Verdict.ALLOW:
            self._escalate(case, f"the policy gate said {d.verdict.value} ({d.rule}): {d.reason}")
            return
        await self._act(case, proposal, review, window)

    def platform_services(self) -> list[str]:
        return sorted(self.topology)

    async def _act(self, case: Case, proposal: model.Plan, review: gate_mod.Review,
                   window: diagnose.Window) -> None:
        inc = case.incident
        permit = review.permits[0]
        undo = review.undo_permits[0] if review.undo_permits else None
        action = permit.action
        self.persist(case, model.IncidentState.ACTING)
        executions: list[model.Execution] = []
        case.detail["executions"] = executions
        vs = verify.Settings(latency_factor=self.cfg.verify.latency_factor,
                             latency_slack_s=self.cfg.verify.latency_slack_s,
                             slope_slack_bytes_s=self.cfg.verify.slope_slack_bytes_s)
        if proposal.canary:
            ex = await self.executor.run(permit, inc.id, phase="canary", canary_replicas=1)
            executions.append(ex)
            self.persist(case)
            if ex.status != model.ExecutionStatus.SUCCEEDED:
                self._escalate(case, f"the canary failed to start: {ex.detail}")
                return
            self.emit("canary", f"{ex.detail}; watching it for "
                      f"{self.cfg.verify.canary_observe_s:.0f} s", inc.id)
            t0 = self.clock()
            await self._wait(self.cfg.verify.canary_observe_s)
            verdict = self._canary_verdict(action, t0, vs)
            case.detail["canary"] = verdict
            self.record(case, "verification.canary", {"verification": verdict})
            self.emit("canary", "; ".join(c.detail for c in verdict.checks), inc.id,
                      passed=verdict.passed)
            if not verdict.passed:
                await self._undo(case, undo, executions, "the canary was not better than "
                                 "the old replicas")
                return
        ex = await self.executor.run(permit, inc.id, phase="full")
        executions.append(ex)
        self.persist(case, model.IncidentState.VERIFYING)
        if ex.status != model.ExecutionStatus.SUCCEEDED:
            await self._undo(case, undo, executions, f"the action failed: {ex.detail}")
            return
        self.emit("act", ex.detail, inc.id)
        done = self.clock()
        settle = self.cfg.scrape.window_s + 1.0  # let the sliding windows forget the old replicas
        self.emit("verify", f"waiting {settle + self.cfg.verify.observe_s:.0f} s for the "
                  "signals to show the result", inc.id)
        await self._wait(settle + self.cfg.verify.observe_s)
        svc = action.service
        baseline = self._series(svc, window.baseline_start, window.baseline_end)
        after = self._series(svc, done + settle, self.clock())
        result = verify.verify_service(baseline, after, self.clock(), vs)
        case.detail["verification"] = result
        self.record(case, "verification", {"verification": result})
        self.emit("verify", "; ".join(c.detail for c in result.checks), inc.id,
                  passed=result.passed)
        if not result.passed:
            await self._undo(case, undo, executions, "verification failed after the action")
            return
        case.detail["outcome"] = {"resolved": True, "escalated": False, "rolled_back": False,
                                  "resolved_at": self.clock()}
        self.record(case, "outcome", case.detail["outcome"])
        self.persist(case, model.IncidentState.RESOLVED)
        self._write_postmortem(case)
        self.emit("resolved", f"{svc} recovered and verified", inc.id)

    def _canary_verdict(self, action: model.Action, since: float,
                        vs: verify.Settings) -> model.Verification:
        svc = action.service
        new_v, old_v = action.param("to_version"), action.param("from_version")
        reps = self.platform.replicas(svc)
        canary = next((r for r in reps if r.version == new_v), None)
        old = next((r for r in reps if r.version == old_v), None)
        now = self.clock()
        if canary is None or old is None:
            return model.Verification(at=now, passed=False, checks=(), scope="canary")
        return verify.compare_canary(self._series(svc, since, now, replica=canary.replica),
                                     self._series(svc, since, now, replica=old.replica),
                                     now, vs)

    async def _undo(self, case: Case, undo: model.Permit | None,
                    executions: list[model.Execution], why: str) -> None:
        if undo is not None:
            ex = await self.executor.run(undo, case.incident.id, phase="undo")
            executions.append(ex)
            self.emit("undo", f"{why}; undone: {ex.detail}", case.incident.id)
        self._escalate(case, why, rolled_back=undo is not None)

    def _merge(self, case: Case, owner: model.IncidentId, reason: str) -> None:
        case.detail["outcome"] = {"resolved": False, "escalated": False, "merged_into": owner,
                                  "reason": reason}
        self.record(case, "merged", {"into": owner, "reason": reason})
        self.persist(case, model.IncidentState.MERGED)
        other = self.cases.get(owner)
        if other is not None:
            self.record(other, "signal.related", {"incident": case.incident.id,
                                                  "service": case.incident.service,
                                                  "summary": case.incident.title})
            self.persist(other)
        self.emit("correlate", reason, case.incident.id)

    def _escalate(self, case: Case, reason: str, rolled_back: bool = False) -> None:
        case.detail["outcome"] = {"resolved": False, "escalated": True,
                                  "rolled_back": rolled_back, "reason": reason}
        self.record(case, "escalation", {"reason": reason, "rolled_back": rolled_back})
        self.persist(case, model.IncidentState.ESCALATED)
        self._write_postmortem(case)
        self.emit("escalate", reason, case.incident.id)

    def _write_postmortem(self, case: Case) -> None:
        entries = self.store.ledger(case.incident.id)
        text = scribe.postmortem(case.incident, entries, self.topology)
        folder = self.cfg.workdir / "postmortems"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{case.incident.id}.md"
        path.write_text(text, encoding="utf-8")
        case.detail["postmortem"] = str(path)
        self.record(case, "postmortem", {"path": str(path), "sha256": scribe.digest(text)})
        self.persist(case)


def finite(x: float) -> float | None:
    return None if math.isnan(x) or math.isinf(x) else x
