"""Faults that load signals cannot show: a hung replica, a certificate about to expire.

The expiry rule of detection, and the health investigator's part in a whole diagnosis: a hung
cart replica must be blamed on cart (HUNG, fixed by a restart), not on checkout, whose calls to
it time out; the same window with every replica answering must not blame cart's health.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from selfheal import config, diagnose, model, plan
from selfheal.detect import expiry
from selfheal.diagnose import health

T0 = 1_700_000_000.0
HANG_AT = T0 + 60.0
END = T0 + 80.0
TOPOLOGY = {"frontend": ("cart", "checkout"), "checkout": ("cart",)}


def test_expiry_fires_inside_the_renewal_window_and_keeps_its_episode_start() -> None:
    rule = expiry.Expiry({"cert_ttl_s": 100.0})
    assert rule.update(T0, {("auth", "cert_ttl_s"): 150.0, ("auth", "rss_bytes"): 1.0}) == []
    first = rule.update(T0 + 60, {("auth", "cert_ttl_s"): 90.0})
    later = rule.update(T0 + 100, {("auth", "cert_ttl_s"): -10.0})
    assert [a.service for a in first] == ["auth"] and first[0].score < later[0].score == 1.0
    assert later[0].started_at == T0 + 60  # one episode, from when it entered the window
    assert "expired" in later[0].explanation and "expires in" in first[0].explanation
    # renewed: the episode ends, and a later one starts afresh
    assert rule.update(T0 + 101, {("auth", "cert_ttl_s"): 7e6}) == []
    assert rule.update(T0 + 200, {("auth", "cert_ttl_s"): 50.0})[0].started_at == T0 + 200


def _hung_window(hang: bool, seed: int = 1) -> diagnose.Window:
    rng = np.random.default_rng(seed)
    metrics: dict[tuple[str, str], list[model.Sample]] = {}
    logs: list[model.LogRecord] = []
    for service in ("frontend", "checkout", "cart"):
        for step in range(81):
            t = T0 + step
            bad = step >= 60 and hang
            hurt = bad and service in ("frontend", "checkout")  # callers of the hung replica
            values = {
                "p99_latency_s": (float(rng.uniform(0.9, 1.1)) if hurt
                                  else 0.01 + abs(rng.normal(0, 0.001))),
                "error_ratio": 0.3 + rng.normal(0, 0.02) if hurt else abs(rng.normal(0, 1e-3)),
                "request_rate": 20 + rng.normal(0, 1),
                "rss_bytes": 3e7 + rng.normal(0, 1e5),
                "gc_pause_s": abs(rng.normal(0.001, 1e-4)),
                "up": 0.5 if bad and service == "cart" else 1.0,
            }
            for metric, value in values.items():
                metrics.setdefault((service, metric), []).append(
                    model.Sample(t=t, service=service, metric=metric, value=float(value)))
            logs.append(model.LogRecord(t + 0.1, service, "INFO",
                                        f"stats: served {int(rng.integers(90, 110))} requests"))
            if hurt and service == "checkout":
                logs.append(model.LogRecord(t + 0.5, service, "ERROR",
                                            "call to cart/cart failed: timed out"))
    anomaly = model.Anomaly(
        id=model.AnomalyId("a"), service="checkout", metric="error_ratio", detector="test",
        started_at=HANG_AT + 1, detected_at=HANG_AT + 4, score=0.9, baseline=0.0,
        observed=0.3, explanation="errors up")
    incident = model.Incident(id=model.IncidentId("inc-h"), service="checkout",
                              opened_at=HANG_AT + 4, title="checkout errors",
                              anomalies=(anomaly,))
    return diagnose.Window(incident=incident, start=HANG_AT - 5, end=END, baseline_start=T0,
                           baseline_end=HANG_AT - 5, metrics=metrics, logs=logs, changes=(),
                           spans=None, topology=TOPOLOGY)


def test_a_hung_replica_is_blamed_on_its_service_not_on_the_callers_it_stalls() -> None:
    diag = diagnose.diagnose(_hung_window(hang=True), END)
    top = diag.top
    assert top is not None
    assert (top.service, top.fault, top.action_family) == (
        "cart", model.FaultKind.HUNG, model.ActionKind.RESTART)
    kinds = {e.kind for e in top.evidence_for if e.status is model.EvidenceStatus.OK}
    assert diag.sufficient and len(kinds - {model.SignalKind.HUMAN}) >= 2


def test_every_replica_answering_gives_no_hung_evidence() -> None:
    window = _hung_window(hang=True)
    healthy = {k: [model.Sample(s.t, s.service, s.metric, 1.0) if k[1] == "up" else s
                   for s in v] for k, v in (window.metrics or {}).items()}
    found = health.HealthInvestigator().investigate(
        _replace_metrics(window, healthy), (), diagnose.Settings())
    assert found == ()
    diag = diagnose.diagnose(_replace_metrics(window, healthy), END)
    assert all(h.fault is not model.FaultKind.HUNG for h in diag.hypotheses)


def test_a_replica_set_being_replaced_is_not_a_hang() -> None:
    window = _hung_window(hang=True)
    restart = model.Change(id=model.ChangeId("c"), t=HANG_AT, service="cart", kind="restart",
                           who="ops", what="restart cart")
    found = health.HealthInvestigator().investigate(
        _replace(window, changes=(restart,)), (), diagnose.Settings())
    assert found == ()


def _configured(text: str) -> diagnose.Settings:
    return diagnose.settings_from(config.parse(f"diagnose:\n{text}", "selfheal.yaml").diagnose)


def _silent_last(window: diagnose.Window, scrapes: int) -> diagnose.Window:
    """The window with one of cart's two replicas silent in only its latest `scrapes`."""
    cut = END - scrapes + 1
    metrics = {k: [model.Sample(s.t, s.service, s.metric, 0.5 if s.t >= cut else 1.0)
                   if k == ("cart", "up") else s for s in v]
               for k, v in (window.metrics or {}).items()}
    return _replace_metrics(window, metrics)


def test_the_config_sets_how_many_silent_scrapes_make_a_hang() -> None:
    window = _silent_last(_hung_window(hang=True), scrapes=5)
    default = health.HealthInvestigator().investigate(window, (), diagnose.DEFAULT_SETTINGS)
    assert [(e.service, e.fault) for e in default] == [("cart", model.FaultKind.HUNG)]
    assert "for the last 3 scrapes" in default[0].observation
    patient = _configured("  health_down_samples: 8\n")
    assert patient.health_down_samples == 8
    assert health.HealthInvestigator().investigate(window, (), patient) == ()
    # the whole verdict follows: cart's hang, or (waiting for more scrapes) no hang at all
    top = diagnose.diagnose(window, END).top
    assert top is not None and (top.service, top.fault) == ("cart", model.FaultKind.HUNG)
    assert all(h.fault is not model.FaultKind.HUNG
               for h in diagnose.diagnose(window, END, patient).hypotheses)
    # fewer than that many scrapes in the window at all: not yet a hang either
    assert health.HealthInvestigator().investigate(
        window, (), _configured("  health_down_samples: 600\n")) == ()


def test_the_config_sets_how_long_before_the_silence_a_change_excuses_it() -> None:
    restart = model.Change(id=model.ChangeId("c"), t=HANG_AT - 20.0, service="cart",
                           kind="restart", who="ops", what="restart cart")
    window = _replace(_hung_window(hang=True), changes=(restart,))
    # the latest 3 scrapes start at END - 2: the restart is 38 s before them
    found = health.HealthInvestigator().investigate(window, (), diagnose.DEFAULT_SETTINGS)
    assert [(e.service, e.fault) for e in found] == [("cart", model.FaultKind.HUNG)]
    wide = _configured("  health_change_margin_s: 40\n")
    assert health.HealthInvestigator().investigate(window, (), wide) == ()
    narrow = _configured("  health_change_margin_s: 37\n")
    assert len(health.HealthInvestigator().investigate(window, (), narrow)) == 1


def test_an_expiring_certificate_is_evidence_against_its_renewal_window() -> None:
    window = _hung_window(hang=False)
    metrics = dict(window.metrics or {})
    metrics[("cart", "cert_ttl_s")] = [
        model.Sample(T0 + s, "cart", "cert_ttl_s", 40.0 - s) for s in range(81)]
    found = health.HealthInvestigator({"cert_ttl_s": 30.0}).investigate(
        _replace_metrics(window, metrics), (), diagnose.Settings())
    assert [(e.service, e.fault) for e in found] == [("cart", model.FaultKind.CERTIFICATE)]
    assert "expired 40 s ago" in found[0].observation and found[0].strength == 1.0
    # a certificate far from its renewal window says nothing
    metrics[("cart", "cert_ttl_s")] = [
        model.Sample(T0 + s, "cart", "cert_ttl_s", 1000.0 - s) for s in range(81)]
    assert health.HealthInvestigator({"cert_ttl_s": 30.0}).investigate(
        _replace_metrics(window, metrics), (), diagnose.Settings()) == ()


def _replace_metrics(window: diagnose.Window,
                     metrics: dict[tuple[str, str], list[model.Sample]]) -> diagnose.Window:
    return _replace(window, metrics=metrics)


def _replace(window: diagnose.Window, **fields: object) -> diagnose.Window:
    return dataclasses.replace(window, **fields)  # type: ignore[arg-type]


def test_a_service_gone_silent_everywhere_is_unreachable_and_routed_around() -> None:
    window = _hung_window(hang=True)
    metrics = {k: [model.Sample(s.t, s.service, s.metric, 0.0)
                   if k == ("cart", "up") and s.t >= HANG_AT else s for s in v]
               for k, v in (window.metrics or {}).items()}
    found = health.HealthInvestigator().investigate(
        _replace_metrics(window, metrics), (), diagnose.Settings())
    assert [(e.service, e.fault) for e in found] == [("cart", model.FaultKind.UNREACHABLE)]
    diag = diagnose.diagnose(_replace_metrics(window, metrics), END)
    assert diag.top is not None and diag.top.fault is model.FaultKind.UNREACHABLE
    facts = plan.Facts(service="cart", version="1", replicas=2)
    # no other region to send the callers to: a restart cannot reach it, a human decides
    assert plan.propose(diag, facts, model.PlanId("p1")) is None
    routed = plan.propose(diag, dataclasses.replace(facts, failover=(("checkout", "west"),)),
                          model.PlanId("p2"))
    assert routed is not None
    step = routed.steps[0]
    assert (step.kind, step.service, step.param("to_region")) == (
        model.ActionKind.TRAFFIC_SHIFT, "checkout", "west")
    assert routed.inverse and routed.inverse[0].param("restore")
