"""The topology investigator: is a service's symptom explained by an anomalous callee?

It reasons over the direct evidence gathered before it (metrics, logs, traces) and the call
graph. Metrics and logs symptoms (latency, errors) travel up the call graph; trace evidence is
already placed on the call graph (wire time per edge, self time), so it is not explained away
here. A caller whose metrics/logs symptoms are matched by a callee (directly or further down)
at least `propagation_ratio` as anomalous gets `base.Against` evidence (fault DEPENDENCY, naming
the callee that explains it), as strong as the symptoms it explains — the reconciler counts it
*against* the caller being the root cause.
An anomalous service none of whose callees is anomalous is a likely origin and gets supporting
evidence, stronger when its callers show symptoms too. Error lines that name another service
(`base.Names`) are explained the same way, by the service they name, when that one is anomalous
by its own signals.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from selfheal import model
from selfheal.diagnose import base
from selfheal.diagnose import logs as logs_mod
from selfheal.diagnose import window as window_mod

NAME = "topology"

DIRECT = frozenset({model.SignalKind.METRICS, model.SignalKind.LOGS, model.SignalKind.TRACES})
PROPAGATING = frozenset({model.SignalKind.METRICS, model.SignalKind.LOGS})


def reachable(topology: Mapping[str, tuple[str, ...]], service: str) -> list[str]:
    """Every service `service` calls, directly or further down, nearest first."""
    seen, order, frontier = {service}, [], [service]
    while frontier:
        nxt = []
        for caller in frontier:
            for callee in topology.get(caller, ()):
                if callee not in seen:
                    seen.add(callee)
                    order.append(callee)
                    nxt.append(callee)
        frontier = nxt
    return order


def callers_of(topology: Mapping[str, tuple[str, ...]], service: str) -> list[str]:
    return sorted(caller for caller, callees in topology.items() if service in callees)


def is_testimony(item: model.Evidence) -> bool:
    """Log evidence about a service that another investigator drew from its callers' lines."""
    return item.kind is model.SignalKind.LOGS and item.investigator != logs_mod.NAME


def explain_named(
    prior: Sequence[model.Evidence], query: str, settings: window_mod.Settings
) -> tuple[list[model.Evidence], list[model.Evidence]]:
    """Error lines that name a service anomalous by its own signals are explained by it.

    Returns the evidence with those lines weighed down by `log_named_service_discount` (for
    placing services on the call graph) and one `base.Against` per explained logger. A named
    service's own signals are its metrics, traces and its own log lines, not what others
    testify about it, so a line cannot explain itself away.
    """
    own: dict[str, float] = {}
    for item in prior:
        if item.status is not model.EvidenceStatus.OK or not item.service:
            continue
        if item.kind not in DIRECT or base.is_against(item):
            continue
        if is_testimony(item):
            continue
        own[item.service] = max(own.get(item.service, 0.0), item.strength)
    share = settings.log_named_service_discount
    adjusted: list[model.Evidence] = []
    against: list[model.Evidence] = []
    for item in prior:
        if isinstance(item, base.Names) and item.status is model.EvidenceStatus.OK:
            culprit = max(item.named, key=lambda n: (own.get(n, 0.0), n), default="")
            level = own.get(culprit, 0.0)
            if culprit and level >= settings.corroboration_strength:
                against.append(
                    base.Against(
                        investigator=NAME,
                        kind=model.SignalKind.TOPOLOGY,
                        status=model.EvidenceStatus.OK,
                        query=query,
                        observation=(
                            f"{item.service}'s error lines name {culprit}, anomalous by its "
                            f"own signals ({level:.2f}): they are {item.service}'s view of a "
                            "failure there"
                        ),
                        service=item.service,
                        fault=model.FaultKind.DEPENDENCY,
                        strength=item.strength * share,
                        explained_by=culprit,
                    )
                )
                adjusted.append(dataclasses.replace(item, strength=item.strength * (1 - share)))
                continue
        adjusted.append(item)
    return adjusted, against


class TopologyInvestigator:
    """Explains symptoms by propagation along the call graph."""

    name = NAME
    kind = model.SignalKind.TOPOLOGY

    def investigate(
        self,
        window: window_mod.Window,
        prior: Sequence[model.Evidence],
        settings: window_mod.Settings,
    ) -> tuple[model.Evidence, ...]:
        query = (
            f"call graph ({len(window.topology)} callers) over the strongest metrics/logs/traces "
            f"evidence per service; a callee >= {settings.propagation_ratio:.0%} as anomalous "
            f"explains its caller"
        )
        prior, named_away = explain_named(prior, query, settings)
        # Each service is placed by its own signals: what callers' logs testify about a
        # service came from the callers' lines, which must not explain themselves away.
        prior = [e for e in prior if not is_testimony(e)]
        if not window.topology:
            return (
                *named_away,
                base.no_data(NAME, self.kind, query, "no topology: call graph unknown"),
            )
        anomaly = base.anomaly_by_service(prior, DIRECT)
        symptoms = base.anomaly_by_service(prior, PROPAGATING)
        # Trace evidence is the service's own, already placed on the call graph (self time,
        # wire time per edge, its operations' calls): a caller whose own traces moved more
        # than any anomalous callee is not merely that callee's victim.
        placed = base.anomaly_by_service(prior, frozenset({model.SignalKind.TRACES}))
        suspects = {s: a for s, a in anomaly.items() if a >= settings.support_strength}
        if not suspects:
            return (
                *named_away,
                base.no_data(
                    NAME, self.kind, query, "no anomalous service to place on the call graph"
                ),
            )
        out: list[model.Evidence] = list(named_away)
        for service, strength in sorted(suspects.items()):
            below = reachable(window.topology, service)
            symptom = symptoms.get(service, 0.0)
            culprits = [
                c
                for c in below
                if anomaly.get(c, 0.0) >= max(settings.propagation_ratio * symptom, 1e-9)
                and anomaly.get(c, 0.0) >= settings.support_strength
            ]
            own = placed.get(service, 0.0)
            if culprits and symptom >= settings.support_strength and own < max(
                anomaly[c] for c in culprits
            ):
                best = max(culprits, key=lambda c: anomaly[c])
                named = ", ".join(f"{c} ({anomaly[c]:.2f})" for c in culprits)
                out.append(
                    base.Against(
                        investigator=NAME,
                        kind=self.kind,
                        status=model.EvidenceStatus.OK,
                        query=query,
                        observation=(
                            f"{service} (symptoms {symptom:.2f}) calls anomalous {named}: its "
                            f"symptoms are explained downstream, most likely by {best}"
                        ),
                        service=service,
                        fault=model.FaultKind.DEPENDENCY,
                        strength=min(1.0, symptom),
                        explained_by=best,
                    )
                )
                continue
            upstream = [c for c in callers_of(window.topology, service) if c in suspects]
            boost = 1.0 + 0.5 * min(len(upstream), 2) / 2
            calls = f"none of its callees ({', '.join(below)}) is" if below else "it calls nothing"
            seen_by = (
                f"; symptomatic callers {', '.join(upstream)} fit propagation from it"
                if upstream
                else ""
            )
            out.append(
                model.Evidence(
                    investigator=NAME,
                    kind=self.kind,
                    status=model.EvidenceStatus.OK,
                    query=query,
                    observation=f"{service} is anomalous ({strength:.2f}) and {calls}{seen_by}",
                    service=service,
                    fault=model.FaultKind.UNKNOWN,
                    strength=min(1.0, settings.origin_strength * strength * boost),
                )
            )
        return tuple(out)
