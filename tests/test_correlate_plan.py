"""Correlation by topology and the planner's choice of rollback target."""

from __future__ import annotations

import itertools

from selfheal import correlate, detect, model, plan
from selfheal.shop import spec

TOPOLOGY = {"frontend": ("auth", "checkout"), "checkout": ("cart",), "auth": (), "cart": ()}


def _finding(service: str, metric: str = "p99_latency_s") -> detect.ServiceFinding:
    a = model.Anomaly(id=model.AnomalyId(f"a-{service}"), service=service, metric=metric,
                      detector="level", started_at=1.0, detected_at=2.0, score=0.9,
                      baseline=1.0, observed=2.0, explanation="up")
    return detect.ServiceFinding(service, 0.9, True, (a,), (), f"{service}: {metric}")


def _ids() -> model.IncidentId:
    return model.IncidentId(f"inc-{next(_counter)}")


_counter = itertools.count()


def test_caller_symptoms_join_the_open_incident_of_their_callee() -> None:
    out = correlate.correlate([_finding("frontend"), _finding("cart")],
                              open_incidents={"cart": model.IncidentId("inc-cart")},
                              topology=TOPOLOGY, quiet_until={}, now=10.0, new_id=_ids)
    assert out.new == ()  # frontend calls cart through checkout: a symptom, not a new incident
    assert [(i, f.service) for i, f in out.joined] == [("inc-cart", "frontend")]


def test_unrelated_services_open_their_own_incidents_unless_quiet() -> None:
    out = correlate.correlate([_finding("auth"), _finding("cart")],
                              open_incidents={"checkout": model.IncidentId("inc-x")},
                              topology=TOPOLOGY, quiet_until={"cart": 20.0}, now=10.0,
                              new_id=_ids)
    assert [i.service for i in out.new] == ["auth"]
    assert out.joined == ()


def _diag(service: str = "auth") -> model.Diagnosis:
    h = model.Hypothesis(service=service, fault=model.FaultKind.BAD_DEPLOY,
                         action_family=model.ActionKind.ROLLBACK, probability=0.9,
                         evidence_for=())
    return model.Diagnosis(incident_id=model.IncidentId("inc-1"), at=0.0, hypotheses=(h,),
                           sufficient=True)


def _deploy(frm: str, to: str) -> model.Change:
    return model.Change(id=model.ChangeId("c1"), t=1.0, service="auth", kind="deploy",
                        who="ci-bot", what="deploy", from_version=frm, to_version=to)


def test_rollback_returns_to_the_version_before_the_live_deploy() -> None:
    facts = plan.Facts("auth", "1.2.1", replicas=2, last_deploy=_deploy("1.2.0", "1.2.1"))
    p = plan.propose(_diag(), facts, model.PlanId("p"))
    assert p is not None
    assert p.steps[0].params == model.params(from_version="1.2.1", to_version="1.2.0")
    assert p.inverse[0].params == model.params(from_version="1.2.0", to_version="1.2.1")
    assert p.canary


def test_no_rollback_when_the_live_version_did_not_come_from_that_deploy() -> None:
    # auth was already rolled back to 1.2.0: "rolling back" again would redeploy 1.2.1
    facts = plan.Facts("auth", "1.2.0", replicas=2, last_deploy=_deploy("1.2.0", "1.2.1"))
    assert plan.propose(_diag(), facts, model.PlanId("p")) is None
    assert plan.propose(_diag(), plan.Facts("auth", "1.2.1", replicas=2),
                        model.PlanId("p")) is None


def test_no_plan_for_another_service_than_the_facts() -> None:
    facts = plan.Facts("auth", "1.2.1", replicas=2, last_deploy=_deploy("1.2.0", "1.2.1"))
    assert plan.propose(_diag("cart"), facts, model.PlanId("p")) is None


def test_callee_and_caller_breaking_in_the_same_tick_make_one_incident() -> None:
    out = correlate.correlate([_finding("frontend"), _finding("auth", "rss_bytes")],
                              open_incidents={}, topology=TOPOLOGY, quiet_until={}, now=10.0,
                              new_id=_ids)
    assert [i.service for i in out.new] == ["auth"]
    assert [(f.service, i) for i, f in out.joined] == [("frontend", out.new[0].id)]


def test_a_finding_may_join_an_incident_opened_in_the_same_tick() -> None:
    """The joined incident id must be one of `new` or of the open ones (never unknown)."""
    out = correlate.correlate([_finding("checkout"), _finding("cart", "rss_bytes"),
                               _finding("frontend")], open_incidents={}, topology=TOPOLOGY,
                              quiet_until={}, now=10.0, new_id=_ids)
    known = {i.id for i in out.new}
    assert [i.service for i in out.new] == ["cart"]
    assert {f.service for _, f in out.joined} == {"checkout", "frontend"}
    assert all(i in known for i, _ in out.joined)


def test_a_remedy_disturbs_its_callers_its_callees_and_its_stalled_callers_other_callees(
) -> None:
    topology = spec.dependencies(regions=True)
    # frontend and checkout call cart; stalled on a hung cart (symptoms of its incident), they
    # send their other callees (auth, catalog) the requests they held back once it is healed
    assert correlate.around("cart", topology, stalled={"frontend", "checkout"}) == {
        "cart", "frontend", "checkout", "auth", "catalog"}
    # a caller that was not a symptom held nothing back: no rebound through it
    assert correlate.around("cart", topology, stalled={"checkout"}) == {
        "cart", "frontend", "checkout", "catalog"}
    assert correlate.around("cart", topology) == {"cart", "frontend", "checkout"}
    # catalog alone calls the regions: a traffic shift between them disturbs the other one,
    # and every caller up the graph, but not auth or cart
    assert correlate.around("inventory-east", topology, stalled={"catalog"}) == {
        "inventory-east", "inventory-west", "catalog", "frontend", "checkout"}
    assert correlate.around("auth", {"auth": ()}, stalled={"frontend"}) == {"auth"}


def test_an_anomaly_that_outlasts_the_quiet_opens_its_incident_then() -> None:
    quiet = {"auth": 20.0}
    during = correlate.correlate([_finding("auth")], open_incidents={}, topology=TOPOLOGY,
                                 quiet_until=quiet, now=19.0, new_id=_ids)
    after = correlate.correlate([_finding("auth")], open_incidents={}, topology=TOPOLOGY,
                                quiet_until=quiet, now=20.0, new_id=_ids)
    assert during.new == () and during.joined == ()
    assert [i.service for i in after.new] == ["auth"]
