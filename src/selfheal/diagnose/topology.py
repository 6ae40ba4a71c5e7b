"""The topology investigator: is a service's symptom explained by an anomalous callee?

It reasons over the direct evidence gathered before it (metrics, logs, traces) and the call
graph. Metrics and logs symptoms (latency, errors) travel up the call graph; trace evidence is
already placed on the call graph (wire time per edge, self time), so it is not explained away
here. A caller whose metrics/logs symptoms are matched by a callee (directly or further down)
at least `propagation_ratio` as anomalous gets `base.Against` evidence (fault DEPENDENCY, naming
the callee that explains it), as strong as the symptoms it explains — the reconciler counts it
*against* the caller being the root cause.
An anomalous service none of whose callees is anomalous is a likely origin and gets supporting
evidence, stronger when its callers show symptoms too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from selfheal import model
from selfheal.diagnose import base
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
        if not window.topology:
            return (base.no_data(NAME, self.kind, query, "no topology: call graph unknown"),)
        anomaly = base.anomaly_by_service(prior, DIRECT)
        symptoms = base.anomaly_by_service(prior, PROPAGATING)
        suspects = {s: a for s, a in anomaly.items() if a >= settings.support_strength}
        if not suspects:
            return (
                base.no_data(
                    NAME, self.kind, query, "no anomalous service to place on the call graph"
                ),
            )
        out: list[model.Evidence] = []
        for service, strength in sorted(suspects.items()):
            below = reachable(window.topology, service)
            symptom = symptoms.get(service, 0.0)
            culprits = [
                c
                for c in below
                if anomaly.get(c, 0.0) >= max(settings.propagation_ratio * symptom, 1e-9)
                and anomaly.get(c, 0.0) >= settings.support_strength
            ]
            if culprits and symptom >= settings.support_strength:
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
