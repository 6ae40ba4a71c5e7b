"""The catalogue's typed actions and the planner's choice of remedy (pure, no processes)."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from selfheal import catalogue, model, plan
from selfheal.diagnose import base as diagnose_base

pytestmark = pytest.mark.timeout(60)

SNAPSHOT_KINDS = [model.ActionKind.CONFIG_REVERT, model.ActionKind.CACHE_FLUSH,
                  model.ActionKind.CERT_RENEW, model.ActionKind.CREDENTIAL_ROTATE,
                  model.ActionKind.TRAFFIC_SHIFT]


def test_every_action_kind_is_in_the_catalogue() -> None:
    assert set(catalogue.CATALOGUE) == set(model.ActionKind)
    for t in catalogue.CATALOGUE.values():
        assert t.description and t.blast_radius and isinstance(t.risk, model.RiskClass)


@given(kind=st.sampled_from([*SNAPSHOT_KINDS, model.ActionKind.CODE_REVERT]),
       snap=st.from_regex(r"[a-z0-9-]{1,20}", fullmatch=True))
def test_a_snapshot_action_is_undone_by_restoring_its_snapshot(kind: model.ActionKind,
                                                               snap: str) -> None:
    extra = {"commit": "abc123"} if kind == model.ActionKind.CODE_REVERT else {}
    action = model.Action(kind, "catalog", model.params(snapshot=snap, **extra))
    assert catalogue.validate(action) is None
    inv = catalogue.inverse(action)
    assert inv == model.Action(kind, "catalog", model.params(restore=snap))
    assert catalogue.validate(inv) is None
    assert catalogue.inverse(inv) is None  # a restore has nothing of its own to undo
    assert catalogue.CATALOGUE[kind].has_clean_inverse(action)


@pytest.mark.parametrize("kind", SNAPSHOT_KINDS)
def test_a_snapshot_action_without_a_snapshot_is_refused(kind: model.ActionKind) -> None:
    bare = model.Action(kind, "catalog")
    assert "needs one of" in (catalogue.validate(bare) or "")
    assert catalogue.inverse(bare) is None


def test_restore_does_not_bypass_the_required_parameters_of_other_kinds() -> None:
    odd = model.Action(model.ActionKind.ROLLBACK, "auth", model.params(restore="x"))
    assert "missing parameters" in (catalogue.validate(odd) or "")


def _ev(kind: model.SignalKind, obs: str = "x", fault: model.FaultKind = model.FaultKind.ERRORS,
        service: str = "catalog", strength: float = 0.7,
        measures: tuple[tuple[str, float], ...] = ()) -> model.Evidence:
    return model.Evidence("x", kind, model.EvidenceStatus.OK, "q", obs, service, fault, strength,
                          measures)


def _rate(was: float, now: float) -> tuple[tuple[str, float], ...]:
    return ((model.REQUEST_RATE_BASELINE, was), (model.REQUEST_RATE_NOW, now))


def _diag(fault: model.FaultKind, *evidence: model.Evidence,
          family: model.ActionKind | None = None,
          seen: tuple[model.Evidence, ...] = ()) -> model.Diagnosis:
    h = model.Hypothesis("catalog", fault, family, 0.9, tuple(evidence))
    return model.Diagnosis(model.IncidentId("inc-1"), 0.0, (h,), True,
                           evidence=(*evidence, *seen))


FACTS = plan.Facts(service="catalog", version="3.1.0", replicas=2)


def _kind(d: model.Diagnosis) -> model.ActionKind | None:
    # catalog could shift its calls to another region: only the evidence decides whether to
    p = plan.propose(d, dataclasses.replace(FACTS, shifts=("west",)), model.PlanId("plan-1"))
    return p.steps[0].kind if p else None


LOGS, METRICS = model.SignalKind.LOGS, model.SignalKind.METRICS


def _calls_fail_at(callee: str, strength: float = 0.7) -> model.Evidence:
    """The logs investigator's evidence of catalog's error lines naming `callee`."""
    return diagnose_base.Names(**vars(_ev(LOGS, strength=strength)), named=(callee,))


def test_the_planner_reads_the_remedy_from_typed_evidence_not_its_text() -> None:
    # every observation is "x": only the fault, the kind, the names and the measures speak
    cache = _ev(LOGS, fault=model.FaultKind.CACHE)
    assert _kind(_diag(model.FaultKind.ERRORS, cache)) == model.ActionKind.CACHE_FLUSH
    cert = _ev(LOGS, fault=model.FaultKind.CERTIFICATE)
    assert _kind(_diag(model.FaultKind.ERRORS, cert)) == model.ActionKind.CERT_RENEW
    plain = _ev(LOGS)
    assert _kind(_diag(model.FaultKind.ERRORS, plain)) is None  # nothing precise: a human
    weak = _ev(LOGS, fault=model.FaultKind.CACHE, strength=0.1)
    assert _kind(_diag(model.FaultKind.ERRORS, weak)) is None  # too weak to act on
    elsewhere = _ev(LOGS, fault=model.FaultKind.CACHE, service="cart")
    assert _kind(_diag(model.FaultKind.ERRORS, elsewhere)) is None  # another service's cache


def test_calls_failing_at_an_unreachable_callee_shift_traffic() -> None:
    down = _ev(LOGS, fault=model.FaultKind.UNREACHABLE, service="inventory-east", strength=0.9)
    calls = _calls_fail_at("inventory-east")
    d = _diag(model.FaultKind.ERRORS, calls, seen=(down,))
    regional = dataclasses.replace(FACTS, shifts=("west",))
    p = plan.propose(d, regional, model.PlanId("plan-3"))
    assert p is not None and p.steps[0] == model.Action(
        model.ActionKind.TRAFFIC_SHIFT, "catalog",
        model.params(to_region="west", snapshot="plan-3"))
    # a caller that has no other region to send those calls to: a human decides
    assert plan.propose(d, FACTS, model.PlanId("plan-3")) is None
    # the named callee failing but reachable, or unreachable by weak evidence: no shift
    failing = _ev(LOGS, fault=model.FaultKind.ERRORS, service="inventory-east", strength=0.9)
    assert _kind(_diag(model.FaultKind.ERRORS, calls, seen=(failing,))) is None
    faint = _ev(LOGS, fault=model.FaultKind.UNREACHABLE, service="inventory-east",
                strength=0.1)
    assert _kind(_diag(model.FaultKind.ERRORS, calls, seen=(faint,))) is None
    # a service that is unreachable but not where catalog's failures are seen: no shift
    other = dataclasses.replace(down, service="inventory-west")
    assert _kind(_diag(model.FaultKind.ERRORS, calls, seen=(other,))) is None


def test_a_surge_scales_to_the_measured_rate_and_a_plain_latency_does_not() -> None:
    surge = _ev(METRICS, fault=model.FaultKind.LATENCY, measures=_rate(10, 27))
    p = plan.propose(_diag(model.FaultKind.LATENCY, surge), FACTS, model.PlanId("p"))
    # 10 -> 27 requests/s would want 6 replicas; one step at most doubles the service
    assert p is not None and p.steps[0].params == model.params(from_replicas=2, to_replicas=4)
    small = _ev(METRICS, fault=model.FaultKind.LATENCY, measures=_rate(10, 16))
    facts = plan.Facts(service="catalog", version="3.1.0", replicas=4)
    p = plan.propose(_diag(model.FaultKind.LATENCY, small), facts, model.PlanId("p"))
    assert p is not None and p.steps[0].params == model.params(from_replicas=4, to_replicas=7)
    calm = _ev(METRICS, fault=model.FaultKind.LATENCY, measures=_rate(10, 9))
    assert _kind(_diag(model.FaultKind.LATENCY, calm)) is None
    unmeasured = _ev(METRICS, fault=model.FaultKind.LATENCY)
    assert _kind(_diag(model.FaultKind.LATENCY, unmeasured)) is None
    half = _ev(METRICS, fault=model.FaultKind.LATENCY,
               measures=((model.REQUEST_RATE_NOW, 27.0),))
    assert _kind(_diag(model.FaultKind.LATENCY, half)) is None  # no baseline, no ratio


@given(was=st.floats(0.5, 1e4), factor=st.floats(1.51, 20.0), replicas=st.integers(1, 8))
def test_the_scale_target_follows_the_measured_ratio_within_one_doubling(
        was: float, factor: float, replicas: int) -> None:
    surge = _ev(METRICS, fault=model.FaultKind.LATENCY, measures=_rate(was, was * factor))
    facts = plan.Facts(service="catalog", version="3.1.0", replicas=replicas)
    p = plan.propose(_diag(model.FaultKind.LATENCY, surge), facts, model.PlanId("p"))
    assert p is not None
    target = int(p.steps[0].param("to_replicas"))
    assert replicas < target <= min(2 * replicas, 16)
    # enough replicas for the measured load, unless that takes more than one doubling
    assert target >= min(2 * replicas, math.ceil(replicas * factor - 1e-6), 16)


def test_rewording_an_observation_does_not_change_the_plan() -> None:
    down = _ev(LOGS, fault=model.FaultKind.UNREACHABLE, service="inventory-east", strength=0.9)
    cases = [
        (model.FaultKind.ERRORS, _ev(LOGS, fault=model.FaultKind.CACHE), ()),
        (model.FaultKind.ERRORS, _ev(LOGS, fault=model.FaultKind.OVERLOAD), ()),
        (model.FaultKind.LATENCY, _ev(METRICS, fault=model.FaultKind.LATENCY,
                                      measures=_rate(5.7, 10.6)), ()),
        (model.FaultKind.ERRORS, _calls_fail_at("inventory-east"), (down,)),
        (model.FaultKind.ERRORS, _ev(LOGS), ()),
    ]
    words = ["x", "", "cache entry /items is corrupt", "connection pool exhausted",
             "request_rate 10 -> 100 (z=9, traffic)", "call to inventory-east/stock failed",
             "region east is down", "everything is fine"]
    for fault, item, seen in cases:
        plans = set()
        for text in words:
            d = _diag(fault, dataclasses.replace(item, observation=text), seen=seen)
            p = plan.propose(d, FACTS, model.PlanId("p"))
            plans.add(p.steps if p else None)
        assert len(plans) == 1, (item, plans)


def test_config_revert_needs_a_config_change_to_take_back() -> None:
    logs = _ev(model.SignalKind.LOGS, "config r2 rejected", model.FaultKind.CONFIG)
    d = _diag(model.FaultKind.CONFIG, logs, family=model.ActionKind.CONFIG_REVERT)
    assert _kind(d) is None
    change = _ev(model.SignalKind.CHANGES, "config of catalog r1 -> r2 by alice",
                 model.FaultKind.CONFIG)
    d = _diag(model.FaultKind.CONFIG, logs, change, family=model.ActionKind.CONFIG_REVERT)
    p = plan.propose(d, FACTS, model.PlanId("plan-7"))
    assert p is not None and p.steps[0] == model.Action(
        model.ActionKind.CONFIG_REVERT, "catalog", model.params(snapshot="plan-7"))
    assert p.inverse == (model.Action(model.ActionKind.CONFIG_REVERT, "catalog",
                                      model.params(restore="plan-7")),)
    assert not p.canary


def test_an_exhausted_pool_scales_even_when_the_fault_reads_as_errors() -> None:
    pool = _ev(LOGS, fault=model.FaultKind.OVERLOAD)  # the logs investigator's saturation
    assert _kind(_diag(model.FaultKind.ERRORS, pool)) == model.ActionKind.SCALE
    assert _kind(_diag(model.FaultKind.MEMORY_LEAK, pool)) is None  # not a saturation fault
    busy = _ev(METRICS, fault=model.FaultKind.OVERLOAD)  # a CPU or traffic move is not enough
    assert _kind(_diag(model.FaultKind.ERRORS, busy)) is None
