"""Blast-radius caps: how much of a service and of the fleet the gate lets selfheal touch.

The gate records every permit it mints here and asks before minting the next: replicas touched
per service and across the fleet within a sliding window, actions per window, and actions in
flight. State is bounded (entries older than the window are dropped) and the time is passed in,
so a flood of incidents can never push the total past a cap, whatever their order.
"""

from __future__ import annotations

import collections
import dataclasses
import math

from selfheal import model
from selfheal.policy import document


def replicas_touched(action: model.Action, replicas: int) -> int:
    """How many running replicas an action replaces, restarts or removes."""
    if action.kind == model.ActionKind.CODE_REVERT:
        return 0  # a branch and a pull-request draft: no running process changes
    if action.kind in (model.ActionKind.ROLLBACK, model.ActionKind.DEPLOY,
                       model.ActionKind.CONFIG_REVERT, model.ActionKind.CREDENTIAL_ROTATE,
                       model.ActionKind.CERT_RENEW):
        return max(replicas, 1)
    if action.kind == model.ActionKind.SCALE:
        try:
            return abs(int(action.param("to_replicas")) - int(action.param("from_replicas")))
        except ValueError:
            return max(replicas, 1)
    return 1


@dataclasses.dataclass(frozen=True)
class Touch:
    t: float
    service: str
    replicas: int
    permit: model.PermitId


class Window:
    """Recent touches and the permits still in flight."""

    def __init__(self, limits: document.Limits) -> None:
        self.limits = limits
        self.touches: collections.deque[Touch] = collections.deque()
        self.in_flight: set[model.PermitId] = set()

    def _expire(self, now: float) -> None:
        while self.touches and self.touches[0].t <= now - self.limits.window_s:
            self.touches.popleft()

    def check(self, action: model.Action, target: document.Target, replicas: int,
              fleet: int, now: float) -> str | None:
        """Why minting a permit for `action` now would break a cap, or None."""
        lim = self.limits
        self._expire(now)
        if "*" not in lim.allowed_tiers and target.tier not in lim.allowed_tiers:
            return f"tier {target.tier!r} is not in the allowed tiers {lim.allowed_tiers}"
        if "*" not in lim.allowed_regions and target.region not in lim.allowed_regions:
            return f"region {target.region!r} is not in the allowed regions {lim.allowed_regions}"
        if len(self.in_flight) >= lim.max_concurrent:
            return f"{len(self.in_flight)} actions already in flight (cap {lim.max_concurrent})"
        if len(self.touches) >= lim.max_actions_per_window:
            return (f"{len(self.touches)} actions in the last {lim.window_s:.0f} s "
                    f"(cap {lim.max_actions_per_window})")
        n = replicas_touched(action, replicas)
        svc_cap = max(1, math.floor(lim.max_service_fraction * max(replicas, 1) + 1e-9))
        svc_used = sum(t.replicas for t in self.touches if t.service == action.service)
        if svc_used + n > svc_cap:
            return (f"{action.service}: {svc_used} + {n} replicas touched in "
                    f"{lim.window_s:.0f} s would exceed {svc_cap} "
                    f"({lim.max_service_fraction:.0%} of {replicas})")
        fleet_cap = max(1, math.floor(lim.max_fleet_fraction * max(fleet, 1) + 1e-9))
        fleet_used = sum(t.replicas for t in self.touches)
        if fleet_used + n > fleet_cap:
            return (f"fleet: {fleet_used} + {n} replicas touched in {lim.window_s:.0f} s "
                    f"would exceed {fleet_cap} ({lim.max_fleet_fraction:.0%} of {fleet})")
        return None

    def take(self, permit: model.Permit, replicas: int, now: float) -> None:
        self.touches.append(Touch(now, permit.action.service,
                                  replicas_touched(permit.action, replicas), permit.id))
        self.in_flight.add(permit.id)

    def release(self, permit_id: model.PermitId) -> None:
        self.in_flight.discard(permit_id)
