"""An incident opened on a symptom service (frontend, checkout) whose cause is elsewhere.

The detector may open the incident on the service users see first; the diagnosis does not take
the incident's service as the answer: it ranks the cause (auth's bad deploy) first and explains
the opener's symptom by its callee.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from selfheal import diagnose, model

pytestmark = pytest.mark.timeout(60)

Make = Callable[..., diagnose.Window]


def _opened_on(window: diagnose.Window, service: str) -> diagnose.Window:
    anomaly = model.Anomaly(
        id=model.AnomalyId(f"{service}/p99"), service=service, metric="p99_latency_s",
        detector="level_shift", started_at=window.start + 6, detected_at=window.start + 9,
        score=0.8, baseline=0.005, observed=0.016, explanation=f"{service} p99 level shift",
    )
    incident = dataclasses.replace(
        window.incident, service=service, title=f"{service} latency", anomalies=(anomaly,)
    )
    return dataclasses.replace(window, incident=incident)


@pytest.mark.parametrize("opener", ["frontend", "checkout"])
@pytest.mark.parametrize("seed", [0, 1])
def test_the_cause_is_ranked_above_the_opener(make_demo: Make, opener: str, seed: int) -> None:
    window = _opened_on(make_demo(seed), opener)
    result = diagnose.diagnose(window, now=window.end)
    assert result.top is not None
    assert result.top.service == "auth"
    assert result.top.fault is model.FaultKind.BAD_DEPLOY
    assert all(h.service != opener or h.probability < 0.2 for h in result.hypotheses)
