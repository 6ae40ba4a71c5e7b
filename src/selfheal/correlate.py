"""Correlation: fused per-service findings become incidents, one per service at a time.

Pure. Detection (`detect.fuse`) has already weighed each service's signals together; this stage
decides which findings open an incident: not when the service already has an open incident,
nor during the quiet period after one ended (its own remedy's settle window).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

from selfheal import detect, model


def correlate(findings: Sequence[detect.ServiceFinding], *, open_services: Collection[str],
              quiet_until: Mapping[str, float], now: float,
              new_id: Callable[[], model.IncidentId]) -> list[model.Incident]:
    out = []
    for f in sorted(findings, key=lambda f: f.service):
        if not f.open_incident or f.service in open_services:
            continue
        if quiet_until.get(f.service, 0.0) > now:
            continue
        lead = f.anomalies[0]
        signals = ", ".join(sorted({a.metric for a in f.anomalies}))
        out.append(model.Incident(
            id=new_id(), service=f.service, opened_at=now,
            title=f"{f.service}: {lead.metric} anomalous ({signals})",
            anomalies=tuple(f.anomalies) + tuple(f.expected)))
    return out
