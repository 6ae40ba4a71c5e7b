"""The changes investigator: deploys and config changes shortly before or inside the window.

A change is only a suspect, never proof: its strength decays with its distance before the
window start, and the reconciler needs another kind of signal on the same service before it
blames it. "No change in the window" is itself reported (status OK, pointing nowhere).
"""

from __future__ import annotations

from collections.abc import Sequence

from selfheal import model
from selfheal.diagnose import base
from selfheal.diagnose import window as window_mod

NAME = "changes"

_FAULTS = {
    "deploy": model.FaultKind.BAD_DEPLOY,
    "release": model.FaultKind.BAD_DEPLOY,
    "config": model.FaultKind.CONFIG,
    "scale": model.FaultKind.OVERLOAD,
    "certificate": model.FaultKind.CERTIFICATE,
    "credential": model.FaultKind.CREDENTIAL,
}


def fault_of(kind: str) -> model.FaultKind:
    lowered = kind.lower()
    for word, fault in _FAULTS.items():
        if word in lowered:
            return fault
    return model.FaultKind.UNKNOWN


class ChangesInvestigator:
    """Lists the changes near the incident and how suspicious their timing is."""

    name = NAME
    kind = model.SignalKind.CHANGES

    def investigate(
        self,
        window: window_mod.Window,
        prior: Sequence[model.Evidence],
        settings: window_mod.Settings,
    ) -> tuple[model.Evidence, ...]:
        lo = window.start - settings.change_lookback_s
        query = (
            f"changes with t in [{lo:.0f}, {window.end:.0f}] "
            f"(lookback {settings.change_lookback_s:.0f} s)"
        )
        if window.changes is None:
            return (base.no_data(NAME, self.kind, query, "no change data: source unavailable"),)
        near = sorted(
            (c for c in window.changes if window_mod.in_range(c.t, lo, window.end)),
            key=lambda c: c.t,
        )
        if not near:
            return (
                model.Evidence(
                    investigator=NAME,
                    kind=self.kind,
                    status=model.EvidenceStatus.OK,
                    query=query,
                    observation="no deploy or config change near the incident",
                ),
            )
        out = []
        for change in near:
            before = max(window.start - change.t, 0.0)
            decay = settings.change_decay_s / (settings.change_decay_s + before)
            fault = fault_of(change.kind)
            strength = settings.change_strength * decay
            if fault is model.FaultKind.UNKNOWN:
                strength *= 0.5
            version = (
                f" {change.from_version} -> {change.to_version}"
                if change.from_version or change.to_version
                else ""
            )
            out.append(
                model.Evidence(
                    investigator=NAME,
                    kind=self.kind,
                    status=model.EvidenceStatus.OK,
                    query=query,
                    observation=(
                        f"{change.kind} of {change.service}{version} by {change.who} at "
                        f"t={change.t:.0f} ({before:.0f} s before the window start)"
                        + (f": {change.what}" if change.what else "")
                    ),
                    service=change.service,
                    fault=fault,
                    strength=strength,
                )
            )
        return tuple(out)
