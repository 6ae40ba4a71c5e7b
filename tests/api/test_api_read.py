"""Read routes of the workspace API over a real store: what they return, and their refusals
(no token 401, unknown id 404, bad filter 422)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import sqlite3
from pathlib import Path

import prometheus_client
import pytest
from fastapi.testclient import TestClient

from selfheal import api, config, policy
from selfheal.api import web
from selfheal.store import sql
from tests.api.conftest import POLICY, T0, World

pytestmark = pytest.mark.timeout(60)

READS = ["/api/me", "/api/incidents", "/api/incidents/inc-wait0001",
         "/api/incidents/inc-wait0001/series", "/api/incidents/inc-wait0001/replay",
         "/api/incidents/inc-done0001/postmortem", "/api/approvals",
         "/api/approvals/apr-wait0001", "/api/policy", "/api/trust", "/api/ledger",
         "/api/ledger/verify", "/api/events?limit=1"]


@pytest.mark.parametrize("path", READS)
def test_every_read_refuses_a_caller_without_a_token(world: World, path: str) -> None:
    res = world.client.get(path)
    assert res.status_code == 401
    assert "authentication required" in res.json()["detail"]
    assert res.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("header", ["Bearer shk_not-a-real-token", "Basic dXNlcjpwYXNz",
                                    "Bearer "])
def test_an_unknown_or_malformed_token_is_401(world: World, header: str) -> None:
    res = world.client.get("/api/incidents", headers={"Authorization": header})
    assert res.status_code == 401
    assert "token" in res.json()["detail"].lower() or "authorization" in \
        res.json()["detail"].lower()


@pytest.mark.parametrize("path", [p for p in READS if p != "/api/events?limit=1"])
def test_every_read_answers_a_viewer(world: World, path: str) -> None:
    res = world.client.get(path, headers=world.auth("victor"))
    assert res.status_code == 200, res.text


def test_me_says_who_and_which_policy_roles(world: World) -> None:
    me = world.client.get("/api/me", headers=world.auth("alice")).json()
    assert (me["name"], me["role"], me["via"]) == ("alice", "approver", "token")
    assert me["policy_roles"] == ["sre"]
    assert world.client.get("/api/me", headers=world.auth("mallory")).json()[
        "policy_roles"] == []


def test_incident_list_filters(world: World) -> None:
    h = world.auth("victor")
    every = world.client.get("/api/incidents", headers=h).json()
    assert every["total"] == 3
    assert [i["opened_at"] for i in every["incidents"]] == sorted(
        (i["opened_at"] for i in every["incidents"]), reverse=True)
    waiting = world.client.get("/api/incidents?state=awaiting_approval", headers=h).json()
    assert [i["id"] for i in waiting["incidents"]] == [world.waiting]
    assert waiting["incidents"][0]["top"] == {"service": "auth", "fault": "bad_deploy",
                                              "probability": 0.93}
    assert world.client.get("/api/incidents?service=cart", headers=h).json()["total"] == 0
    assert world.client.get("/api/incidents?q=DONE0001", headers=h).json()["total"] == 1
    since = world.client.get(f"/api/incidents?since={T0}", headers=h).json()
    assert {i["id"] for i in since["incidents"]} == {world.waiting, world.fresh}
    assert len(world.client.get("/api/incidents?limit=1", headers=h).json()["incidents"]) == 1


def test_incident_list_refuses_unknown_filters(world: World) -> None:
    h = world.auth("victor")
    res = world.client.get("/api/incidents?state=on_fire", headers=h)
    assert res.status_code == 422
    assert "unknown state 'on_fire'" in res.json()["detail"]
    assert world.client.get("/api/incidents?limit=0", headers=h).status_code == 422
    assert world.client.get("/api/approvals?state=maybe", headers=h).status_code == 422


def test_incident_detail_tells_the_story(world: World) -> None:
    d = world.client.get(f"/api/incidents/{world.waiting[:8]}",  # a unique prefix will do
                         headers=world.auth("victor")).json()
    assert d["id"] == world.waiting and d["state"] == "awaiting_approval"
    names = [i["name"] for i in d["investigators"]]
    assert names == ["metrics", "logs", "traces"]
    traces = d["investigators"][2]["evidence"][0]
    assert traces["status"] == "no_data" and "query" in traces
    assert [h["probability"] for h in d["diagnosis"]["hypotheses"]] == [0.93, 0.07]
    assert d["plan"]["inverse"][0]["kind"] == "deploy"
    assert d["blast"] == [{"kind": "rollback", "service": "auth", "radius": "service",
                           "replicas": 2, "of_replicas": 2, "has_inverse": True,
                           "description": d["blast"][0]["description"]}]
    assert d["decisions"][0]["rule"] == "rollback-needs-sre"
    assert d["approval"]["id"] == world.approval and d["approval"]["state"] == "pending"
    kinds = [t["kind"] for t in d["timeline"]]
    assert kinds == ["incident.opened", "diagnosis", "plan", "decision", "approval.requested"]
    assert all(t["summary"] for t in d["timeline"])


def test_series_has_the_signals_and_the_deploy(world: World) -> None:
    s = world.client.get(f"/api/incidents/{world.waiting}/series",
                         headers=world.auth("victor")).json()
    assert set(s["services"]["auth"]) == {"rss_bytes", "p99_latency_s"}
    rss = s["services"]["auth"]["rss_bytes"]
    assert rss[0][0] == s["start"] and rss[-1][1] > rss[0][1]  # the leak is visible
    assert [c["what"] for c in s["changes"]] == ["deploy auth 1.2.1"]
    assert s["markers"][0] == {"t": T0, "label": "incident opened", "kind": "incident"}


def test_postmortem_is_served_only_from_the_workdir(world: World) -> None:
    h = world.auth("victor")
    res = world.client.get(f"/api/incidents/{world.resolved}/postmortem", headers=h)
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/markdown")
    assert world.resolved in res.text
    missing = world.client.get(f"/api/incidents/{world.waiting}/postmortem", headers=h)
    assert missing.status_code == 404 and "no postmortem yet" in missing.json()["detail"]
    # a path outside <workdir>/postmortems written into the record is not followed
    row = world.ws.store.incident(world.resolved)
    assert row is not None
    with sqlite3.connect(world.workdir / "selfheal.db") as conn:
        detail = row["detail"] | {"postmortem": "/etc/passwd"}
        conn.execute("UPDATE incidents SET detail=? WHERE id=?",
                     (__import__("json").dumps(detail), world.resolved))
    assert world.client.get(f"/api/incidents/{world.resolved}/postmortem",
                            headers=h).status_code == 404


@pytest.mark.parametrize(("path", "key"), [
    ("/api/incidents/inc-nope", "inc-nope"), ("/api/incidents/inc-nope/series", "inc-nope"),
    ("/api/incidents/inc-nope/replay", "inc-nope"),
    ("/api/incidents/inc-nope/postmortem", "inc-nope"), ("/api/approvals/apr-nope", "apr-nope"),
    ("/api/ledger?incident=inc-nope", "inc-nope"),
    ("/api/incidents/inc-", "inc-")])  # an ambiguous prefix is no single incident either
def test_unknown_ids_are_404_with_the_id(world: World, path: str, key: str) -> None:
    res = world.client.get(path, headers=world.auth("victor"))
    assert res.status_code == 404
    assert res.json()["detail"].startswith("no single")
    assert repr(key) in res.json()["detail"]


def test_ledger_reads_filters_and_verifies(world: World) -> None:
    h = world.auth("victor")
    entries = world.client.get(f"/api/ledger?incident={world.waiting}", headers=h).json()[
        "entries"]
    assert {e["incident_id"] for e in entries} == {world.waiting}
    every = world.client.get("/api/ledger", headers=h).json()["entries"]
    after = world.client.get(f"/api/ledger?after={every[2]['seq']}", headers=h).json()[
        "entries"]
    assert [e["seq"] for e in after] == [e["seq"] for e in every[3:]]
    assert world.client.get("/api/ledger/verify", headers=h).json() == {
        "ok": True, "entries": len(every)}
    with sqlite3.connect(world.workdir / "selfheal.db") as conn:
        conn.execute("UPDATE ledger SET payload='{}' WHERE seq=3")
    bad = world.client.get("/api/ledger/verify", headers=h).json()
    assert bad["ok"] is False and bad["first_bad_seq"] == 3
    replay = world.client.get(f"/api/incidents/{world.waiting}/replay", headers=h)
    assert replay.status_code == 409 and "corrupt" in replay.json()["detail"]


def test_replay_follows_the_ledger(world: World) -> None:
    r = world.client.get(f"/api/incidents/{world.waiting}/replay",
                         headers=world.auth("victor")).json()
    assert [s["kind"] for s in r["steps"]][:2] == ["incident.opened", "diagnosis"]
    assert "rollback-needs-sre" in r["steps"][3]["summary"]
    assert all(len(s["hash"]) == 64 for s in r["steps"])


def test_policy_and_trust(world: World) -> None:
    h = world.auth("victor")
    p = world.client.get("/api/policy", headers=h).json()
    assert p["sha256"] == world.ws.policy.hash
    assert p["document"]["rules"][0]["name"] == "rollback-needs-sre"
    world.ws.store.put_trust({"agent": "selfheal", "action": "rollback", "successes": 3,
                              "failures": 1, "rejections": 0, "since_bad": 2,
                              "demoted": False})
    world.ws.store.revoke("restart", "ops", "game day", T0)
    t = world.client.get("/api/trust", headers=h).json()
    assert [(r["action"], r["successes"]) for r in t["trust"]] == [("rollback", 3)]
    assert 0 < t["trust"][0]["score"] < 1 and t["trust"][0]["mode"]
    assert [r["subject"] for r in t["revoked"]] == ["restart"]


def test_openapi_lists_the_workspace_routes(world: World) -> None:
    schema = world.client.get("/api/openapi.json").json()
    for path in ("/api/incidents", "/api/incidents/{incident_id}",
                 "/api/approvals/{approval_id}/approve", "/api/incidents/{incident_id}/theories",
                 "/api/ledger/verify", "/api/events", "/api/callbacks/chat"):
        assert path in schema["paths"], path
    body = schema["components"]["schemas"]["DecisionBody"]
    assert body["required"] == ["reason"] and body["additionalProperties"] is False


def test_pages_are_static_with_a_strict_csp(world: World) -> None:
    for path in ("/", "/incidents/inc-wait0001", "/login"):
        res = world.client.get(path)
        assert res.status_code == 200 and res.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in res.headers["content-security-policy"]
        assert "inc-wait0001" not in res.text  # pages hold no data; the API does
    js = world.client.get("/static/incident.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert world.client.get("/static/..%2Fworkspace.py").status_code == 404
    assert world.client.get("/static/nothing.js").status_code == 404


def test_with_prometheus_the_charts_read_it_not_the_sql_samples(tmp_path: Path,
                                                                template: Path) -> None:
    """`selfheal serve` with Prometheus: service series come from it, as investigations read
    them; a Prometheus that cannot answer leaves the chart empty instead of showing stale SQL
    samples (the seeded store has auth's memory series)."""
    shutil.copytree(template, tmp_path, dirs_exist_ok=True)
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()  # nothing listens there
    prom = config.PrometheusSource(url=f"http://127.0.0.1:{port}", retries=0, timeout_s=1)
    ws = web.open_workspace(sql.sqlite_url(tmp_path / "selfheal.db"),
                            policy.parse(POLICY, "<test>"), tmp_path, prometheus_cfg=prom)
    ws = dataclasses.replace(ws, clock=lambda: T0 + 60)
    try:
        app = api.create_app(api.Receivers(body_limit_bytes=1 << 20,
                                           registry=prometheus_client.CollectorRegistry(),
                                           health=lambda: {"ok": True}),
                             routers=web.routers(ws))
        secret = json.loads((tmp_path / "tokens.json").read_text())["victor"]
        res = TestClient(app).get("/api/incidents/inc-wait0001/series",
                                  headers={"Authorization": f"Bearer {secret}"})
        assert res.status_code == 200
        assert res.json()["services"] == {"auth": {}}
        assert res.json()["changes"][0]["what"] == "deploy auth 1.2.1"  # changes stay in SQL
    finally:
        ws.close()
