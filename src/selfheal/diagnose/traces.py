"""The traces investigator: self time, network time and error origin along the call graph.

A span's self time is its duration minus the time covered by its children, so a slow callee is
not blamed on its callers. A span with a child in another service is a client span: its self
time is time on the wire between the two services, counted for the call edge, not for either
service's processing. A service whose edges (in and out) grew slow on the wire has a network
problem; one edge only says little, since either end may be at fault. An error is attributed to
the deepest erroring span (the one none of whose children erred). Baseline spans are compared
with incident spans.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence

import numpy as np

from selfheal import model
from selfheal.diagnose import base
from selfheal.diagnose import window as window_mod

NAME = "traces"


@dataclasses.dataclass(frozen=True)
class SpanStat:
    """One server-side span reduced to its self time and whether it originated an error."""

    service: str
    start: float
    self_time: float
    error_origin: bool


@dataclasses.dataclass(frozen=True)
class EdgeStat:
    """One cross-service call: the time spent between caller and callee (client minus server)."""

    caller: str
    callee: str
    start: float
    gap: float


def _covered(intervals: list[tuple[float, float]], lo: float, hi: float) -> float:
    """Length of the union of `intervals` clipped to [lo, hi]."""
    total, cursor = 0.0, lo
    for a0, b0 in sorted(intervals):
        a, b = max(a0, cursor), min(b0, hi)
        if b > a:
            total += b - a
            cursor = b
    return total


def span_stats(spans: Sequence[model.Span]) -> tuple[list[SpanStat], list[EdgeStat]]:
    """Self times of processing spans and network gaps of cross-service calls."""
    children: dict[str, list[model.Span]] = {}
    for span in spans:
        if span.parent_id:
            children.setdefault(span.parent_id, []).append(span)
    stats, edges = [], []
    for span in spans:
        kids = children.get(span.span_id, [])
        duration = max(span.end - span.start, 0.0)
        remote = [k for k in kids if k.service != span.service]
        for kid in remote:
            gap = max(duration - max(kid.end - kid.start, 0.0), 0.0) if len(remote) == 1 else 0.0
            if len(remote) == 1:
                edges.append(EdgeStat(span.service, kid.service, span.start, gap))
        if remote:
            continue
        covered = _covered([(k.start, k.end) for k in kids], span.start, span.end)
        origin = span.error and not any(k.error for k in kids)
        stats.append(SpanStat(span.service, span.start, max(duration - covered, 0.0), origin))
    return stats, edges


ERROR_PATH = re.compile(r"error|exception|fault|fallback", re.IGNORECASE)
"""Operations that handle a failure: an operation calling one less often is failing less."""

def _relative_drop(
    share_before: float, share_during: float, n_during: int, settings: window_mod.Settings
) -> float:
    """Strength of a drop in how often an operation makes a rarer call (20% -> 4% of spans).

    The absolute drop in share undersells a call an operation made in only some of its spans;
    this measures the drop relative to the old share, when it is far beyond sampling noise.
    """
    expected = share_before * n_during
    if expected < settings.trace_relative_drop_min_calls or share_before >= 1.0:
        return 0.0
    se = (share_before * (1.0 - share_before) / n_during) ** 0.5
    if (share_before - share_during) / se < settings.trace_relative_drop_z:
        return 0.0
    relative = 1.0 - share_during / share_before
    return base.saturate(
        relative - settings.trace_relative_drop_floor, settings.trace_relative_drop_half
    )


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fewer_calls_p(k_before: int, n_before: int, k_during: int, n_during: int) -> float:
    """One-sided Fisher exact p-value of a share this much lower during the incident by chance.

    `k` of `n` spans made the call, before and during. Under the null both are draws from one
    pool: the during spans are `n_during` of the `n_before + n_during` spans, and the p-value is
    the hypergeometric probability of `k_during` or fewer of them having made the call. Exact
    for small counts, so seven spans of a rare operation that skipped a call made in every one
    of its 38 baseline spans is news, and two that skipped one of two calls is not.
    """
    total, made = n_before + n_during, k_before + k_during
    lo = max(0, n_during - (total - made))
    if k_during < lo:
        return 1.0
    denominator = _log_comb(total, n_during)
    return min(
        1.0,
        sum(
            math.exp(_log_comb(made, x) + _log_comb(total - made, n_during - x) - denominator)
            for x in range(lo, k_during + 1)
        ),
    )


def _p90(values: Sequence[float]) -> float:
    return float(np.percentile(values, 90))


class TracesInvestigator:
    """Per service: processing self time, wire time of its call edges, error origin."""

    name = NAME
    kind = model.SignalKind.TRACES

    def investigate(
        self,
        window: window_mod.Window,
        prior: Sequence[model.Evidence],
        settings: window_mod.Settings,
    ) -> tuple[model.Evidence, ...]:
        query = (
            f"per service: p90 span self time, p90 wire time of each call edge, error-origin "
            f"ratio; incident [{window.start:.0f}, {window.end:.0f}] vs baseline "
            f"[{window.baseline_start:.0f}, {window.baseline_end:.0f}]; ratio >= "
            f"{settings.trace_ratio_threshold}, error delta >= {settings.trace_error_delta}"
        )
        if window.spans is None:
            return (base.no_data(NAME, self.kind, query, "no trace data: source unavailable"),)
        if not window.spans:
            return (base.no_data(NAME, self.kind, query, "no trace data: no spans in window"),)
        stats, edges = span_stats(window.spans)
        found: dict[str, list[tuple[float, model.FaultKind, str]]] = {}
        seen = self._processing(stats, window, settings, found)
        seen += self._network(edges, window, settings, found)
        seen += self._behaviour(window.spans, window, settings, found)
        if not seen:
            return (
                base.no_data(
                    NAME, self.kind, query, "no trace data: too few spans before or during"
                ),
            )
        out: list[model.Evidence] = []
        for service, items in sorted(found.items()):
            items.sort(key=lambda i: -i[0])
            strength, fault, _ = items[0]
            if fault is model.FaultKind.LATENCY and any(
                f is model.FaultKind.OVERLOAD for _, f, _ in items
            ):
                # Slower processing shows on the wire too (requests queue before the handler
                # starts its span); a slow network does not slow the processing down.
                fault = model.FaultKind.OVERLOAD
            out.append(
                model.Evidence(
                    investigator=NAME,
                    kind=self.kind,
                    status=model.EvidenceStatus.OK,
                    query=query,
                    observation=f"{service}: " + "; ".join(i[2] for i in items),
                    service=service,
                    fault=fault,
                    strength=min(1.0, strength),
                )
            )
        if not out:
            out.append(
                model.Evidence(
                    investigator=NAME,
                    kind=self.kind,
                    status=model.EvidenceStatus.OK,
                    query=query,
                    observation="no service's self time, wire time or error origin moved",
                )
            )
        return tuple(out)

    def _processing(
        self,
        stats: Sequence[SpanStat],
        window: window_mod.Window,
        settings: window_mod.Settings,
        found: dict[str, list[tuple[float, model.FaultKind, str]]],
    ) -> int:
        groups: dict[str, tuple[list[SpanStat], list[SpanStat]]] = {}
        for stat in stats:
            pair = groups.setdefault(stat.service, ([], []))
            if window_mod.in_range(stat.start, window.baseline_start, window.baseline_end):
                pair[0].append(stat)
            elif window_mod.in_range(stat.start, window.start, window.end):
                pair[1].append(stat)
        seen = 0
        floor = settings.trace_floor_s
        for service, (before, during) in groups.items():
            if len(before) < settings.trace_min_spans or len(during) < settings.trace_min_spans:
                continue
            seen += 1
            p_before = _p90([s.self_time for s in before])
            p_during = _p90([s.self_time for s in during])
            ratio = (p_during + floor) / (p_before + floor)
            latency = base.saturate(ratio - settings.trace_ratio_threshold, 2.0)
            if latency > 0.0:
                found.setdefault(service, []).append(
                    (
                        latency * settings.trace_self_weight,
                        model.FaultKind.OVERLOAD,
                        f"p90 self time {p_before * 1e3:.1f} -> {p_during * 1e3:.1f} ms "
                        f"(x{ratio:.1f}, {len(during)} spans)",
                    )
                )
            err_before = sum(s.error_origin for s in before) / len(before)
            err_during = sum(s.error_origin for s in during) / len(during)
            errors = base.saturate(err_during - err_before - settings.trace_error_delta, 0.1)
            if errors > 0.0:
                found.setdefault(service, []).append(
                    (
                        errors,
                        model.FaultKind.ERRORS,
                        f"error origin {err_before:.1%} -> {err_during:.1%}",
                    )
                )
        return seen

    def _behaviour(
        self,
        spans: Sequence[model.Span],
        window: window_mod.Window,
        settings: window_mod.Settings,
        found: dict[str, list[tuple[float, model.FaultKind, str]]],
    ) -> int:
        """Did a service's operations start to skip calls or return much faster than before?

        An injected early return or exception shows as an operation that no longer makes the
        calls it used to (the share of its spans with a given child operation drops) or that
        ends far sooner; the service owning that operation changed behaviour.
        """
        kids: dict[str, set[tuple[str, str]]] = {}
        for span in spans:
            if span.parent_id:
                kids.setdefault(span.parent_id, set()).add((span.service, span.name))
        ops: dict[tuple[str, str], tuple[list[model.Span], list[model.Span]]] = {}
        for span in spans:
            pair = ops.setdefault((span.service, span.name), ([], []))
            if window_mod.in_range(span.start, window.baseline_start, window.baseline_end):
                pair[0].append(span)
            elif window_mod.in_range(span.start, window.start, window.end):
                pair[1].append(span)
        minimum = settings.behaviour_min_spans
        few = settings.behaviour_min_spans_calls
        seen = 0
        for (service, name), (before, during) in ops.items():
            if len(before) < few or len(during) < few:
                continue
            seen += 1
            notes: list[tuple[float, str]] = []
            children: set[tuple[str, str]] = set()
            for span in before:
                children |= kids.get(span.span_id, set())
            for child in children:
                if ERROR_PATH.search(child[1]):
                    continue  # it stopped failing (e.g. an error handler no longer called)
                made_before = sum(child in kids.get(s.span_id, ()) for s in before)
                made_during = sum(child in kids.get(s.span_id, ()) for s in during)
                share_before = made_before / len(before)
                share_during = made_during / len(during)
                if share_during >= share_before or (
                    fewer_calls_p(made_before, len(before), made_during, len(during))
                    > settings.behaviour_p_value
                ):
                    continue  # no drop, or one that sampling alone explains
                drop = share_before - share_during
                strength = max(
                    base.saturate(
                        drop - settings.behaviour_share_floor, settings.behaviour_share_half
                    ),
                    _relative_drop(share_before, share_during, len(during), settings),
                )
                if strength > 0.0:
                    notes.append(
                        (
                            strength,
                            f"{name} calls {child[1]} in {share_during:.0%} of spans "
                            f"(was {share_before:.0%}, {len(during)} spans)",
                        )
                    )
            if len(before) >= minimum and len(during) >= minimum:
                # Too few spans and a median duration means little; enough, and a far shorter
                # one is an operation that now returns early.
                median_before = float(np.median([s.end - s.start for s in before]))
                median_during = float(np.median([s.end - s.start for s in during]))
                shrink = (median_before + 1e-4) / (median_during + 1e-4)
                strength = base.saturate(
                    shrink - settings.behaviour_shrink, settings.behaviour_shrink
                )
                if strength > 0.0:
                    notes.append(
                        (
                            strength,
                            f"{name} ends {shrink:.0f}x sooner ({median_before * 1e3:.1f} -> "
                            f"{median_during * 1e3:.1f} ms median)",
                        )
                    )
            if notes:
                notes.sort(key=lambda n: -n[0])
                found.setdefault(service, []).append(
                    (
                        notes[0][0] * settings.behaviour_weight,
                        model.FaultKind.ERRORS,
                        "behaviour changed: " + "; ".join(n[1] for n in notes[:2]),
                    )
                )
        return seen

    def _network(
        self,
        edges: Sequence[EdgeStat],
        window: window_mod.Window,
        settings: window_mod.Settings,
        found: dict[str, list[tuple[float, model.FaultKind, str]]],
    ) -> int:
        groups: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
        for edge in edges:
            pair = groups.setdefault((edge.caller, edge.callee), ([], []))
            if window_mod.in_range(edge.start, window.baseline_start, window.baseline_end):
                pair[0].append(edge.gap)
            elif window_mod.in_range(edge.start, window.start, window.end):
                pair[1].append(edge.gap)
        floor = settings.trace_floor_s
        # Each slow edge weighs by how much wire time it gained (seconds, not a ratio: a 2 ms
        # edge doubling is noise, a 5 ms edge gaining 1 s is a fault).
        touching: dict[str, int] = {}
        slow: dict[tuple[str, str], tuple[float, float]] = {}
        for (caller, callee), (before, during) in groups.items():
            if len(before) < settings.trace_min_spans or len(during) < settings.trace_min_spans:
                continue
            touching[caller] = touching.get(caller, 0) + 1
            touching[callee] = touching.get(callee, 0) + 1
            p_before, p_during = _p90(before), _p90(during)
            ratio = (p_during + floor) / (p_before + floor)
            weight = base.saturate(
                p_during - p_before - settings.trace_gain_floor_s, settings.trace_gain_half_s
            )
            if ratio >= settings.trace_ratio_threshold and weight > 0.0 and caller != callee:
                slow[(caller, callee)] = (ratio, weight)
        # Greedy cover: either end of a slow edge may be at fault; the service whose slow edges
        # weigh most explains them, what is left is explained by the next one, and so on. Ties
        # go to the service with the larger share of its edges slow (a leaf over its caller
        # that has healthy edges too).
        explained: dict[str, list[tuple[str, float, float]]] = {}
        while slow:
            ends: dict[str, list[tuple[str, float, float]]] = {}
            for (a, b), (r, w) in slow.items():
                ends.setdefault(a, []).append((b, r, w))
                ends.setdefault(b, []).append((a, r, w))

            def rank(
                service: str, ends: dict[str, list[tuple[str, float, float]]] = ends
            ) -> tuple[float, float, str]:
                weight = sum(w for _, _, w in ends[service])
                return (round(weight, 6), len(ends[service]) / touching[service], service)

            pick = max(ends, key=rank)
            explained[pick] = ends[pick]
            slow = {k: v for k, v in slow.items() if pick not in k}
        for service, edges_of in explained.items():
            share = len(edges_of) / touching[service]
            heaviest = max(w for _, _, w in edges_of)
            strength = (0.5 + 0.5 * share) * heaviest
            named = ", ".join(
                f"{other} x{r:.1f}" for other, r, _ in sorted(edges_of, key=lambda e: -e[2])[:4]
            )
            found.setdefault(service, []).append(
                (
                    strength,
                    model.FaultKind.LATENCY,
                    f"wire time grew on {len(edges_of)} of its {touching[service]} call edges "
                    f"({named})",
                )
            )
        return len(groups)
