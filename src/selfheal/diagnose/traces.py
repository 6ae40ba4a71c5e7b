"""The traces investigator: self time and error origin per service along the call graph.

A span's self time is its duration minus the time covered by its children, so a slow callee is
not blamed on its callers; an error is attributed to the deepest erroring span (the one none of
whose children erred). Each service's baseline spans are compared with its incident spans.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from selfheal import model
from selfheal.diagnose import base
from selfheal.diagnose import window as window_mod

NAME = "traces"


@dataclasses.dataclass(frozen=True)
class SpanStat:
    """One span reduced to what the investigator compares: self time and error origin."""

    service: str
    start: float
    self_time: float
    error_origin: bool


def _covered(intervals: list[tuple[float, float]], lo: float, hi: float) -> float:
    """Length of the union of `intervals` clipped to [lo, hi]."""
    total, cursor = 0.0, lo
    for a0, b0 in sorted(intervals):
        a, b = max(a0, cursor), min(b0, hi)
        if b > a:
            total += b - a
            cursor = b
    return total


def span_stats(spans: Sequence[model.Span]) -> list[SpanStat]:
    children: dict[str, list[model.Span]] = {}
    for span in spans:
        if span.parent_id:
            children.setdefault(span.parent_id, []).append(span)
    out = []
    for span in spans:
        kids = children.get(span.span_id, [])
        duration = max(span.end - span.start, 0.0)
        covered = _covered([(k.start, k.end) for k in kids], span.start, span.end)
        origin = span.error and not any(k.error for k in kids)
        out.append(SpanStat(span.service, span.start, max(duration - covered, 0.0), origin))
    return out


class TracesInvestigator:
    """Per service: p90 self time and error-origin ratio, baseline against incident."""

    name = NAME
    kind = model.SignalKind.TRACES

    def investigate(
        self,
        window: window_mod.Window,
        prior: Sequence[model.Evidence],
        settings: window_mod.Settings,
    ) -> tuple[model.Evidence, ...]:
        query = (
            f"per service: p90 span self time and error-origin ratio, incident "
            f"[{window.start:.0f}, {window.end:.0f}] vs baseline [{window.baseline_start:.0f}, "
            f"{window.baseline_end:.0f}]; latency ratio >= {settings.trace_ratio_threshold}, "
            f"error delta >= {settings.trace_error_delta}"
        )
        if window.spans is None:
            return (base.no_data(NAME, self.kind, query, "no trace data: source unavailable"),)
        if not window.spans:
            return (base.no_data(NAME, self.kind, query, "no trace data: no spans in window"),)
        groups: dict[str, tuple[list[SpanStat], list[SpanStat]]] = {}
        for stat in span_stats(window.spans):
            pair = groups.setdefault(stat.service, ([], []))
            if window_mod.in_range(stat.start, window.baseline_start, window.baseline_end):
                pair[0].append(stat)
            elif window_mod.in_range(stat.start, window.start, window.end):
                pair[1].append(stat)
        out: list[model.Evidence] = []
        for service, (before, during) in sorted(groups.items()):
            if len(before) < settings.trace_min_spans or len(during) < settings.trace_min_spans:
                continue
            p90_before = float(np.percentile([s.self_time for s in before], 90))
            p90_during = float(np.percentile([s.self_time for s in during], 90))
            ratio = p90_during / max(p90_before, 1e-6)
            err_before = sum(s.error_origin for s in before) / len(before)
            err_during = sum(s.error_origin for s in during) / len(during)
            latency = base.saturate(ratio - settings.trace_ratio_threshold, 1.5)
            errors = base.saturate(err_during - err_before - settings.trace_error_delta, 0.1)
            if latency <= 0.0 and errors <= 0.0:
                continue
            fault = model.FaultKind.ERRORS if errors >= latency else model.FaultKind.LATENCY
            out.append(
                model.Evidence(
                    investigator=NAME,
                    kind=self.kind,
                    status=model.EvidenceStatus.OK,
                    query=query,
                    observation=(
                        f"{service}: p90 self time {p90_before * 1e3:.1f} -> "
                        f"{p90_during * 1e3:.1f} ms (x{ratio:.1f}); error origin "
                        f"{err_before:.1%} -> {err_during:.1%} over {len(during)} spans"
                    ),
                    service=service,
                    fault=fault,
                    strength=max(latency, errors),
                )
            )
        if not out:
            out.append(
                model.Evidence(
                    investigator=NAME,
                    kind=self.kind,
                    status=model.EvidenceStatus.OK,
                    query=query,
                    observation=(
                        f"no service's self time or error origin moved ({len(groups)} seen)"
                    ),
                )
            )
        return tuple(out)
