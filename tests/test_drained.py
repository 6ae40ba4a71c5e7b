"""A drained service stays drained across a selfheal restart, and is cleared when it answers.

When every replica of a service goes dark and its callers are routed around it, the service is
"drained": it is not paged again until its `up` comes back. That is written to the ledger, so a
controller restarted over the same store (real SQLite) still holds its page, while a controller
over the same history without the drain pages at once; once `up` is back the drain ends, and
that too survives a restart.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from selfheal import config, model, policy, ports
from selfheal.engine import controller as controller_mod
from selfheal.engine import drains, serve
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
