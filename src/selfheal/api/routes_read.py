"""Read-only routes of the workspace API: incidents, signals, approvals, policy, trust, the
ledger and the live event stream. Every route needs at least the `viewer` role.

Built by `selfheal.api.workspace`'s caller through `routes_read.router(ws)`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import fastapi
from fastapi import responses

from selfheal import errors, model
from selfheal.api import auth
from selfheal.api import workspace as ws_mod
from selfheal.policy import trust as trust_mod
from selfheal.sources import scrape

MAX_POINTS = 240
SERIES_BEFORE_S = 300.0
SERIES_AFTER_S = 60.0


def _downsample(points: list[list[float | None]], n: int) -> list[list[float | None]]:
    """At most `n` points: the mean of each bucket (missing values skipped)."""
    if len(points) <= n:
        return points
    out: list[list[float | None]] = []
    size = len(points) / n
    for i in range(n):
        bucket = points[int(i * size):int((i + 1) * size)] or [points[-1]]
        vals = [v for _, v in bucket if v is not None]
        t0 = bucket[0][0]
        out.append([t0, sum(vals) / len(vals) if vals else None])
    return out


def router(ws: ws_mod.Workspace) -> fastapi.APIRouter:
    viewer = auth.require(ws.tokens, "viewer")
    who = fastapi.Depends(viewer)
    r = fastapi.APIRouter(prefix="/api", tags=["read"])

    @r.get("/me", summary="Who the token or session is")
    def me(caller: auth.Caller = who) -> dict[str, Any]:
        t = caller.token
        return {"name": t.name, "role": t.role, "token": t.id, "via": caller.via,
                "policy_roles": sorted(role for role in ws.policy.doc.roles
                                       if ws.policy.holds_role(t.name, role))}

    @r.get("/incidents", summary="List incidents, newest first, with optional filters")
    def incidents(_: auth.Caller = who, state: str | None = None, service: str | None = None,
                  q: Annotated[str | None, fastapi.Query(description="Text in the title")] = None,
                  since: float | None = None,
                  limit: Annotated[int, fastapi.Query(ge=1, le=1000)] = 200,
                  ) -> dict[str, Any]:
        valid = {s.value for s in model.IncidentState}
        if state is not None and state not in valid:
            raise fastapi.HTTPException(422, f"unknown state {state!r}; one of "
                                        f"{', '.join(sorted(valid))}")
        rows = ws.store.incidents()
        rows = [row for row in rows
                if (state is None or row["state"] == state)
                and (service is None or row["service"] == service)
                and (q is None or q.lower() in row["title"].lower())
                and (since is None or row["opened_at"] >= since)]
        rows.sort(key=lambda row: row["opened_at"], reverse=True)
        return {"incidents": [ws_mod.summary(row) for row in rows[:limit]],
                "total": len(rows)}

    @r.get("/incidents/{incident_id}", summary="One incident: timeline, evidence per "
           "investigator, hypotheses, plan, decisions, executions, verification")
    def incident(incident_id: str, _: auth.Caller = who) -> dict[str, Any]:
        return ws_mod.detail(ws, ws_mod.incident_row(ws, incident_id))

    @r.get("/incidents/{incident_id}/postmortem", summary="The postmortem (Markdown)",
           response_class=responses.PlainTextResponse)
    def postmortem(incident_id: str, _: auth.Caller = who) -> responses.PlainTextResponse:
        row = ws_mod.incident_row(ws, incident_id)
        text = ws_mod.postmortem_text(ws, row)
        if text is None:
            raise fastapi.HTTPException(404, f"incident {row['id']} has no postmortem yet "
                                        f"(state {row['state']})")
        return responses.PlainTextResponse(text, media_type="text/markdown; charset=utf-8")

    @r.get("/incidents/{incident_id}/series", summary="Signals around the incident, with "
           "deploys and actions marked")
    def series(incident_id: str, _: auth.Caller = who) -> dict[str, Any]:
        row = ws_mod.incident_row(ws, incident_id)
        d = row["detail"]
        outcome = d.get("outcome") or {}
        start = row["opened_at"] - SERIES_BEFORE_S
        end = min(ws.clock(), max(row["updated_at"], float(outcome.get("resolved_at") or 0))
                  + SERIES_AFTER_S)
        hyps = (d.get("diagnosis") or {}).get("hypotheses") or []
        services = [row["service"], *(h["service"] for h in hyps[:1]),
                    *(d.get("related") or [])]
        services = list(dict.fromkeys(services))
        out: dict[str, dict[str, list[list[float | None]]]] = {}
        for svc in services:
            per: dict[str, list[list[float | None]]] = {}
            for metric in scrape.SIGNALS:
                try:
                    samples = ws.store.query(svc, metric, start, end)
                except errors.DataUnavailable:
                    continue
                pts: list[list[float | None]] = [
                    [s.t, s.value if math.isfinite(s.value) else None] for s in samples]
                if pts:
                    per[metric] = _downsample(pts, MAX_POINTS)
            out[svc] = per
        # Draw where there is data: an agent that started recently has no earlier samples, and
        # one that stopped (the demo's shop) has no later ones.
        firsts = [float(pts[0][0] or 0) for per in out.values() for pts in per.values()]
        lasts = [float(pts[-1][0] or 0) for per in out.values() for pts in per.values()]
        if firsts:
            start, end = max(start, min(firsts)), min(end, max(lasts))
        changes = [model.to_jsonable(c) for c in ws.store.changes_between(start, end)]
        markers = [{"t": row["opened_at"], "label": "incident opened", "kind": "incident"}]
        for x in d.get("executions") or []:
            if not start <= x["started_at"] <= end:
                continue
            markers.append({"t": x["started_at"], "kind": "action",
                            "label": f"{x.get('phase', '')} {x['action']['kind']} "
                            f"{x['action']['service']}".strip()})
        return {"start": start, "end": end, "services": out, "changes": changes,
                "markers": markers}

    @r.get("/incidents/{incident_id}/replay", summary="Replay the incident from the verified "
           "ledger alone (refused when the chain is broken)")
    def replay(incident_id: str, _: auth.Caller = who) -> dict[str, Any]:
        try:
            ws.store.verify_ledger()
        except errors.LedgerCorrupt as exc:
            raise fastapi.HTTPException(409, f"the ledger is corrupt, refusing to replay: "
                                        f"{exc}") from None
        row = ws_mod.incident_row(ws, incident_id)
        entries = ws.store.ledger(row["id"])
        return {"incident": row["id"], "title": row["title"], "steps": [
            {"seq": e.seq, "ts": e.ts, "kind": e.kind, "summary": ws_mod.step(e.kind,
                                                                                  e.payload),
             "hash": e.hash} for e in entries]}

    @r.get("/approvals", summary="Approvals, pending first")
    def approvals(_: auth.Caller = who, state: str | None = None) -> dict[str, Any]:
        if state is not None and state not in ("pending", "approved", "rejected", "expired"):
            raise fastapi.HTTPException(422, f"unknown approval state {state!r}; one of "
                                        "pending, approved, rejected, expired")
        rows = ws.store.approvals(state)
        rows.sort(key=lambda a: (a["state"] != "pending", -a["created_at"]))
        return {"approvals": rows}

    @r.get("/approvals/{approval_id}", summary="One approval with its request")
    def approval(approval_id: str, _: auth.Caller = who) -> dict[str, Any]:
        return ws_mod.approval_row(ws, approval_id)

    @r.get("/policy", summary="The policy in force: modes, rules, roles, limits, hash")
    def policy_doc(_: auth.Caller = who) -> dict[str, Any]:
        pol = ws.policy
        return {"source": pol.source, "sha256": pol.hash,
                "document": pol.doc.model_dump(mode="json")}

    @r.get("/trust", summary="Trust per (agent, action type) and the mode it gives")
    def trust(_: auth.Caller = who) -> dict[str, Any]:
        out = []
        for row in ws.store.trust_rows():
            st = trust_mod.TrustState(
                agent=row["agent"], action=model.ActionKind(row["action"]),
                successes=row["successes"], failures=row["failures"],
                rejections=row["rejections"], since_bad=row["since_bad"],
                demoted=bool(row["demoted"]))
            mode, why = trust_mod.effective_mode(ws.policy.mode("*", st.action), st,
                                                 ws.policy.doc.trust)
            out.append({**row, "demoted": bool(row["demoted"]), "score": round(st.score, 3),
                        "mode": mode.value, "why": why})
        return {"trust": out, "revoked": list(ws.store.revoked().values())}

    @r.get("/ledger", summary="Ledger entries (optionally one incident's), oldest first")
    def ledger(_: auth.Caller = who, incident: str | None = None, after: int = 0,
               limit: Annotated[int, fastapi.Query(ge=1, le=5000)] = 500) -> dict[str, Any]:
        inc_id = ws_mod.incident_row(ws, incident)["id"] if incident else None
        entries = [e for e in ws.store.ledger(inc_id) if e.seq > after][:limit]
        return {"entries": [{"seq": e.seq, "ts": e.ts, "incident_id": e.incident_id,
                             "kind": e.kind, "payload": e.payload, "prev_hash": e.prev_hash,
                             "hash": e.hash, "summary": ws_mod.step(e.kind, e.payload)}
                            for e in entries]}

    @r.get("/ledger/verify", summary="Check the hash chain")
    def verify(_: auth.Caller = who) -> dict[str, Any]:
        try:
            count = ws.store.verify_ledger()
        except errors.LedgerCorrupt as exc:
            return {"ok": False, "first_bad_seq": exc.seq, "problem": exc.problem}
        return {"ok": True, "entries": count}

    @r.get("/events", summary="Live events (Server-Sent Events, text/event-stream)",
           response_class=responses.StreamingResponse)
    def stream(request: fastapi.Request, _: auth.Caller = who, incident: str = "",
               after: Annotated[int, fastapi.Query(ge=0)] = 0,
               limit: Annotated[int | None, fastapi.Query(ge=1)] = None,
               ) -> responses.StreamingResponse:
        last = request.headers.get("last-event-id", "")
        start = int(last) if last.isdigit() else after
        return responses.StreamingResponse(
            ws.hub.stream(start, incident, limit), media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @r.get("/openapi.json", summary="This API's OpenAPI schema", include_in_schema=False)
    def openapi(request: fastapi.Request) -> dict[str, Any]:
        app = request.app
        return dict(app.openapi()) if isinstance(app, fastapi.FastAPI) else {}

    return r
