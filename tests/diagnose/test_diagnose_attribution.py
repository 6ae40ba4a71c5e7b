"""Who is to blame, and who is merely failing less: rare operations, error paths, named services.

Synthetic windows check each rule both ways: a rare operation that skips its calls counts once
a Fisher exact test says the drop is no accident; an error handler called less often and an
error template that vanished are a service failing *less*; an error line naming another service
weighs less for the one logging it. Then evidence against a hypothesis keeps its direction as a
type, and the benchmark reports the accuracy of the cases it acted on.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from selfheal import diagnose, model
from selfheal.bench import rca
from selfheal.diagnose import base, reconcile
from selfheal.diagnose import logs as logs_mod
from selfheal.diagnose import metrics as metrics_mod
from selfheal.diagnose import topology as topology_mod
from selfheal.diagnose import traces as traces_mod
from selfheal.sources import nezha

pytestmark = pytest.mark.timeout(120)

SETTINGS = diagnose.DEFAULT_SETTINGS
T0 = 1_700_000_000.0


def _window(
    spans: list[model.Span] | None = None,
    logs: list[model.LogRecord] | None = None,
    topology: dict[str, tuple[str, ...]] | None = None,
) -> diagnose.Window:
    incident = model.Incident(model.IncidentId("inc-a"), "", T0, "test", ())
    return diagnose.Window(
        incident=incident, start=T0, end=T0 + 180, baseline_start=T0 - 600,
        baseline_end=T0 - 1, metrics=None, logs=logs, changes=None, spans=spans,
        topology=topology or {"frontend": ("checkout",), "checkout": ("email", "shipping")},
    )


# --- the exact test ------------------------------------------------------------------------


def test_fewer_calls_p_is_the_hypergeometric_tail() -> None:
    # 38 of 38 baseline spans made the call, 2 of 7 incident spans did: only x=2 is possible
    # at or below 2 (the 5 spans without the call must all be incident spans).
    expected = math.comb(40, 2) * math.comb(5, 5) / math.comb(45, 7)
    assert traces_mod.fewer_calls_p(38, 38, 2, 7) == pytest.approx(expected, rel=1e-9)
    assert traces_mod.fewer_calls_p(38, 38, 2, 7) < SETTINGS.behaviour_p_value
    # one of two calls skipped, against one of two before: nothing to see
    assert traces_mod.fewer_calls_p(1, 2, 1, 2) > 0.5


@hsettings(max_examples=200, deadline=None)
@given(
    n_before=st.integers(1, 60),
    n_during=st.integers(1, 60),
    data=st.data(),
)
def test_fewer_calls_p_is_a_probability_growing_with_the_calls_made(
    n_before: int, n_during: int, data: st.DataObject
) -> None:
    k_before = data.draw(st.integers(0, n_before))
    ps = [traces_mod.fewer_calls_p(k_before, n_before, k, n_during) for k in range(n_during + 1)]
    assert all(0.0 <= p <= 1.0 for p in ps)
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(ps))
    assert ps[-1] == pytest.approx(1.0)  # making every call cannot be a drop


# --- traces: rare operations and error paths -----------------------------------------------


def _orders(
    before: int,
    during: int,
    made_during: int,
    child: str = "SendOrderConfirmation",
    made_before: int | None = None,
) -> list[model.Span]:
    """checkout's PlaceOrder spans: the first `made_before` (default all) before and the first
    `made_during` after call `child`."""
    spans: list[model.Span] = []
    made = {"b": before if made_before is None else made_before, "d": made_during}
    for side, count, t0 in (("b", before, T0 - 500), ("d", during, T0 + 10)):
        for i in range(count):
            start = t0 + i * 150.0 / max(count, 1)
            span = model.Span("tr", f"{side}{i}", "", "checkout", "PlaceOrder", start,
                              start + 0.2)
            spans.append(span)
            if i < made[side]:
                spans.append(model.Span("tr", f"{side}{i}c", span.span_id, "checkout", child,
                                        start + 0.05, start + 0.06))
    return spans


def test_a_rare_operation_that_skips_its_calls_is_news() -> None:
    found = traces_mod.TracesInvestigator().investigate(
        _window(spans=_orders(38, 7, made_during=2)), (), SETTINGS)
    checkout = [e for e in found if e.service == "checkout"]
    assert checkout and checkout[0].fault is model.FaultKind.ERRORS
    assert "SendOrderConfirmation" in checkout[0].observation
    assert checkout[0].strength >= SETTINGS.support_strength


@pytest.mark.parametrize(("before", "during", "made"), [(38, 7, 6), (4, 7, 2), (38, 3, 0)])
def test_too_few_spans_or_a_small_drop_is_not_news(before: int, during: int, made: int) -> None:
    found = traces_mod.TracesInvestigator().investigate(
        _window(spans=_orders(before, during, made_during=made)), (), SETTINGS)
    assert not [e for e in found if e.service == "checkout"]


def test_an_error_handler_called_less_often_is_a_service_failing_less() -> None:
    # before, 20 of 38 orders ended in the error controller; now none of 30 does
    spans = _orders(38, 30, made_during=0, child="BasicErrorController.error", made_before=20)
    found = traces_mod.TracesInvestigator().investigate(_window(spans=spans), (), SETTINGS)
    assert not [e for e in found if e.service == "checkout"]
    # the same drop in a call that is not an error path is news
    spans = _orders(38, 30, made_during=0, child="ShipOrder", made_before=20)
    found = traces_mod.TracesInvestigator().investigate(_window(spans=spans), (), SETTINGS)
    assert [e for e in found if e.service == "checkout" and e.fault is model.FaultKind.ERRORS]


# --- logs: vanished errors and named services ----------------------------------------------


def _lines(
    service: str, text: str, level: str, t0: float, t1: float, every: float
) -> list[model.LogRecord]:
    return [model.LogRecord(float(t), service, level, text.format(i=i))
            for i, t in enumerate(np.arange(t0, t1, every))]


def _busy(service: str) -> list[model.LogRecord]:
    return _lines(service, "handled request {i} in 5 ms", "INFO", T0 - 600, T0 + 180, 2.0)


def test_a_vanished_error_template_is_not_a_fault() -> None:
    gone = _lines("seat", "ERROR request failed: upstream refused connection {i}", "ERROR",
                  T0 - 600, T0 - 1, 20.0)
    found = logs_mod.LogsInvestigator().investigate(
        _window(logs=_busy("seat") + gone), (), SETTINGS)
    assert not [e for e in found if e.service == "seat"]
    # an ordinary code path that went silent while the service kept logging still counts
    quiet = _lines("seat", "reserved seat {i} on the train", "INFO", T0 - 600, T0 - 1, 20.0)
    found = logs_mod.LogsInvestigator().investigate(
        _window(logs=_busy("seat") + quiet), (), SETTINGS)
    assert [e for e in found if e.service == "seat" and "vanished" in e.observation]


def _new_error(service: str, text: str) -> list[model.LogRecord]:
    return _busy(service) + _lines(service, text, "ERROR", T0 + 5, T0 + 100, 5.0)


def test_an_error_naming_another_service_says_so_and_names_no_fault() -> None:
    topology = {"seat": ("ts-config-service", "order")}
    named = "No instances available for ts-config-service (request {i})"
    found = logs_mod.LogsInvestigator().investigate(
        _window(logs=_new_error("seat", named), topology=topology), (), SETTINGS)
    seat = next(e for e in found if e.service == "seat")
    assert isinstance(seat, base.Names) and seat.named == ("ts-config-service",)
    n = 19  # lines of the new template in the incident window
    assert seat.strength == pytest.approx(
        SETTINGS.log_new_error_strength * n / (n + SETTINGS.log_new_half_count))
    assert seat.fault is model.FaultKind.ERRORS  # not CONFIG: that word is part of a name
    plain = "No instances available for the pricing table (request {i})"
    found = logs_mod.LogsInvestigator().investigate(
        _window(logs=_new_error("seat", plain), topology=topology), (), SETTINGS)
    seat = next(e for e in found if e.service == "seat")
    assert not isinstance(seat, base.Names)


@pytest.mark.parametrize("every", [40.0, 4.0])
def test_a_few_new_error_lines_weigh_less_than_many(every: float) -> None:
    lines = _busy("seat") + _lines("seat", "ERROR payment declined: card {i} expired", "ERROR",
                                   T0 + 5, T0 + 125, every)
    found = logs_mod.LogsInvestigator().investigate(_window(logs=lines), (), SETTINGS)
    seat = next(e for e in found if e.service == "seat")
    n = len(np.arange(T0 + 5, T0 + 125, every))
    assert seat.strength == pytest.approx(
        SETTINGS.log_new_error_strength * n / (n + SETTINGS.log_new_half_count))
    if n <= SETTINGS.log_new_half_count:
        assert seat.strength < SETTINGS.support_strength + 0.1


def _names(strength: float) -> base.Names:
    return base.Names("logs", model.SignalKind.LOGS, model.EvidenceStatus.OK, "q",
                      "seat: No instances available for config", "seat",
                      model.FaultKind.ERRORS, strength, named=("config",))


@pytest.mark.parametrize(("config_own", "explained"), [(0.4, True), (0.05, False)])
def test_a_named_service_anomalous_on_its_own_explains_the_error_lines(
    config_own: float, explained: bool
) -> None:
    prior = [_names(0.7), _item("config", model.SignalKind.METRICS, config_own)]
    # what callers testify about config is not config's own signal: it cannot explain itself
    testimony = model.Evidence("callee-logs", model.SignalKind.LOGS, model.EvidenceStatus.OK,
                               "q", "callers name config", "config", model.FaultKind.UNKNOWN,
                               0.9)
    found = topology_mod.TopologyInvestigator().investigate(
        _window(topology={"seat": ("config",)}), (*prior, testimony), SETTINGS)
    against = [e for e in found if e.service == "seat" and base.is_against(e)]
    if explained:
        assert against and isinstance(against[0], base.Against)
        assert against[0].explained_by == "config"
        assert against[0].strength == pytest.approx(0.7 * SETTINGS.log_named_service_discount)
        result = reconcile.reconcile(model.IncidentId("i"), T0, (*prior, *found), SETTINGS)
        assert result.top is not None and result.top.service == "config"
    else:
        assert not against
    back = base.evidence_from_jsonable(model.to_jsonable(_names(0.7)))
    assert isinstance(back, base.Names) and back == _names(0.7)


# --- evidence against ----------------------------------------------------------------------


def _item(service: str, kind: model.SignalKind, strength: float) -> model.Evidence:
    return model.Evidence(kind.value, kind, model.EvidenceStatus.OK, "q", "o", service,
                          model.FaultKind.LATENCY, strength)


def test_evidence_against_keeps_its_direction_through_json() -> None:
    against = base.Against("topology", model.SignalKind.TOPOLOGY, model.EvidenceStatus.OK,
                           "q", "frontend's symptoms are explained by cart", "frontend",
                           model.FaultKind.DEPENDENCY, 0.6, explained_by="cart")
    back = base.evidence_from_jsonable(model.to_jsonable(against))
    assert isinstance(back, base.Against) and back == against
    plain = _item("cart", model.SignalKind.METRICS, 0.5)
    assert base.evidence_from_jsonable(model.to_jsonable(plain)) == plain
    assert not base.is_against(plain)

    evidence = (_item("frontend", model.SignalKind.METRICS, 0.7),
                _item("frontend", model.SignalKind.LOGS, 0.5), against,
                _item("cart", model.SignalKind.METRICS, 0.5))
    result = reconcile.reconcile(model.IncidentId("i"), T0, evidence, SETTINGS)
    frontend = next(h for h in result.hypotheses if h.service == "frontend")
    assert against in frontend.evidence_against and against not in frontend.evidence_for
    without = reconcile.reconcile(model.IncidentId("i"), T0, evidence[:2] + evidence[3:],
                                  SETTINGS)
    assert frontend.probability < next(
        h.probability for h in without.hypotheses if h.service == "frontend")


# --- the benchmark's selective accuracy ----------------------------------------------------


def _case(service: str, top: str, sufficient: bool) -> rca.Case:
    fault = nezha.Fault("d", "00", T0, f"{service}-a-b", service, "cpu_contention")
    return rca.Case("sys", "d", fault, (top,), model.FaultKind.OVERLOAD, 0.9, sufficient, 0.1)


def test_selective_accuracy_counts_only_the_cases_acted_on() -> None:
    cases = [_case("a", "a", True), _case("b", "x", True), _case("c", "x", False),
             _case("d", "d", False)]
    score = rca.score(cases)
    assert score.acted == 2 and score.selective_ac1 == pytest.approx(0.5)
    assert score.ac1 == pytest.approx(0.5) and score.abstain == pytest.approx(0.5)
    as_json = score.as_json()
    assert as_json["selective_ac@1"] == pytest.approx(0.5) and as_json["acted"] == 2
    assert rca.score([_case("c", "c", False)]).selective_ac1 is None


# --- layered verification: one strong kind, corroborated ------------------------------------


@pytest.mark.parametrize(
    ("metrics", "logs", "acts"),
    [(0.6, 0.2, True), (0.6, 0.1, False), (0.25, 0.25, False), (0.6, 0.0, False)],
)
def test_one_strong_kind_needs_an_independent_corroboration(
    metrics: float, logs: float, acts: bool
) -> None:
    evidence = [_item("cart", model.SignalKind.METRICS, metrics)]
    if logs:
        evidence.append(_item("cart", model.SignalKind.LOGS, logs))
    result = reconcile.reconcile(model.IncidentId("i"), T0, evidence, SETTINGS)
    assert result.top is not None and result.top.service == "cart"
    assert result.sufficient is acts
    if not result.sufficient:
        assert any("cart" in m for m in result.missing)


# --- traces: slower processing versus a slower wire ------------------------------------------


def _calls(cart_ms: float, wire_ms: float) -> list[model.Span]:
    """frontend and checkout call cart 30 times each before (8 ms in cart, 2 ms on the wire)
    and 30 times each during."""
    spans: list[model.Span] = []
    for side, t0, cart, wire in (("b", T0 - 500, 8.0, 2.0), ("d", T0 + 10, cart_ms, wire_ms)):
        for caller in ("frontend", "checkout"):
            for i in range(30):
                start = t0 + i * 5.0
                client = model.Span("tr", f"{caller}{side}{i}", "", caller, "GetCart", start,
                                    start + (cart + wire) / 1e3)
                server = model.Span("tr", f"{caller}{side}{i}s", client.span_id, "cart",
                                    "GetCart", start + wire / 2e3, start + (cart + wire / 2) / 1e3)
                spans += [client, server]
    return spans


@pytest.mark.parametrize(("cart_ms", "fault"), [(80.0, model.FaultKind.OVERLOAD),
                                                (8.0, model.FaultKind.LATENCY)])
def test_slower_processing_is_overload_and_a_slower_wire_alone_is_latency(
    cart_ms: float, fault: model.FaultKind
) -> None:
    found = traces_mod.TracesInvestigator().investigate(
        _window(spans=_calls(cart_ms, 400.0),
                topology={"frontend": ("cart",), "checkout": ("cart",)}), (), SETTINGS)
    cart = [e for e in found if e.service == "cart"]
    assert cart and cart[0].fault is fault
    assert "wire time grew" in cart[0].observation


@pytest.mark.parametrize(("frontend_traces", "victim"), [(0.0, True), (0.3, True), (0.9, False)])
def test_a_caller_whose_own_traces_moved_more_is_not_its_callees_victim(
    frontend_traces: float, victim: bool
) -> None:
    # frontend's users see failures (metrics); ads moved on its own (traces, 0.6)
    prior = [_item("frontend", model.SignalKind.METRICS, 0.8),
             _item("ads", model.SignalKind.TRACES, 0.6)]
    if frontend_traces:
        prior.append(_item("frontend", model.SignalKind.TRACES, frontend_traces))
    found = topology_mod.TopologyInvestigator().investigate(
        _window(topology={"frontend": ("ads",)}), prior, SETTINGS)
    against = [e for e in found if e.service == "frontend" and base.is_against(e)]
    assert bool(against) is victim


# --- metrics: down is not starved ------------------------------------------------------------


@pytest.mark.parametrize("down", [True, False])
def test_a_service_whose_replicas_stopped_answering_is_down_not_starved(down: bool) -> None:
    rng = np.random.default_rng(3)
    metrics: dict[tuple[str, str], list[model.Sample]] = {}
    for step in range(-60, 30):
        t = T0 + step * 5.0
        after = step >= 0
        values = {"request_rate": 0.0 if after else 20.0 + rng.normal(0, 1),
                  "up": 0.0 if after and down else 1.0}
        for metric, value in values.items():
            metrics.setdefault(("auth", metric), []).append(
                model.Sample(t=t, service="auth", metric=metric, value=float(value)))
    window = dataclasses.replace(_window(topology={"frontend": ("auth",)}), metrics=metrics)
    found = metrics_mod.MetricsInvestigator().investigate(window, (), SETTINGS)
    auth = next(e for e in found if e.service == "auth")
    if down:
        assert "only its load fell" not in auth.observation and "up 1 -> 0" in auth.observation
        assert auth.strength >= SETTINGS.support_strength
    else:
        assert "only its load fell" in auth.observation
        assert auth.strength < SETTINGS.support_strength
