"""One incident's workflow: diagnose, plan, gate (or wait for a human), canary, act, verify,
keep or undo — each transition written to the ledger before it takes effect.

Run by the controller as one asyncio task per incident. It talks to the outside world only
through the controller's store, platform and executor; every decision is a pure stage's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from selfheal import correlate, diagnose, errors, model, plan, ports, reasoners, scribe, verify
from selfheal.engine import drains, followup, revive
from selfheal.policy import gate as gate_mod
from selfheal.policy import trust as trust_mod

if TYPE_CHECKING:
    from selfheal.engine.controller import Case, Controller

BASELINE_S = 120.0
AGENT = "selfheal"


class Revoked(Exception):
    """Raised inside an incident task when its authority was revoked mid-flight (a signal
    between coroutines, never shown to a user)."""


@dataclasses.dataclass
class Work:
    """What the workflow has done so far for one incident (for undo and revocation)."""

    review: gate_mod.Review | None = None
    executions: list[model.Execution] = dataclasses.field(default_factory=list)
    acted: bool = False


class Workflow:
    def __init__(self, ctl: Controller) -> None:
        self.ctl = ctl
        self.work: dict[str, Work] = {}
        # None unless configured: then every stage stays deterministic. Reads the API key now.
        self.reasoner = reasoners.from_settings(ctl.cfg.reasoner)
        self.diagnosis = diagnose.settings_from(ctl.cfg.diagnose)

    # -- gate context and trust -------------------------------------------------------------

    def context(self, incident: model.Incident) -> gate_mod.Context:
        ctl = self.ctl
        states = {model.ActionKind(r["action"]): trust_mod.TrustState(
            agent=r["agent"], action=model.ActionKind(r["action"]), successes=r["successes"],
            failures=r["failures"], rejections=r["rejections"], since_bad=r["since_bad"],
            demoted=bool(r["demoted"]))
            for r in ctl.store.trust_rows() if r["agent"] == AGENT}
        return gate_mod.Context(
            agent=AGENT,
            replicas={s: len(ctl.platform.replicas(s)) for s in ctl.topology},
            trust=states, revoked=frozenset(ctl.store.revoked()), incident=incident)

    def learn(self, case: Case, action: model.ActionKind, outcome: trust_mod.Outcome) -> None:
        ctx = self.context(case.incident)
        before = ctx.trust.get(action, trust_mod.TrustState(AGENT, action))
        after = trust_mod.record(before, outcome, self.ctl.gate.policy.doc.trust)
        self.ctl.store.put_trust({
            "agent": AGENT, "action": action.value, "successes": after.successes,
            "failures": after.failures, "rejections": after.rejections,
            "since_bad": after.since_bad, "demoted": after.demoted})
        self.ctl.record(case, "trust", {"agent": AGENT, "action": action, "outcome": outcome,
                                        "score": after.score, "demoted": after.demoted})

    # -- the incident ------------------------------------------------------------------------

    async def handle(self, case: Case, resume: Mapping[str, Any] | None = None) -> None:
        """Run the incident; `resume` is the dangling intent of a crashed run to complete."""
        ctl = self.ctl
        work = self.work.setdefault(case.incident.id, Work())
        try:
            if resume is None:
                await self._investigate_and_act(case, work)
            else:
                await self._resume(case, work, resume)
        except Revoked as exc:
            await self._undo(case, work, f"authority revoked: {exc}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 — the boundary of an incident: record, escalate
            self.escalate(case, f"selfheal failed while handling this incident: "
                          f"{type(exc).__name__}: {exc}")
        finally:
            if work.review is not None:
                for p in work.review.permits:
                    ctl.gate.release(p)
            for svc, owner in list(ctl.remediating.items()):
                if owner == case.incident.id:
                    del ctl.remediating[svc]
            # The remedy is a change too: the service and its neighbours settle before
            # anything new may open on them.
            self.quiet_around(case, case.incident.service,
                              ctl.clock() + ctl.cfg.detect.settle_s, acted=work.acted)

    def quiet_around(self, case: Case, svc: str, until: float, acted: bool = True) -> None:
        """Nothing new opens on what a remedy of `svc` disturbs until `until`: its callers,
        its callees, and, after an action, the other callees of its direct callers that were
        symptoms of `case` (`correlate.around`: the rebound of the requests they held back).
        An anomaly there that outlasts the quiet opens an incident then."""
        ctl = self.ctl
        stalled = case.detail.get("related", []) if acted else ()
        for s in correlate.around(svc, ctl.topology, stalled):
            ctl.quiet_until[s] = max(ctl.quiet_until.get(s, 0.0), until)

    def check_revoked(self, work: Work) -> None:
        """Between steps: stop at once if the agent or the action type was revoked."""
        if work.review is None:
            return
        revoked = self.ctl.store.revoked()
        for p in work.review.permits:
            for subject in (AGENT, p.action.kind.value):
                if subject in revoked:
                    self.ctl.gate.verifier.revoked.add(p.id)
                    raise Revoked(f"{subject} was revoked by {revoked[subject]['by']}: "
                                  f"{revoked[subject]['reason']}")

    async def wait(self, seconds: float, work: Work) -> None:
        """Sleep, watching for a revocation every half second."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0:
            self.check_revoked(work)
            await asyncio.sleep(min(0.5, left))
        self.check_revoked(work)

    def _window(self, inc: model.Incident) -> diagnose.Window:
        ctl = self.ctl
        started = min([a.started_at for a in inc.anomalies]
                      + [a.starts_at for a in inc.alerts], default=inc.opened_at)
        start = started - 5.0
        now = ctl.clock()
        metrics: dict[tuple[str, str], list[model.Sample]] | None
        try:
            metrics = {(svc, m): s for svc in sorted(ctl.topology)
                       for m, s in ctl.series(svc, start - BASELINE_S, now).items()}
        except errors.DataUnavailable as exc:  # a blind metric source is NO_DATA, not "fine"
            metrics = None
            ctl.emit("diagnose", f"metrics unavailable: {exc}", inc.id)
        return diagnose.Window(
            incident=inc, start=start, end=now,
            baseline_start=start - BASELINE_S, baseline_end=start,
            metrics=metrics,
            logs=(ctl.store.logs(None, start - BASELINE_S, now)
                  if model.SignalKind.LOGS in ctl.kinds else None),
            changes=ctl.store.changes_between(start - BASELINE_S, now),
            spans=self._spans(start - BASELINE_S, now), topology=ctl.topology,
            # Theories a human added (workspace or API) are tested with the rest.
            theories=tuple(str(e.payload["theory"]) for e in ctl.store.ledger(inc.id)
                           if e.kind == "theory.added"))

    def _spans(self, start: float, end: float) -> list[model.Span] | None:
        """Spans from the feeds that keep them (the OTLP receiver), or None when no feed
        does: a window without a trace source says so, it is not a quiet one."""
        sources = [f for f in self.ctl.feeds if isinstance(f, ports.TraceSource)]
        if not sources:
            return None
        return [s for f in sources for s in f.spans(start, end)]

    async def _investigate_and_act(self, case: Case, work: Work) -> None:
        ctl = self.ctl
        inc = case.incident
        window = self._window(inc)
        diag = diagnose.diagnose(window, ctl.clock(), self.diagnosis)
        # Evidence arrives at its own pace (a log warning every few seconds, a scrape window
        # filling up): an unsure diagnosis looks again, as a human would, before it gives up.
        patience = ctl.cfg.investigate
        while not diag.sufficient and ctl.clock() - inc.opened_at < patience.patience_s:
            missing = "; ".join(diag.missing) or "no hypothesis"
            ctl.record(case, "diagnosis.pending", {"missing": list(diag.missing), "top": (
                f"{diag.top.service} {diag.top.fault.value}" if diag.top else "")})
            ctl.emit("diagnose", f"not sure yet ({missing}); looking again in "
                     f"{patience.retry_s:.0f} s", inc.id)
            await self.wait(patience.retry_s, work)
            window = self._window(inc)
            diag = diagnose.diagnose(window, ctl.clock(), self.diagnosis)
        window, diag, model_by = await self._consult(case, window, diag)
        case.detail["diagnosis"] = diag
        ctl.record(case, "diagnosis", {"diagnosis": diag})
        ctl.persist(case, model.IncidentState.DIAGNOSED)
        top = diag.top
        if top is None:
            self.escalate(case, "no hypothesis explains the anomalies")
            return
        ctl.emit("diagnose", f"{top.service}: {top.fault.value} (p={top.probability:.2f}) — "
                 f"{top.summary}", inc.id, evidence=[e.observation for e in top.evidence_for])
        owner = ctl.remediating.get(top.service)
        if owner is not None and owner != inc.id:
            self.merge(case, owner, f"{top.service} is already being remediated by "
                       f"incident {owner}, for the same root cause")
            return
        ctl.remediating[top.service] = inc.id
        now = ctl.clock()
        deploys = [c for c in ctl.store.changes_between(now - 7 * 86_400, now)
                   if c.service == top.service and c.kind == "deploy"]
        failover: tuple[tuple[str, str], ...] = ()
        shifts: tuple[str, ...] = ()
        if isinstance(ctl.platform, ports.Failover):
            failover = tuple(ctl.platform.failovers(top.service))
            # where top.service's own calls could go instead of an instance diagnosis found
            # unreachable (top.service is then the caller whose failures were seen)
            cut = sorted({e.service for e in diag.evidence
                          if e.fault is model.FaultKind.UNREACHABLE and e.service})
            shifts = tuple(region for svc in cut for caller, region
                           in ctl.platform.failovers(svc) if caller == top.service)
        facts = plan.Facts(service=top.service, version=ctl.platform.version(top.service),
                           replicas=len(ctl.platform.replicas(top.service)),
                           last_deploy=deploys[-1] if deploys else None,
                           failover=failover, shifts=shifts)
        proposal = plan.propose(diag, facts, model.PlanId(f"plan-{uuid.uuid4().hex[:8]}"))
        if proposal is not None and model_by:  # a model chose the action family: say so
            proposal = dataclasses.replace(proposal, proposed_by=model_by)
        if proposal is None:
            self.escalate(case, f"no catalogue action fits {top.service} {top.fault.value}")
            return
        case.detail["plan"] = proposal
        ctl.record(case, "plan", {"plan": proposal})
        ctl.emit("plan", f"{proposal.steps[0].describe()} — {proposal.rationale}", inc.id)
        review = ctl.gate.review(proposal, diag, ctl.clock(), self.context(inc))
        self._record_decision(case, review)
        if review.decision.verdict == model.Verdict.REQUIRE_APPROVAL:
            approved = await self._await_approval(case, proposal, diag, review)
            if approved is None:
                return
            review = approved
            self._record_decision(case, review)
        d = review.decision
        if d.verdict != model.Verdict.ALLOW:
            self.escalate(case, f"the policy gate said {d.verdict.value} ({d.rule}): {d.reason}")
            return
        work.review = review
        await self._act(case, proposal, work, window)

    async def _consult(self, case: Case, window: diagnose.Window, diag: model.Diagnosis,
                       ) -> tuple[diagnose.Window, model.Diagnosis, str]:
        """Ask the configured reasoner once, within the incident's token budget (issue 9).

        Its hypotheses re-enter the reconciler as MODEL evidence that real signals must
        confirm; its plan may only choose the action family of the top hypothesis when the
        rules found none, and the planner and the gate take it from there. The exchange goes
        to the ledger whole, each refused part as `reasoner.rejected`. Returns the window, the
        diagnosis and who chose the action family ("" when the rules did)."""
        if self.reasoner is None:
            return window, diag, ""
        ctl = self.ctl
        ex = await asyncio.to_thread(self.reasoner.propose, window, diag,
                                     ctl.cfg.reasoner.max_tokens_per_incident)
        ctl.record(case, "reasoner.exchange", reasoners.ledger_payload(ex))
        for why in ([ex.error] if ex.error else []) + list(ex.rejected):
            ctl.record(case, "reasoner.rejected", {"model": ex.model_name, "why": why,
                                                   "prompt_sha256": ex.prompt_sha256})
        case.detail["reasoner"] = {"model": ex.model_name, "tokens": ex.tokens,
                                   "prompt_sha256": ex.prompt_sha256,
                                   "response_sha256": ex.response_sha256,
                                   "narrative": ex.narrative,
                                   "narrative_by": f"drafted by model {ex.model_name}"}
        ctl.emit("reason", f"{ex.model_name}: {len(ex.hypotheses)} hypotheses, "
                 f"{len(ex.plans)} plans, {len(ex.rejected) + bool(ex.error)} refused, "
                 f"{ex.tokens} tokens", case.incident.id)
        if ex.hypotheses:
            window = reasoners.with_hypotheses(window, ex)
            diag = diagnose.diagnose(window, ctl.clock(), self.diagnosis)
        diag, adopted = reasoners.adopt_plan(diag, ex)
        return window, diag, f"model:{ex.model_name}" if adopted is not None else ""

    def _record_decision(self, case: Case, review: gate_mod.Review) -> None:
        d = review.decision
        case.detail["decision"] = d
        self.ctl.record(case, "decision", {"decision": d,
                                           "permits": [p.id for p in review.permits]})
        self.ctl.emit("gate", f"{d.verdict.value} by rule '{d.rule}': {d.reason}",
                      case.incident.id)

    async def _await_approval(self, case: Case, proposal: model.Plan, diag: model.Diagnosis,
                              review: gate_mod.Review) -> gate_mod.Review | None:
        """Park the plan for a human; the permit is minted only after a valid approval."""
        ctl = self.ctl
        inc = case.incident
        approval_id = f"apr-{uuid.uuid4().hex[:8]}"
        now = ctl.clock()
        expires = now + review.approval_timeout_s
        top = diag.top
        request: dict[str, Any] = {
            "plan": proposal, "risk": proposal.risk, "inverse": proposal.inverse,
            "diagnosis": {"service": top.service if top else "",
                          "fault": top.fault if top else "",
                          "probability": top.probability if top else 0.0,
                          "summary": top.summary if top else ""},
            "decision": review.decision, "on_expiry": review.on_expiry}
        ctl.record(case, "approval.requested", {"approval": approval_id, "role":
                                                 review.decision.approver_role,
                                                 "expires_at": expires, "request": request})
        ctl.store.add_approval(approval_id, inc.id, now, expires,
                               review.decision.approver_role, request)
        case.detail["approval"] = approval_id
        ctl.persist(case, model.IncidentState.AWAITING_APPROVAL)
        ctl.emit("approval", f"waiting for a human with role '{review.decision.approver_role}': "
                 f"selfheal approve {approval_id} --reason … (or reject); expires in "
                 f"{review.approval_timeout_s:.0f} s", inc.id)
        while True:
            row = ctl.store.approval(approval_id)
            state = row["state"] if row else "pending"
            if state == "pending" and ctl.clock() >= expires:
                if ctl.store.decide_approval(approval_id, "expired", "selfheal", "timed out",
                                             ctl.clock()):
                    ctl.record(case, "approval.expired", {"approval": approval_id})
                    self.escalate(case, "the approval expired; the plan stays a suggestion "
                                  f"({proposal.steps[0].describe()})")
                    return None
                continue
            if state == "rejected" and row is not None:
                ctl.record(case, "approval.rejected", {"approval": approval_id,
                                                        "by": row["decided_by"],
                                                        "reason": row["reason"]})
                self.learn(case, proposal.steps[0].kind, "rejection")
                self.escalate(case, f"{row['decided_by']} rejected the plan: {row['reason']}")
                return None
            if state == "approved" and row is not None:
                ctl.record(case, "approval.granted", {"approval": approval_id,
                                                       "by": row["decided_by"],
                                                       "reason": row["reason"]})
                try:
                    return ctl.gate.approve(proposal, diag, user=row["decided_by"],
                                            role=row["role"], reason=row["reason"],
                                            now=ctl.clock(), ctx=self.context(inc))
                except errors.PolicyDenied as exc:
                    self.escalate(case, f"the approval was not valid: {exc}")
                    return None
            await asyncio.sleep(0.5)

    async def _resume(self, case: Case, work: Work, intent: Mapping[str, Any]) -> None:
        """Complete the platform call a killed selfheal announced, then carry on from there.

        The forward action goes back through the gate (the policy or a revocation may have
        changed meanwhile): allowed, the call is completed with the same execution id — the
        platform applies a request id once, so it is never done twice; refused, what was done
        is undone. Either way the outcome is verified or escalated, never lost."""
        ctl = self.ctl
        entries = ctl.store.ledger(case.incident.id)
        plan_p, diag_p = revive.last(entries, "plan"), revive.last(entries, "diagnosis")
        if plan_p is None or diag_p is None:
            self.escalate(case, "resumed with a dangling action but no plan in the ledger")
            return
        proposal = revive.plan(plan_p["plan"])
        diag = revive.diagnosis(diag_p["diagnosis"])
        case.detail["plan"], case.detail["diagnosis"] = proposal, diag
        phase = str(intent["phase"])
        ctl.record(case, "resumed", {"execution": intent["execution"], "phase": phase})
        ctl.emit("recover", f"resuming {phase} of {proposal.steps[0].describe()} "
                 f"(execution {intent['execution']})", case.incident.id)
        work.executions = [model.Execution(**{**x, "action": revive.action(x["action"]),
                                              "status": model.ExecutionStatus(x["status"])})
                           for x in (e.payload["execution"] for e in entries
                                     if e.kind == "execution.result")]
        case.detail["executions"] = work.executions
        now = ctl.clock()
        review = ctl.gate.review(proposal, diag, now, self.context(case.incident)) \
            if phase != "undo" else ctl.gate.undo_only(proposal, now)
        self._record_decision(case, review)
        work.review = review
        work.acted = True
        if review.decision.verdict != model.Verdict.ALLOW:
            work.review = ctl.gate.undo_only(proposal, now)
            await self._undo(case, work, f"on resume the gate said {review.decision.verdict}"
                             f" ({review.decision.rule}): {review.decision.reason}")
            return
        permit = review.undo_permits[0] if phase == "undo" else review.permits[0]
        ex = await ctl.executor.run(permit, case.incident.id, phase=phase,
                                    canary_replicas=int(intent["canary_replicas"]),
                                    execution_id=model.ExecutionId(str(intent["execution"])))
        work.executions.append(ex)
        ctl.persist(case)
        if phase == "undo":
            drains.after_undo(ctl, case, ex, "the undo a crash interrupted was completed")
            self.escalate(case, "the undo a crash interrupted was completed",
                          rolled_back=ex.status == model.ExecutionStatus.SUCCEEDED)
            return
        if ex.status != model.ExecutionStatus.SUCCEEDED:
            await self._undo(case, work, f"the resumed action failed: {ex.detail}")
            return
        done = ctl.clock() if phase == "full" else None
        await self._act(case, proposal, work, self._window(case.incident),
                        start="canary-observe" if phase == "canary" else "verify",
                        acted_at=done)

    async def _act(self, case: Case, proposal: model.Plan, work: Work,
                   window: diagnose.Window, start: str = "canary",
                   acted_at: float | None = None) -> None:
        """From `start` on: canary, canary-observe, full, verify."""
        ctl = self.ctl
        inc = case.incident
        assert work.review is not None
        permit = work.review.permits[0]
        action = permit.action
        ctl.persist(case, model.IncidentState.ACTING)
        case.detail["executions"] = work.executions
        vcfg = ctl.cfg.verify
        vs = verify.Settings(latency_factor=vcfg.latency_factor,
                             latency_slack_s=vcfg.latency_slack_s,
                             slope_slack_bytes_s=vcfg.slope_slack_bytes_s)
        steps = ["canary", "canary-observe", "full", "verify"]
        todo = set(steps[steps.index(start):])
        if proposal.canary and todo & {"canary", "canary-observe"}:
            if "canary" in todo:
                self.check_revoked(work)
                ex = await ctl.executor.run(permit, inc.id, phase="canary", canary_replicas=1)
                work.executions.append(ex)
                work.acted = True
                ctl.persist(case)
                if ex.status != model.ExecutionStatus.SUCCEEDED:
                    self.escalate(case, f"the canary failed to start: {ex.detail}")
                    return
                ctl.emit("canary", f"{ex.detail}; watching it for "
                         f"{vcfg.canary_observe_s:.0f} s", inc.id)
            t0 = ctl.clock()
            await self.wait(vcfg.canary_observe_s, work)
            verdict = self._canary_verdict(action, t0, vs)
            case.detail["canary"] = verdict
            ctl.record(case, "verification.canary", {"verification": verdict})
            ctl.emit("canary", "; ".join(c.detail for c in verdict.checks) or "no data",
                     inc.id, passed=verdict.passed)
            if not verdict.passed:
                self.learn(case, action.kind, "failure")
                await self._undo(case, work, "the canary was not better than the old replicas")
                return
        if "full" in todo:
            self.check_revoked(work)
            ex = await ctl.executor.run(permit, inc.id, phase="full")
            work.executions.append(ex)
            work.acted = True
            ctl.persist(case, model.IncidentState.VERIFYING)
            if ex.status != model.ExecutionStatus.SUCCEEDED:
                await self._undo(case, work, f"the action failed: {ex.detail}")
                return
            ctl.emit("act", ex.detail, inc.id)
            acted_at = ctl.clock()
            # While the remedy settles and is verified, its neighbours' transients are its
            # own doing, not new incidents (verification judges the service itself).
            self.quiet_around(case, action.service, acted_at + ctl.cfg.signal_window_s() + 1.0
                              + vcfg.observe_s * (1 + vcfg.extra_looks)
                              + ctl.cfg.detect.settle_s)
        else:
            ctl.persist(case, model.IncidentState.VERIFYING)
        drains.routed_around(ctl, case, action)
        done = acted_at if acted_at is not None else ctl.clock()
        # let sliding windows (the scraper's, or Prometheus's rate window) forget the old
        # replicas: a point of a rate over the last minute is mostly the time before the action
        settle = ctl.cfg.signal_window_s() + 1.0
        ctl.emit("verify", f"waiting {settle + vcfg.observe_s:.0f} s for the signals to show "
                 "the result", inc.id)
        await self.wait(settle + vcfg.observe_s, work)
        svc = action.service
        baseline = ctl.series(svc, window.baseline_start, window.baseline_end)
        after = ctl.series(svc, done + settle, ctl.clock())
        result = verify.verify_service(baseline, after, ctl.clock(), vs)
        for _ in range(vcfg.extra_looks):
            if result.passed:
                break
            # Recovery has transients (a backlog draining, fresh processes warming up): a
            # failed check gets one more window of its own before the action is undone.
            failed = "; ".join(c.detail for c in result.checks if not c.passed)
            ctl.record(case, "verification.pending", {"verification": result})
            ctl.emit("verify", f"not back yet ({failed}); watching {vcfg.observe_s:.0f} s "
                     "more", inc.id)
            await self.wait(vcfg.observe_s, work)
            now = ctl.clock()
            result = verify.verify_service(
                baseline, ctl.series(svc, now - vcfg.observe_s, now), now, vs)
        case.detail["verification"] = result
        ctl.record(case, "verification", {"verification": result})
        ctl.emit("verify", "; ".join(c.detail for c in result.checks), inc.id,
                 passed=result.passed)
        if not result.passed:
            self.learn(case, action.kind, "failure")
            await self._undo(case, work, "verification failed after the action")
            return
        self.learn(case, action.kind, "success")
        resolved_at = ctl.clock()
        # The durable fix belongs to the incident: it is done before the incident closes.
        await followup.code_fix(self, case, action)
        case.detail["outcome"] = {"resolved": True, "escalated": False, "rolled_back": False,
                                  "resolved_at": resolved_at}
        ctl.record(case, "outcome", case.detail["outcome"])
        ctl.persist(case, model.IncidentState.RESOLVED)
        self.write_postmortem(case)
        ctl.emit("resolved", f"{svc} recovered and verified", inc.id)

    def _canary_verdict(self, action: model.Action, since: float,
                        vs: verify.Settings) -> model.Verification:
        ctl = self.ctl
        svc = action.service
        new_v, old_v = action.param("to_version"), action.param("from_version")
        reps = ctl.platform.replicas(svc)
        canary = next((r for r in reps if r.version == new_v), None)
        old = next((r for r in reps if r.version == old_v), None)
        now = ctl.clock()
        if canary is None or old is None:
            return model.Verification(at=now, passed=False, checks=(), scope="canary")
        return verify.compare_canary(ctl.series(svc, since, now, replica=canary.replica),
                                     ctl.series(svc, since, now, replica=old.replica), now, vs)

    async def _undo(self, case: Case, work: Work, why: str) -> None:
        """Apply the inverse of what was done (if anything was), then call a human."""
        ctl = self.ctl
        undo = work.review.undo_permits[0] if work.review and work.review.undo_permits \
            else None
        undone = False
        if undo is not None and work.acted:
            # The undo must finish even if this task is being cancelled: shield it.
            ex = await asyncio.shield(ctl.executor.run(undo, case.incident.id, phase="undo"))
            work.executions.append(ex)
            undone = ex.status == model.ExecutionStatus.SUCCEEDED
            ctl.emit("undo", f"{why}; undone: {ex.detail}", case.incident.id)
            drains.after_undo(ctl, case, ex, why)
        self.escalate(case, why, rolled_back=undone)

    def merge(self, case: Case, owner: model.IncidentId, reason: str) -> None:
        ctl = self.ctl
        case.detail["outcome"] = {"resolved": False, "escalated": False, "merged_into": owner,
                                  "reason": reason}
        ctl.record(case, "merged", {"into": owner, "reason": reason})
        ctl.persist(case, model.IncidentState.MERGED)
        other = ctl.cases.get(owner)
        if other is not None:
            ctl.record(other, "signal.related", {"incident": case.incident.id,
                                                 "service": case.incident.service,
                                                 "summary": case.incident.title})
            ctl.persist(other)
        ctl.emit("correlate", reason, case.incident.id)

    def escalate(self, case: Case, reason: str, rolled_back: bool = False) -> None:
        ctl = self.ctl
        case.detail["outcome"] = {"resolved": False, "escalated": True,
                                  "rolled_back": rolled_back, "reason": reason}
        ctl.record(case, "escalation", {"reason": reason, "rolled_back": rolled_back})
        ctl.persist(case, model.IncidentState.ESCALATED)
        self.write_postmortem(case)
        ctl.emit("escalate", reason, case.incident.id)

    def write_postmortem(self, case: Case) -> None:
        ctl = self.ctl
        entries = ctl.store.ledger(case.incident.id)
        text = scribe.postmortem(case.incident, entries, ctl.topology)
        folder = ctl.cfg.workdir / "postmortems"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{case.incident.id}.md"
        path.write_text(text, encoding="utf-8")
        case.detail["postmortem"] = str(path)
        ctl.record(case, "postmortem", {"path": str(path), "sha256": scribe.digest(text)})
        ctl.persist(case)
