"""Routes that change something: approve/reject, explore a theory, API tokens, the browser
session, and the signed chat-style approval callback.

Every change is written to the ledger with who made it (token name and id, or the chat user
and the callback's signature) before it takes effect, and published on the live stream.
Bodies are pydantic models with `extra="forbid"`: a malformed body is a 422 naming the field.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import fastapi
import pydantic

from selfheal.api import auth, theories
from selfheal.api import workspace as ws_mod
from selfheal.store import tokens as tokens_mod


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", str_strip_whitespace=True)


class DecisionBody(_Strict):
    reason: str = pydantic.Field(min_length=1, max_length=2000,
                                 description="Why: recorded in the ledger.")


class TheoryBody(_Strict):
    text: str = pydantic.Field(min_length=3, max_length=1000,
                               description='A suspicion in plain words, e.g. "look at the '
                               'database: connection pool exhausted".')


class TokenBody(_Strict):
    name: str = pydantic.Field(min_length=1, max_length=128)
    role: Literal["viewer", "approver", "admin"]


class SessionBody(_Strict):
    token: str = pydantic.Field(min_length=8, max_length=256)


class CallbackBody(_Strict):
    """What a chat integration posts when a user presses Approve or Reject."""

    approval: str = pydantic.Field(min_length=1, max_length=64)
    decision: Literal["approve", "reject"]
    user: str = pydantic.Field(min_length=1, max_length=128, pattern=r"^[\w.@-]+$")
    reason: str = pydantic.Field(min_length=1, max_length=2000)


PAST_DIAGNOSIS = {"diagnosed", "awaiting_approval", "acting", "verifying", "resolved",
                  "escalated", "merged"}


def router(ws: ws_mod.Workspace) -> fastapi.APIRouter:
    # The routes that append to the ledger are `async` on purpose: they run on the event
    # loop's thread, as the controller does, so their appends never interleave with its own
    # (the store's lock and anchor file are per store object and per process).
    approver = fastapi.Depends(auth.require(ws.tokens, "approver"))
    admin = fastapi.Depends(auth.require(ws.tokens, "admin"))
    r = fastapi.APIRouter(prefix="/api", tags=["write"])

    @r.post("/approvals/{approval_id}/approve", summary="Approve a parked plan (role "
            "approver, and the policy role the approval names)")
    async def approve(approval_id: str, body: DecisionBody,
                   caller: auth.Caller = approver) -> dict[str, Any]:
        return ws_mod.decide(ws, approval_id, "approved", body.reason, caller.ledger_fields())

    @r.post("/approvals/{approval_id}/reject", summary="Reject a parked plan; it never runs")
    async def reject(approval_id: str, body: DecisionBody,
                  caller: auth.Caller = approver) -> dict[str, Any]:
        return ws_mod.decide(ws, approval_id, "rejected", body.reason, caller.ledger_fields())

    @r.post("/incidents/{incident_id}/theories", status_code=201,
            summary="Explore a theory: add a human hypothesis to an investigation")
    async def theory(incident_id: str, body: TheoryBody,
               caller: auth.Caller = approver) -> dict[str, Any]:
        row = ws_mod.incident_row(ws, incident_id)
        late = row["state"] in PAST_DIAGNOSIS
        said = f"{caller.name}: {body.text}"
        earlier = [str(e.payload.get("theory")) for e in ws.store.ledger(row["id"])
                   if e.kind == "theory.added" and e.payload.get("theory")]
        tested = theories.what_if(row, [*earlier, said], ws.clock(), ws.topology)
        if late:
            note = (f"recorded; the diagnosis already ran (state {row['state']}), so this "
                    "theory did not change what selfheal did")
        else:
            note = ("recorded for the investigation (a theory.added ledger entry); it is "
                    "tested against the evidence once the incident is diagnosed")
        if tested is not None:
            note += f". Tested against the evidence gathered: {tested['summary']}"
        entry = ws.store.append_ledger(ws.clock(), row["id"], "theory.added", {
            "theory": said, "text": body.text, "incident_state": row["state"],
            "applied": not late, "note": note,
            "tested": None if tested is None else {
                "summary": tested["summary"], "hypotheses": tested["hypotheses"][:3]},
            **caller.ledger_fields()})
        ws.publish("theory", f"{said} — {note}", row["id"])
        return {"seq": entry.seq, "incident": row["id"], "applied": not late, "note": note,
                "what_if": tested}

    @r.get("/tokens", summary="API tokens (never their secrets)")
    def list_tokens(_: auth.Caller = admin) -> dict[str, Any]:
        return {"tokens": [_token_json(t) for t in ws.tokens.list()]}

    @r.post("/tokens", status_code=201, summary="Create a token; its secret is shown once")
    async def create_token(body: TokenBody, caller: auth.Caller = admin) -> dict[str, Any]:
        token, secret = ws.tokens.create(body.name, body.role, caller.name, ws.clock())
        ws.store.append_ledger(ws.clock(), "", "token.created", {
            "token_id": token.id, "name": token.name, "role": token.role,
            **caller.ledger_fields()})
        return {**_token_json(token), "secret": secret}

    @r.delete("/tokens/{token_id}", summary="Revoke a token at once")
    async def revoke_token(token_id: str, caller: auth.Caller = admin) -> dict[str, Any]:
        if not ws.tokens.revoke(token_id, ws.clock()):
            raise ws_mod.not_found("live token", token_id)
        ws.store.append_ledger(ws.clock(), "", "token.revoked", {
            "token_id": token_id, **caller.ledger_fields()})
        return {"revoked": token_id}

    @r.post("/session", summary="Sign in the browser with a token (sets the session and "
            "CSRF cookies)")
    def login(body: SessionBody, request: fastapi.Request,
              response: fastapi.Response) -> dict[str, Any]:
        auth.check_origin(request)
        token = ws.tokens.lookup(body.token)
        if token is None:
            raise fastapi.HTTPException(401, "unknown or revoked API token")
        auth.set_session(response, body.token, ws.secure_cookies)
        return {"name": token.name, "role": token.role}

    @r.delete("/session", summary="Sign out the browser")
    def logout(response: fastapi.Response) -> dict[str, Any]:
        auth.clear_session(response)
        return {"signed_out": True}

    @r.post("/callbacks/chat", summary="Signed chat-style approval callback (HMAC-SHA256 "
            "over 'v1:<timestamp>:<body>'; stale or replayed requests are refused)")
    async def chat(request: fastapi.Request) -> dict[str, Any]:
        raw = await request.body()
        if len(raw) > 64 * 1024:
            raise fastapi.HTTPException(413, "callback body larger than 64 KiB")
        auth.verify_callback(ws.callback_secret, request.headers, raw, ws.clock(), ws.tokens)
        try:
            body = CallbackBody.model_validate(json.loads(raw))
        except (ValueError, pydantic.ValidationError) as exc:
            raise fastapi.HTTPException(422, f"malformed callback body: {exc}") from None
        state = "approved" if body.decision == "approve" else "rejected"
        who = {"by": body.user, "via": "chat",
               "signature": request.headers.get(auth.SIGNATURE_HEADER, "")[:19]}
        return ws_mod.decide(ws, body.approval, state, body.reason, who)

    return r


def _token_json(t: tokens_mod.Token) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "role": t.role, "created_at": t.created_at,
            "created_by": t.created_by, "revoked_at": t.revoked_at}
