"""Fixtures of the workspace API tests: a real SQLite store holding incidents written the way
the workflow writes them, a real policy, real tokens, and the real FastAPI application."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
from fastapi.testclient import TestClient

from selfheal import api, model, policy, scribe
from selfheal.api import events, web
from selfheal.api import workspace as ws_mod
from selfheal.store import sql

POLICY = """\
version: 1
modes: {default: auto}
roles: {sre: [alice]}
rules:
  - name: rollback-needs-sre
    when: {actions: [rollback]}
    verdict: require_approval
    approver_role: sre
"""
T0 = 1_800_000_000.0


@dataclasses.dataclass
class World:
    ws: ws_mod.Workspace
    client: TestClient
    tokens: dict[str, str]  # name -> secret
    waiting: str  # incident awaiting approval
    approval: str
    resolved: str  # a closed incident with a postmortem
    fresh: str  # an incident not diagnosed yet
    workdir: Path

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}


def _evidence(inv: str, kind: model.SignalKind, obs: str, strength: float,
              status: model.EvidenceStatus = model.EvidenceStatus.OK) -> model.Evidence:
    return model.Evidence(investigator=inv, kind=kind, status=status,
                          query=f"{inv} query over [{T0 - 120:.0f}, {T0 + 20:.0f}]",
                          observation=obs, service="auth" if strength else "",
                          fault=model.FaultKind.MEMORY_LEAK if strength else
                          model.FaultKind.UNKNOWN, strength=strength)


def _incident(store: sql.SqlStore, iid: str, opened: float) -> model.Incident:
    anomaly = model.Anomaly(id=model.AnomalyId(f"an-{iid}"), service="auth", metric="rss_bytes",
                            detector="fusion", started_at=opened - 5, detected_at=opened,
                            score=0.9, baseline=2.5e7, observed=1.2e8,
                            explanation="rss_bytes level shift")
    inc = model.Incident(id=model.IncidentId(iid), service="auth", opened_at=opened,
                         title=f"auth: rss_bytes anomalous ({iid})", anomalies=(anomaly,))
    store.append_ledger(opened, iid, "incident.opened", {"incident": inc,
                                                         "recent_changes": []})
    return inc


def _diagnose(inc: model.Incident) -> tuple[model.Diagnosis, model.Plan, model.Decision]:
    metrics = _evidence("metrics", model.SignalKind.METRICS, "auth: rss_bytes moved", 0.66)
    logs = _evidence("logs", model.SignalKind.LOGS, "auth: new template 'gc: full'", 0.7)
    traces = _evidence("traces", model.SignalKind.TRACES, "no trace data", 0.0,
                       model.EvidenceStatus.NO_DATA)
    top = model.Hypothesis(service="auth", fault=model.FaultKind.BAD_DEPLOY,
                           action_family=model.ActionKind.ROLLBACK, probability=0.93,
                           evidence_for=(metrics, logs), summary="auth 1.2.1 leaks memory")
    other = model.Hypothesis(service="cart", fault=model.FaultKind.LATENCY,
                             action_family=None, probability=0.07, evidence_for=())
    diag = model.Diagnosis(incident_id=inc.id, at=inc.opened_at + 1, hypotheses=(top, other),
                           sufficient=True, evidence=(metrics, logs, traces))
    step = model.Action(model.ActionKind.ROLLBACK, "auth",
                        model.params(from_version="1.2.1", to_version="1.2.0"))
    inverse = model.Action(model.ActionKind.DEPLOY, "auth",
                           model.params(from_version="1.2.0", to_version="1.2.1"))
    plan = model.Plan(id=model.PlanId(f"plan-{inc.id}"), incident_id=inc.id, steps=(step,),
                      inverse=(inverse,), rationale="return to 1.2.0",
                      risk=model.RiskClass.LOW)
    decision = model.Decision(plan_id=plan.id, verdict=model.Verdict.REQUIRE_APPROVAL,
                              rule="rollback-needs-sre", reason="needs a human",
                              policy_hash="0" * 64, at=inc.opened_at + 2,
                              approver_role="sre")
    return diag, plan, decision


def seed(store: sql.SqlStore, workdir: Path) -> tuple[str, str, str, str]:
    """Three incidents as the workflow leaves them: awaiting approval, resolved (with its
    postmortem file), and just opened; plus samples and the deploy that caused it."""
    for i in range(60):
        t = T0 - 100 + i * 2
        store.add_samples([
            model.Sample(t=t, service="auth", metric="rss_bytes", value=2.5e7 + max(0, t - T0)
                         * 1e6),
            model.Sample(t=t, service="auth", metric="p99_latency_s", value=0.007),
            *(model.Sample(t=t, service="auth", metric="rss_bytes", value=2e7, replica=r)
              for r in ("auth-0", "auth-1"))])
    store.add_change(model.Change(id=model.ChangeId("chg-1"), t=T0 - 8, service="auth",
                                  kind="deploy", who="ci-bot", what="deploy auth 1.2.1",
                                  from_version="1.2.0", to_version="1.2.1"))
    # 1. awaiting approval
    inc = _incident(store, "inc-wait0001", T0)
    diag, plan, decision = _diagnose(inc)
    store.append_ledger(T0 + 1, inc.id, "diagnosis", {"diagnosis": diag})
    store.append_ledger(T0 + 1, inc.id, "plan", {"plan": plan})
    store.append_ledger(T0 + 2, inc.id, "decision", {"decision": decision, "permits": []})
    approval = "apr-wait0001"
    request = {"plan": plan, "risk": plan.risk, "inverse": plan.inverse,
               "diagnosis": {"service": "auth", "fault": "bad_deploy", "probability": 0.93,
                             "summary": ""}, "decision": decision, "on_expiry": "suggest"}
    store.append_ledger(T0 + 2, inc.id, "approval.requested", {
        "approval": approval, "role": "sre", "expires_at": T0 + 900, "request": request})
    store.add_approval(approval, inc.id, T0 + 2, T0 + 900, "sre", request)
    store.save_incident(dataclasses.replace(inc, state=model.IncidentState.AWAITING_APPROVAL),
                        {"anomalies": inc.anomalies, "diagnosis": diag, "plan": plan,
                         "decision": decision, "approval": approval}, now=T0 + 2)
    # 2. resolved, with its postmortem
    done = _incident(store, "inc-done0001", T0 - 50)
    ddiag, dplan, _ = _diagnose(done)
    store.append_ledger(T0 - 49, done.id, "diagnosis", {"diagnosis": ddiag})
    outcome = {"resolved": True, "escalated": False, "rolled_back": False,
               "resolved_at": T0 - 20}
    store.append_ledger(T0 - 20, done.id, "outcome", outcome)
    folder = workdir / "postmortems"
    folder.mkdir(parents=True, exist_ok=True)
    text = scribe.postmortem(done, store.ledger(done.id), {})
    path = folder / f"{done.id}.md"
    path.write_text(text, encoding="utf-8")
    store.save_incident(dataclasses.replace(done, state=model.IncidentState.RESOLVED),
                        {"anomalies": done.anomalies, "diagnosis": ddiag, "plan": dplan,
                         "outcome": outcome, "postmortem": str(path)}, now=T0 - 20)
    # 3. just opened
    fresh = _incident(store, "inc-open0001", T0 + 30)
    store.save_incident(fresh, {"anomalies": fresh.anomalies}, now=T0 + 30)
    return inc.id, approval, done.id, fresh.id


def make_world(tmp_path: Path, secret: bytes | None = None,
               template: Path | None = None) -> World:
    """A world in `tmp_path`: seeded afresh, or copied from a seeded `template` folder."""
    if template is None:
        store = sql.SqlStore(sql.sqlite_url(tmp_path / "selfheal.db"))
        waiting, approval, resolved, fresh = seed(store, tmp_path)
    else:
        shutil.copytree(template, tmp_path, dirs_exist_ok=True)
        store = sql.SqlStore(sql.sqlite_url(tmp_path / "selfheal.db"))
        waiting, approval, resolved, fresh = json.loads(
            (tmp_path / "ids.json").read_text(encoding="utf-8"))
        row = store.incident(resolved)
        assert row is not None  # the postmortem moves with the copy
        with store.engine.begin() as conn:
            detail = row["detail"] | {"postmortem": str(tmp_path / "postmortems" /
                                                        f"{resolved}.md")}
            conn.execute(sql.incidents.update().where(sql.incidents.c.id == resolved)
                         .values(detail=json.dumps(detail)))
    pol = policy.parse(POLICY, "<test policy>")
    ws = ws_mod.build(store, pol, events.Hub(), tmp_path)
    if secret is not None:
        ws = dataclasses.replace(ws, callback_secret=secret)
    ws = dataclasses.replace(ws, clock=lambda: T0 + 60)
    if template is None:
        tokens = {name: ws.tokens.create(name, role, "test", T0)[1] for name, role in ROLES}
    else:
        tokens = json.loads((tmp_path / "tokens.json").read_text(encoding="utf-8"))
    app = api.create_app(api.Receivers(body_limit_bytes=1 << 20,
                                       registry=prometheus_client.CollectorRegistry(),
                                       health=lambda: {"ok": True}),
                         routers=web.routers(ws))
    return World(ws=ws, client=TestClient(app), tokens=tokens, waiting=waiting,
                 approval=approval, resolved=resolved, fresh=fresh, workdir=tmp_path)


ROLES = (("victor", "viewer"), ("alice", "approver"), ("mallory", "approver"),
         ("root", "admin"))


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One seeded database for the whole session; each test works on its own copy."""
    folder = tmp_path_factory.mktemp("template")
    w = make_world(folder)
    (folder / "ids.json").write_text(json.dumps([w.waiting, w.approval, w.resolved, w.fresh]),
                                     encoding="utf-8")
    (folder / "tokens.json").write_text(json.dumps(w.tokens), encoding="utf-8")
    w.ws.store.close()
    return folder


@pytest.fixture
def world(tmp_path: Path, template: Path) -> Iterator[World]:
    w = make_world(tmp_path, template=template)
    yield w
    w.ws.store.close()


def ledger_kinds(w: World) -> list[str]:
    return [e.kind for e in w.ws.store.ledger()]


def last_entry(w: World, kind: str) -> dict[str, Any]:
    entries = [e for e in w.ws.store.ledger() if e.kind == kind]
    assert entries, f"no {kind} entry in the ledger"
    return dict(entries[-1].payload)


def now() -> float:
    return time.time()
