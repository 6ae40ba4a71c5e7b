"""Drains: services routed around while still broken, and the end of that.

When every replica of a service goes dark and a traffic shift moves its callers to another
region, the service is out of every request path: a human must restore it, but paging again
on it would only repeat the incident. The drain starts when the shift takes effect and ends
when the service answers again, or when it is back in a request path: the shift's inverse was
applied (a failed verification, a revocation, a completed undo after a crash) or its caller was
routed back to it by hand. Each start and end is a ledger entry under the incident whose shift
it was, read back by a restarted controller through the store's kind index.

Called by the controller (restore at start, the checks of each tick) and the workflow (after
the shift, after an undo).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from selfheal import model, ports
from selfheal.store import sql

if TYPE_CHECKING:
    from selfheal.engine.controller import Case, Controller

DRAINED = "service.drained"
UNDRAINED = "service.undrained"
"""Ledger kinds of a drain's start and end."""


@dataclasses.dataclass(frozen=True)
class Drain:
    """A service routed around while still broken: not paged again until it answers."""

    since: float
    why: str
    incident_id: str = ""
    """The incident whose traffic shift routed around it ("" when the entry does not say)."""
    caller: str = ""
    """The caller that shift moved away from it ("" when the entry does not say)."""


def restore(store: sql.SqlStore) -> dict[str, Drain]:
    """The drained services as the ledger leaves them (the latest word on each), read by
    kind rather than by a walk of the whole chain."""
    drained: dict[str, Drain] = {}
    for row in store.ledger_of_kinds((DRAINED, UNDRAINED)):
        try:
            payload = json.loads(row.payload)
            service, since, why = payload["service"], payload["since"], payload["why"]
        except (ValueError, KeyError, TypeError):
            continue  # an unreadable entry: `ledger verify` is what reports it
        if row.kind == DRAINED:
            drained[str(service)] = Drain(float(since), str(why), row.incident_id,
                                          str(payload.get("caller", "")))
        else:
            drained.pop(str(service), None)
    return drained


def drain(ctl: Controller, case: Case, service: str, why: str, *, caller: str = "",
          to_region: str = "") -> None:
    """Stop paging `service` until it answers again (every replica dark, `caller` routed
    around it to `to_region` by `case`'s remedy). Written to the ledger first: a restarted
    selfheal reads it back and does not page the dark service again."""
    since = ctl.clock()
    ctl.record(case, DRAINED, {"service": service, "since": since, "why": why,
                               "caller": caller, "to_region": to_region})
    ctl.drained[service] = Drain(since, why, case.incident.id, caller)


def undrain(ctl: Controller, service: str, reason: str, case: Case | None = None) -> None:
    """End the drain of `service`, with the reason, under the incident that drained it (via
    `case` when its task is the one ending it, so its timeline shows it too). Written before
    the service can be paged again."""
    d = ctl.drained[service]
    payload = {"service": service, "since": d.since, "why": d.why, "reason": reason}
    if case is not None and case.incident.id == d.incident_id:
        ctl.record(case, UNDRAINED, payload)
    else:
        ctl.store.append_ledger(ctl.clock(), d.incident_id, UNDRAINED, payload)
    del ctl.drained[service]


def routed_around(ctl: Controller, case: Case, action: model.Action) -> None:
    """`action` took effect: if it is a traffic shift away from the unreachable service the
    diagnosis blames, that service is out of every request path from now on (verified or
    not: a failed verification undoes the shift, which ends the drain). Once per incident,
    a resumed run included."""
    diag = case.detail.get("diagnosis")
    top = diag.top if isinstance(diag, model.Diagnosis) else None
    if action.kind is not model.ActionKind.TRAFFIC_SHIFT or top is None \
            or top.fault is not model.FaultKind.UNREACHABLE or top.service == action.service:
        return
    held = ctl.drained.get(top.service)
    if held is not None and held.incident_id == case.incident.id:
        return
    region = action.param("to_region")
    why = (f"unreachable; {action.service}'s calls now go to region {region} "
           f"(incident {case.incident.id})")
    drain(ctl, case, top.service, why, caller=action.service, to_region=region)
    case.detail["drained"] = {"service": top.service, "why": why}
    ctl.persist(case)
    ctl.emit("act", f"{top.service} is still down but out of every request path: {why}; "
             "it needs a human, not a page", case.incident.id)


def after_undo(ctl: Controller, case: Case, ex: model.Execution, why: str) -> list[str]:
    """An undo ran for `case`. If it put a traffic shift back, the caller reaches what the
    shift routed around again: those services are no longer drained (a dark one is paged as
    usual). A failed undo leaves the shift, and the drain, in place. Returns the services
    whose drain ended."""
    if ex.status != model.ExecutionStatus.SUCCEEDED \
            or ex.action.kind is not model.ActionKind.TRAFFIC_SHIFT:
        return []
    caller = ex.action.service
    ended = sorted(svc for svc, d in ctl.drained.items()
                   if d.incident_id == case.incident.id and d.caller in ("", caller))
    for svc in ended:
        undrain(ctl, svc, f"the traffic shift of {caller} that routed around it was undone: "
                f"{why}", case)
        ctl.emit("undo", f"{svc} is no longer routed around: it is watched and paged as usual "
                 "again", case.incident.id, service=svc)
    if ended and isinstance(case.detail.get("drained"), dict):
        case.detail["drained"] = {**case.detail["drained"], "ended": why}
    return ended


def up_again(ctl: Controller, values: Mapping[tuple[str, str], float]) -> None:
    """Drained services whose every replica answers this tick are watched as usual."""
    for svc in [s for s in ctl.drained if values.get((s, "up"), 0.0) >= 1.0]:
        undrain(ctl, svc, "up again")
        ctl.emit("detect", f"{svc} answers again: it is watched as usual", service=svc)


def routed_back(ctl: Controller) -> None:
    """A drain whose caller is routed to the drained service again (an operator moved the
    traffic back by hand, outside selfheal) ends: the service is in a request path again."""
    if not ctl.drained or not isinstance(ctl.platform, ports.Failover):
        return
    for svc, d in sorted(ctl.drained.items()):
        if d.caller and any(c == d.caller for c, _ in ctl.platform.failovers(svc)):
            undrain(ctl, svc, f"{d.caller} is routed to it again")
            ctl.emit("detect", f"{d.caller} calls {svc} again: it is watched and paged as "
                     "usual", d.incident_id, service=svc)
