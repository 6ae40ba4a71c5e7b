"""Investigators, abstention and the Nezha adapter on small real excerpts of the shared data.

The archives are read at test time (extracted once into the repository's ignored cache); the
tests skip with a clear message when `/work/shared/data/nezha` is absent.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from selfheal import diagnose, model
from selfheal.bench import rca
from selfheal.diagnose import base
from selfheal.diagnose import logs as logs_mod
from selfheal.diagnose import metrics as metrics_mod
from selfheal.diagnose import topology as topology_mod
from selfheal.diagnose import traces as traces_mod
from selfheal.sources import nezha

pytestmark = pytest.mark.timeout(240)

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "nezha"
CACHE = REPO / ".selfheal" / "cache" / "nezha"
TS_DAY = "2023-01-30"
HIPSTER_DAY = "2022-08-22"
SETTINGS = diagnose.DEFAULT_SETTINGS


@pytest.fixture(scope="module")
def root() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"Nezha data not found at {DATA}")
    return nezha.ensure_extracted(DATA, CACHE)


@pytest.fixture(scope="module")
def ts(root: Path) -> nezha.Day:
    return nezha.Day(root, TS_DAY)


@pytest.fixture(scope="module")
def hipster(root: Path) -> nezha.Day:
    return nezha.Day(root, HIPSTER_DAY)


def _fault(day: nezha.Day, service: str, kind: str, nth: int = 0) -> nezha.Fault:
    matches = [f for f in day.faults if f.service == service and f.kind == kind]
    if len(matches) <= nth:
        pytest.skip(f"no {kind} fault #{nth} of {service} on {day.day}")
    return matches[nth]


def _strongest(evidence: tuple[model.Evidence, ...]) -> model.Evidence:
    ok = [e for e in evidence if e.status is model.EvidenceStatus.OK and e.service]
    assert ok, [e.observation for e in evidence]
    return max(ok, key=lambda e: e.strength)


def test_service_of_drops_two_hash_segments() -> None:
    assert nezha.service_of("ts-basic-service-5dc8d4f9fd-46997") == "ts-basic-service"
    assert nezha.service_of("frontend-579b9bff58-t2dbm") == "frontend"


def test_window_reads_nothing_after_the_horizon(ts: nezha.Day) -> None:
    fault = ts.faults[0]
    window = nezha.window_for(ts, fault, horizon_s=120.0)
    assert window.end == fault.inject_ts + 120.0
    assert window.metrics is not None and window.spans is not None and window.logs is not None
    latest = max(
        [s.t for series in window.metrics.values() for s in series]
        + [s.start for s in window.spans]
        + [r.t for r in window.logs]
    )
    assert latest <= window.end
    assert window.baseline_end < window.start
    assert window.changes is None


def test_metrics_investigator_finds_the_cpu_hog(ts: nezha.Day) -> None:
    fault = _fault(ts, "ts-travel-service", "cpu_contention")
    window = nezha.window_for(ts, fault)
    found = metrics_mod.MetricsInvestigator().investigate(window, (), SETTINGS)
    top = _strongest(found)
    assert top.service == fault.service
    assert top.fault is model.FaultKind.OVERLOAD
    assert "CpuUsage" in top.observation


def test_traces_investigator_finds_the_slow_wire(ts: nezha.Day) -> None:
    fault = _fault(ts, "ts-basic-service", "network_delay")
    window = nezha.window_for(ts, fault)
    found = traces_mod.TracesInvestigator().investigate(window, (), SETTINGS)
    top = _strongest(found)
    assert top.service == fault.service
    assert top.fault is model.FaultKind.LATENCY
    assert "wire time" in top.observation


def test_traces_investigator_sees_an_early_return(hipster: nezha.Day) -> None:
    fault = _fault(hipster, "frontend", "return")
    window = nezha.window_for(hipster, fault)
    found = traces_mod.TracesInvestigator().investigate(window, (), SETTINGS)
    mine = [e for e in found if e.service == fault.service]
    assert mine and mine[0].fault is model.FaultKind.ERRORS
    assert "behaviour changed" in mine[0].observation


def test_logs_investigator_on_real_lines(ts: nezha.Day) -> None:
    fault = ts.faults[0]
    window = nezha.window_for(ts, fault)
    assert window.logs
    found = logs_mod.LogsInvestigator().investigate(window, (), SETTINGS)
    assert all("drain3" in e.query for e in found)
    assert all(e.status is model.EvidenceStatus.OK for e in found)
    # Control: the same lines as their own baseline hold nothing new or shifted.
    before = [r for r in window.logs if r.t <= window.baseline_end]
    shifted = [dataclasses.replace(r, t=r.t - window.baseline_start + window.start) for r in before]
    control = dataclasses.replace(
        window,
        logs=before + shifted,
        baseline_start=window.baseline_start,
        baseline_end=window.baseline_end,
        end=window.start + (window.baseline_end - window.baseline_start),
    )
    quiet = logs_mod.LogsInvestigator().investigate(control, (), SETTINGS)
    assert not [e for e in quiet if e.service], [e.observation for e in quiet]


def test_logs_absent_in_the_artifact_is_no_data(hipster: nezha.Day) -> None:
    fault = _fault(hipster, "frontend", "cpu_contention")
    window = nezha.window_for(hipster, fault)
    assert window.logs is None
    found = logs_mod.LogsInvestigator().investigate(window, (), SETTINGS)
    assert [e.status for e in found] == [model.EvidenceStatus.NO_DATA]


def test_topology_places_the_origin(ts: nezha.Day) -> None:
    fault = _fault(ts, "ts-travel-service", "cpu_contention")
    window = nezha.window_for(ts, fault)
    assert "ts-gateway-service" in window.topology
    prior = diagnose.investigate(
        window,
        investigators=(
            metrics_mod.MetricsInvestigator(),
            traces_mod.TracesInvestigator(),
        ),
    )
    found = topology_mod.TopologyInvestigator().investigate(window, prior, SETTINGS)
    mine = [e for e in found if e.service == fault.service]
    assert mine and not base.is_against(mine[0])


def test_diagnosis_without_traces_abstains(ts: nezha.Day) -> None:
    fault = _fault(ts, "ts-basic-service", "network_delay")
    window = dataclasses.replace(nezha.window_for(ts, fault), spans=None)
    result = diagnose.diagnose(window, now=window.end)
    assert not result.sufficient
    assert any(m.startswith("traces: no trace data") for m in result.missing)


def test_benchmark_case_scores_a_real_fault(ts: nezha.Day) -> None:
    fault = _fault(ts, "ts-travel-service", "cpu_contention")
    case = rca.run_case(ts, fault, SETTINGS, horizon_s=180.0)
    assert case.rank == 1
    assert case.top_fault is fault.fault_kind
    score = rca.score([case])
    assert score.n == 1 and score.ac1 == 1.0


def test_discovery_errors_elsewhere_do_not_outrank_a_slow_wire(ts: nezha.Day) -> None:
    # While travel's network is delayed, basic logs a new error naming another service ("No
    # instances available for ts-train-service") and travel stops logging an old error: the
    # first is basic's view of a failure at train (which moved on its own), the second is
    # travel failing less.
    fault = _fault(ts, "ts-travel-service", "network_delay")
    window = nezha.window_for(ts, fault)
    evidence = diagnose.investigate(window)
    basic = [e for e in evidence if e.service == "ts-basic-service" and base.is_against(e)]
    assert [e for e in basic if isinstance(e, base.Against)
            and e.explained_by == "ts-train-service"]
    travel_logs = [e for e in evidence if e.service == fault.service and e.kind.value == "logs"]
    assert not [e for e in travel_logs if "vanished" in e.observation and "ERROR" in e.observation]
    result = diagnose.diagnose(window, now=window.end)
    assert result.top is not None and result.top.service == fault.service
    assert result.top.fault is model.FaultKind.LATENCY
