"""The engine with a reasoner configured: one exchange per incident, in the ledger whole.

The controller runs in-process as `selfheal serve` assembles it (observe-only platform, SQLite
store, an Alertmanager feed); the model is the local stand-in server answering with one usable
hypothesis and one plan outside the catalogue.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path

import pytest

from selfheal import config, model, policy
from selfheal.engine import controller as controller_mod
from selfheal.engine import serve
from selfheal.sources import alertmanager
from selfheal.store import sql
from tests import alert_payloads
from tests.reasoners import reasoner_helpers as helpers

pytestmark = pytest.mark.timeout(120)


def _samples(now: float) -> list[model.Sample]:
    out = []
    for service in ("auth", "frontend"):
        for step in range(140):
            t = now - 140 + step
            rising = service == "auth" and t > now - 8
            out += [
                model.Sample(t, service, "rss_bytes", 5e7 + (t % 3) * 1e5
                             + ((t - now + 8) * 2e7 if rising else 0.0)),
                model.Sample(t, service, "p99_latency_s", 0.05 if rising else 0.005),
                model.Sample(t, service, "request_rate", 20.0 + t % 2),
            ]
    return out


def test_one_exchange_per_incident_recorded_whole_and_refusals_recorded(tmp_path: Path) -> None:
    rogue_plan = {"service": "auth", "action": "rm -rf /", "rationale": "start over"}
    content = helpers.answer(plans=[rogue_plan])
    chat = helpers.FakeChat([content])
    with helpers.fake_server(chat):
        cfg = config.Config(
            workdir=tmp_path / "state",
            platform=config.PlatformSettings(services={"auth": [], "frontend": ["auth"]}),
            reasoner=config.Reasoner(enabled=True, base_url=chat.url, model="smol-test",
                                     max_tokens_per_incident=3000))
        cfg.workdir.mkdir()
        store = sql.SqlStore(cfg.database_url())
        now = time.time()
        store.add_samples(_samples(now))
        feed = alertmanager.AlertFeed()
        events: list[controller_mod.Event] = []
        ctl = controller_mod.Controller(
            cfg, serve.ObservedPlatform({"auth": [], "frontend": ["auth"]}), store,
            policy.Gate(policy.parse(serve.OBSERVE_POLICY, "test")),
            {"frontend": ("auth",), "auth": ()}, time.time, events.append, feeds=[feed])

        async def scenario() -> str:
            try:
                feed.receive(alert_payloads.firing("AuthMemoryHigh", "auth", now - 2))
                await ctl.tick()
                (inc_id,) = ctl.cases
                await ctl.tasks[inc_id]
                return inc_id
            finally:
                await ctl.stop()

        inc_id = asyncio.run(scenario())
    entries = store.ledger(inc_id)
    store.close()
    kinds = [e.kind for e in entries]
    assert len(chat.requests) == 1 and kinds.count("reasoner.exchange") == 1
    assert kinds.index("reasoner.exchange") < kinds.index("diagnosis")
    assert "execution.intent" not in kinds
    exchange = next(e.payload for e in entries if e.kind == "reasoner.exchange")
    assert exchange["model"] == "smol-test" and exchange["model_version"] == "fake-model-v1 fp-test"
    assert json.loads(str(exchange["prompt"]))["messages"] == chat.requests[0]["messages"]
    assert exchange["prompt_sha256"] == hashlib.sha256(
        str(exchange["prompt"]).encode()).hexdigest()
    assert exchange["response"] == content
    assert exchange["narrative"] and "drafted by model smol-test" in str(exchange["narrative_by"])
    rejected = [e.payload for e in entries if e.kind == "reasoner.rejected"]
    assert len(rejected) == 1 and "rm -rf /" in str(rejected[0]["why"])
    assert rejected[0]["prompt_sha256"] == exchange["prompt_sha256"]
    diag = ctl.cases[inc_id].detail["diagnosis"]
    said = [e for e in diag.evidence if e.kind is model.SignalKind.MODEL]
    assert [(e.service, e.fault) for e in said] == [("auth", model.FaultKind.MEMORY_LEAK)]
    assert str(exchange["prompt_sha256"])[:16] in said[0].query
    assert any(e.stage == "reason" and e.incident_id == inc_id for e in events)

