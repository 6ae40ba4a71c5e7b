"""The metrics investigator: which service's signals moved first and most, against its own baseline.

Each (service, metric) series is compared with its fault-free baseline in log space, so a
latency going from 5 to 50 ms and a memory going from 60 to 600 MB are the same size of move:
the reference level is the median of the last few baseline points, the noise is the MAD of the
whole baseline (with a floor, so a flat series does not make noise look infinite), and the
shift is the second most extreme incident point (one outlier is noise) in the direction that is
bad for that kind of metric. Saturation signals (CPU, memory, errors) are a service's own;
latency and traffic also move on services that merely call a sick one, so they weigh less.
The service's evidence is its strongest metric; the fault kind follows the metric family.

A service whose only moves are falls of its load (requests, syscalls, bytes on the wire) was
starved, not broken: its callers stopped sending it work. Its own evidence is discounted and
its callers on the call graph get the weight instead (fault ERRORS: a caller that stops making
its calls returns early or fails), so an exception in checkout that silences payment and email
points at checkout.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Mapping, Sequence

from selfheal import model
from selfheal.diagnose import base
from selfheal.diagnose import window as window_mod

NAME = "metrics"

UP, DOWN, BOTH = 1, -1, 0

LOAD_FAMILIES = frozenset({"traffic", "other"})
"""Families whose fall means less work arrived (requests, syscalls, network bytes)."""


@dataclasses.dataclass(frozen=True)
class Family:
    """A kind of metric recognised by name: which direction is bad, which fault it suggests."""

    name: str
    patterns: tuple[str, ...]
    direction: int
    fault: model.FaultKind
    priority: int
    weight: float = 1.0


# Order matters: the first family whose pattern occurs in the lower-cased metric name wins.
FAMILIES: tuple[Family, ...] = (
    Family("success", ("success",), DOWN, model.FaultKind.ERRORS, 2),
    Family("errors", ("error", "fail", "5xx", "exception"), UP, model.FaultKind.ERRORS, 2),
    Family("gc", ("gc",), UP, model.FaultKind.MEMORY_LEAK, 1),
    Family("memory", ("rss", "mem", "heap"), UP, model.FaultKind.MEMORY_LEAK, 1),
    Family("cpu", ("cpu",), UP, model.FaultKind.OVERLOAD, 0),
    Family(
        "client_latency",
        ("client",),
        UP,
        model.FaultKind.LATENCY,
        3,
        0.3,
    ),
    Family(
        "latency",
        ("latency", "p99", "p95", "p90", "p50", "duration", "delay", "rt"),
        UP,
        model.FaultKind.LATENCY,
        3,
        0.6,
    ),
    Family(
        "traffic", ("request", "workload", "qps", "rps"), BOTH, model.FaultKind.OVERLOAD, 4, 0.3
    ),
)
OTHER = Family("other", (), BOTH, model.FaultKind.UNKNOWN, 5, 0.3)


SCRAPE_UP = Family("up", (), DOWN, model.FaultKind.UNKNOWN, 6, 1.0)
"""The share of a service's replicas answering their scrape: when it falls the service itself
is down or hung (so a fall of its traffic beside it is not starvation). It names no fault:
the health investigator and the other series say which."""


def family_of(metric: str) -> Family:
    lowered = metric.lower()
    if lowered == "up":
        return SCRAPE_UP
    for family in FAMILIES:
        if any(pattern in lowered for pattern in family.patterns):
            return family
    return OTHER


@dataclasses.dataclass(frozen=True)
class Shift:
    """How far one series moved in its bad direction, and when it first crossed the threshold."""

    service: str
    metric: str
    family: Family
    baseline: float
    observed: float
    z: float
    onset: float | None


def series_shift(
    service: str,
    metric: str,
    samples: Sequence[model.Sample],
    window: window_mod.Window,
    settings: window_mod.Settings,
    family: Family | None = None,
) -> Shift | None:
    """The shift of one series, or None when its baseline or incident part is too short."""
    if family is None:
        family = family_of(metric)
    if family.name == "success":
        return _success_shift(service, metric, samples, window, settings)
    base = sorted(
        (
            s
            for s in samples
            if window_mod.in_range(s.t, window.baseline_start, window.baseline_end)
            and math.isfinite(s.value)
        ),
        key=lambda s: s.t,
    )
    now = sorted(
        (
            s
            for s in samples
            if window_mod.in_range(s.t, window.start, window.end) and math.isfinite(s.value)
        ),
        key=lambda s: s.t,
    )
    if len(base) < settings.min_baseline_points or not now:
        return None
    magnitude = statistics.median(abs(s.value) for s in base)
    if magnitude > 0.0:
        offset = 0.01 * magnitude
    elif family.direction == UP and family.fault is model.FaultKind.ERRORS:
        offset = 0.01  # an error ratio from 0 to a few percent is a real move
    else:
        return None  # a series that is usually zero has no scale to move against

    def log(value: float) -> float:
        return math.log(abs(value) + offset)

    logs = [log(s.value) for s in base]
    centre = statistics.median(logs)
    noise = max(
        1.4826 * statistics.median(abs(v - centre) for v in logs), settings.metric_log_floor
    )
    recent = base[-settings.metric_reference_points :]
    reference = statistics.median(log(s.value) for s in recent)
    median = statistics.median(s.value for s in recent)
    scored = []
    onset = None
    for sample in now:
        delta = (log(sample.value) - reference) / noise
        z = delta if family.direction == UP else -delta if family.direction == DOWN else abs(delta)
        scored.append((z, sample.value))
        if onset is None and z >= settings.metric_z_threshold:
            onset = sample.t
    # One outlier is noise: when there are several points, the shift is the second most extreme.
    scored.sort(reverse=True)
    best_z, best_value = scored[1] if len(scored) >= 2 else scored[0]
    return Shift(service, metric, family, median, best_value, best_z, onset)


FAILURES = Family("failures", (), UP, model.FaultKind.ERRORS, 2)
"""A success rate read as its complement (the failure ratio), which is what moves."""



def _success_shift(
    service: str,
    metric: str,
    samples: Sequence[model.Sample],
    window: window_mod.Window,
    settings: window_mod.Settings,
) -> Shift | None:
    """A success rate's shift, measured on its failure ratio.

    In log space a success rate from 100% to 95% is a 5% move, lost in the noise floor; the
    failure ratio it hides went from 0 to 5%, which is what an error budget counts. Percent
    rates (a name with '%' or values above 1) are read as such.
    """
    finite = [s for s in samples if math.isfinite(s.value)]
    if not finite:
        return None
    full = 100.0 if "%" in metric or max(s.value for s in finite) > 1.0 else 1.0
    failures = [
        dataclasses.replace(s, value=min(max(1.0 - s.value / full, 0.0), 1.0)) for s in finite
    ]
    shift = series_shift(service, metric.replace("Success", "Failure"), failures, window,
                         settings, family=FAILURES)
    if shift is None:
        return None
    return dataclasses.replace(
        shift, metric=metric, baseline=full * (1.0 - shift.baseline),
        observed=full * (1.0 - shift.observed),
    )


def _describe(shift: Shift) -> str:
    when = f", from t={shift.onset:.0f}" if shift.onset is not None else ""
    return (
        f"{shift.metric} {shift.baseline:.4g} -> {shift.observed:.4g} "
        f"(z={shift.z:.1f}, {shift.family.name}{when})"
    )


class MetricsInvestigator:
    """Robust per-series shift against the service's own fault-free baseline."""

    name = NAME
    kind = model.SignalKind.METRICS

    def investigate(
        self,
        window: window_mod.Window,
        prior: Sequence[model.Evidence],
        settings: window_mod.Settings,
    ) -> tuple[model.Evidence, ...]:
        query = (
            f"per (service, metric): robust z of incident window [{window.start:.0f}, "
            f"{window.end:.0f}] vs median/MAD of baseline [{window.baseline_start:.0f}, "
            f"{window.baseline_end:.0f}], bad direction per metric family, threshold "
            f"{settings.metric_z_threshold}"
        )
        if window.metrics is None:
            return (base.no_data(NAME, self.kind, query, "no metric data: source unavailable"),)
        shifts = self._shifts(window.metrics, window, settings)
        if not shifts:
            return (
                base.no_data(
                    NAME, self.kind, query, "no metric data: no series with baseline and window"
                ),
            )
        by_service: dict[str, list[Shift]] = {}
        for shift in shifts:
            if shift.z >= settings.metric_z_threshold:
                by_service.setdefault(shift.service, []).append(shift)
        if not by_service:
            return (
                model.Evidence(
                    investigator=NAME,
                    kind=self.kind,
                    status=model.EvidenceStatus.OK,
                    query=query,
                    observation=f"no series of {len(shifts)} moved beyond the threshold",
                ),
            )
        onsets = [s.onset for group in by_service.values() for s in group if s.onset is not None]
        first = min(onsets) if onsets else None
        unique_first = (
            sum(
                1
                for group in by_service.values()
                if min((s.onset for s in group if s.onset is not None), default=None) == first
            )
            == 1
        )
        found: dict[str, tuple[float, model.FaultKind, str]] = {}
        measures: dict[str, tuple[tuple[str, float], ...]] = {}
        starved: dict[str, float] = {}
        for service, group in sorted(by_service.items()):
            group.sort(key=lambda s: (-s.z, s.family.priority))
            strength = max(
                s.family.weight
                * base.saturate(s.z - settings.metric_z_threshold, settings.metric_z_half)
                for s in group
            )
            service_onset = min((s.onset for s in group if s.onset is not None), default=None)
            if first is not None and service_onset == first and unique_first:
                strength += settings.metric_earliness_bonus
            listed = "; ".join(_describe(s) for s in group[:4])
            more = f" (+{len(group) - 4} more)" if len(group) > 4 else ""
            text = f"{service}: {len(group)} series moved: {listed}{more}"
            if _starved(group) and callers_of(window.topology, service):
                starved[service] = strength
                strength *= settings.metric_starved_self
                text += " (only its load fell: its callers stopped sending it work)"
            found[service] = (strength, _fault(group, settings), text)
            measures[service] = request_rate(group)
        self._blame_callers(window.topology, starved, found)
        return tuple(
            model.Evidence(
                investigator=NAME,
                kind=self.kind,
                status=model.EvidenceStatus.OK,
                query=query,
                observation=text,
                service=service,
                fault=fault,
                strength=min(1.0, strength),
                measures=measures.get(service, ()),
            )
            for service, (strength, fault, text) in sorted(found.items())
        )

    @staticmethod
    def _blame_callers(
        topology: Mapping[str, tuple[str, ...]],
        starved: Mapping[str, float],
        found: dict[str, tuple[float, model.FaultKind, str]],
    ) -> None:
        """Give each starved service's weight to its callers, shared between them."""
        credit: dict[str, list[tuple[str, float]]] = {}
        for service, strength in starved.items():
            callers = callers_of(topology, service)
            for caller in callers:
                credit.setdefault(caller, []).append((service, strength / len(callers)))
        for caller, items in sorted(credit.items()):
            if caller in starved:
                continue  # starved itself: the work dried up further up
            total = min(1.0, sum(w for _, w in items))
            named = ", ".join(name for name, _ in sorted(items))
            one = len(items) == 1
            note = (
                f"{named} lost {'its' if one else 'their'} load: {caller} stopped calling "
                f"{'it' if one else 'them'}"
            )
            own, fault, text = found.get(caller, (0.0, model.FaultKind.UNKNOWN, ""))
            if total > own:
                rest = f"; {text.split(': ', 1)[1]}" if text else ""
                found[caller] = (total, model.FaultKind.ERRORS, f"{caller}: {note}{rest}")
            else:
                found[caller] = (own, fault, f"{text}; {note}")

    @staticmethod
    def _shifts(
        metrics: Mapping[tuple[str, str], Sequence[model.Sample]],
        window: window_mod.Window,
        settings: window_mod.Settings,
    ) -> list[Shift]:
        shifts = []
        for (service, metric), samples in metrics.items():
            shift = series_shift(service, metric, samples, window, settings)
            if shift is not None:
                shifts.append(shift)
        return shifts


def callers_of(topology: Mapping[str, tuple[str, ...]], service: str) -> list[str]:
    return sorted(caller for caller, callees in topology.items() if service in callees)


def request_rate(group: Sequence[Shift]) -> tuple[tuple[str, float], ...]:
    """The request rate before and during the incident, as `Evidence.measures`, when the
    service's traffic moved (the most moved traffic series); none otherwise.

    The planner sizes a scale-out by it: a service that serves twice its usual requests
    needs about twice its replicas.
    """
    traffic = [s for s in group if s.family.name == "traffic"]
    if not traffic:
        return ()
    moved = max(traffic, key=lambda s: s.z)
    return ((model.REQUEST_RATE_BASELINE, moved.baseline),
            (model.REQUEST_RATE_NOW, moved.observed))


def _starved(group: Sequence[Shift]) -> bool:
    """Did only the service's load fall (less work arrived), nothing of its own rise?"""
    return all(s.family.name in LOAD_FAMILIES and s.observed < s.baseline for s in group)


def _fault(group: Sequence[Shift], settings: window_mod.Settings) -> model.FaultKind:
    """The fault the moved series suggest: the most specific family that clearly moved.

    Saturation (CPU, then memory) explains latency and errors rather than the other way
    round, so it wins by priority as long as it moved `metric_fault_share` as much as the
    strongest.
    """
    top = max(s.z * s.family.weight for s in group)
    floor = settings.metric_fault_share * top
    strong = [s for s in group if s.z * s.family.weight >= floor and s.family is not OTHER]
    if not strong:
        return model.FaultKind.UNKNOWN
    return min(strong, key=lambda s: (s.family.priority, -s.z)).family.fault
