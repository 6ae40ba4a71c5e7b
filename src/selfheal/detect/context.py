"""What was going on around an anomaly: changes, maintenance windows and open incidents.

`Detector` asks `judge` whether an episode is expected: it started inside a change's settle
window for its service (a deploy restarting replicas, a scaling step) or it fires during a
maintenance window. An episode that outlasts the settle window is no longer expected, and the
reason says so, so the engine opens an incident for it.
"""

from __future__ import annotations

import dataclasses

from selfheal import model


@dataclasses.dataclass(frozen=True)
class Context:
    """Recent changes and maintenance windows, passed with every tick."""

    changes: tuple[model.Change, ...] = ()
    maintenance: tuple[tuple[float, float, str], ...] = ()
    """(start, end, service or "*")."""
    settle_s: float = 15.0
    """How long a change may disturb its service before disturbance counts as a problem."""
    lead_s: float = 2.0
    """Tolerance for an effect seen slightly before the change was recorded."""
    incidents: frozenset[str] = frozenset()
    """Services under an open incident (or being healed): `Detector`'s report gate does not
    learn their episodes as routine, so a failure that keeps recurring stays news."""


def excused(context: Context, service: str, started_at: float, t: float) -> bool:
    """Is this episode part of something already known (an open incident of its service, a
    change's settle window it began in, a maintenance window)? Such an episode is never learned
    as routine for its series."""
    return service in context.incidents or bool(judge(context, service, started_at, t).reason)


@dataclasses.dataclass(frozen=True)
class Judgement:
    expected: bool
    reason: str


def _describe(change: model.Change) -> str:
    version = f" {change.to_version}" if change.to_version else ""
    return f"{change.kind} {change.id} of {change.service}{version}"


def judge(context: Context, service: str, started_at: float, t: float) -> Judgement:
    """Is an episode of `service` that began at `started_at` expected at time `t`?"""
    for start, end, who in context.maintenance:
        if who in ("*", service) and start <= t <= end:
            return Judgement(True, f"inside the maintenance window {start:.0f}-{end:.0f} of {who}")
    outlasted: model.Change | None = None
    for change in sorted(context.changes, key=lambda c: c.t, reverse=True):
        if change.service not in ("*", service):
            continue
        settle_end = change.t + context.settle_s
        if change.t - context.lead_s <= started_at <= settle_end:
            if t <= settle_end:
                return Judgement(
                    True,
                    f"started {started_at - change.t:+.0f} s after {_describe(change)}, "
                    f"inside its {context.settle_s:.0f} s settle window",
                )
            outlasted = outlasted or change
    if outlasted is not None:
        return Judgement(
            False,
            f"outlasted the {context.settle_s:.0f} s settle window of {_describe(outlasted)}",
        )
    for start, end, who in context.maintenance:
        if who in ("*", service) and start <= started_at <= end < t:
            return Judgement(False, f"outlasted the maintenance window {start:.0f}-{end:.0f}")
    return Judgement(False, "")
