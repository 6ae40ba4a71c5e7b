"""The policy gate: the only code that mints permits (design invariant 1).

It rules on a plan in code, never in a prompt, in a fixed order: the action must be in the
catalogue; neither the agent nor the action type may be revoked; the diagnosis must rest on
enough independent evidence and the target's own signals must show the fault; the effective
autonomy mode (policy, lowered or lifted by earned trust) must allow acting; a change freeze
needs a human; the first matching policy rule (with its CEL condition) decides; an action
without a clean inverse needs a human; and blast-radius caps must hold. Permits are signed with
a key only this gate and its verifier hold, so nothing else in the process can forge or alter
one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Mapping
from typing import Any

from selfheal import catalogue, errors, ledger, model
from selfheal.policy import blast, document, trust

PERMIT_TTL_S = 900.0
SYMPTOM_STRENGTH = 0.3
_SYMPTOM_KINDS = (model.SignalKind.METRICS, model.SignalKind.TRACES, model.SignalKind.ALERTS)


@dataclasses.dataclass(frozen=True)
class Context:
    """What the gate needs to know besides the plan, gathered by the runtime."""

    agent: str = "selfheal"
    replicas: Mapping[str, int] = dataclasses.field(default_factory=dict)
    trust: Mapping[model.ActionKind, trust.TrustState] = dataclasses.field(default_factory=dict)
    revoked: frozenset[str] = frozenset()
    """Revoked agents and action types (by their names)."""
    incident: model.Incident | None = None


@dataclasses.dataclass(frozen=True)
class Review:
    decision: model.Decision
    permits: tuple[model.Permit, ...] = ()
    undo_permits: tuple[model.Permit, ...] = ()
    approval_timeout_s: float = 0.0
    on_expiry: str = "suggest"


def _permit_body(p: model.Permit) -> bytes:
    return ledger.canonical([p.id, p.plan_id, model.to_jsonable(p.action), repr(p.issued_at),
                             repr(p.expires_at), p.policy_hash]).encode()


def _shows_fault(diagnosis: model.Diagnosis, service: str) -> bool:
    """Does the service's own telemetry (not a change record or a log of the change) show it?"""
    return any(e.status == model.EvidenceStatus.OK and e.service == service
               and e.kind in _SYMPTOM_KINDS and e.strength >= SYMPTOM_STRENGTH
               for e in diagnosis.evidence)


class Verifier:
    """Held by the executor: checks that a permit was minted by its gate and is still valid."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self.revoked: set[model.PermitId] = set()

    def check(self, permit: model.Permit, action: model.Action, now: float) -> None:
        if not isinstance(permit, model.Permit):
            raise errors.PolicyDenied("the executor only accepts a Permit")
        unsigned = dataclasses.replace(permit, signature="")
        good = hmac.new(self._key, _permit_body(unsigned), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(good, permit.signature):
            raise errors.PolicyDenied(f"permit {permit.id} was not minted by the policy gate")
        if permit.action != action:
            raise errors.PolicyDenied(f"permit {permit.id} is for {permit.action.describe()}, "
                                      f"not {action.describe()}")
        if not permit.issued_at <= now <= permit.expires_at:
            raise errors.PolicyDenied(f"permit {permit.id} has expired")
        if permit.id in self.revoked:
            raise errors.PolicyDenied(f"permit {permit.id} was revoked")


def activation(action: model.Action, policy: document.Policy, ctx: Context,
               diagnosis: model.Diagnosis, now: float) -> dict[str, Any]:
    """The variables a rule's CEL condition sees (documented in the README)."""
    target = policy.target(action.service)
    kind = catalogue.CATALOGUE[action.kind]
    when = dt.datetime.fromtimestamp(now, tz=dt.UTC)
    top = diagnosis.top
    state = ctx.trust.get(action.kind, trust.TrustState(ctx.agent, action.kind))
    inc = ctx.incident
    return {
        "action": {"kind": action.kind.value, "service": action.service,
                   "params": dict(action.params), "risk": kind.risk.value,
                   "blast_radius": kind.blast_radius},
        "target": {"service": action.service, "tier": target.tier, "region": target.region,
                   "labels": dict(target.labels), "replicas": ctx.replicas.get(action.service, 0)},
        "incident": {"id": inc.id if inc else "", "service": inc.service if inc else "",
                     "title": inc.title if inc else "",
                     "fault": top.fault.value if top else "",
                     "probability": top.probability if top else 0.0,
                     "sufficient": diagnosis.sufficient},
        "now": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "hour": when.hour,
        "weekday": when.isoweekday() % 7,  # 0 = Sunday, as CEL's getDayOfWeek
        "business_hours": when.isoweekday() <= 5 and 9 <= when.hour < 17,
        "freeze": policy.freeze(action.service, now) is not None,
        "trust": state.score,
        "agent": ctx.agent,
    }


class Gate:
    def __init__(self, policy: document.Policy) -> None:
        self.policy = policy
        self._key = secrets.token_bytes(32)
        self.verifier = Verifier(self._key)
        self.window = blast.Window(policy.doc.limits)

    # -- minting ----------------------------------------------------------------------------

    def _mint(self, plan: model.Plan, action: model.Action, now: float) -> model.Permit:
        unsigned = model.Permit(
            id=model.PermitId(uuid.uuid4().hex[:16]), plan_id=plan.id, action=action,
            issued_at=now, expires_at=now + PERMIT_TTL_S, policy_hash=self.policy.hash,
            signature="")
        sig = hmac.new(self._key, _permit_body(unsigned), hashlib.sha256).hexdigest()
        return dataclasses.replace(unsigned, signature=sig)

    def _decide(self, plan: model.Plan, verdict: model.Verdict, rule: str, reason: str,
                now: float, role: str = "") -> model.Decision:
        return model.Decision(plan_id=plan.id, verdict=verdict, rule=rule, reason=reason,
                              policy_hash=self.policy.hash, at=now, approver_role=role)

    def _grant(self, plan: model.Plan, ctx: Context, rule: str, reason: str,
               now: float) -> Review:
        """Check the caps, then mint the permits and their undo permits."""
        fleet = sum(ctx.replicas.values())
        for step in plan.steps:
            problem = self.window.check(step, self.policy.target(step.service),
                                        ctx.replicas.get(step.service, 0), fleet, now)
            if problem is not None:
                return Review(self._decide(plan, model.Verdict.DENY, "built-in:blast-radius",
                                           problem, now))
        permits = tuple(self._mint(plan, s, now) for s in plan.steps)
        for p in permits:
            self.window.take(p, ctx.replicas.get(p.action.service, 0), now)
        return Review(self._decide(plan, model.Verdict.ALLOW, rule, reason, now),
                      permits=permits,
                      undo_permits=tuple(self._mint(plan, s, now) for s in plan.inverse))

    def undo_only(self, plan: model.Plan, now: float) -> Review:
        """Permits for a plan's inverse alone: undoing selfheal's own action is always allowed
        (it restores the state before selfheal acted), even after the forward action lost its
        authority."""
        decision = self._decide(plan, model.Verdict.ALLOW, "built-in:undo",
                                "undo of selfheal's own action", now)
        return Review(decision, permits=(),
                      undo_permits=tuple(self._mint(plan, s, now) for s in plan.inverse))

    def release(self, permit: model.Permit) -> None:
        """The permit's execution ended (done, failed or undone): it is no longer in flight."""
        self.window.release(permit.id)

    # -- rulings ----------------------------------------------------------------------------

    def _refusal(self, plan: model.Plan, diagnosis: model.Diagnosis, ctx: Context,
                 now: float) -> model.Decision | None:
        """The checks no policy text can override; a Decision when one of them refuses."""
        deny = model.Verdict.DENY
        if not plan.steps:
            return self._decide(plan, deny, "built-in:empty-plan", "the plan has no steps", now)
        for step in plan.steps:
            problem = catalogue.validate(step)
            if problem is not None:
                return self._decide(plan, deny, "built-in:catalogue", problem, now)
        for step in plan.steps:
            if ctx.replicas and step.service not in ctx.replicas:
                return self._decide(plan, deny, "built-in:unknown-target",
                                    f"{step.service} is not a service selfheal manages", now)
        if ctx.agent in ctx.revoked or plan.proposed_by in ctx.revoked:
            return self._decide(plan, deny, "built-in:revoked",
                                f"agent {ctx.agent}'s authority is revoked", now)
        for step in plan.steps:
            if step.kind.value in ctx.revoked:
                return self._decide(plan, deny, "built-in:revoked",
                                    f"action type {step.kind.value} is revoked", now)
        if not diagnosis.sufficient:
            missing = "; ".join(diagnosis.missing) or "too few independent signal kinds"
            return self._decide(plan, deny, "built-in:insufficient-evidence",
                                f"insufficient evidence ({missing}): a human must look", now)
        for svc in sorted({s.service for s in plan.steps}):
            if not _shows_fault(diagnosis, svc):
                return self._decide(
                    plan, deny, "built-in:target-unaffected",
                    f"{svc}'s own signals do not show the fault (no metrics, traces or alerts "
                    f"evidence of strength >= {SYMPTOM_STRENGTH}): selfheal never acts on a "
                    "service that looks healthy", now)
        return None

    def review(self, plan: model.Plan, diagnosis: model.Diagnosis, now: float,
               ctx: Context | None = None) -> Review:
        ctx = ctx or Context()
        refusal = self._refusal(plan, diagnosis, ctx, now)
        if refusal is not None:
            return Review(refusal)
        deny, approve = model.Verdict.DENY, model.Verdict.REQUIRE_APPROVAL
        human: tuple[str, str, str, float, str] | None = None  # rule, why, role, timeout, expiry
        for step in plan.steps:
            base = self.policy.mode(step.service, step.kind)
            state = ctx.trust.get(step.kind, trust.TrustState(ctx.agent, step.kind))
            mode, why = trust.effective_mode(base, state, self.policy.doc.trust)
            if mode in (model.Mode.OBSERVE, model.Mode.SUGGEST):
                return Review(self._decide(plan, deny, "modes", f"{step.describe()}: "
                                           f"{mode.value} mode, selfheal proposes but does not "
                                           "act", now))
            if mode == model.Mode.APPROVE and human is None:
                human = ("trust" if why else "modes", why or f"{step.service} is in approve "
                         f"mode for {step.kind.value}", "sre", 900.0, "suggest")
        for step in plan.steps:
            frozen = self.policy.freeze(step.service, now)
            if frozen is not None and human is None:
                human = ("built-in:change-freeze", f"{step.service} is in a change freeze "
                         f"({frozen.reason})", "sre", 900.0, "suggest")
            kind = catalogue.CATALOGUE[step.kind]
            rule, _ = self.policy.match(step, kind.risk,
                                        activation(step, self.policy, ctx, diagnosis, now))
            if rule is None:
                return Review(self._decide(plan, deny, "built-in:no-matching-rule",
                                           f"no policy rule allows {step.describe()}", now))
            if rule.verdict == "deny":
                return Review(self._decide(plan, deny, rule.name, rule.description or
                                           f"{step.kind.value} is denied by policy", now))
            if rule.verdict == "require_approval" and human is None:
                human = (rule.name, rule.description or f"{step.kind.value} needs a human's "
                         "approval", rule.approver_role, rule.approval_timeout_s,
                         rule.on_expiry)
            if not kind.has_clean_inverse(step) and human is None:
                human = ("built-in:no-inverse", f"{step.kind.value} cannot be undone cleanly, "
                         "so it is never autonomous", "sre", 900.0, "suggest")
        if human is None and plan.proposed_by.startswith("model:"):
            # A remedy a language model chose (when no rule found one) is never autonomous.
            human = ("built-in:model-proposal", f"the action was chosen by {plan.proposed_by}"
                     "; a human confirms it", "sre", 900.0, "suggest")
        if human is not None:
            name, reason, role, timeout, expiry = human
            return Review(self._decide(plan, approve, name, reason, now, role),
                          approval_timeout_s=timeout, on_expiry=expiry)
        first = plan.steps[0]
        rule, _ = self.policy.match(first, catalogue.CATALOGUE[first.kind].risk,
                                    activation(first, self.policy, ctx, diagnosis, now))
        name = rule.name if rule is not None else "built-in:no-matching-rule"
        return self._grant(plan, ctx, name, (rule.description if rule else "") or
                           "allowed by policy", now)

    def approve(self, plan: model.Plan, diagnosis: model.Diagnosis, *, user: str, role: str,
                reason: str, now: float, ctx: Context | None = None) -> Review:
        """A human approved a plan that needed it: check who, re-check the hard rules, mint."""
        ctx = ctx or Context()
        if not self.policy.holds_role(user, role):
            raise errors.PolicyDenied(f"{user} does not hold the role {role!r} this approval "
                                      "needs")
        refusal = self._refusal(plan, diagnosis, ctx, now)
        if refusal is not None:
            return Review(refusal)
        return self._grant(plan, ctx, f"approval:{role}", f"approved by {user}: {reason}", now)
