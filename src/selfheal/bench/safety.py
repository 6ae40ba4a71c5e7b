"""The safety envelope's throughput: policy-gate decisions and ledger appends per second.

Pure computation over the real gate and the real SQLite store (in a temporary folder). The
gate is measured on a realistic mix (allowed, needing approval, denied by a rule, refused for
insufficient evidence) with CEL conditions evaluated; the ledger on durable appends
(synchronous=FULL, one transaction each), as the engine makes them.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from selfheal import catalogue, model, policy
from selfheal.store import sql

POLICY = """
version: 1
modes: {default: auto}
limits: {max_concurrent: 1000000, max_actions_per_window: 1000000, max_fleet_fraction: 1.0}
rules:
  - name: rollback-business-hours
    when: {actions: [rollback]}
    condition: incident.probability >= 0.8 && trust >= 0.3
    verdict: allow
  - name: scale-asks
    when: {actions: [scale]}
    verdict: require_approval
  - name: no-restart-of-db
    when: {actions: [restart], services: [db]}
    verdict: deny
  - name: rest
    verdict: require_approval
"""


@dataclasses.dataclass(frozen=True)
class Result:
    gate_decisions: int
    gate_decisions_per_s: float
    ledger_appends: int
    ledger_appends_per_s: float


def _cases() -> list[tuple[model.Plan, model.Diagnosis]]:
    out = []
    actions = [
        model.Action(model.ActionKind.ROLLBACK, "auth",
                     model.params(from_version="1.2.1", to_version="1.2.0")),
        model.Action(model.ActionKind.SCALE, "cart", model.params(from_replicas=2,
                                                                   to_replicas=4)),
        model.Action(model.ActionKind.RESTART, "db", model.params(replica="db-1")),
    ]
    for i, action in enumerate(actions * 2):
        ev = (model.Evidence("metrics", model.SignalKind.METRICS, model.EvidenceStatus.OK,
                             "q", "moved", action.service, model.FaultKind.LATENCY, 0.9),)
        hyp = model.Hypothesis(action.service, model.FaultKind.BAD_DEPLOY, action.kind, 0.9,
                               ev)
        diag = model.Diagnosis(model.IncidentId(f"inc-{i}"), 0.0, (hyp,), sufficient=i < 3,
                               evidence=ev)
        inv = catalogue.inverse(action)
        out.append((model.Plan(model.PlanId(f"p{i}"), model.IncidentId(f"inc-{i}"), (action,),
                               (inv,) if inv else (), "bench", model.RiskClass.LOW), diag))
    return out


def run(n: int = 20_000, ledger_n: int = 2_000,
        progress: Callable[[str, int, int], None] | None = None) -> Result:
    gate = policy.Gate(policy.parse(POLICY, "<bench policy>"))
    ctx = policy.gate.Context(replicas={"auth": 2, "cart": 2, "db": 1})
    cases = _cases()
    t0 = time.perf_counter()
    for i in range(n):
        plan, diag = cases[i % len(cases)]
        review = gate.review(plan, diag, float(i), ctx)
        for p in review.permits:
            gate.release(p)
        if progress and i % 1000 == 0:
            progress("gate", i, n)
    gate_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        store = sql.SqlStore(sql.sqlite_url(Path(tmp) / "bench.db"))
        payload = {"execution": "x" * 12, "action": cases[0][0].steps[0], "phase": "full"}
        t0 = time.perf_counter()
        for i in range(ledger_n):
            store.append_ledger(float(i), "inc-bench", "execution.intent", payload)
            if progress and i % 100 == 0:
                progress("ledger", i, ledger_n)
        ledger_s = time.perf_counter() - t0
        store.verify_ledger()
        store.close()
    return Result(n, n / gate_s, ledger_n, ledger_n / ledger_s)
