"""Success rates read as failure ratios, and the entry service's success rate from Nezha.

A synthetic window checks the metric rule both ways (100% -> 95% is an error signal, a steady
100% is not); the shared data checks that the adapter attributes `front_service.csv` to the
entry pod only where it was recorded, and that it places a real exception in the frontend.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from selfheal import diagnose, model
from selfheal.diagnose import metrics as metrics_mod
from selfheal.sources import nezha

pytestmark = pytest.mark.timeout(240)

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "nezha"
CACHE = REPO / ".selfheal" / "cache" / "nezha"
SETTINGS = diagnose.DEFAULT_SETTINGS
T0 = 1_700_000_000.0


def _window(success_after: float, seed: int) -> diagnose.Window:
    rng = np.random.default_rng(seed)
    metrics: dict[tuple[str, str], list[model.Sample]] = {}
    for minute in range(-10, 5):
        t = T0 + 60 * minute + 1
        rate = 100.0 if minute < 0 else success_after
        cpu = 20.0 + rng.normal(0, 1)
        for metric, value in (("SuccessRate(%)", rate), ("CpuUsageRate(%)", cpu)):
            metrics.setdefault(("web", metric), []).append(
                model.Sample(t=t, service="web", metric=metric, value=float(value)))
    incident = model.Incident(model.IncidentId("inc-s"), "", T0, "test", ())
    return diagnose.Window(
        incident=incident, start=T0, end=T0 + 300, baseline_start=T0 - 600,
        baseline_end=T0 - 1, metrics=metrics, logs=None, changes=None, spans=None,
        topology={},
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_a_falling_success_rate_is_an_error_signal(seed: int) -> None:
    found = metrics_mod.MetricsInvestigator().investigate(_window(95.0, seed), (), SETTINGS)
    web = [e for e in found if e.service == "web"]
    assert web and web[0].fault is model.FaultKind.ERRORS
    assert web[0].strength >= SETTINGS.support_strength
    assert "SuccessRate(%) 100 -> 95" in web[0].observation


@pytest.mark.parametrize("seed", [0, 1])
def test_a_steady_success_rate_is_silent(seed: int) -> None:
    found = metrics_mod.MetricsInvestigator().investigate(_window(100.0, seed), (), SETTINGS)
    assert not [e for e in found if e.service == "web"]


@pytest.fixture(scope="module")
def root() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"Nezha data not found at {DATA}")
    return nezha.ensure_extracted(DATA, CACHE)


def test_entry_success_only_where_it_was_recorded(root: Path) -> None:
    hipster = nezha.Day(root, "2022-08-22")
    entry = [t for t in hipster.tables if nezha.ENTRY_SUCCESS in t.columns]
    assert [nezha.service_of(t.pod) for t in entry] == ["frontend"]
    assert float(np.nanmax(entry[0].values)) == 100.0
    ts = nezha.Day(root, "2023-01-30")  # its front_service.csv success column is all zeros
    assert not [t for t in ts.tables if nezha.ENTRY_SUCCESS in t.columns]


def test_a_real_frontend_exception_is_placed_in_the_frontend(root: Path) -> None:
    hipster = nezha.Day(root, "2022-08-22")
    fault = next((f for f in hipster.faults
                  if f.service == "frontend" and f.kind == "exception"), None)
    if fault is None:
        pytest.skip("no frontend exception fault in the data")
    window = nezha.window_for(hipster, fault)
    result = diagnose.diagnose(window, now=window.end)
    assert result.top is not None and result.top.service == "frontend"
    assert result.top.fault is model.FaultKind.ERRORS
