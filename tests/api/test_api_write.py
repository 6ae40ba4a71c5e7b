"""Routes that change something: approve/reject, theories, tokens, the browser session with
its CSRF check, the signed chat callback and the live stream. Refusals included: 401 without
a token, 403 for the wrong role, 422 for a malformed body, 404 for an unknown id, 409 twice."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path

import pytest

from selfheal.api import auth, events
from tests.api.conftest import T0, World, last_entry, ledger_kinds, make_world

pytestmark = pytest.mark.timeout(60)


def _approve(w: World, who: str, body: object, verb: str = "approve") -> tuple[int, dict]:
    res = w.client.post(f"/api/approvals/{w.approval}/{verb}", json=body, headers=w.auth(who))
    return res.status_code, res.json()


def test_approving_needs_a_token(world: World) -> None:
    res = world.client.post(f"/api/approvals/{world.approval}/approve", json={"reason": "ok"})
    assert res.status_code == 401 and "authentication required" in res.json()["detail"]


def test_a_viewer_may_not_approve(world: World) -> None:
    status, body = _approve(world, "victor", {"reason": "looks right"})
    assert status == 403
    assert "needs the role 'approver'" in body["detail"] and "'viewer'" in body["detail"]
    assert world.ws.store.approval(world.approval)["state"] == "pending"  # type: ignore[index]


def test_an_approver_outside_the_policy_role_may_not_approve(world: World) -> None:
    status, body = _approve(world, "mallory", {"reason": "looks right"})
    assert status == 403 and "mallory does not hold the policy role 'sre'" in body["detail"]
    assert "approval.approved" not in ledger_kinds(world)


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "},
                                  {"reason": "ok", "extra": 1}, {"reason": 3}, ["ok"]])
def test_a_malformed_decision_is_422_naming_the_field(world: World, body: object) -> None:
    status, out = _approve(world, "alice", body)
    assert status == 422
    assert out["detail"] and all("loc" in e and "msg" in e for e in out["detail"])
    assert world.ws.store.approval(world.approval)["state"] == "pending"  # type: ignore[index]


def test_an_unknown_approval_is_404(world: World) -> None:
    res = world.client.post("/api/approvals/apr-nope/approve", json={"reason": "ok"},
                            headers=world.auth("alice"))
    assert res.status_code == 404 and "apr-nope" in res.json()["detail"]


def test_an_approval_is_written_as_the_cli_writes_it_plus_the_api_user(world: World) -> None:
    status, body = _approve(world, "alice", {"reason": "leak confirmed"})
    assert status == 200, body
    row = world.ws.store.approval(world.approval)
    assert row is not None
    assert (row["state"], row["decided_by"], row["reason"]) == ("approved", "alice",
                                                                "leak confirmed")
    entry = last_entry(world, "approval.approved")
    token_id = world.ws.tokens.lookup(world.tokens["alice"]).id  # type: ignore[union-attr]
    assert entry == {"approval": world.approval, "by": "alice", "role": "sre",
                     "reason": "leak confirmed", "via": "api:token", "token": token_id,
                     "token_role": "approver"}
    # the live stream hears about it
    assert [e["stage"] for e in world.ws.hub.history()] == ["approval"]
    again, out = _approve(world, "alice", {"reason": "twice"})
    assert again == 409 and "already approved" in out["detail"]


def test_a_rejection(world: World) -> None:
    status, body = _approve(world, "alice", {"reason": "wrong service"}, verb="reject")
    assert status == 200 and body["state"] == "rejected"
    assert last_entry(world, "approval.rejected")["by"] == "alice"


def test_a_theory_on_an_open_investigation(world: World) -> None:
    res = world.client.post(f"/api/incidents/{world.fresh}/theories",
                            json={"text": "look at the database pool"},
                            headers=world.auth("alice"))
    assert res.status_code == 201, res.text
    assert res.json()["applied"] is True
    entry = last_entry(world, "theory.added")
    assert entry["theory"] == "alice: look at the database pool"  # the `who: text` form
    assert entry["by"] == "alice" and entry["via"] == "api:token"


def test_a_theory_after_diagnosis_is_recorded_and_says_so(world: World) -> None:
    res = world.client.post(f"/api/incidents/{world.resolved}/theories",
                            json={"text": "maybe the cache"}, headers=world.auth("alice"))
    assert res.status_code == 201
    assert res.json()["applied"] is False and "already ran" in res.json()["note"]
    detail = world.client.get(f"/api/incidents/{world.resolved}",
                              headers=world.auth("victor")).json()
    assert [t["text"] for t in detail["theories"]] == ["maybe the cache"]


def test_a_theory_is_tested_against_the_evidence_gathered(world: World) -> None:
    def add(text: str) -> dict:
        res = world.client.post(f"/api/incidents/{world.waiting}/theories",
                                json={"text": text}, headers=world.auth("alice"))
        assert res.status_code == 201, res.text
        return dict(res.json())

    backed = add("auth leaks memory since the deploy")["what_if"]
    assert backed["hypotheses"][0]["service"] == "auth"
    assert backed["hypotheses"][0]["from_theory"] is True
    assert "supported by the theory" in backed["summary"]
    assert backed["evidence"][0]["kind"] == "human"
    weak = add("cart is throwing errors")
    ranked = {(h["service"], h["from_theory"]) for h in weak["what_if"]["hypotheses"]}
    assert ("cart", True) in ranked  # tested, and ranked by the evidence, not by fiat
    assert weak["what_if"]["hypotheses"][0]["service"] == "auth"
    assert weak["what_if"]["top_changed"] is False
    assert "Tested against the evidence gathered" in weak["note"]
    unknown = add("the mainframe in the basement")["what_if"]
    assert "names no service" in unknown["summary"]
    entry = last_entry(world, "theory.added")
    assert entry["tested"]["summary"] == unknown["summary"]


def test_theory_refusals(world: World) -> None:
    url = f"/api/incidents/{world.fresh}/theories"
    assert world.client.post(url, json={"text": "db"}).status_code == 401
    viewer = world.client.post(url, json={"text": "the db"}, headers=world.auth("victor"))
    assert viewer.status_code == 403
    for body in ({}, {"text": "x"}, {"text": "the db", "weight": 1}):
        assert world.client.post(url, json=body,
                                 headers=world.auth("alice")).status_code == 422
    missing = world.client.post("/api/incidents/inc-nope/theories", json={"text": "the db"},
                                headers=world.auth("alice"))
    assert missing.status_code == 404
    assert "theory.added" not in ledger_kinds(world)


def test_tokens_are_admin_only_and_hashed_at_rest(world: World) -> None:
    assert world.client.get("/api/tokens", headers=world.auth("alice")).status_code == 403
    res = world.client.post("/api/tokens", json={"name": "bot", "role": "viewer"},
                            headers=world.auth("root"))
    assert res.status_code == 201
    secret = res.json()["secret"]
    assert world.client.get("/api/me", headers={"Authorization": f"Bearer {secret}"}).json()[
        "name"] == "bot"
    raw = (world.workdir / "selfheal.db").read_bytes()
    wal = world.workdir / "selfheal.db-wal"
    raw += wal.read_bytes() if wal.exists() else b""
    assert secret.encode() not in raw
    assert hashlib.sha256(secret.encode()).hexdigest().encode() in raw
    assert last_entry(world, "token.created")["by"] == "root"
    bad = world.client.post("/api/tokens", json={"name": "bot", "role": "god"},
                            headers=world.auth("root"))
    assert bad.status_code == 422
    tid = res.json()["id"]
    assert world.client.delete(f"/api/tokens/{tid}", headers=world.auth("root")).status_code \
        == 200
    assert world.client.get("/api/me", headers={"Authorization": f"Bearer {secret}"}
                            ).status_code == 401
    assert world.client.delete(f"/api/tokens/{tid}", headers=world.auth("root")).status_code \
        == 404
    assert last_entry(world, "token.revoked")["token_id"] == tid


def test_the_browser_session_needs_the_csrf_echo_to_change_anything(world: World) -> None:
    c = world.client
    assert c.post("/api/session", json={"token": "shk_wrong-token"}).status_code == 401
    res = c.post("/api/session", json={"token": world.tokens["alice"]})
    assert res.status_code == 200
    cookies = res.headers.get_list("set-cookie")
    session = next(h for h in cookies if h.startswith(auth.SESSION_COOKIE))
    assert "HttpOnly" in session and "SameSite=strict" in session
    assert c.get("/api/me").json()["via"] == "session"  # reads ride on the cookie
    evil = {"Origin": "http://evil.example", auth.CSRF_HEADER: c.cookies[auth.CSRF_COOKIE]}
    cross = c.post(f"/api/approvals/{world.approval}/approve", json={"reason": "x"},
                   headers=evil)
    assert cross.status_code == 403 and "cross-origin" in cross.json()["detail"]
    assert c.post("/api/session", json={"token": world.tokens["root"]},
                  headers={"Origin": "http://evil.example"}).status_code == 403
    url = f"/api/approvals/{world.approval}/approve"
    forged = c.post(url, json={"reason": "from another site"})
    assert forged.status_code == 403 and "CSRF" in forged.json()["detail"]
    wrong = c.post(url, json={"reason": "x"}, headers={auth.CSRF_HEADER: "guess"})
    assert wrong.status_code == 403
    ok = c.post(url, json={"reason": "seen the charts"},
                headers={auth.CSRF_HEADER: c.cookies[auth.CSRF_COOKIE]})
    assert ok.status_code == 200
    assert last_entry(world, "approval.approved")["via"] == "api:session"
    c.delete("/api/session", headers={auth.CSRF_HEADER: c.cookies.get(auth.CSRF_COOKIE, "")})
    assert c.get("/api/me").status_code == 401


# -- the signed chat callback ---------------------------------------------------------------

SECRET = b"s3cret-for-tests"


@pytest.fixture
def chat(tmp_path: Path, template: Path) -> World:
    return make_world(tmp_path, secret=SECRET, template=template)


def _post(w: World, body: dict[str, str] | bytes, ts: float, secret: bytes = SECRET,
          signature: str | None = None) -> tuple[int, dict]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    stamp = f"{ts:.0f}"
    headers = {auth.TIMESTAMP_HEADER: stamp,
               auth.SIGNATURE_HEADER: signature or auth.sign(secret, stamp, raw),
               "Content-Type": "application/json"}
    res = w.client.post("/api/callbacks/chat", content=raw, headers=headers)
    return res.status_code, res.json()


def _decision(w: World, user: str = "alice") -> dict[str, str]:
    return {"approval": w.approval, "decision": "approve", "user": user,
            "reason": "approved from chat"}


def test_callbacks_are_off_without_a_secret(world: World) -> None:
    status, body = _post(world, _decision(world), T0 + 60)
    assert status == 404 and "callback-secret" in body["detail"]


def test_a_signed_callback_approves_once(chat: World) -> None:
    status, body = _post(chat, _decision(chat), T0 + 60)
    assert status == 200, body
    entry = last_entry(chat, "approval.approved")
    assert entry["by"] == "alice" and entry["via"] == "chat"
    replay, out = _post(chat, _decision(chat), T0 + 60)
    assert replay == 401 and "replayed" in out["detail"]


@pytest.mark.parametrize("case", ["unsigned", "bad-signature", "other-secret", "stale",
                                  "future", "tampered"])
def test_bad_callbacks_are_401(chat: World, case: str) -> None:
    body = _decision(chat)
    raw = json.dumps(body).encode()
    ts = T0 + 60
    if case == "unsigned":
        res = chat.client.post("/api/callbacks/chat", content=raw)
        status, out = res.status_code, res.json()
    elif case == "bad-signature":
        status, out = _post(chat, raw, ts, signature="v1=" + "0" * 64)
    elif case == "other-secret":
        status, out = _post(chat, raw, ts, secret=b"another")
    elif case == "stale":
        status, out = _post(chat, raw, ts - auth.CALLBACK_WINDOW_S - 1)
    elif case == "future":
        status, out = _post(chat, raw, ts + auth.CALLBACK_WINDOW_S + 1)
    else:  # signed body, then a different body sent with that signature
        stamp = f"{ts:.0f}"
        sig = auth.sign(SECRET, stamp, raw)
        evil = json.dumps(body | {"decision": "reject"}).encode()
        res = chat.client.post("/api/callbacks/chat", content=evil, headers={
            auth.TIMESTAMP_HEADER: stamp, auth.SIGNATURE_HEADER: sig})
        status, out = res.status_code, res.json()
    assert status == 401, out
    assert out["detail"]
    assert chat.ws.store.approval(chat.approval)["state"] == "pending"  # type: ignore[index]


def test_a_signed_callback_still_needs_the_policy_role(chat: World) -> None:
    status, body = _post(chat, _decision(chat, user="mallory"), T0 + 60)
    assert status == 403 and "mallory" in body["detail"]
    status, body = _post(chat, {"approval": chat.approval, "decision": "maybe"}, T0 + 61)
    assert status == 422 and "malformed callback body" in body["detail"]


# -- the live stream ------------------------------------------------------------------------

def _frames(text: str) -> list[dict]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


def test_the_event_stream_sends_history_filtered_and_resumable(world: World) -> None:
    hub = world.ws.hub
    hub.publish(T0, "detect", "auth: rss anomalous", world.waiting)
    hub.publish(T0 + 1, "change", "ci-bot deployed", "")
    hub.publish(T0 + 2, "gate", "require_approval", world.waiting, {"x": float("nan")})
    h = world.auth("victor")
    res = world.client.get("/api/events?limit=3", headers=h)
    assert res.headers["content-type"].startswith("text/event-stream")
    assert [f["stage"] for f in _frames(res.text)] == ["detect", "change", "gate"]
    assert _frames(res.text)[2]["data"] == {"x": None}  # NaN is not JSON
    only = world.client.get(f"/api/events?limit=2&incident={world.waiting}", headers=h)
    assert [f["stage"] for f in _frames(only.text)] == ["detect", "gate"]
    resumed = world.client.get("/api/events?limit=1", headers=h | {"Last-Event-ID": "2"})
    assert [f["id"] for f in _frames(resumed.text)] == [3]


def test_the_hub_delivers_live_events_from_another_thread() -> None:
    import asyncio

    hub = events.Hub()

    async def read() -> list[str]:
        got: list[str] = []

        async def consume() -> None:
            async for chunk in hub.stream(0, "", limit=2, heartbeat_s=0.05, max_s=5):
                got.extend(f["stage"] for f in _frames(chunk))

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        threading.Thread(target=lambda: [hub.publish(1.0, s, s) for s in ("act", "verify")]
                         ).start()
        await asyncio.wait_for(task, 5)
        return got

    assert asyncio.run(read()) == ["act", "verify"]


def test_closing_the_hub_ends_open_streams() -> None:
    import asyncio

    hub = events.Hub()

    async def run() -> int:
        chunks = 0

        async def consume() -> None:
            nonlocal chunks
            async for _ in hub.stream(0, "", limit=None, heartbeat_s=10, max_s=30):
                chunks += 1

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        hub.close()
        await asyncio.wait_for(task, 2)
        return chunks

    assert asyncio.run(run()) == 1  # only the `retry:` preamble, then it ended


def test_the_cli_creates_a_token_once_and_stores_its_hash(tmp_path: Path,
                                                          selfheal_cmd: list[str]) -> None:
    import subprocess

    db = tmp_path / "wd" / "selfheal.db"
    res = subprocess.run([*selfheal_cmd, "token", "create", "--role", "approver", "--name",
                          "alice", "--db", str(db), "--json"], capture_output=True, text=True,
                         timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["secret"].startswith("shk_") and out["role"] == "approver"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name, role, sha256 FROM api_tokens").fetchall()
        kinds = [k for (k,) in conn.execute("SELECT kind FROM ledger")]
    assert rows == [("alice", "approver", hashlib.sha256(out["secret"].encode()).hexdigest())]
    assert kinds == ["token.created"]
    bad = subprocess.run([*selfheal_cmd, "token", "create", "--role", "boss", "--name", "x",
                          "--db", str(db)], capture_output=True, text=True, timeout=60,
                         check=False)
    assert bad.returncode == 2 and "viewer, approver, admin" in bad.stderr
