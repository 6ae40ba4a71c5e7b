"""The alerts investigator: what the alerts that opened or joined the incident say.

An alert from Alertmanager is a human-written rule that fired: direct evidence about the
service it names, independent of our own detectors. Its strength follows its severity; the
fault kind comes from the alert's name (memory, latency, errors, down…). Annotations are quoted
as data, never interpreted. Resolved alerts are reported but point nowhere.
"""

from __future__ import annotations

from collections.abc import Sequence

from selfheal import model
from selfheal.diagnose import window as window_mod

NAME = "alerts"

_SEVERITY = {"critical": 0.8, "page": 0.8, "error": 0.7, "warning": 0.55, "info": 0.3}
_FAULT_WORDS = (
    (("memory", "oom", "rss", "leak"), model.FaultKind.MEMORY_LEAK),
    (("latency", "slow", "duration", "p99"), model.FaultKind.LATENCY),
    (("error", "5xx", "fail"), model.FaultKind.ERRORS),
    (("down", "crash", "restart", "unavailable"), model.FaultKind.CRASH),
    (("cert", "tls", "ssl"), model.FaultKind.CERTIFICATE),
    (("saturat", "cpu", "overload", "queue"), model.FaultKind.OVERLOAD),
)


def fault_of(name: str) -> model.FaultKind:
    lowered = name.lower()
    for words, fault in _FAULT_WORDS:
        if any(w in lowered for w in words):
            return fault
    return model.FaultKind.UNKNOWN


class AlertsInvestigator:
    """Turns the incident's alerts into evidence about the services they name."""

    name = NAME
    kind = model.SignalKind.ALERTS

    def investigate(
        self,
        window: window_mod.Window,
        prior: Sequence[model.Evidence],
        settings: window_mod.Settings,
    ) -> tuple[model.Evidence, ...]:
        alerts = window.incident.alerts
        query = f"alerts that opened or joined incident {window.incident.id}"
        if not alerts:
            return (model.Evidence(investigator=NAME, kind=self.kind,
                                   status=model.EvidenceStatus.OK, query=query,
                                   observation="no alert joined this incident"),)
        latest: dict[str, model.Alert] = {}
        for a in alerts:  # the newest notification per fingerprint wins (firing, resolved)
            latest[a.fingerprint] = a
        out = []
        for a in sorted(latest.values(), key=lambda a: (a.service, a.name)):
            labels = dict(a.labels)
            summary = dict(a.annotations).get("summary", "")[:160]
            severity = labels.get("severity", "warning").lower()
            firing = a.status == "firing"
            strength = _SEVERITY.get(severity, 0.5) if firing and a.service else 0.0
            text = f"{a.name} {a.status} on {a.service or '(no service label)'}"
            if summary:
                text += f": {summary!r}"
            out.append(model.Evidence(
                investigator=NAME, kind=self.kind, status=model.EvidenceStatus.OK,
                query=f"{query}: fingerprint {a.fingerprint}, severity {severity}",
                observation=text, service=a.service if firing else "",
                fault=fault_of(a.name), strength=strength))
        return tuple(out)
