"""A caller that stops making its calls: starved callees (metrics) and rarer child calls (traces).

Synthetic windows check the rules both ways (the blame moves only when the callee's load alone
fell; a rarer call counts only beyond sampling noise); real Nezha faults (an exception and an
early return) check them on the shared data, skipping when it is absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from selfheal import diagnose, model
from selfheal.diagnose import metrics as metrics_mod
from selfheal.diagnose import traces as traces_mod
from selfheal.sources import nezha

pytestmark = pytest.mark.timeout(240)

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "nezha"
CACHE = REPO / ".selfheal" / "cache" / "nezha"
SETTINGS = diagnose.DEFAULT_SETTINGS
T0 = 1_700_000_000.0
TOPOLOGY = {"frontend": ("checkout",), "checkout": ("payment", "email")}


def _window(
    metrics: dict[tuple[str, str], list[model.Sample]] | None = None,
    spans: list[model.Span] | None = None,
) -> diagnose.Window:
    incident = model.Incident(model.IncidentId("inc-t"), "", T0, "test", ())
    return diagnose.Window(
        incident=incident, start=T0, end=T0 + 300, baseline_start=T0 - 600,
        baseline_end=T0 - 1, metrics=metrics, logs=None, changes=None, spans=spans,
        topology=TOPOLOGY,
    )


def _metrics(seed: int, payment_cpu_rises: bool) -> dict[tuple[str, str], list[model.Sample]]:
    """One row a minute; after T0 payment and email get no work (their caller went quiet)."""
    rng = np.random.default_rng(seed)
    out: dict[tuple[str, str], list[model.Sample]] = {}
    for minute in range(-10, 5):
        t = T0 + 60 * minute + 1
        for service in ("frontend", "checkout", "payment", "email"):
            starved = minute >= 0 and service in ("payment", "email")
            load = 0.0 if starved else 40.0 + rng.normal(0, 2)
            cpu = 20.0 + rng.normal(0, 1)
            if payment_cpu_rises and service == "payment" and minute >= 0:
                cpu = 95.0
            for metric, value in (("PodWorkload(Ops)", load), ("SyscallWrite", load * 3),
                                  ("CpuUsageRate(%)", cpu)):
                out.setdefault((service, metric), []).append(
                    model.Sample(t=t, service=service, metric=metric, value=float(value)))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_starved_callees_point_at_their_caller(seed: int) -> None:
    found = metrics_mod.MetricsInvestigator().investigate(
        _window(_metrics(seed, payment_cpu_rises=False)), (), SETTINGS)
    by = {e.service: e for e in found if e.service}
    assert by["checkout"].fault is model.FaultKind.ERRORS
    assert "stopped calling" in by["checkout"].observation
    assert by["checkout"].strength > max(by["payment"].strength, by["email"].strength)
    assert "only its load fell" in by["payment"].observation


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_callee_busy_on_its_own_keeps_the_blame(seed: int) -> None:
    # payment's CPU rose while its load fell: something of its own moved, it is not starved
    found = metrics_mod.MetricsInvestigator().investigate(
        _window(_metrics(seed, payment_cpu_rises=True)), (), SETTINGS)
    by = {e.service: e for e in found if e.service}
    assert "only its load fell" not in by["payment"].observation
    assert by["payment"].strength > by.get("checkout", by["email"]).strength
    # email alone is still starved and lends checkout its weight, shared with nobody
    assert "email lost its load" in by["checkout"].observation


def _spans(share_before: float, share_during: float, per_side: int) -> list[model.Span]:
    """getAds spans of `ads`, a share of which call getRandomAds, before and during."""
    rng = np.random.default_rng(7)
    spans: list[model.Span] = []
    for side, share, t0 in (("b", share_before, T0 - 500), ("d", share_during, T0 + 10)):
        for i in range(per_side):
            start = t0 + i * 200.0 / per_side
            span = model.Span("tr", f"{side}{i}", "", "ads", "getAds", start, start + 0.01)
            spans.append(span)
            if rng.random() < share:
                spans.append(model.Span("tr", f"{side}{i}c", span.span_id, "ads",
                                        "getRandomAds", start + 0.001, start + 0.005))
    return spans


def test_a_rarer_child_call_is_an_early_return() -> None:
    found = traces_mod.TracesInvestigator().investigate(
        _window(spans=_spans(0.2, 0.04, 1000)), (), SETTINGS)
    ads = [e for e in found if e.service == "ads"]
    assert ads and ads[0].fault is model.FaultKind.ERRORS
    assert "getRandomAds" in ads[0].observation
    # 80% of the calls it used to make are gone: strong, though the share fell by only 0.16
    assert ads[0].strength >= SETTINGS.support_strength


@pytest.mark.parametrize(("before", "during", "n"), [(0.2, 0.17, 1000), (0.2, 0.04, 30)])
def test_a_small_or_unproven_drop_is_not_news(before: float, during: float, n: int) -> None:
    found = traces_mod.TracesInvestigator().investigate(
        _window(spans=_spans(before, during, n)), (), SETTINGS)
    errors = [e for e in found if e.service == "ads" and e.fault is model.FaultKind.ERRORS]
    assert all(e.strength < SETTINGS.support_strength for e in errors)


@pytest.fixture(scope="module")
def hipster() -> nezha.Day:
    if not DATA.is_dir():
        pytest.skip(f"Nezha data not found at {DATA}")
    return nezha.Day(nezha.ensure_extracted(DATA, CACHE), "2022-08-22")


@pytest.mark.parametrize(("service", "kind"), [("checkoutservice", "exception"),
                                                ("checkoutservice", "return"),
                                                ("adservice", "return")])
def test_real_code_faults_rank_their_service_first(
    hipster: nezha.Day, service: str, kind: str
) -> None:
    fault = next((f for f in hipster.faults if f.service == service and f.kind == kind), None)
    if fault is None:
        pytest.skip(f"no {kind} fault of {service} in the data")
    window = nezha.window_for(hipster, fault)
    result = diagnose.diagnose(window, now=window.end)
    assert result.top is not None and result.top.service == service
    assert result.top.fault is model.FaultKind.ERRORS
