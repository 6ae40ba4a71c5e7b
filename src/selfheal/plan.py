"""The planner: from a diagnosis to a proposed plan of catalogue actions (never a decision).

Pure: it takes the diagnosis and the facts it needs about the platform (current and previous
versions, replica counts) as values. A plan is only a proposal until the policy gate rules on it.
"""

from __future__ import annotations

import dataclasses

from selfheal import catalogue, model


@dataclasses.dataclass(frozen=True)
class Facts:
    """What the planner may know about the target service, gathered by the runtime."""

    service: str
    version: str
    replicas: int
    last_deploy: model.Change | None = None
    """The most recent deploy of the service (not a rollback or canary), if known."""


def propose(diagnosis: model.Diagnosis, facts: Facts, plan_id: model.PlanId) -> model.Plan | None:
    """A plan for the top hypothesis, or None when nothing in the catalogue fits."""
    top = diagnosis.top
    if top is None or top.action_family is None or top.service != facts.service:
        return None
    step: model.Action | None = None
    why = ""
    if top.action_family == model.ActionKind.ROLLBACK:
        # Only undo a deploy that is still live: never "roll back" to whatever ran last
        # (after a rollback that would be the bad version again).
        d = facts.last_deploy
        if d is None or d.to_version != facts.version or not d.from_version \
                or d.from_version == facts.version:
            return None
        step = model.Action(model.ActionKind.ROLLBACK, facts.service,
                            model.params(from_version=facts.version,
                                         to_version=d.from_version))
        why = (f"{facts.service} {facts.version} is the likely cause ({top.fault.value}, "
               f"p={top.probability:.2f}); return to {d.from_version}, the version that ran "
               f"before {d.who} deployed {facts.version}")
    elif top.action_family == model.ActionKind.SCALE:
        target = min(facts.replicas * 2, 16)
        step = model.Action(model.ActionKind.SCALE, facts.service,
                            model.params(from_replicas=facts.replicas, to_replicas=target))
        why = f"{facts.service} looks overloaded; scale {facts.replicas} -> {target}"
    if step is None or catalogue.validate(step) is not None:
        return None
    inv = catalogue.inverse(step)
    kind = catalogue.CATALOGUE[step.kind]
    return model.Plan(
        id=plan_id, incident_id=diagnosis.incident_id, steps=(step,),
        inverse=(inv,) if inv is not None else (), rationale=why, risk=kind.risk,
        canary=facts.replicas > 1 and step.kind == model.ActionKind.ROLLBACK,
    )
