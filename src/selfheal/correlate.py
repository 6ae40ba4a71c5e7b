"""Correlation: fused per-service findings become incidents, one per root at a time.

Pure. Detection (`detect.fuse`) has already weighed each service's signals together; this stage
decides what each finding means. A service that already has an open incident keeps it. A
service that (directly or through others) calls a service with an open incident joins that
incident as a downstream symptom instead of opening its own: when auth is sick, frontend's
latency is auth's incident. Nothing opens during the quiet period after an incident ended.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence

from selfheal import detect, model


@dataclasses.dataclass(frozen=True)
class Correlation:
    new: tuple[model.Incident, ...]
    joined: tuple[tuple[model.IncidentId, detect.ServiceFinding], ...]


def upstream_of(service: str, topology: Mapping[str, Sequence[str]]) -> set[str]:
    """Every service `service` calls, directly or through others."""
    seen: set[str] = set()
    todo = list(topology.get(service, ()))
    while todo:
        s = todo.pop()
        if s not in seen:
            seen.add(s)
            todo.extend(topology.get(s, ()))
    return seen


def correlate(findings: Sequence[detect.ServiceFinding], *,
              open_incidents: Mapping[str, model.IncidentId],
              topology: Mapping[str, Sequence[str]], quiet_until: Mapping[str, float],
              now: float, new_id: Callable[[], model.IncidentId]) -> Correlation:
    new: list[model.Incident] = []
    joined: list[tuple[model.IncidentId, detect.ServiceFinding]] = []
    owners = dict(open_incidents)
    # Callees before callers: when auth and frontend break in the same tick, auth opens the
    # incident and frontend joins it.
    for f in sorted(findings, key=lambda f: (-len(_callers(f.service, topology)), f.service)):
        if not f.open_incident or f.service in owners:
            continue
        cause = sorted(upstream_of(f.service, topology) & set(owners))
        if cause:
            joined.append((owners[cause[0]], f))
            continue
        if quiet_until.get(f.service, 0.0) > now:
            continue
        lead = f.anomalies[0]
        signals = ", ".join(sorted({a.metric for a in f.anomalies}))
        inc = model.Incident(
            id=new_id(), service=f.service, opened_at=now,
            title=f"{f.service}: {lead.metric} anomalous ({signals})",
            anomalies=tuple(f.anomalies) + tuple(f.expected))
        new.append(inc)
        owners[f.service] = inc.id
    return Correlation(new=tuple(new), joined=tuple(joined))


def around(service: str, topology: Mapping[str, Sequence[str]],
           stalled: Collection[str] = ()) -> set[str]:
    """What a remedy of `service` disturbs: the service, every service that calls it and every
    one it calls (directly or through others), and every other service called by a direct
    caller of it that was `stalled` on it (a symptom of its incident). A remedy moves traffic
    every way: its callers stop failing, its callees get their calls back, and a caller that
    was stalled on it (users who waited on a hung cart) sends its other callees a rebound of
    the requests it held back."""
    direct = [c for c, callees in topology.items() if service in callees and c in stalled]
    siblings = {s for c in direct for s in topology.get(c, ())}
    return {service} | _callers(service, topology) | upstream_of(service, topology) | siblings


def _callers(service: str, topology: Mapping[str, Sequence[str]]) -> set[str]:
    return {c for c in topology if service in upstream_of(c, topology)}
