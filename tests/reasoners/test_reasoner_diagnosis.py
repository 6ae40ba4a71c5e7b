"""A model's hypotheses in diagnosis: weighed like evidence, never enough on their own."""

from __future__ import annotations

import dataclasses

from selfheal import diagnose, model, ports, reasoners
from selfheal.diagnose import proposals
from tests.reasoners import reasoner_helpers as helpers


def _said(service: str, fault: model.FaultKind, confidence: float = 1.0) -> model.Evidence:
    return model.Evidence(investigator="model:test", kind=model.SignalKind.MODEL,
                          status=model.EvidenceStatus.OK, query="prompt sha256 abc",
                          observation=f"proposed by model:test: {fault.value}",
                          service=service, fault=fault, strength=confidence)


def _exchange(*hyps: model.Evidence, plans: tuple[ports.ModelPlan, ...] = ()) -> ports.Exchange:
    return ports.Exchange(reasoner="test", model_name="test", model_version="", prompt="p",
                          response="r", prompt_sha256="0" * 64, response_sha256="1" * 64,
                          tokens=1, hypotheses=hyps, plans=plans)


def test_without_a_reasoner_the_diagnosis_is_what_it_was() -> None:
    window = helpers.window()
    others = [i for i in diagnose.INVESTIGATORS if not isinstance(i, proposals.ModelInvestigator)]
    assert len(others) == len(diagnose.INVESTIGATORS) - 1
    assert diagnose.diagnose(window, window.end) == diagnose.diagnose(
        window, window.end, investigators=others)


def test_a_model_alone_cannot_make_a_healthy_service_the_cause() -> None:
    window = helpers.window()
    said = reasoners.with_hypotheses(window, _exchange(_said("cart", model.FaultKind.CRASH)))
    diag = diagnose.diagnose(said, said.end)
    assert diag.top is not None and diag.top.service == "auth" and diag.sufficient
    cart = next(h for h in diag.hypotheses if h.service == "cart")
    assert cart.probability < 0.05
    assert "not confirmed by enough independent evidence" in cart.summary


def test_agreeing_with_the_evidence_is_noted_as_confirmed() -> None:
    window = helpers.window()
    said = reasoners.with_hypotheses(
        window, _exchange(_said("auth", model.FaultKind.MEMORY_LEAK, 0.9)))
    diag = diagnose.diagnose(said, said.end)
    assert diag.top is not None and diag.top.service == "auth" and diag.sufficient
    model_ev = [e for e in diag.top.evidence_for if e.kind is model.SignalKind.MODEL]
    assert [round(e.strength, 3) for e in model_ev] == [
        round(0.9 * diagnose.DEFAULT_SETTINGS.model_strength, 3)]
    assert "model hypothesis" in diag.top.summary and "confirmed by" in diag.top.summary


def test_thin_evidence_stays_insufficient_whatever_the_model_says() -> None:
    # Only metrics see auth: one independent kind, so a human must look ...
    window = dataclasses.replace(helpers.window(), logs=None, changes=())
    before = diagnose.diagnose(window, window.end)
    assert before.top is not None and before.top.service == "auth" and not before.sufficient
    # ... and a fully confident model agreeing with it does not change that.
    said = reasoners.with_hypotheses(window, _exchange(
        _said("auth", model.FaultKind.MEMORY_LEAK), _said("auth", model.FaultKind.BAD_DEPLOY)))
    after = diagnose.diagnose(said, said.end)
    assert after.top is not None and after.top.service == "auth"
    assert not after.sufficient
    assert any("need 2 independent kinds" in m for m in after.missing)


def test_hypotheses_for_services_outside_the_window_are_dropped() -> None:
    window = helpers.window()
    said = reasoners.with_hypotheses(window, _exchange(_said("payments", model.FaultKind.CRASH)))
    diag = diagnose.diagnose(said, said.end)
    assert all(h.service != "payments" for h in diag.hypotheses)
    assert not [e for e in diag.evidence if e.kind is model.SignalKind.MODEL]


def test_a_model_plan_only_fills_a_missing_action_family_for_the_top_service() -> None:
    window = helpers.window()
    diag = diagnose.diagnose(window, window.end)
    assert diag.top is not None
    ours = diag.top.action_family
    assert ours is model.ActionKind.ROLLBACK  # the rules have one: the model is not asked
    flush = ports.ModelPlan("auth", model.ActionKind.CACHE_FLUSH, "flush it")
    same, adopted = reasoners.adopt_plan(diag, _exchange(plans=(flush,)))
    assert adopted is None and same == diag
    # The rules find none (a generic fault with no precise evidence): the model may choose ...
    bare = dataclasses.replace(diag.top, fault=model.FaultKind.ERRORS, action_family=None,
                               evidence_for=())
    open_diag = dataclasses.replace(diag, hypotheses=(bare, *diag.hypotheses[1:]))
    chosen, adopted = reasoners.adopt_plan(open_diag, _exchange(plans=(flush,)))
    assert adopted == flush and chosen.top is not None
    assert chosen.top.action_family is model.ActionKind.CACHE_FLUSH
    # ... but only for the top hypothesis' own service.
    elsewhere = ports.ModelPlan("cart", model.ActionKind.CACHE_FLUSH, "flush cart")
    kept, adopted = reasoners.adopt_plan(open_diag, _exchange(plans=(elsewhere,)))
    assert adopted is None and kept == open_diag
