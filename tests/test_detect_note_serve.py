"""`selfheal serve` says once, in its event stream, which of the series it watches has no
noise scale to rank its moves by (a metric of the user's own, at 0 between bursts, with no
floor in `detect.min_scale`), and which setting gives it one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from selfheal import config, model, policy, ports
from selfheal.engine import controller as controller_mod
from selfheal.engine import serve
from selfheal.store import sql

pytestmark = pytest.mark.timeout(60)
NOW = 1_800_000_000.0
SERVICES: dict[str, list[str]] = {"api": []}


class QueueFeed:
    """A dead-letter queue at 0, with a burst of 20 for two ticks every 40 (the first at
    the 39th)."""

    name = "queue"
    kinds = frozenset({model.SignalKind.METRICS})

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.ticks = 0

    async def collect(self, now: float) -> ports.Collected:
        self.ticks += 1
        value = 20.0 if self.ticks % 40 in (39, 0) else 0.0
        return ports.Collected(samples=(
            model.Sample(t=now, service="api", metric=self.metric, value=value),))

    async def close(self) -> None:
        return None


@pytest.mark.parametrize(("floors", "said"), [({}, 1), ({"dead_letters": 1.0}, 0)])
def test_a_series_with_no_noise_scale_is_named_once_with_the_floor_to_set(
        tmp_path: Path, floors: dict[str, float], said: int) -> None:
    events: list[controller_mod.Event] = []
    clock = [NOW]
    cfg = config.Config(workdir=tmp_path, platform=config.PlatformSettings(services=SERVICES),
                        detect=config.Detect(min_scale=floors))
    store = sql.SqlStore(cfg.database_url())
    ctl = controller_mod.Controller(
        cfg, serve.ObservedPlatform(SERVICES), store,
        policy.Gate(policy.parse(serve.OBSERVE_POLICY, "test")),
        {svc: tuple(callees) for svc, callees in SERVICES.items()}, lambda: clock[0],
        events.append, feeds=[QueueFeed("dead_letters")])

    async def run() -> None:
        for _ in range(200):  # five bursts
            clock[0] += 1.0
            await ctl.tick()
        await ctl.stop()

    asyncio.run(run())
    store.close()
    notes = [e for e in events if "detect.min_scale.dead_letters" in e.message]
    assert len(notes) == said
    assert all(e.stage == "detect" and "api/dead_letters" in e.message for e in notes)
