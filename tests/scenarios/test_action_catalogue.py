"""The catalogue's typed actions and the planner's choice of remedy (pure, no processes)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from selfheal import catalogue, model, plan

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


def _ev(kind: model.SignalKind, obs: str, fault: model.FaultKind = model.FaultKind.ERRORS,
        service: str = "catalog", strength: float = 0.7) -> model.Evidence:
    return model.Evidence("x", kind, model.EvidenceStatus.OK, "q", obs, service, fault, strength)


def _diag(fault: model.FaultKind, *evidence: model.Evidence,
          family: model.ActionKind | None = None) -> model.Diagnosis:
    h = model.Hypothesis("catalog", fault, family, 0.9, tuple(evidence))
    return model.Diagnosis(model.IncidentId("inc-1"), 0.0, (h,), True)


FACTS = plan.Facts(service="catalog", version="3.1.0", replicas=2)


def _kind(d: model.Diagnosis) -> model.ActionKind | None:
    p = plan.propose(d, FACTS, model.PlanId("plan-1"))
    return p.steps[0].kind if p else None


def test_the_planner_reads_the_remedy_from_precise_evidence() -> None:
    logs = model.SignalKind.LOGS
    cache = _ev(logs, "catalog: new template x9: 'cache entry /items is corrupt: cannot "
                "decode <*>'")
    assert _kind(_diag(model.FaultKind.ERRORS, cache)) == model.ActionKind.CACHE_FLUSH
    region = _ev(logs, "catalog: 'call to inventory-east/stock failed: <*>'")
    assert _kind(_diag(model.FaultKind.ERRORS, region)) == model.ActionKind.TRAFFIC_SHIFT
    cert = _ev(logs, "tls handshake failed", model.FaultKind.CERTIFICATE)
    assert _kind(_diag(model.FaultKind.ERRORS, cert)) == model.ActionKind.CERT_RENEW
    novel = _ev(logs, "catalog: 'order rejected by the ledger: constraint violation'")
    assert _kind(_diag(model.FaultKind.ERRORS, novel)) is None
    weak = _ev(logs, "cache entry /items is corrupt", strength=0.1)
    assert _kind(_diag(model.FaultKind.ERRORS, weak)) is None  # too weak to act on


def test_a_surge_scales_and_a_plain_latency_does_not() -> None:
    m = model.SignalKind.METRICS
    surge = _ev(m, "catalog: 2 series moved: p99_latency_s 0.1 -> 1.2 (z=9, latency); "
                "request_rate 10 -> 27 (z=5, traffic)", model.FaultKind.LATENCY)
    p = plan.propose(_diag(model.FaultKind.LATENCY, surge), FACTS, model.PlanId("p"))
    # 10 -> 27 requests/s would want 6 replicas; one step at most doubles the service
    assert p is not None and p.steps[0].params == model.params(from_replicas=2, to_replicas=4)
    small = _ev(m, "catalog: 2 series moved: p99_latency_s 0.1 -> 1.2 (z=9, latency); "
                "request_rate 10 -> 16 (z=5, traffic)", model.FaultKind.LATENCY)
    facts = plan.Facts(service="catalog", version="3.1.0", replicas=4)
    p = plan.propose(_diag(model.FaultKind.LATENCY, small), facts, model.PlanId("p"))
    assert p is not None and p.steps[0].params == model.params(from_replicas=4, to_replicas=7)
    calm = _ev(m, "catalog: 2 series moved: p99_latency_s 0.1 -> 1.2 (z=9, latency); "
               "request_rate 10 -> 9 (z=3, traffic)", model.FaultKind.LATENCY)
    assert _kind(_diag(model.FaultKind.LATENCY, calm)) is None


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
    pool = _ev(model.SignalKind.LOGS, "checkout: new template x7: 'connection pool exhausted: "
               "a request waited <*> ms for one of <*> connections'")
    assert _kind(_diag(model.FaultKind.ERRORS, pool)) == model.ActionKind.SCALE
    assert _kind(_diag(model.FaultKind.MEMORY_LEAK, pool)) is None  # not a saturation fault
