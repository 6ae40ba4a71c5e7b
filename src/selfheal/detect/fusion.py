"""Per-service fusion: weigh one signal's anomaly with the service's other signals.

The engine calls `fuse` after `Detector.update` each tick and opens an incident for every
service whose finding says so. Expected anomalies (inside a settle or maintenance window) are
kept on the finding for the record but weigh nothing. Pure.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping, Sequence

from selfheal import model

DEFAULT_WEIGHTS: Mapping[str, float] = types.MappingProxyType(
    {
        "rss_bytes": 1.0,
        "p99_latency_s": 1.0,
        "error_ratio": 1.0,
        "gc_pause_s": 0.7,
        "request_rate": 0.5,
    }
)
"""How much one metric's anomaly counts on its own (traffic alone is rarely an incident)."""

LIMITED_ALONE: Mapping[str, float] = types.MappingProxyType({"rss_bytes": 0.5})
"""Metrics that hurt only near their limit (memory: the kernel stops a process at its limit,
and below it a rise harms nobody) -> how much an anomaly of theirs counts that is neither a
trend (a forecast to reach the limit, or a runaway) nor comes within `near_limit` of the
series' limit: it opens an incident only with another signal of the service (a nightly batch
that raises memory 20% is no page; a leak forecast to its limit, or memory near it, is). A
steady growth with no limit known (`growth`) is such an anomaly too: reported, with no time to
the limit to say how urgent it is, it asks for a look, not an action."""

PAST = 1.02
"""A value more than 2% past its limit is not near it: that limit is not the series' own (the
metric's default under a bigger service; `Detector.IMPLAUSIBLE`)."""


@dataclasses.dataclass(frozen=True)
class ServiceFinding:
    """The fused view of one service at one tick."""

    service: str
    score: float
    """1 - prod(1 - weight * score) over the service's non-expected anomalies, in [0, 1]."""
    open_incident: bool
    anomalies: tuple[model.Anomaly, ...]
    """The non-expected anomalies that were weighed, strongest first."""
    expected: tuple[model.Anomaly, ...]
    summary: str


def fuse(
    anomalies: Sequence[model.Anomaly],
    *,
    weights: Mapping[str, float] = DEFAULT_WEIGHTS,
    default_weight: float = 0.8,
    open_threshold: float = 0.7,
    fresh_spike_s: float = 3.0,
    fresh_spike_weight: float = 0.5,
    limit_of: Callable[[tuple[str, str]], float | None] | None = None,
    limited_alone: Mapping[str, float] = LIMITED_ALONE,
    near_limit: float = 0.9,
) -> list[ServiceFinding]:
    """One finding per service that has anomalies, highest fused score first.

    A single strong signal (score >= `open_threshold`) opens an incident; weaker ones open one
    only when another signal of the same service corroborates them. A spike younger than
    `fresh_spike_s` counts at `fresh_spike_weight`: one blip of one signal is not an incident,
    but a blip that lasts, or two signals blipping together, is.
    """
    by_service: dict[str, list[model.Anomaly]] = {}
    for a in anomalies:
        by_service.setdefault(a.service, []).append(a)
    findings = []
    for service, items in by_service.items():
        live = sorted((a for a in items if not a.expected), key=lambda a: -a.score)
        quiet = tuple(a for a in items if a.expected)
        keep = 1.0
        for a in live:
            w = min(1.0, max(0.0, weights.get(a.metric, default_weight)))
            if a.detector == "spike" and a.detected_at - a.started_at < fresh_spike_s:
                w *= fresh_spike_weight
            if a.metric in limited_alone and a.detector != "trend":
                limit = limit_of((a.service, a.metric)) if limit_of is not None else None
                # (a value far past its limit says the limit is not its own: `Detector`)
                if limit is None or not near_limit * limit <= a.observed <= PAST * limit:
                    w = min(w, limited_alone[a.metric])
            keep *= 1.0 - w * min(1.0, max(0.0, a.score))
        score = 1.0 - keep
        opened = bool(live) and score >= open_threshold
        if live:
            summary = f"{service}: " + "; ".join(
                f"{a.metric} {a.detector} ({a.score:.2f})" for a in live
            )
        else:
            summary = f"{service}: only expected anomalies ({len(quiet)})"
        findings.append(
            ServiceFinding(service, round(score, 4), opened, tuple(live), quiet, summary)
        )
    findings.sort(key=lambda f: (-f.score, f.service))
    return findings
