"""The health investigator: replicas that stopped answering, and things about to expire.

Some faults are invisible to load signals. A hung replica reports nothing at all, so its
service's latency and errors look fine (its callers' do not); a certificate or a credential
breaks nothing until the second it expires. What the platform does see is the scraper's `up`
(the fraction of a service's replicas that answered their scrape) and the expiry dates the
replicas export (`cert_ttl_s`, `credential_ttl_s`). This investigator reads those series from
the window and says which service lost some replicas (fault HUNG: alive but silent) or all of
them (UNREACHABLE: a region or network cut, which a restart cannot mend), and which holds
a certificate or credential inside its renewal window. It reads metrics, so its evidence is of
kind METRICS; a second, independent kind (the callers' symptoms placed on the call graph, the
service's own log warnings) must still agree before anything acts. How many silent scrapes
make a hang, and how long before them a change to the service excuses them, are settings
(`health_down_samples`, `health_change_margin_s` in the config's `diagnose:` section).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from selfheal import model
from selfheal.detect import expiry
from selfheal.diagnose import base
from selfheal.diagnose import window as window_mod

NAME = "health"

FAULT = {"cert_ttl_s": model.FaultKind.CERTIFICATE,
         "credential_ttl_s": model.FaultKind.CREDENTIAL}


def _in(samples: Sequence[model.Sample], start: float, end: float) -> list[model.Sample]:
    return sorted((s for s in samples if start <= s.t <= end and math.isfinite(s.value)),
                  key=lambda s: s.t)


class HealthInvestigator:
    """Reads `up` and the time-to-expiry series of every service in the window."""

    name = NAME
    kind = model.SignalKind.METRICS

    def __init__(self, renew_before: Mapping[str, float] = expiry.DEFAULT_RENEW_BEFORE
                 ) -> None:
        self.renew_before = renew_before

    def investigate(
        self,
        window: window_mod.Window,
        prior: Sequence[model.Evidence],
        settings: window_mod.Settings,
    ) -> tuple[model.Evidence, ...]:
        query = (f"up (replicas answering their scrape, last {settings.health_down_samples} "
                 "samples against the baseline, unless the service changed up to "
                 f"{settings.health_change_margin_s:.0f} s before them) and time to expiry of "
                 "certificates and credentials against their renewal windows")
        if window.metrics is None:
            return (base.no_data(NAME, self.kind, query, "metric source unavailable"),)
        # The detector's own horizon, when an expiry anomaly opened this incident.
        horizon = dict(self.renew_before)
        for a in window.incident.anomalies:
            if a.detector == "expiry":
                horizon[a.metric] = a.baseline
        out = []
        for (service, metric), samples in sorted(window.metrics.items()):
            if metric == "up":
                found = self._down(service, samples, window, settings, query)
            elif metric in FAULT and metric in horizon:
                found = self._expiring(service, metric, samples, window, horizon[metric], query)
            else:
                continue
            if found is not None:
                out.append(found)
        # A metric source without scrape health (recorded data, say) leaves this
        # investigator with nothing to add; the metrics investigator already speaks for the
        # source, so silence here does not count as missing evidence twice.
        return tuple(out)

    def _down(self, service: str, samples: Sequence[model.Sample], window: window_mod.Window,
              settings: window_mod.Settings, query: str) -> model.Evidence | None:
        need = settings.health_down_samples
        before = _in(samples, window.baseline_start, window.baseline_end)
        recent = _in(samples, window.start, window.end)[-need:]
        if len(recent) < need or not before:
            return None
        usual = sorted(s.value for s in before)[len(before) // 2]
        now = max(s.value for s in recent)  # the best of the latest: down in every one
        if usual < 0.99 or now >= usual - 1e-9:
            return None
        # A replica set being replaced (a deploy, a restart) is not a hang.
        since = recent[0].t
        changed = [c for c in window.changes or () if c.service == service
                   and since - settings.health_change_margin_s <= c.t <= window.end]
        if changed:
            return None
        lost = usual - now
        if now <= 0.0:
            # Every replica went silent at once: a region or a network cut, or a crash of
            # all of them. Restarting cannot reach what the network cannot; say so.
            what, fault = ("every replica stopped answering (unreachable: down, or cut off "
                           "from the network)", model.FaultKind.UNREACHABLE)
        else:
            what, fault = (f"{lost:.0%} of its replicas stopped answering while the others "
                           "serve (alive but silent: hung)", model.FaultKind.HUNG)
        return model.Evidence(
            investigator=NAME, kind=self.kind, status=model.EvidenceStatus.OK, query=query,
            observation=(f"{service}: up {usual:.2f} -> {now:.2f} for the last "
                         f"{len(recent)} scrapes: {what}"),
            service=service, fault=fault, strength=min(0.95, 0.6 + 0.6 * lost))

    def _expiring(self, service: str, metric: str, samples: Sequence[model.Sample],
                  window: window_mod.Window, horizon: float, query: str
                  ) -> model.Evidence | None:
        recent = _in(samples, window.start, window.end)
        if not recent:
            return None
        ttl = recent[-1].value
        if ttl > horizon:
            return None
        what = expiry.WHAT[metric]
        said = (f"expires in {ttl:.0f} s" if ttl > 0 else f"expired {-ttl:.0f} s ago")
        return model.Evidence(
            investigator=NAME, kind=self.kind, status=model.EvidenceStatus.OK, query=query,
            observation=(f"{service}'s {what} {said} (renewal window {horizon:.0f} s)"),
            service=service, fault=FAULT[metric], strength=1.0 if ttl <= 0 else 0.9)


_ERROR_LEVELS = frozenset({"ERROR", "ERR", "CRITICAL", "FATAL", "SEVERE", "PANIC"})

NOT_REACHED = re.compile(
    r"\b(bad gateway|502|no route to host|(host|network) (is )?unreachable|unreachable|"
    r"connection (refused|reset|aborted|closed)|closed connection without response|"
    r"name or service not known|no replicas|no instances available)\b", re.I)
"""What a caller writes when its call never reached the callee (as opposed to the callee
answering with an error, or answering too slowly)."""


class CalleeLogsInvestigator:
    """What callers' error logs say about the services they call.

    A hung or failing service often cannot log anything itself; its callers do ("call to cart
    failed: timed out"). An error line a caller writes that names one of its callees (from the
    call graph) is the callers' testimony about that callee: independent of the callee's own
    metrics, and of kind LOGS. Mostly it names no fault (the callee's own signals say what is
    wrong), only where the failures are seen to come from. One fault it does see: when most of
    the callers' lines say the call never reached the callee (`NOT_REACHED`: refused, no route,
    a bad gateway), at a sustained rate (`cut_off`), and the callee itself wrote no error in
    the window (the requests did not get to it), the callee is UNREACHABLE, a region or
    network cut. Whether the callers can go around it (another region) is the platform's to
    say, not the logs'.
    """

    name = "callee-logs"
    kind = model.SignalKind.LOGS

    def __init__(self, min_lines: int = 5, half: float = 10.0, cut_off: float = 0.5) -> None:
        self.min_lines = min_lines
        """Error lines naming a callee in the incident window before it counts."""
        self.half = half
        """Lines per minute above the baseline rate at which the strength reaches one half."""
        self.cut_off = cut_off
        """The strength the testimony needs before it says UNREACHABLE: calls failing to
        reach the callee at a sustained rate (`half` lines a minute above the baseline), not
        the odd service-discovery miss a busy system logs all along."""

    def investigate(
        self,
        window: window_mod.Window,
        prior: Sequence[model.Evidence],
        settings: window_mod.Settings,
    ) -> tuple[model.Evidence, ...]:
        query = ("error lines each caller wrote that name one of its callees (call graph), "
                 "per minute in the incident window against the baseline; unreachable when "
                 "most say the call did not reach a callee that logs no error itself")
        if window.logs is None or not window.topology:
            return ()  # the logs investigator already says when logs are missing
        pattern = {callee: re.compile(rf"(?<![\w-]){re.escape(callee)}(?![\w-])")
                   for callees in window.topology.values() for callee in callees}
        base_s = max(window.baseline_end - window.baseline_start, 1.0)
        now_s = max(window.end - window.start, 1.0)
        counts: dict[tuple[str, str], list[int]] = {}
        example: dict[tuple[str, str], str] = {}
        not_reached: dict[tuple[str, str], int] = {}
        failing: set[str] = set()  # services that wrote errors of their own in the window
        for record in window.logs:
            if record.level.upper() not in _ERROR_LEVELS:
                continue
            during = window.start <= record.t <= window.end
            before = window.baseline_start <= record.t < window.baseline_end
            if not (during or before):
                continue
            if during:
                failing.add(record.service)
            for callee in window.topology.get(record.service, ()):
                if pattern[callee].search(record.message):
                    key = (record.service, callee)
                    counts.setdefault(key, [0, 0])[0 if before else 1] += 1
                    if during:
                        example.setdefault(key, record.message[:120])
                        if NOT_REACHED.search(pattern[callee].sub(" ", record.message)):
                            not_reached[key] = not_reached.get(key, 0) + 1
        by_callee: dict[str, list[tuple[str, int, float]]] = {}
        for (caller, callee), (before_n, during_n) in counts.items():
            excess = 60.0 * (during_n / now_s - before_n / base_s)
            if during_n >= self.min_lines and excess > 0:
                by_callee.setdefault(callee, []).append((caller, during_n, excess))
        out = []
        for callee, rows in sorted(by_callee.items()):
            rows.sort(key=lambda r: -r[2])
            said = "; ".join(f"{caller} x{n} ({example[(caller, callee)]!r})"
                             for caller, n, _ in rows)
            unreached = sum(not_reached.get((caller, callee), 0) for caller, _, _ in rows)
            strength = base.saturate(sum(r[2] for r in rows), self.half)
            cut_off = (callee not in failing and strength >= self.cut_off
                       and 2 * unreached > sum(r[1] for r in rows))
            said = (f"callers' error logs name {callee}: {said}"[:400] if not cut_off else
                    f"callers' calls do not reach {callee}, which logs no error itself: "
                    f"{said}"[:400])
            out.append(model.Evidence(
                investigator=self.name, kind=self.kind, status=model.EvidenceStatus.OK,
                query=query, observation=said, service=callee,
                fault=model.FaultKind.UNREACHABLE if cut_off else model.FaultKind.UNKNOWN,
                strength=strength))
        return tuple(out)
