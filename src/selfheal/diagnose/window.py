"""The inputs of diagnosis: one incident's `Window` of signals and the one `Settings` object.

The engine builds a `Window` from its sources (a `None` field means that source is unavailable,
an empty one means it answered with nothing) and calls `selfheal.diagnose.diagnose`; the Nezha
benchmark builds the same values from recorded data. Both are frozen values, nothing here reads
a clock, a file or the environment.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping, Sequence

from selfheal import config, model


@dataclasses.dataclass(frozen=True)
class Window:
    """Everything the investigators may look at for one incident.

    `start`..`end` is the incident window (first anomaly minus a margin, up to now);
    `baseline_start`..`baseline_end` is a fault-free stretch before it that every investigator
    compares against. Series and records cover `baseline_start`..`end`.
    """

    incident: model.Incident
    start: float
    end: float
    baseline_start: float
    baseline_end: float
    metrics: Mapping[tuple[str, str], Sequence[model.Sample]] | None
    logs: Sequence[model.LogRecord] | None
    changes: Sequence[model.Change] | None
    spans: Sequence[model.Span] | None
    topology: Mapping[str, tuple[str, ...]]
    theories: tuple[str, ...] = ()
    model_hypotheses: tuple[model.Evidence, ...] = ()
    """Hypotheses a reasoner proposed (kind MODEL), already checked against the schema and
    the services of this window; `selfheal.diagnose.proposals` weighs them like evidence."""

    def services(self) -> tuple[str, ...]:
        """Every service this window knows of, from any signal, sorted."""
        names: set[str] = set(self.topology)
        for callees in self.topology.values():
            names.update(callees)
        if self.metrics is not None:
            names.update(service for service, _ in self.metrics)
        if self.logs is not None:
            names.update(record.service for record in self.logs)
        if self.spans is not None:
            names.update(span.service for span in self.spans)
        if self.changes is not None:
            names.update(change.service for change in self.changes)
        names.discard("")
        return tuple(sorted(names))


def _weights(**weights: float) -> Mapping[model.SignalKind, float]:
    return types.MappingProxyType({model.SignalKind(k): v for k, v in weights.items()})


@dataclasses.dataclass(frozen=True)
class Settings:
    """One configuration for every investigator and the reconciler (no per-fault tuning).

    Strengths are in [0, 1]; the reconciler scores a service as the weighted sum, over signal
    kinds, of the strongest evidence of that kind for it, and turns scores into probabilities
    with a softmax that includes a "none of these" candidate of score `null_score`.
    """

    # metrics: robust log-space z-score of the incident window against the service's baseline
    metric_z_threshold: float = 3.0
    metric_z_half: float = 6.0
    """z above the threshold at which a metric's strength reaches one half."""
    metric_log_floor: float = 0.15
    """The baseline noise in log space is at least this (a 16% move), so flat is not silent."""
    metric_reference_points: int = 3
    """The reference level is the median of this many latest baseline points."""
    min_baseline_points: int = 3
    metric_earliness_bonus: float = 0.1
    """Added to the strength of the service whose metrics moved first."""
    metric_starved_self: float = 0.3
    """What is left of a starved service's own strength (only its load fell: it moved because
    its callers stopped sending it work); the rest goes to those callers."""
    metric_fault_share: float = 0.25
    """A metric family names the fault when it moved at least this share as much as the
    strongest one (saturation then wins over latency by priority)."""

    # logs: drain3 templates, baseline against incident window
    drain_sim_th: float = 0.4
    drain_depth: int = 4
    log_min_count: int = 2
    """A new or shifted template needs at least this many lines in the incident window."""
    log_shift_ratio: float = 4.0
    """A template whose rate grew by at least this factor over its baseline rate has shifted."""
    log_new_error_strength: float = 0.7
    log_new_strength: float = 0.35
    log_new_half_count: float = 3.0
    """A new template weighs half its strength at this many lines in the incident window: a
    handful of new error lines (a discovery hiccup) is weaker news than an error the service
    now writes on every request."""
    log_shift_strength: float = 0.25
    """An error template's shift weighs 1.5 times this."""
    log_vanish_expected: float = 8.0
    """A template vanishes when this many lines were expected in the window and none came."""
    log_vanish_strength: float = 0.35
    log_named_service_discount: float = 0.5
    """The share of an error line's weight that a service it names explains away, when that
    service is anomalous by its own signals (the rest stays with the logger: the failure may
    be on the way, or in the caller)."""

    # traces: self time and error origin per service
    trace_ratio_threshold: float = 2.0
    trace_min_spans: int = 5
    trace_error_delta: float = 0.05
    trace_floor_s: float = 0.005
    """Added to both p90s before taking their ratio, so sub-millisecond noise is not a shift."""
    trace_gain_floor_s: float = 0.01
    trace_gain_half_s: float = 0.3
    """A call edge that gained this much p90 wire time (above the floor) weighs one half."""
    trace_self_weight: float = 0.5
    behaviour_min_spans: int = 20
    """Spans of an operation, before and during, for its median duration to be compared."""
    behaviour_min_spans_calls: int = 5
    """Spans of an operation, before and during, for the calls it makes to be compared."""
    behaviour_p_value: float = 1e-3
    """A drop in how often an operation makes a call must be this unlikely by chance (one-sided
    Fisher exact test of the two shares)."""
    behaviour_share_floor: float = 0.15
    """An operation calling a child in this much smaller a share of its spans is not news."""
    behaviour_share_half: float = 0.2
    behaviour_shrink: float = 5.0
    """An operation whose median duration shrank by more than this factor returns early."""
    behaviour_weight: float = 0.9
    """Slower processing alone is weaker evidence than a shift on every call edge."""
    trace_relative_drop_floor: float = 0.3
    """A child call made this much less often (as a fraction of how often it was made) is news."""
    trace_relative_drop_half: float = 0.3
    trace_relative_drop_min_calls: float = 10.0
    """The calls expected in the window at the old share: fewer, and a relative drop proves
    little."""
    trace_relative_drop_z: float = 4.0
    """Binomial z a relative drop must reach (the old share as the null)."""

    # changes: deploys and config changes shortly before or inside the window
    change_lookback_s: float = 1800.0
    change_strength: float = 0.7
    change_decay_s: float = 900.0
    """A change this long before the window start has lost half its strength."""

    # health: replicas that stopped answering their scrape (`up`)
    health_down_samples: int = 3
    """Latest `up` samples that must all show a replica missing before it counts (one slow
    scrape is not a dead replica)."""
    health_change_margin_s: float = 30.0
    """A change to the service (a deploy, a restart) from this long before the first of those
    samples on explains them: a replica set being replaced is not a hang."""

    # topology: a symptom explained by an anomalous callee
    propagation_ratio: float = 0.6
    """A callee at least this fraction as anomalous as its caller explains the caller."""
    origin_strength: float = 0.5
    """Strength of "anomalous and no callee is" relative to the service's own anomaly."""

    # human theories
    human_strength: float = 0.05

    # a reasoner's (a model's) hypotheses: a tie-breaker, never enough on its own
    model_strength: float = 0.3
    """Strength of a model hypothesis of confidence 1 (its score adds at most 0.5 * 0.3, below
    `null_score`, so a model alone cannot make a service probable)."""

    # reconciler
    kind_weights: Mapping[model.SignalKind, float] = dataclasses.field(
        default_factory=lambda: _weights(
            metrics=1.0,
            logs=1.0,
            traces=1.0,
            changes=0.8,
            topology=0.6,
            alerts=0.5,
            human=0.2,
            model=0.5,
        )
    )
    against_weight: float = 0.8
    generic_fault_discount: float = 0.5
    """Latency and unknown are symptoms every sick service shows: their votes for the fault
    kind count this much, so a more specific fault with support wins over them."""
    # The two calibration constants below were chosen once, on Nezha's two development days
    # (a grid minimising log loss and Brier score of the top hypothesis), and are the same for
    # every system, fault and the demo.
    temperature: float = 0.1
    null_score: float = 0.2
    support_strength: float = 0.3
    """Evidence at least this strong counts as support for layered verification (and places a
    service on the call graph as a suspect)."""
    corroboration_strength: float = 0.15
    """Layered verification: one kind must support the top hypothesis at `support_strength`;
    the other independent kinds it needs may corroborate it more weakly, at this strength (a
    service's own latency 5 MADs up, say: a real move of its own, if not a decisive one)."""
    contradiction_strength: float = 0.6
    """Evidence of another kind at least this strong pointing elsewhere contradicts."""
    max_probability: float = 0.99
    min_independent_kinds: int = 2
    min_probability: float = 0.5
    max_hypotheses: int = 10


DEFAULT_SETTINGS = Settings()


def settings_from(section: config.Diagnose) -> Settings:
    """The one Settings value from the config file's `diagnose:` section (unset: default)."""
    overrides = {k: v for k, v in section.model_dump().items() if v is not None}
    return dataclasses.replace(DEFAULT_SETTINGS, **overrides)

INDEPENDENT_KINDS = frozenset(
    {
        model.SignalKind.METRICS,
        model.SignalKind.LOGS,
        model.SignalKind.TRACES,
        model.SignalKind.CHANGES,
        model.SignalKind.ALERTS,
    }
)
"""Kinds read straight from a source; topology and human evidence only reason over them."""


def in_range(t: float, lo: float, hi: float) -> bool:
    return lo <= t <= hi


def baseline_range(window: Window) -> tuple[float, float]:
    return window.baseline_start, window.baseline_end


def incident_range(window: Window) -> tuple[float, float]:
    return window.start, window.end


__all__ = [
    "DEFAULT_SETTINGS",
    "INDEPENDENT_KINDS",
    "Settings",
    "Window",
    "baseline_range",
    "in_range",
    "incident_range",
    "settings_from",
]
