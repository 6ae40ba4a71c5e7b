"""Follow-ups: what an incident does after production is healed and verified.

The workflow calls `code_fix` after a verified rollback, before the incident closes. The
durable fix (the release's commits reverted on a branch, with a drafted pull request) goes
through the gate and the executor like any action; a refusal or a failure only leaves the
follow-up to a human, since production is already healed.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from selfheal import model, plan

if TYPE_CHECKING:
    from selfheal.engine.controller import Case
    from selfheal.engine.workflow import Workflow


async def code_fix(wf: Workflow, case: Case, rollback: model.Action) -> None:
    """After a verified rollback: the durable fix in code (a branch and a pull-request
    draft), through the gate and the executor like any action. Production is already
    healed, so a refusal or a failure here only leaves the follow-up to a human."""
    ctl = wf.ctl
    diag = case.detail.get("diagnosis")
    if not isinstance(diag, model.Diagnosis) or diag.top is None:
        return
    top = diag.top
    fix = plan.code_fix(rollback, case.incident.id,
                        model.PlanId(f"plan-{uuid.uuid4().hex[:8]}"),
                        f"incident {case.incident.id}: {top.summary}")
    if fix is None:
        return
    ctl.record(case, "follow_up.plan", {"plan": fix})
    review = ctl.gate.review(fix, diag, ctl.clock(), wf.context(case.incident))
    d = review.decision
    ctl.record(case, "follow_up.decision", {"decision": d,
                                            "permits": [p.id for p in review.permits]})
    step = fix.steps[0]
    if d.verdict != model.Verdict.ALLOW or not review.permits:
        case.detail["code_fix"] = {"made": False, "action": step.describe(),
                                   "why": f"{d.verdict.value} by rule '{d.rule}'"}
        ctl.emit("plan", f"code fix left to a human ({step.describe()}): the gate said "
                 f"{d.verdict.value} by rule '{d.rule}'", case.incident.id)
        return
    try:
        ex = await ctl.executor.run(review.permits[0], case.incident.id, phase="full")
    finally:
        for p in review.permits:
            ctl.gate.release(p)
    ok = ex.status == model.ExecutionStatus.SUCCEEDED
    case.detail.setdefault("executions", []).append(ex)
    case.detail["code_fix"] = {"made": ok, "action": step.describe(), "detail": ex.detail}
    ctl.persist(case)
    ctl.emit("act" if ok else "plan", ex.detail if ok else
             f"code fix failed, left to a human: {ex.detail}", case.incident.id)
