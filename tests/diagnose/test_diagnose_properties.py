"""Property tests of the reconciler and the benchmark's calibration error."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfheal import diagnose, model
from selfheal.bench import rca
from selfheal.diagnose import base, reconcile

pytestmark = pytest.mark.timeout(120)

SERVICES = ("right", "wrong", "other", "bystander")
KINDS = (
    model.SignalKind.METRICS,
    model.SignalKind.LOGS,
    model.SignalKind.TRACES,
    model.SignalKind.CHANGES,
    model.SignalKind.TOPOLOGY,
    model.SignalKind.HUMAN,
)
FAULTS = (model.FaultKind.LATENCY, model.FaultKind.ERRORS, model.FaultKind.OVERLOAD)
SETTINGS = diagnose.DEFAULT_SETTINGS


@st.composite
def evidence(draw: st.DrawFn, services: tuple[str, ...] = SERVICES) -> model.Evidence:
    kind = draw(st.sampled_from(KINDS))
    fields = {
        "investigator": kind.value,
        "kind": kind,
        "status": model.EvidenceStatus.OK,
        "query": "generated",
        "observation": "generated",
        "service": draw(st.sampled_from(services)),
        "fault": draw(st.sampled_from(FAULTS)),
        "strength": draw(st.floats(0.0, 1.0)),
    }
    if kind is model.SignalKind.TOPOLOGY and draw(st.booleans()):
        # evidence against: the service is a victim of a fault elsewhere
        return base.Against(**{**fields, "fault": model.FaultKind.DEPENDENCY})
    return model.Evidence(**fields)


@st.composite
def supporting(draw: st.DrawFn, service: str) -> model.Evidence:
    item = draw(evidence((service,)))
    if isinstance(item, base.Against):
        fields = {f.name: getattr(item, f.name) for f in dataclasses.fields(model.Evidence)}
        item = model.Evidence(**{**fields, "fault": model.FaultKind.LATENCY})
    return item


def _log_odds(result: model.Diagnosis, a: str, b: str) -> float:
    p = {h.service: h.probability for h in result.hypotheses}
    return math.log(p[a]) - math.log(p[b])


@settings(max_examples=300, deadline=None)
@given(
    base=st.lists(evidence(), min_size=0, max_size=12),
    extra=supporting("wrong"),
)
def test_irrelevant_evidence_lifts_a_wrong_hypothesis_by_at_most_its_own_weight(
    base: list[model.Evidence], extra: model.Evidence
) -> None:
    anchor = [
        model.Evidence(
            "m", model.SignalKind.METRICS, model.EvidenceStatus.OK, "q", "o", s, strength=0.01
        )
        for s in ("right", "wrong")
    ]
    before = reconcile.reconcile(model.IncidentId("i"), 0.0, anchor + base, SETTINGS)
    after = reconcile.reconcile(model.IncidentId("i"), 0.0, [*anchor, *base, extra], SETTINGS)
    lift = _log_odds(after, "wrong", "right") - _log_odds(before, "wrong", "right")
    bound = SETTINGS.kind_weights[extra.kind] * extra.strength / SETTINGS.temperature
    assert lift <= bound + 1e-9
    assert lift >= -1e-9  # support never lowers the service it supports


@settings(max_examples=200, deadline=None)
@given(base=st.lists(evidence(), min_size=0, max_size=12), extra=supporting("bystander"))
def test_evidence_about_a_third_service_leaves_the_pair_alone(
    base: list[model.Evidence], extra: model.Evidence
) -> None:
    anchor = [
        model.Evidence(
            "m", model.SignalKind.METRICS, model.EvidenceStatus.OK, "q", "o", s, strength=0.01
        )
        for s in ("right", "wrong")
    ]
    before = reconcile.reconcile(model.IncidentId("i"), 0.0, anchor + base, SETTINGS)
    after = reconcile.reconcile(model.IncidentId("i"), 0.0, [*anchor, *base, extra], SETTINGS)
    assert _log_odds(after, "wrong", "right") == pytest.approx(
        _log_odds(before, "wrong", "right"), abs=1e-9
    )


@settings(max_examples=200, deadline=None)
@given(base=st.lists(evidence(), min_size=1, max_size=15))
def test_probabilities_never_exceed_one_and_sufficiency_needs_two_kinds(
    base: list[model.Evidence],
) -> None:
    result = reconcile.reconcile(model.IncidentId("i"), 0.0, base, SETTINGS)
    assert sum(h.probability for h in result.hypotheses) <= 1.0 + 1e-9
    if result.sufficient:
        top = result.top
        assert top is not None
        independent = [
            e for e in top.evidence_for if e.kind in diagnose.window.INDEPENDENT_KINDS
        ]
        # one kind supports it strongly, the others it needs at least corroborate it
        assert any(e.strength >= SETTINGS.support_strength for e in independent)
        kinds = {e.kind for e in independent if e.strength >= SETTINGS.corroboration_strength}
        assert len(kinds) >= SETTINGS.min_independent_kinds
    else:
        assert result.missing


@given(
    st.lists(st.tuples(st.floats(0.0, 1.0), st.booleans()), min_size=1, max_size=50),
)
def test_ece_is_a_bounded_average_gap(rows: list[tuple[float, bool]]) -> None:
    confidences = [c for c, _ in rows]
    correct = [k for _, k in rows]
    ece = rca.expected_calibration_error(confidences, correct)
    assert 0.0 <= ece <= 1.0
    # never more than the mean per-case gap (the bins can only average gaps away)
    assert ece <= sum(abs(c - k) for c, k in rows) / len(rows) + 1e-9


def test_ece_of_a_perfectly_calibrated_bin_is_zero() -> None:
    # four cases at confidence 0.75, three right: accuracy equals confidence in the one bin
    assert rca.expected_calibration_error([0.75] * 4, [True, True, True, False]) == pytest.approx(0)
    # and an overconfident bin is off by exactly its gap
    assert rca.expected_calibration_error([0.95] * 2, [True, False]) == pytest.approx(0.45)
