"""The policy gate: decisions come from code and the policy file; only the gate mints permits."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfheal import errors, model, policy

ROLLBACK = model.Action(model.ActionKind.ROLLBACK, "auth",
                        model.params(from_version="1.2.1", to_version="1.2.0"))


def _symptom(service: str, kind: model.SignalKind = model.SignalKind.METRICS,
             strength: float = 0.9) -> model.Evidence:
    return model.Evidence(investigator=kind.value, kind=kind, status=model.EvidenceStatus.OK,
                          query="q", observation=f"{service} moved", service=service,
                          fault=model.FaultKind.MEMORY_LEAK, strength=strength)


def _diag(sufficient: bool = True, evidence: tuple[model.Evidence, ...] | None = None,
          service: str = "auth") -> model.Diagnosis:
    ev = (_symptom(service),) if evidence is None else evidence
    h = model.Hypothesis(service=service, fault=model.FaultKind.BAD_DEPLOY,
                         action_family=model.ActionKind.ROLLBACK, probability=0.9,
                         evidence_for=ev)
    return model.Diagnosis(incident_id=model.IncidentId("inc-1"), at=0.0, hypotheses=(h,),
                           sufficient=sufficient, evidence=ev,
                           missing=() if sufficient else ("only metrics support auth",))


def _plan(*steps: model.Action) -> model.Plan:
    from selfheal import catalogue
    inv = tuple(i for i in (catalogue.inverse(s) for s in steps) if i is not None)
    return model.Plan(id=model.PlanId("plan-1"), incident_id=model.IncidentId("inc-1"),
                      steps=steps, inverse=inv, rationale="test", risk=model.RiskClass.LOW)


def _gate(text: str | None = None) -> policy.Gate:
    return policy.Gate(policy.parse(text or policy.default_text(), "test.yaml"))


def test_default_policy_allows_rollback_and_mints_signed_permits() -> None:
    review = _gate().review(_plan(ROLLBACK), _diag(), now=100.0)
    assert review.decision.verdict == model.Verdict.ALLOW
    assert review.decision.rule == "autonomous-rollback"
    assert len(review.permits) == 1 and len(review.undo_permits) == 1
    assert review.undo_permits[0].action.kind == model.ActionKind.DEPLOY


def test_insufficient_evidence_is_never_permitted() -> None:
    review = _gate().review(_plan(ROLLBACK), _diag(sufficient=False), now=100.0)
    assert review.decision.verdict == model.Verdict.DENY
    assert review.permits == ()
    assert "only metrics support auth" in review.decision.reason


def test_never_acts_on_a_service_whose_own_signals_look_healthy() -> None:
    # A deploy record and its lifecycle log lines are not symptoms: with only those, and
    # the metrics pointing at another service, the rollback of auth is refused.
    only_context = (_symptom("auth", model.SignalKind.CHANGES),
                    _symptom("auth", model.SignalKind.LOGS),
                    _symptom("checkout", model.SignalKind.METRICS),
                    _symptom("auth", model.SignalKind.METRICS, strength=0.1))
    review = _gate().review(_plan(ROLLBACK), _diag(evidence=only_context), now=100.0)
    assert review.decision.verdict == model.Verdict.DENY
    assert review.decision.rule == "built-in:target-unaffected"
    assert review.permits == ()
    with_symptom = (*only_context, _symptom("auth", model.SignalKind.TRACES, strength=0.5))
    review = _gate().review(_plan(ROLLBACK), _diag(evidence=with_symptom), now=100.0)
    assert review.decision.verdict == model.Verdict.ALLOW


def test_deny_rule_wins_and_names_itself() -> None:
    text = """
version: 1
modes: {default: auto}
rules:
  - name: no-rollbacks-on-friday
    when: {actions: [rollback]}
    verdict: deny
"""
    review = _gate(text).review(_plan(ROLLBACK), _diag(), now=100.0)
    assert review.decision.verdict == model.Verdict.DENY
    assert review.decision.rule == "no-rollbacks-on-friday"
    assert review.permits == ()


@pytest.mark.parametrize("mode", ["observe", "suggest"])
def test_observe_and_suggest_modes_never_act(mode: str) -> None:
    text = f"version: 1\nmodes: {{default: auto, services: {{auth: {mode}}}}}\nrules:\n" \
           "  - {name: all, verdict: allow}\n"
    review = _gate(text).review(_plan(ROLLBACK), _diag(), now=100.0)
    assert review.decision.verdict == model.Verdict.DENY
    assert review.permits == ()


def test_action_without_clean_inverse_needs_a_human() -> None:
    restart = model.Action(model.ActionKind.RESTART, "auth", model.params(replica="auth-1"))
    text = "version: 1\nmodes: {default: auto}\nrules:\n  - {name: all, verdict: allow}\n"
    review = _gate(text).review(_plan(restart), _diag(), now=100.0)
    assert review.decision.verdict == model.Verdict.REQUIRE_APPROVAL
    assert review.decision.rule == "built-in:no-inverse"
    assert review.permits == ()


def test_verifier_refuses_forged_altered_and_expired_permits() -> None:
    gate = _gate()
    permit = gate.review(_plan(ROLLBACK), _diag(), now=100.0).permits[0]
    gate.verifier.check(permit, ROLLBACK, now=101.0)  # the genuine permit passes
    other = _gate()  # another gate's key: a forgery from this gate's point of view
    forged = other.review(_plan(ROLLBACK), _diag(), now=100.0).permits[0]
    with pytest.raises(errors.PolicyDenied, match="not minted"):
        gate.verifier.check(forged, ROLLBACK, now=101.0)
    wider = model.Action(model.ActionKind.ROLLBACK, "payments", ROLLBACK.params)
    with pytest.raises(errors.PolicyDenied):
        gate.verifier.check(dataclasses.replace(permit, action=wider), wider, now=101.0)
    with pytest.raises(errors.PolicyDenied, match="expired"):
        gate.verifier.check(permit, ROLLBACK, now=permit.expires_at + 1)


_kinds = st.sampled_from(list(model.ActionKind))
_verdicts = st.sampled_from(["allow", "require_approval", "deny"])


@settings(max_examples=80, deadline=None)
@given(kind=_kinds, verdict=_verdicts, sufficient=st.booleans(),
       service=st.sampled_from(["auth", "cart", "payments"]))
def test_no_permit_unless_allowed_by_a_rule_and_evidence(kind: model.ActionKind, verdict: str,
                                                         sufficient: bool, service: str) -> None:
    text = (f"version: 1\nmodes: {{default: auto}}\nrules:\n  - name: only\n"
            f"    when: {{actions: [{kind.value}], services: [auth]}}\n    verdict: {verdict}\n")
    action = model.Action(kind, service, model.params(from_version="1", to_version="2",
                                                      from_replicas=2, to_replicas=4,
                                                      replica=f"{service}-1"))
    review = _gate(text).review(_plan(action), _diag(sufficient, service=service), now=5.0)
    if review.permits:
        assert verdict == "allow" and sufficient and service == "auth"
        assert review.decision.verdict == model.Verdict.ALLOW
    else:
        assert review.decision.verdict != model.Verdict.ALLOW


@pytest.mark.parametrize(("text", "field"), [
    ("version: 2\n", "version"),
    ("version: 1\nrules:\n  - {name: x, verdict: maybe}\n", "rules.0.verdict"),
    ("version: 1\nrules:\n  - {name: x, verdict: allow, when: {actions: [reboot]}}\n",
     "rules.0.when.actions.0"),
    ("version: 1\nsurprise: true\n", "surprise"),
    ("version: 1\nrules: [\n", "line"),
])
def test_malformed_policy_names_the_field(text: str, field: str) -> None:
    with pytest.raises(errors.ConfigError) as info:
        policy.parse(text, "p.yaml")
    assert info.value.path == "p.yaml"
    assert info.value.field.startswith(field)


def test_malformed_policy_on_the_cli_exits_2_and_starts_nothing(
        tmp_path: Path, selfheal_cmd: list[str]) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("version: 1\nrules:\n  - {name: x, verdict: sometimes}\n")
    res = subprocess.run([*selfheal_cmd, "demo", "--policy", str(bad), "--workdir",
                          str(tmp_path / "wd")], capture_output=True, text=True, timeout=60,
                         check=False)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert str(bad) in res.stderr.replace("\n", "") and "rules.0.verdict" in res.stderr
    assert not (tmp_path / "wd").exists()


def test_a_plan_a_model_chose_needs_a_human() -> None:
    plan = dataclasses.replace(_plan(ROLLBACK), proposed_by="model:SmolLM2")
    review = _gate().review(plan, _diag(), now=100.0)
    assert review.decision.verdict == model.Verdict.REQUIRE_APPROVAL
    assert review.decision.rule == "built-in:model-proposal"
    assert review.permits == ()
