"""Correlation: firing anomalies become incidents, one per affected service at a time.

Pure. The runtime passes the anomalies firing now, the services that already have an open
incident, and the services in a post-incident quiet period. Expected anomalies (inside a
change's settle window or a maintenance window) never open an incident.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Collection, Mapping, Sequence

from selfheal import model


def correlate(anomalies: Sequence[model.Anomaly], *, open_services: Collection[str],
              quiet_until: Mapping[str, float], now: float, min_score: float,
              new_id: Callable[[], model.IncidentId]) -> list[model.Incident]:
    by_service: dict[str, list[model.Anomaly]] = collections.defaultdict(list)
    for a in anomalies:
        if not a.expected and a.score >= min_score:
            by_service[a.service].append(a)
    out = []
    for service, found in sorted(by_service.items()):
        if service in open_services or quiet_until.get(service, 0.0) > now:
            continue
        # Related anomalies of the same tick on the same service travel with the incident.
        related = sorted((a for a in anomalies if a.service == service),
                         key=lambda a: (-a.score, a.metric))
        lead = max(found, key=lambda a: a.score)
        signals = ", ".join(sorted({a.metric for a in found}))
        out.append(model.Incident(
            id=new_id(), service=service, opened_at=now,
            title=f"{service}: {lead.metric} anomalous ({signals})",
            anomalies=tuple(related)))
    return out
