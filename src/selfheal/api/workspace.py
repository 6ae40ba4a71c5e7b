"""The investigation workspace: what its routes share, and the one router that holds them.

`selfheal serve` and `selfheal demo --open` build a `Workspace` (the store, the token store,
the policy, the live event hub, the workdir and the topology) and pass `router(ws)` to
`selfheal.api.create_app(..., routers=[...])`. The routes themselves live by concern in
`routes_read` (incidents, approvals, policy, trust, ledger, the event stream), `routes_write`
(approve/reject, theories, tokens, sessions, signed callbacks) and `pages` (the web page).
This module has the shared pieces: lookups that 404 with a clear message, the incident view the
page and the API both read, and the one function that records an approval decision exactly as
`selfheal approve` does.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import fastapi
import sqlalchemy as sa

from selfheal import catalogue, model, policy
from selfheal.api import events
from selfheal.cli import records
from selfheal.policy import blast
from selfheal.store import sql
from selfheal.store import tokens as tokens_mod

CALLBACK_SECRET_FILE = "callback.secret"


@dataclasses.dataclass(frozen=True)
class Workspace:
    """Everything the workspace routes need, built once by the caller."""

    store: sql.SqlStore
    tokens: tokens_mod.TokenStore
    policy: policy.Policy
    hub: events.Hub
    workdir: Path
    topology: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    callback_secret: bytes | None = None
    secure_cookies: bool = False
    clock: Callable[[], float] = time.time
    on_close: tuple[Callable[[], None], ...] = ()

    def close(self) -> None:
        """End the open event streams and release the store (and its metric source)."""
        self.hub.close()
        self.store.close()
        for close in self.on_close:
            close()

    def publish(self, stage: str, message: str, incident_id: str = "",
                **data: Any) -> None:
        self.hub.publish(self.clock(), stage, message, incident_id, data)


def build(store: sql.SqlStore, pol: policy.Policy, hub: events.Hub, workdir: Path,
          topology: Mapping[str, tuple[str, ...]] | None = None, *,
          secure_cookies: bool = False,
          on_close: tuple[Callable[[], None], ...] = ()) -> Workspace:
    """The workspace over an open store; the callback secret is read from
    `<workdir>/callback.secret` when `selfheal token callback-secret` made one."""
    secret_file = workdir / CALLBACK_SECRET_FILE
    secret = secret_file.read_text(encoding="utf-8").strip().encode() \
        if secret_file.is_file() else None
    return Workspace(store=store, tokens=tokens_mod.TokenStore(store), policy=pol, hub=hub,
                     workdir=workdir, topology=dict(topology or {}),
                     callback_secret=secret or None, secure_cookies=secure_cookies,
                     on_close=on_close)


def not_found(what: str, key: str) -> fastapi.HTTPException:
    return fastapi.HTTPException(404, f"no {what} matches {key!r}")


def incident_row(ws: Workspace, incident_id: str) -> dict[str, Any]:
    """The incident with this id (a unique prefix will do), or 404."""
    row = ws.store.incident(incident_id) if incident_id.strip() else None
    if row is None:
        raise not_found("single incident", incident_id)
    return row


def approval_row(ws: Workspace, approval_id: str) -> dict[str, Any]:
    row = ws.store.approval(approval_id) if approval_id.strip() else None
    if row is None:
        raise not_found("single approval", approval_id)
    return row


def summary(row: Mapping[str, Any]) -> dict[str, Any]:
    """One line of the incident list."""
    d = row["detail"]
    hyps = (d.get("diagnosis") or {}).get("hypotheses") or []
    top = hyps[0] if hyps else None
    return {"id": row["id"], "service": row["service"], "state": row["state"],
            "title": row["title"], "opened_at": row["opened_at"],
            "updated_at": row["updated_at"],
            "top": None if top is None else {"service": top["service"], "fault": top["fault"],
                                             "probability": top["probability"]},
            "approval": d.get("approval"),
            "outcome": d.get("outcome")}


def _replicas(ws: Workspace, service: str, at: float) -> int | None:
    """How many replicas of `service` reported metrics in the minute before `at` (the
    platform itself is not the face's to ask)."""
    t = sql.samples
    stmt = (sa.select(sa.func.count(sa.distinct(t.c.replica)))
            .where(t.c.service == service, t.c.replica != "", t.c.t >= at - 60, t.c.t <= at))
    with ws.store.engine.connect() as conn:
        n = conn.execute(stmt).scalar()
    return int(n) if n else None


def _blast(plan: Mapping[str, Any], ws: Workspace, at: float) -> list[dict[str, Any]]:
    """What each step of the plan touches (the catalogue's blast radius) and how many
    replicas it replaces."""
    out = []
    for step in plan.get("steps") or []:
        try:
            kind = model.ActionKind(step["kind"])
        except ValueError:
            out.append({"kind": step["kind"], "service": step.get("service", ""),
                        "radius": "unknown", "replicas": None, "has_inverse": False,
                        "description": ""})
            continue
        t = catalogue.lookup(kind)
        action = model.Action(kind, step["service"],
                              tuple((str(k), str(v)) for k, v in step.get("params") or []))
        running = _replicas(ws, step["service"], at)
        out.append({"kind": kind.value, "service": step["service"],
                    "radius": t.blast_radius if t else "unknown",
                    "replicas": None if running is None
                    else blast.replicas_touched(action, running),
                    "of_replicas": running,
                    "has_inverse": bool(t and t.has_clean_inverse(action)),
                    "description": t.description if t else ""})
    return out


def detail(ws: Workspace, row: Mapping[str, Any]) -> dict[str, Any]:
    """The whole story of one incident, as the page renders it."""
    d: dict[str, Any] = dict(row["detail"])
    entries = ws.store.ledger(row["id"])
    diag = d.get("diagnosis") or {}
    investigators: dict[str, list[dict[str, Any]]] = {}
    for ev in diag.get("evidence") or []:
        investigators.setdefault(ev["investigator"], []).append(ev)
    plan = d.get("plan")
    approval = ws.store.approval(d["approval"]) if d.get("approval") else None
    decisions = [e.payload.get("decision") for e in entries if e.kind == "decision"]
    theories = [{"seq": e.seq, "ts": e.ts, **e.payload} for e in entries
                if e.kind == "theory.added"]
    return {
        "id": row["id"], "service": row["service"], "state": row["state"],
        "title": row["title"], "opened_at": row["opened_at"], "updated_at": row["updated_at"],
        "anomalies": d.get("anomalies") or [], "alerts": d.get("alerts") or [],
        "related": d.get("related") or [],
        "diagnosis": diag or None,
        "investigators": [{"name": k, "evidence": v} for k, v in investigators.items()],
        "plan": plan,
        "blast": _blast(plan, ws, row["opened_at"]) if plan else [],
        "decision": d.get("decision"),
        "decisions": decisions,
        "approval": approval,
        "executions": d.get("executions") or [],
        "canary": d.get("canary"),
        "verification": d.get("verification"),
        "outcome": d.get("outcome"),
        "postmortem": d.get("postmortem"),
        "theories": theories,
        "timeline": [{"seq": e.seq, "ts": e.ts, "kind": e.kind,
                      "summary": step(e.kind, e.payload)} for e in entries],
    }


def step(kind: str, payload: Mapping[str, Any]) -> str:
    """The CLI's replay line; an entry it cannot summarise is shown by kind alone."""
    try:
        return records.replay_step(kind, payload)
    except (KeyError, TypeError, ValueError, IndexError):
        return kind


def postmortem_text(ws: Workspace, row: Mapping[str, Any]) -> str | None:
    """The postmortem the agent wrote, read only from `<workdir>/postmortems/` (the path in
    the database is not trusted to point anywhere else)."""
    path = (row["detail"] or {}).get("postmortem")
    if not path:
        return None
    folder = (ws.workdir / "postmortems").resolve()
    target = Path(path).resolve()
    if target.parent != folder or target.suffix != ".md" or not target.is_file():
        return None
    return target.read_text(encoding="utf-8")


def decide(ws: Workspace, approval_id: str, state: str, reason: str, who: dict[str, Any],
           ) -> dict[str, Any]:
    """Approve or reject as `selfheal approve/reject` does: check the policy role, write the
    ledger entry `approval.<state>` (with who, role, reason and how it came), then move the
    approval; the running workflow picks it up within a second."""
    row = approval_row(ws, approval_id)
    user = str(who["by"])
    if not ws.policy.holds_role(user, row["role"]):
        raise fastapi.HTTPException(403, f"{user} does not hold the policy role "
                                    f"{row['role']!r} this approval needs ({ws.policy.source})")
    if row["state"] != "pending":
        raise fastapi.HTTPException(409, f"approval {row['id']} is already {row['state']}")
    now = ws.clock()
    ws.store.append_ledger(now, row["incident_id"], f"approval.{state}", {
        "approval": row["id"], "role": row["role"], "reason": reason, **who})
    if not ws.store.decide_approval(row["id"], state, user, reason, now):
        raise fastapi.HTTPException(409, f"approval {row['id']} was decided meanwhile")
    ws.publish("approval", f"{state} by {user}: {reason}", row["incident_id"],
               approval=row["id"], state=state)
    out = ws.store.approval(row["id"])
    assert out is not None
    return out
