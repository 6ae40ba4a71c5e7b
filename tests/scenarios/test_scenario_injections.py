"""Each scenario's injection really breaks the shop: left alone, the SLO is violated.

Slow: every case starts the whole shop with regions (seven services, real processes) and
steady load, lets a short baseline build up, injects the failure with no agent watching, and
waits until the outside SLO probe sees the objective broken (or gives up).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from selfheal.bench import scenarios as bench
from selfheal.scenarios import catalog

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SETTINGS = bench.Settings(baseline_s=15.0, timeout_s=75.0)
BREAKING = [s.name for s in catalog.SCENARIOS if s.expect != "leave"]


@pytest.mark.parametrize("name", BREAKING)
def test_the_injection_breaks_the_slo_when_nobody_acts(name: str, no_leftovers: Path) -> None:
    scn = catalog.by_name(name)
    run = asyncio.run(bench.run_one(scn, "none", no_leftovers / "wd", SETTINGS))
    assert run.slo_violated, f"{name}: the shop met its SLO for 75 s after the injection"
    assert not run.resolved and run.actions == 0

