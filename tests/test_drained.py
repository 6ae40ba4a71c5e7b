"""A drained service stays drained across a selfheal restart, and is cleared when it answers.

When every replica of a service goes dark and its callers are routed around it, the service is
"drained": it is not paged again until its `up` comes back. That is written to the ledger, so a
controller restarted over the same store (real SQLite) still holds its page, while a controller
over the same history without the drain pages at once; once `up` is back the drain ends, and
that too survives a restart.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from selfheal import config, model, policy, ports, scribe
from selfheal import plan as plan_mod
from selfheal.engine import controller as controller_mod
from selfheal.engine import drains, serve
from selfheal.platforms.local import platform as local
from selfheal.scenarios import catalog as scenario_catalog
from selfheal.store import sql

pytestmark = pytest.mark.timeout(60)
NOW = 1_800_000_000.0
SERVICES = {"checkout": ["cart"], "cart": []}
WHY = "unreachable; checkout's calls now go to region west (incident inc-1)"


class Clock:
    def __init__(self) -> None:
        self.t = NOW

    def __call__(self) -> float:
        return self.t


class UpFeed:
    """A scrape that answers with the share of replicas up the test sets, per service."""

    name = "up"
    kinds = frozenset({model.SignalKind.METRICS})

    def __init__(self) -> None:
        self.up = dict.fromkeys(SERVICES, 1.0)

    async def collect(self, now: float) -> ports.Collected:
        return ports.Collected(samples=tuple(
            model.Sample(t=now, service=svc, metric="up", value=v)
            for svc, v in sorted(self.up.items())))

    async def close(self) -> None:
        return None


def _cfg(workdir: Path) -> config.Config:
    return config.Config(workdir=workdir, platform=config.PlatformSettings(services=SERVICES),
                         investigate=config.Investigate(patience_s=0))


def _history(workdir: Path) -> None:
    """Five healthy minutes in the store, as a previous run scraped them."""
    store = sql.SqlStore(_cfg(workdir).database_url())
    store.add_samples([model.Sample(t=NOW - 300 + i, service=svc, metric="up", value=1.0)
                       for i in range(300) for svc in SERVICES])
    store.close()


def _controller(workdir: Path, clock: Clock, feed: UpFeed
                ) -> tuple[controller_mod.Controller, sql.SqlStore]:
    cfg = _cfg(workdir)
    store = sql.SqlStore(cfg.database_url())
    ctl = controller_mod.Controller(
        cfg, serve.ObservedPlatform(SERVICES), store,
        policy.Gate(policy.parse(serve.OBSERVE_POLICY, "test")),
        {svc: tuple(callees) for svc, callees in SERVICES.items()}, clock,
        lambda e: None, feeds=[feed])
    ctl.warm_start()
    return ctl, store


async def _ticks(ctl: controller_mod.Controller, clock: Clock, n: int) -> None:
    for _ in range(n):
        clock.t += 1.0
        await ctl.tick()


def _paged(ctl: controller_mod.Controller, service: str) -> bool:
    return any(c.incident.service == service for c in ctl.cases.values())


async def _stop(ctl: controller_mod.Controller, store: sql.SqlStore) -> None:
    await ctl.stop()
    store.close()


def test_a_restarted_controller_keeps_a_dark_service_drained_until_it_answers(
        tmp_path: Path) -> None:
    drained_dir, control_dir = tmp_path / "drained", tmp_path / "control"
    for d in (drained_dir, control_dir):
        d.mkdir()
        _history(d)

    async def scenario() -> None:
        clock, feed = Clock(), UpFeed()
        # The run that routed checkout around the dark cart drains cart, then stops.
        first, store = _controller(drained_dir, clock, feed)
        inc = model.Incident(id=model.IncidentId("inc-1"), service="cart", opened_at=NOW,
                             title="cart unreachable", anomalies=())
        drains.drain(first, controller_mod.Case(incident=inc, detail={}, timeline=[]), "cart",
                     WHY, caller="checkout", to_region="west")
        await _stop(first, store)

        # Restarted over the same store: cart is still drained, and going dark is no page.
        feed.up["cart"] = 0.0
        again, store = _controller(drained_dir, clock, feed)
        assert again.drained == {"cart": drains.Drain(NOW, WHY, "inc-1", "checkout")}
        control, control_store = _controller(control_dir, Clock(), feed)
        assert control.drained == {}
        control_clock = control.clock
        assert isinstance(control_clock, Clock)
        await _ticks(again, clock, 10)
        await _ticks(control, control_clock, 10)
        assert not _paged(again, "cart")
        assert _paged(control, "cart")  # the same dark cart, not drained: paged
        await _stop(control, control_store)

        # cart answers again: the drain ends, in the ledger too.
        feed.up["cart"] = 1.0
        await _ticks(again, clock, 1)
        assert again.drained == {}
        kinds = [e.kind for e in store.ledger() if e.payload.get("service") == "cart"]
        assert kinds[-2:] == [drains.DRAINED, drains.UNDRAINED]
        # ...under the incident that drained it, with why it ended
        assert [e.payload["reason"] for e in store.ledger("inc-1")
                if e.kind == drains.UNDRAINED] == ["up again"]
        # The incident's postmortem tells it in words, not ledger kinds.
        text = scribe.postmortem(inc, store.ledger("inc-1"), SERVICES)
        assert "| cart drained: every replica dark, callers shifted to west (checkout) |" in text
        assert "| cart back: up again |" in text
        assert drains.DRAINED not in text and drains.UNDRAINED not in text
        await _ticks(again, clock, 30)
        await _stop(again, store)

        # A later restart knows it: cart going dark again is paged.
        feed.up["cart"] = 0.0
        third, store = _controller(drained_dir, clock, feed)
        assert third.drained == {}
        await _ticks(third, clock, 10)
        assert _paged(third, "cart")
        await _stop(third, store)

    asyncio.run(scenario())


def test_the_latest_word_in_the_ledger_wins_per_service(tmp_path: Path) -> None:
    _history(tmp_path)
    clock, feed = Clock(), UpFeed()
    store = sql.SqlStore(_cfg(tmp_path).database_url())
    for kind, svc, since in [(drains.DRAINED, "cart", NOW - 50),
                             (drains.UNDRAINED, "cart", NOW - 50),
                             (drains.DRAINED, "checkout", NOW - 40),
                             (drains.DRAINED, "cart", NOW - 30)]:
        store.append_ledger(since, "", kind, {"service": svc, "since": since, "why": WHY})
    store.append_ledger(NOW - 20, "", drains.DRAINED, {"service": "auth"})  # unreadable
    store.close()
    ctl, store = _controller(tmp_path, clock, feed)
    assert ctl.drained == {"cart": drains.Drain(NOW - 30, WHY),
                           "checkout": drains.Drain(NOW - 40, WHY)}
    asyncio.run(_stop(ctl, store))


# -- the shift that routed around the service is undone: the drain ends ------------------------

REGIONAL = ("catalog", "inventory-east", "inventory-west")
REGION_TOPOLOGY = {"catalog": ("inventory-east", "inventory-west"), "inventory-east": (),
                   "inventory-west": ()}
OBSERVE_S = 3.0


def _region_platform(workdir: Path) -> local.LocalPlatform:
    """catalog, which calls inventory in region east (or west), as real processes."""
    return local.LocalPlatform(workdir / "platform", [
        s for s in scenario_catalog.shop_services(replicas=1) if s.name in REGIONAL], time.time)


class _Signalling(sql.SqlStore):
    """The real store, which also tells a waiting test the moment an entry of a kind is
    written (instead of the test polling the ledger)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.written: dict[str, asyncio.Event] = {}

    def when_written(self, kind: str) -> asyncio.Event:
        return self.written.setdefault(kind, asyncio.Event())

    def append_ledger(self, ts: float, incident_id: str, kind: str,
                      payload: dict[str, Any]) -> model.LedgerEntry:
        entry = super().append_ledger(ts, incident_id, kind, payload)
        self.when_written(kind).set()
        return entry


def _region_controller(workdir: Path, platform: local.LocalPlatform,
                       feeds: list[ports.Feed] | None = None
                       ) -> tuple[controller_mod.Controller, _Signalling]:
    cfg = config.Config(
        workdir=workdir, platform=config.PlatformSettings(
            services={s: list(c) for s, c in REGION_TOPOLOGY.items()}),
        scrape=config.Scrape(window_s=1.0), detect=config.Detect(settle_s=0.0),
        verify=config.Verify(observe_s=OBSERVE_S, extra_looks=0))
    store = _Signalling(cfg.database_url())
    ctl = controller_mod.Controller(
        cfg, platform, store, policy.Gate(policy.parse(policy.default_text(), "default")),
        REGION_TOPOLOGY, time.time, lambda e: None, feeds=feeds or [])
    return ctl, store


def _east_is_dark(ctl: controller_mod.Controller, platform: local.LocalPlatform
                  ) -> controller_mod.Case:
    """An incident whose diagnosis blames the dark east region and whose plan shifts
    catalog's calls to west, written to the ledger as the workflow writes them."""
    now = time.time()
    inc = model.Incident(id=model.IncidentId("inc-east"), service="catalog", opened_at=now,
                         title="catalog errors", anomalies=())
    dark = model.Evidence("health", model.SignalKind.METRICS, model.EvidenceStatus.OK,
                          "up{service=inventory-east}", "inventory-east: up 1.00 -> 0.00: "
                          "every replica stopped answering", service="inventory-east",
                          fault=model.FaultKind.UNREACHABLE, strength=0.95)
    errs = model.Evidence("metrics", model.SignalKind.METRICS, model.EvidenceStatus.OK,
                          "error_ratio{service=catalog}", "catalog: error ratio 0% -> 60%",
                          service="catalog", fault=model.FaultKind.ERRORS, strength=0.8)
    diag = model.Diagnosis(inc.id, now, (model.Hypothesis(
        "inventory-east", model.FaultKind.UNREACHABLE, model.ActionKind.TRAFFIC_SHIFT, 0.9,
        (dark,), summary="region east is dark"),), sufficient=True, evidence=(dark, errs))
    proposal = plan_mod.propose(diag, plan_mod.Facts(
        service="inventory-east", version=platform.version("inventory-east"), replicas=1,
        failover=tuple(platform.failovers("inventory-east"))), model.PlanId("plan-east"))
    assert proposal is not None and proposal.steps[0].service == "catalog"
    case = controller_mod.Case(incident=inc, detail={}, timeline=[])
    ctl.cases[inc.id] = case
    ctl.record(case, "incident.opened", {"incident": inc, "recent_changes": []})
    ctl.record(case, "diagnosis", {"diagnosis": diag})
    ctl.record(case, "plan", {"plan": proposal})
    case.detail.update(diagnosis=diag, plan=proposal)
    ctl.persist(case, model.IncidentState.ACTING)
    return case


@pytest.mark.parametrize("undone_by", ["failed verification", "revocation"])
def test_undoing_the_shift_ends_the_drain(no_leftovers: Path, undone_by: str) -> None:
    """The shift runs for real (a killed run's announced `full` phase, completed on resume:
    the public way into act, verify, keep or undo); east is drained as soon as catalog's
    calls go west. Without metrics the verification fails, or an operator revokes the action
    type while it is being verified: either way the shift is undone, catalog calls east again,
    and east is no longer drained, under the incident, with the reason, for good."""

    async def scenario() -> None:
        platform = _region_platform(no_leftovers)
        await platform.start()
        try:
            ctl, store = _region_controller(no_leftovers, platform)
            assert platform.failovers("inventory-east") == [("catalog", "west")]
            case = _east_is_dark(ctl, platform)
            seen: list[dict[str, drains.Drain]] = []

            async def operator() -> None:
                await store.when_written(drains.DRAINED).wait()
                seen.append(dict(ctl.drained))
                if undone_by == "revocation":
                    assert store.revoke("traffic_shift", "sre", "not during the audit",
                                        time.time())

            watcher = asyncio.create_task(operator())
            await ctl.workflow.handle(case, resume={"phase": "full", "execution": "x-east",
                                                    "canary_replicas": 0})
            await asyncio.wait_for(watcher, 1.0)
            assert seen and seen[0]["inventory-east"].caller == "catalog"
            assert seen[0]["inventory-east"].incident_id == case.incident.id
            assert ctl.drained == {}
            assert platform.failovers("inventory-east") == [("catalog", "west")]  # undone

            entries = store.ledger(case.incident.id)
            kinds = [e.kind for e in entries]
            undo = next(i for i, e in enumerate(entries) if e.kind == "execution.result"
                        and e.payload["phase"] == "undo")
            assert kinds.index(drains.DRAINED) < undo < kinds.index(drains.UNDRAINED)
            assert kinds.count(drains.UNDRAINED) == 1
            reason = entries[kinds.index(drains.UNDRAINED)].payload["reason"]
            if undone_by == "revocation":
                assert "verification" not in kinds and "revoked" in reason
            else:
                assert kinds.index(drains.DRAINED) < kinds.index("verification") < undo
                assert "verification failed" in reason
            assert any(t["kind"] == drains.UNDRAINED for t in case.timeline)
            assert case.incident.state is model.IncidentState.ESCALATED
            # The postmortem the escalation wrote from the ledger says it in words.
            text = Path(case.detail["postmortem"]).read_text(encoding="utf-8")
            assert ("| inventory-east drained: every replica dark, callers shifted to west "
                    "(catalog) |") in text
            assert f"| inventory-east no longer drained: {reason} |" in text
            assert "inventory-east is in catalog's request path again" in text
            assert "out of every request path: restore it" not in text
            assert drains.DRAINED not in text and drains.UNDRAINED not in text
            assert "| trust |" not in text and "| resumed |" not in text
            assert ("Trust of selfheal in traffic_shift: failure" in text) \
                == (undone_by == "failed verification")  # a revocation is not a bad outcome
            store.close()
            again, store = _region_controller(no_leftovers, platform)  # a restart knows it
            assert again.drained == {}
            store.close()
        finally:
            await platform.stop()

    asyncio.run(scenario())


def test_a_failed_undo_leaves_the_shift_and_the_drain(no_leftovers: Path) -> None:
    """The same shift as above, whose verification fails; but the snapshot its inverse needs
    is gone by then (a wiped state directory), so the undo fails. catalog still calls west,
    so east is still out of every request path: the drain stays, no end is written, and a
    restarted controller still holds it."""

    async def scenario() -> None:
        platform = _region_platform(no_leftovers)
        await platform.start()
        try:
            ctl, store = _region_controller(no_leftovers, platform)
            case = _east_is_dark(ctl, platform)

            async def wipe() -> None:
                await store.when_written(drains.DRAINED).wait()
                snaps = list((platform.state.root / "snapshots").glob("*.json"))
                assert snaps
                for snap in snaps:
                    snap.unlink()

            wiper = asyncio.create_task(wipe())
            await ctl.workflow.handle(case, resume={"phase": "full", "execution": "x-east",
                                                    "canary_replicas": 0})
            await asyncio.wait_for(wiper, 1.0)
            assert platform.failovers("inventory-east") == []  # catalog still calls west
            assert set(ctl.drained) == {"inventory-east"}
            entries = store.ledger(case.incident.id)
            undo = [e for e in entries if e.kind == "execution.result"
                    and e.payload["phase"] == "undo"]
            assert undo and undo[-1].payload["execution"]["status"] == "failed"
            assert drains.UNDRAINED not in [e.kind for e in entries]
            assert case.incident.state is model.IncidentState.ESCALATED
            store.close()
            again, store = _region_controller(no_leftovers, platform)
            assert set(again.drained) == {"inventory-east"}
            store.close()
        finally:
            await platform.stop()

    asyncio.run(scenario())


def test_an_operator_routing_the_caller_back_ends_the_drain(no_leftovers: Path) -> None:
    """catalog's calls go west and east is drained; while that holds, ticks keep it drained.
    An operator sends catalog back to east by hand (outside selfheal): the next tick ends the
    drain, and a dark east is paged again."""

    class Up:
        name = "up"
        kinds = frozenset({model.SignalKind.METRICS})

        async def collect(self, now: float) -> ports.Collected:
            return ports.Collected(samples=tuple(
                model.Sample(t=now, service=s, metric="up", value=float(s != "inventory-east"))
                for s in REGIONAL))

        async def close(self) -> None:
            return None

    async def scenario() -> None:
        platform = _region_platform(no_leftovers)
        await platform.start()
        try:
            ctl, store = _region_controller(no_leftovers, platform, feeds=[Up()])
            shift = model.Action(model.ActionKind.TRAFFIC_SHIFT, "catalog",
                                 model.params(to_region="west", snapshot="snap-1"))
            await platform.remedy(shift, who="selfheal (permit)", why="full")
            inc = model.Incident(id=model.IncidentId("inc-1"), service="catalog",
                                 opened_at=time.time(), title="catalog errors", anomalies=())
            drains.drain(ctl, controller_mod.Case(incident=inc, detail={}, timeline=[]),
                         "inventory-east", "unreachable", caller="catalog", to_region="west")
            for _ in range(3):
                await ctl.tick()
            assert set(ctl.drained) == {"inventory-east"}  # still routed around

            back = model.Action(model.ActionKind.TRAFFIC_SHIFT, "catalog",
                                model.params(restore="snap-1"))
            await platform.remedy(back, who="alice", why="east looks fine to me")
            await ctl.tick()
            assert ctl.drained == {}
            ended = [e for e in store.ledger("inc-1") if e.kind == drains.UNDRAINED]
            assert [e.payload["reason"] for e in ended] == ["catalog is routed to it again"]
            await ctl.stop()
            store.close()
        finally:
            await platform.stop()

    asyncio.run(scenario())
