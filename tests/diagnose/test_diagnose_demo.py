"""The demo shop's bad deploy of auth, end to end through every investigator and the reconciler."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from selfheal import diagnose, model

pytestmark = pytest.mark.timeout(60)

Make = Callable[..., diagnose.Window]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_demo_blames_the_auth_deploy(make_demo: Make, seed: int) -> None:
    window = make_demo(seed)
    result = diagnose.diagnose(window, now=window.end)
    top = result.top
    assert top is not None
    assert top.service == "auth"
    assert top.fault is model.FaultKind.BAD_DEPLOY
    assert top.action_family is model.ActionKind.ROLLBACK
    assert top.probability >= 0.8
    assert result.sufficient, result.missing
    kinds = {e.kind for e in top.evidence_for if e.strength >= 0.3}
    assert {model.SignalKind.METRICS, model.SignalKind.LOGS, model.SignalKind.CHANGES} <= kinds
    # the GC warnings are what the logs investigator found, with the query it ran
    logs = [e for e in top.evidence_for if e.kind is model.SignalKind.LOGS]
    assert "gc: full collection" in logs[0].observation
    assert "drain3" in logs[0].query


def test_frontend_is_explained_by_auth(make_demo: Make) -> None:
    result = diagnose.diagnose(make_demo(0), now=make_demo(0).end)
    services = [h.service for h in result.hypotheses]
    assert "frontend" in services
    assert services.index("auth") < services.index("frontend")
    frontend = result.hypotheses[services.index("frontend")]
    against = [e for e in frontend.evidence_against if e.kind is model.SignalKind.TOPOLOGY]
    assert against and "auth" in against[0].observation
    assert frontend.fault is not model.FaultKind.BAD_DEPLOY


def test_probabilities_are_a_distribution(make_demo: Make) -> None:
    result = diagnose.diagnose(make_demo(3), now=make_demo(3).end)
    total = sum(h.probability for h in result.hypotheses)
    assert 0.0 < total <= 1.0 + 1e-9
    ordered = [h.probability for h in result.hypotheses]
    assert ordered == sorted(ordered, reverse=True)


def test_only_metrics_is_insufficient(make_demo: Make) -> None:
    window = dataclasses.replace(make_demo(0), logs=None, changes=None)
    result = diagnose.diagnose(window, now=window.end)
    assert result.top is not None and result.top.service == "auth"
    assert not result.sufficient
    text = " | ".join(result.missing)
    assert "no log data" in text
    assert "no change data" in text
    assert "only metrics support auth" in text


def test_missing_logs_still_sufficient_with_two_kinds(make_demo: Make) -> None:
    window = dataclasses.replace(make_demo(0), logs=None)
    result = diagnose.diagnose(window, now=window.end)
    assert result.top is not None and result.top.service == "auth"
    assert result.sufficient
    assert any("no log data" in m for m in result.missing)
    no_data = [e for e in result.evidence if e.status is model.EvidenceStatus.NO_DATA]
    assert {e.kind for e in no_data} >= {model.SignalKind.LOGS, model.SignalKind.TRACES}


def test_no_signals_at_all_abstains(make_demo: Make) -> None:
    window = dataclasses.replace(make_demo(0), metrics=None, logs=None, changes=None, spans=None)
    result = diagnose.diagnose(window, now=window.end)
    assert not result.sufficient
    assert result.top is None
    assert "no evidence points at any service" in result.missing


def test_human_theory_is_tested_not_trusted(make_demo: Make) -> None:
    window = make_demo(0, theories=("alice: look at the catalog",))
    result = diagnose.diagnose(window, now=window.end)
    assert result.top is not None and result.top.service == "auth"
    catalog = [h for h in result.hypotheses if h.service == "catalog"]
    assert catalog, "the theory must be ranked with the rest"
    human = [e for e in catalog[0].evidence_for if e.kind is model.SignalKind.HUMAN]
    assert human and "alice" in human[0].observation
    assert catalog[0].probability < 0.1
    assert "not supported by any real evidence" in catalog[0].summary


def test_human_theory_that_matches_the_evidence(make_demo: Make) -> None:
    window = make_demo(0, theories=("bob: the auth deploy leaks memory",))
    result = diagnose.diagnose(window, now=window.end)
    top = result.top
    assert top is not None and top.service == "auth"
    assert any(e.kind is model.SignalKind.HUMAN for e in top.evidence_for)
    assert "supported by real evidence" in top.summary


def test_theory_naming_nothing_is_no_data(make_demo: Make) -> None:
    window = make_demo(0, theories=("look at the mainframe",))
    result = diagnose.diagnose(window, now=window.end)
    human = [e for e in result.evidence if e.kind is model.SignalKind.HUMAN]
    assert human and human[0].status is model.EvidenceStatus.NO_DATA


def test_a_deploy_caught_while_its_replicas_restart_is_still_rolled_back(make_demo: Make) -> None:
    # Opened seconds after the deploy: auth's replicas do not answer (up 1 -> 0) and its
    # traffic is gone; the memory has not grown yet. Down is auth's own signal, not starvation.
    window = make_demo(0)
    deploy = next(iter(window.changes or ()))
    metrics: dict[tuple[str, str], list[model.Sample]] = {}
    for (service, metric), series in (window.metrics or {}).items():
        kept = list(series)
        if service == "auth" and metric in ("rss_bytes", "p99_latency_s", "gc_pause_s"):
            kept = [s for s in series if s.t <= deploy.t]  # not moved yet
        if service == "auth" and metric == "request_rate":
            kept = [dataclasses.replace(s, value=0.0) if s.t > deploy.t + 1 else s
                    for s in series]
        metrics[(service, metric)] = kept
    metrics[("auth", "up")] = [
        model.Sample(t=s.t, service="auth", metric="up", value=0.0 if s.t > deploy.t + 1 else 1.0)
        for s in metrics[("auth", "request_rate")]]
    result = diagnose.diagnose(dataclasses.replace(window, metrics=metrics), now=window.end)
    top = result.top
    assert top is not None and top.service == "auth"
    assert top.action_family is model.ActionKind.ROLLBACK
    own = [e for e in top.evidence_for if e.kind is model.SignalKind.METRICS]
    assert own and own[0].strength >= 0.3 and "only its load fell" not in own[0].observation
