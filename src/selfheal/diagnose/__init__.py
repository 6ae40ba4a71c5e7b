"""Diagnosis: specialist investigators, cross-checked evidence, calibrated ranked root causes.

The engine (and the Nezha benchmark) builds a `Window` for an incident and calls `diagnose`.
Every investigator in `registry.INVESTIGATORS` reads one kind of signal and returns evidence
(or NO_DATA saying why); `reconcile` fuses it into ranked hypotheses with probabilities and
decides whether the evidence is sufficient to act on. Pure: no I/O, the time is passed in.
"""

from __future__ import annotations

from collections.abc import Sequence

from selfheal import model
from selfheal.diagnose import base as _base
from selfheal.diagnose import reconcile as _reconcile
from selfheal.diagnose import registry as _registry
from selfheal.diagnose import window as _window

Window = _window.Window
Settings = _window.Settings
Investigator = _base.Investigator
DEFAULT_SETTINGS = _window.DEFAULT_SETTINGS
settings_from = _window.settings_from
INVESTIGATORS = _registry.INVESTIGATORS


def investigate(
    window: _window.Window,
    settings: _window.Settings = DEFAULT_SETTINGS,
    investigators: Sequence[_base.Investigator] = INVESTIGATORS,
) -> tuple[model.Evidence, ...]:
    """Run the investigators in order, each seeing the evidence of those before it."""
    evidence: list[model.Evidence] = []
    for investigator in investigators:
        evidence.extend(investigator.investigate(window, tuple(evidence), settings))
    return tuple(evidence)


def diagnose(
    window: _window.Window,
    now: float,
    settings: _window.Settings = DEFAULT_SETTINGS,
    investigators: Sequence[_base.Investigator] = INVESTIGATORS,
) -> model.Diagnosis:
    """Ranked, calibrated hypotheses for the incident in `window`, as of `now`."""
    evidence = investigate(window, settings, investigators)
    return _reconcile.reconcile(window.incident.id, now, evidence, settings)


__all__ = [
    "DEFAULT_SETTINGS",
    "INVESTIGATORS",
    "Investigator",
    "Settings",
    "Window",
    "diagnose",
    "investigate",
    "settings_from",
]
