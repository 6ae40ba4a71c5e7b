"""What every investigator is: the `Investigator` protocol and small shared helpers.

Investigators are registered explicitly in `selfheal.diagnose.registry.INVESTIGATORS`; each one
reads one kind of signal from a `Window` and returns `model.Evidence` values that carry the exact
query or analysis it ran. They run in the registry's order and each sees the evidence of the
ones before it (`prior`), which is how topology and human theories reason over the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from selfheal import model
from selfheal.diagnose import window as window_mod


class Investigator(Protocol):
    """A plugin that reads one kind of signal and says what it saw, or that it could not."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> model.SignalKind: ...

    def investigate(
        self,
        window: window_mod.Window,
        prior: Sequence[model.Evidence],
        settings: window_mod.Settings,
    ) -> tuple[model.Evidence, ...]: ...


def no_data(name: str, kind: model.SignalKind, query: str, why: str) -> model.Evidence:
    """Evidence that points nowhere because the investigator could not see (design rule 6)."""
    return model.Evidence(
        investigator=name,
        kind=kind,
        status=model.EvidenceStatus.NO_DATA,
        query=query,
        observation=why,
    )


def saturate(excess: float, half: float) -> float:
    """Map a non-negative excess over a threshold to a strength in [0, 1): half at `half`."""
    if excess <= 0.0:
        return 0.0
    return excess / (excess + half)


def anomaly_by_service(
    evidence: Sequence[model.Evidence], kinds: frozenset[model.SignalKind]
) -> dict[str, float]:
    """The strongest OK evidence per service among `kinds` (victims of dependencies excluded)."""
    best: dict[str, float] = {}
    for item in evidence:
        if item.status is not model.EvidenceStatus.OK or not item.service:
            continue
        if item.kind not in kinds or item.fault is model.FaultKind.DEPENDENCY:
            continue
        best[item.service] = max(best.get(item.service, 0.0), item.strength)
    return best
