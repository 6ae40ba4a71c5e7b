"""A reasoner's hypotheses as an investigator's evidence: proposed, then weighed, never trusted.

The engine (or the Nezha benchmark) asks a configured reasoner for hypotheses and puts them in
`Window.model_hypotheses`; this investigator hands them to the reconciler as evidence of kind
MODEL with a capped strength. MODEL is not an independent kind, so the layered-verification rule
still needs two kinds read straight from sources before any hypothesis is sufficient to act on.
With no reasoner the window holds none and this investigator returns nothing at all, so the
deterministic diagnosis is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from selfheal import model
from selfheal.diagnose import window as window_mod

NAME = "model"


class ModelInvestigator:
    """Re-checks the window's model hypotheses and caps their strength."""

    name = NAME
    kind = model.SignalKind.MODEL

    def investigate(
        self,
        window: window_mod.Window,
        prior: Sequence[model.Evidence],
        settings: window_mod.Settings,
    ) -> tuple[model.Evidence, ...]:
        services = set(window.services())
        out = []
        for item in window.model_hypotheses:
            # Whoever built the window already validated these; check again what matters here.
            if item.kind is not model.SignalKind.MODEL or item.service not in services:
                continue
            strength = min(max(item.strength, 0.0), 1.0) * settings.model_strength
            out.append(
                model.Evidence(
                    investigator=item.investigator or NAME,
                    kind=model.SignalKind.MODEL,
                    status=model.EvidenceStatus.OK,
                    query=item.query,
                    observation=item.observation,
                    service=item.service,
                    fault=item.fault,
                    strength=strength,
                )
            )
        return tuple(out)
