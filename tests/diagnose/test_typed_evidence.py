"""Evidence says what the planner acts on in types: measures, faults, and their JSON round trip.

The planner reads `Evidence.kind`, `fault`, `strength` and `measures`, never the observation
text; these tests hold the investigators to saying it that way (the request rate as measures,
a callee nothing reaches as UNREACHABLE) and the ledger/API form to keeping it.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from selfheal import diagnose, model, plan, ports, reasoners
from selfheal.diagnose import base, health, logs, metrics
from selfheal.engine import revive

pytestmark = pytest.mark.timeout(60)

T0 = 1_700_000_000.0
ONSET = T0 + 60.0
END = T0 + 90.0
SETTINGS = diagnose.Settings()


def _window(metrics_: dict[tuple[str, str], list[model.Sample]] | None = None,
            logs: list[model.LogRecord] | None = None,
            topology: dict[str, tuple[str, ...]] | None = None) -> diagnose.Window:
    anomaly = model.Anomaly(
        id=model.AnomalyId("a"), service="catalog", metric="error_ratio", detector="test",
        started_at=ONSET, detected_at=ONSET + 3, score=0.9, baseline=0.0, observed=0.3,
        explanation="errors up")
    incident = model.Incident(id=model.IncidentId("inc-t"), service="catalog",
                              opened_at=ONSET + 3, title="t", anomalies=(anomaly,))
    return diagnose.Window(incident=incident, start=ONSET - 5, end=END, baseline_start=T0,
                           baseline_end=ONSET - 5, metrics=metrics_, logs=logs, changes=(),
                           spans=None, topology=topology or {})


# --- the metrics investigator measures the request rate -------------------------------------


def _surge_metrics(rate_now: float, seed: int = 0) -> dict[tuple[str, str], list[model.Sample]]:
    rng = np.random.default_rng(seed)
    out: dict[tuple[str, str], list[model.Sample]] = {}
    for step in range(91):
        t = T0 + step
        during = t >= ONSET
        values = {
            "p99_latency_s": (float(rng.uniform(0.9, 1.1)) if during
                              else 0.1 + abs(rng.normal(0, 0.005))),
            "request_rate": (rate_now if during else 10.0) + float(rng.normal(0, 0.2)),
        }
        for metric, value in values.items():
            out.setdefault(("checkout", metric), []).append(
                model.Sample(t, "checkout", metric, value))
    return out


@pytest.mark.parametrize("rate_now", [18.0, 40.0])
def test_the_metrics_evidence_measures_the_request_rate_it_saw_move(rate_now: float) -> None:
    found = metrics.MetricsInvestigator().investigate(
        _window(_surge_metrics(rate_now)), (), SETTINGS)
    (item,) = [e for e in found if e.service == "checkout"]
    was, now = item.measure(model.REQUEST_RATE_BASELINE), item.measure(model.REQUEST_RATE_NOW)
    assert was is not None and now is not None
    assert was == pytest.approx(10.0, abs=1.0)
    assert now == pytest.approx(rate_now, abs=1.5)


def test_no_request_rate_measure_when_the_traffic_did_not_move() -> None:
    calm = _surge_metrics(10.0)
    found = metrics.MetricsInvestigator().investigate(_window(calm), (), SETTINGS)
    (item,) = [e for e in found if e.service == "checkout"]
    assert item.fault is model.FaultKind.LATENCY  # the latency moved ...
    assert item.measures == ()  # ... the traffic did not: nothing to size a scale-out by


# --- callers' lines about a callee nothing reaches -------------------------------------------


TOPOLOGY = {"frontend": ("catalog",), "catalog": ("inventory-east", "inventory-west")}


def _callee_logs(failure: str, callee_errors: bool, every: int = 1) -> list[model.LogRecord]:
    out = []
    for step in range(91):
        t = T0 + step
        for service in ("frontend", "catalog", "inventory-east", "inventory-west"):
            out.append(model.LogRecord(t, service, "INFO", "stats: served 80 requests"))
        if t >= ONSET and step % every == 0:
            out.append(model.LogRecord(t + 0.2, "catalog", "ERROR",
                                       f"call to inventory-east/stock failed: {failure}"))
            if callee_errors:
                out.append(model.LogRecord(t + 0.1, "inventory-east", "ERROR",
                                           "stock table locked: request aborted"))
    return out


@pytest.mark.parametrize(("failure", "callee_errors", "fault"), [
    ("HTTP Error 502: Bad Gateway", False, model.FaultKind.UNREACHABLE),
    ("<urlopen error [Errno 111] Connection refused>", False, model.FaultKind.UNREACHABLE),
    # the callee was reached: it failed the request itself
    ("HTTP Error 502: Bad Gateway", True, model.FaultKind.UNKNOWN),
    ("HTTP Error 500: Internal Server Error", False, model.FaultKind.UNKNOWN),
    # slow or hung, not cut off
    ("timed out", False, model.FaultKind.UNKNOWN),
])
def test_callers_calls_that_never_reach_a_quiet_callee_say_unreachable(
        failure: str, callee_errors: bool, fault: model.FaultKind) -> None:
    window = _window(logs=_callee_logs(failure, callee_errors), topology=TOPOLOGY)
    found = health.CalleeLogsInvestigator().investigate(window, (), SETTINGS)
    assert [(e.service, e.fault) for e in found] == [("inventory-east", fault)]
    assert found[0].strength > 0.5


def test_a_trickle_of_calls_that_miss_a_callee_does_not_cut_it_off() -> None:
    # a handful of service-discovery misses a minute is what busy systems log all along
    window = _window(logs=_callee_logs("No instances available", False, every=6),
                     topology=TOPOLOGY)
    (item,) = health.CalleeLogsInvestigator().investigate(window, (), SETTINGS)
    assert item.service == "inventory-east" and 0.0 < item.strength < 0.5
    assert item.fault is model.FaultKind.UNKNOWN
    cut = health.CalleeLogsInvestigator(cut_off=0.3).investigate(window, (), SETTINGS)
    assert cut[0].fault is model.FaultKind.UNREACHABLE  # it is the rate that kept it back


# --- the JSON form (ledger, store, API) keeps the types ------------------------------------


def _evidence(measures: tuple[tuple[str, float], ...]) -> model.Evidence:
    return model.Evidence("metrics", model.SignalKind.METRICS, model.EvidenceStatus.OK, "q",
                          "x", "checkout", model.FaultKind.LATENCY, 0.6, measures)


@pytest.mark.parametrize("measures", [
    (),
    ((model.REQUEST_RATE_BASELINE, 5.666), (model.REQUEST_RATE_NOW, 10.6)),
    ((model.REQUEST_RATE_NOW, 1e-9),),
])
def test_evidence_keeps_its_measures_through_json(
        measures: tuple[tuple[str, float], ...]) -> None:
    item = _evidence(measures)
    back = base.evidence_from_jsonable(json.loads(json.dumps(model.to_jsonable(item))))
    assert back == item and hash(back) == hash(item)
    named = base.Names(**vars(item), named=("cart",))
    assert base.evidence_from_jsonable(json.loads(json.dumps(model.to_jsonable(named)))) \
        == named


def test_evidence_stored_before_measures_existed_still_loads() -> None:
    old = model.to_jsonable(_evidence(()))
    del old["measures"]
    assert base.evidence_from_jsonable(old) == _evidence(())
    # a measure that was not a number (NaN is stored as null in JSON) measured nothing
    odd = model.to_jsonable(_evidence(((model.REQUEST_RATE_NOW, math.nan),
                                       (model.REQUEST_RATE_BASELINE, 4.0))))
    assert base.evidence_from_jsonable(odd).measures == ((model.REQUEST_RATE_BASELINE, 4.0),)


def test_a_revived_diagnosis_plans_the_same_scale_out() -> None:
    item = _evidence(((model.REQUEST_RATE_BASELINE, 10.0), (model.REQUEST_RATE_NOW, 16.0)))
    h = model.Hypothesis("checkout", model.FaultKind.LATENCY, None, 0.9, (item,))
    diag = model.Diagnosis(model.IncidentId("i"), T0, (h,), True, evidence=(item,))
    back = revive.diagnosis(json.loads(json.dumps(model.to_jsonable(diag))))
    assert back == diag
    facts = plan.Facts(service="checkout", version="1", replicas=4)
    first = plan.propose(diag, facts, model.PlanId("p"))
    assert first is not None and first.steps[0].param("to_replicas") == "7"
    assert plan.propose(back, facts, model.PlanId("p")) == first


def _outage_without_scrape_health(seed: int = 0) -> diagnose.Window:
    """inventory-east cut off under catalog, seen only in catalog's metrics and the logs (no
    `up` series: the health investigator has nothing to say)."""
    rng = np.random.default_rng(seed)
    series: dict[tuple[str, str], list[model.Sample]] = {}
    for step in range(91):
        t = T0 + step
        during = t >= ONSET
        for service in ("frontend", "catalog"):
            values = {
                "error_ratio": (0.4 + float(rng.normal(0, 0.02)) if during
                                else abs(float(rng.normal(0, 1e-3)))),
                "p99_latency_s": 0.02 + abs(float(rng.normal(0, 0.001))),
                "request_rate": 20.0 + float(rng.normal(0, 0.5)),
            }
            for metric, value in values.items():
                series.setdefault((service, metric), []).append(
                    model.Sample(t, service, metric, value))
    logs = _callee_logs("HTTP Error 502: Bad Gateway", callee_errors=False)
    return _window(series, logs, TOPOLOGY)


def test_an_outage_without_scrape_health_is_still_routed_around_from_types() -> None:
    diag = diagnose.diagnose(_outage_without_scrape_health(), END)
    top = diag.top
    # without scrape health the caller ranks first; its failures are seen at an instance the
    # callers' lines find unreachable, so its calls go to another region
    assert top is not None and (top.service, top.fault) == ("catalog", model.FaultKind.ERRORS)
    facts = plan.Facts(service="catalog", version="1", replicas=2, shifts=("west",))
    p = plan.propose(diag, facts, model.PlanId("p"))
    assert p is not None
    assert (p.steps[0].kind, p.steps[0].service) == (model.ActionKind.TRAFFIC_SHIFT, "catalog")
    # the same diagnosis, read back from JSON with every observation reworded, plans the same
    raw = model.to_jsonable(diag)
    blank = revive.diagnosis(_blanked(raw))
    assert all(e.observation == "x" for e in blank.evidence)
    assert plan.propose(blank, facts, model.PlanId("p")) == p


def test_a_model_is_not_asked_for_a_remedy_the_rules_found_from_the_rest_of_the_evidence() -> None:
    # the caller's own evidence names no remedy; the callee's UNREACHABLE evidence elsewhere
    # in the diagnosis does (a traffic shift), so a model's different pick is not adopted
    diag = diagnose.diagnose(_outage_without_scrape_health(), END)
    assert diag.top is not None and plan.family(diag.top) is None
    assert plan.family(diag.top, diag.evidence) is model.ActionKind.TRAFFIC_SHIFT
    flush = ports.ModelPlan("catalog", model.ActionKind.CACHE_FLUSH, "flush it")
    exchange = ports.Exchange(reasoner="test", model_name="test", model_version="", prompt="p",
                              response="r", prompt_sha256="0" * 64, response_sha256="1" * 64,
                              tokens=1, plans=(flush,))
    same, adopted = reasoners.adopt_plan(diag, exchange)
    assert adopted is None and same == diag


def _blanked(raw: dict[str, Any]) -> dict[str, Any]:
    """A JSON diagnosis with every evidence observation replaced by 'x'."""
    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: "x" if k == "observation" else walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value
    out: dict[str, Any] = walk(raw)
    return out


# --- a log evidence names the specific fault among its listed findings ---------------------


def _symptom_and(line: str, level: str, every: int) -> list[model.LogRecord]:
    """catalog fails every request once the incident starts; every `every` s it also logs
    `line` (with the second in it)."""
    out = [model.LogRecord(T0 + s, "catalog", "INFO", "stats: served 80 requests")
           for s in range(91)]
    for step in range(int(ONSET - T0), 91):
        out.append(model.LogRecord(T0 + step + 0.1, "catalog", "ERROR",
                                   f"GET /items/{step} failed: HTTP 500 Internal Server Error"))
        if step % every == 0:
            out.append(model.LogRecord(T0 + step + 0.2, "catalog", level, line.format(step)))
    return out


CORRUPT = "cache entry item-{} is corrupt: checksum mismatch"


@pytest.mark.parametrize(("line", "level", "every", "fault", "family"), [
    # the cache fails every other request: the cache is what fails
    (CORRUPT, "ERROR", 2, model.FaultKind.CACHE, model.ActionKind.CACHE_FLUSH),
    # a corrupt entry now and then beside errors on every request: too few to name it
    (CORRUPT, "ERROR", 3, model.FaultKind.ERRORS, None),
    # warnings beside the flood that name a fault's words but are not its cause
    ("config value timeout_{} deprecated, using the default", "WARN", 6,
     model.FaultKind.ERRORS, None),
    ("session {} expired: retrying with a fresh token", "WARN", 6, model.FaultKind.ERRORS, None),
])
def test_a_line_ranked_below_the_errors_names_the_fault_only_when_it_is_as_common(
        line: str, level: str, every: int, fault: model.FaultKind,
        family: model.ActionKind | None) -> None:
    found = logs.LogsInvestigator().investigate(
        _window(logs=_symptom_and(line, level, every)), (), SETTINGS)
    (item,) = [e for e in found if e.service == "catalog"]
    assert "Internal Server Error" in item.observation
    assert line.rsplit("{}", maxsplit=1)[-1][:12] in item.observation  # listed beside it
    assert item.fault is fault
    h = model.Hypothesis("catalog", model.FaultKind.ERRORS, None, 0.9, (item,))
    assert plan.family(h) is family


def test_a_fault_named_below_the_errors_carries_that_lines_strength_and_the_services_it_names(
) -> None:
    # the cache line names the cache service it read from; the HTTP 500 flood names nobody
    line = "cache entry item-{} from redis is corrupt: checksum mismatch"
    records = _symptom_and(line, "ERROR", 2)
    window = _window(logs=records, topology={"catalog": ("redis",)})
    findings, _, _ = logs.service_findings(
        [r for r in records if r.service == "catalog"], window, SETTINGS, others=("redis",))
    flood, cache = findings[0], next(f for f in findings if f.fault is model.FaultKind.CACHE)
    assert flood.fault is model.FaultKind.ERRORS and not flood.named
    assert cache.strength < flood.strength  # written half as often: weaker news
    (item,) = [e for e in logs.LogsInvestigator().investigate(window, (), SETTINGS)
               if e.service == "catalog"]
    assert item.fault is model.FaultKind.CACHE
    assert item.strength == cache.strength
    assert isinstance(item, base.Names) and item.named == ("redis",)
