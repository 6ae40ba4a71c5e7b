"""Drains: services routed around while still broken, and the end of that.

When every replica of a service goes dark and a traffic shift moves its callers to another
region, the service is out of every request path: a human must restore it, but paging again
on it would only repeat the incident. The drain ends when the service answers again. Each
start and end is a ledger entry under the incident whose shift it was, read back by a
restarted controller through the store's kind index.

Called by the controller (restore at start, the check of each tick) and the workflow (after
a verified shift).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

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


def up_again(ctl: Controller, values: Mapping[tuple[str, str], float]) -> None:
    """Drained services whose every replica answers this tick are watched as usual."""
    for svc in [s for s in ctl.drained if values.get((s, "up"), 0.0) >= 1.0]:
        undrain(ctl, svc, "up again")
        ctl.emit("detect", f"{svc} answers again: it is watched as usual", service=svc)
