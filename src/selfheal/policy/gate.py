"""The policy gate: the only code that mints permits (design invariant 1).

It rules on a plan in code, never in a prompt: the action must be in the catalogue, the
diagnosis must rest on enough independent evidence, the service's autonomy mode must allow
acting, an autonomous action must have a clean inverse, and the first matching policy rule
decides. Permits are signed with a key that only this gate and its verifier hold, so a permit
cannot be forged or altered by anything else in the process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import uuid

from selfheal import catalogue, errors, ledger, model
from selfheal.policy import document

PERMIT_TTL_S = 900.0


@dataclasses.dataclass(frozen=True)
class Review:
    decision: model.Decision
    permits: tuple[model.Permit, ...] = ()
    undo_permits: tuple[model.Permit, ...] = ()


SYMPTOM_STRENGTH = 0.3
_SYMPTOM_KINDS = (model.SignalKind.METRICS, model.SignalKind.TRACES, model.SignalKind.ALERTS)


def _shows_fault(diagnosis: model.Diagnosis, service: str) -> bool:
    """Does the service's own telemetry (not a change record or a log of the change) show it?"""
    return any(e.status == model.EvidenceStatus.OK and e.service == service
               and e.kind in _SYMPTOM_KINDS and e.strength >= SYMPTOM_STRENGTH
               for e in diagnosis.evidence)


def _permit_body(p: model.Permit) -> bytes:
    return ledger.canonical([p.id, p.plan_id, model.to_jsonable(p.action), repr(p.issued_at),
                             repr(p.expires_at), p.policy_hash]).encode()


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


class Gate:
    def __init__(self, policy: document.Policy) -> None:
        self.policy = policy
        self._key = secrets.token_bytes(32)
        self.verifier = Verifier(self._key)

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

    def review(self, plan: model.Plan, diagnosis: model.Diagnosis, now: float) -> Review:
        deny, approve = model.Verdict.DENY, model.Verdict.REQUIRE_APPROVAL
        if not plan.steps:
            return Review(self._decide(plan, deny, "built-in:empty-plan", "the plan has no "
                                       "steps", now))
        for step in plan.steps:
            problem = catalogue.validate(step)
            if problem is not None:
                return Review(self._decide(plan, deny, "built-in:catalogue", problem, now))
        if not diagnosis.sufficient:
            missing = "; ".join(diagnosis.missing) or "too few independent signal kinds"
            return Review(self._decide(plan, deny, "built-in:insufficient-evidence",
                                       f"insufficient evidence ({missing}): a human must "
                                       "look", now))
        services = {s.service for s in plan.steps}
        for svc in sorted(services):
            if not _shows_fault(diagnosis, svc):
                return Review(self._decide(
                    plan, deny, "built-in:target-unaffected",
                    f"{svc}'s own signals do not show the fault (no metrics, traces or alerts "
                    f"evidence of strength >= {SYMPTOM_STRENGTH}): selfheal never acts on a "
                    "service that looks healthy", now))
        modes = {svc: self.policy.mode(svc) for svc in services}
        for svc, mode in modes.items():
            if mode in (model.Mode.OBSERVE, model.Mode.SUGGEST):
                return Review(self._decide(plan, deny, "modes", f"{svc} is in {mode.value} "
                                           "mode: selfheal proposes but does not act", now))
        needs_human: tuple[str, str, str] | None = None
        for step in plan.steps:
            kind = catalogue.CATALOGUE[step.kind]
            rule = self.policy.match(step, kind.risk)
            if rule is None:
                return Review(self._decide(plan, deny, "built-in:no-matching-rule",
                                           f"no policy rule allows {step.describe()}", now))
            if rule.verdict == "deny":
                return Review(self._decide(plan, deny, rule.name, rule.description or
                                           f"{step.kind.value} is denied by policy", now))
            if rule.verdict == "require_approval" and needs_human is None:
                needs_human = (rule.name, f"{step.kind.value} needs a human's approval",
                               rule.approver_role)
            if not kind.has_clean_inverse(step) and needs_human is None:
                needs_human = ("built-in:no-inverse", f"{step.kind.value} cannot be undone "
                               "cleanly, so it is never autonomous", "sre")
        if needs_human is None and any(m == model.Mode.APPROVE for m in modes.values()):
            needs_human = ("modes", "the service is in approve mode", "sre")
        if needs_human is not None:
            name, reason, role = needs_human
            return Review(self._decide(plan, approve, name, reason, now, role))
        first = self.policy.match(plan.steps[0], catalogue.CATALOGUE[plan.steps[0].kind].risk)
        assert first is not None  # every step matched an allowing rule above
        decision = self._decide(plan, model.Verdict.ALLOW, first.name,
                                first.description or "allowed by policy", now)
        return Review(decision,
                      permits=tuple(self._mint(plan, s, now) for s in plan.steps),
                      undo_permits=tuple(self._mint(plan, s, now) for s in plan.inverse))
