"""Each scenario's injection really breaks the shop: left alone, the SLO is violated.

Slow: every case starts the whole shop with regions (seven services, real processes) and
steady load, lets a short baseline build up, injects the failure with no agent watching, and
waits until the outside SLO probe sees the objective broken (or gives up).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from selfheal.bench import scenarios as bench
from selfheal.platforms.local import platform as local
from selfheal.scenarios import catalog

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SETTINGS = bench.Settings(baseline_s=15.0, timeout_s=75.0)
# The leak harms memory and GC first; the outside SLO was not broken within 2.5 minutes in
# the bench, so its own test below checks the harm it does instead.
BREAKING = [s.name for s in catalog.SCENARIOS
            if s.expect != "leave" and s.name != "bad-deploy-memory-leak"]


@pytest.mark.parametrize("name", BREAKING)
def test_the_injection_breaks_the_slo_when_nobody_acts(name: str, no_leftovers: Path) -> None:
    scn = catalog.by_name(name)
    run = asyncio.run(bench.run_one(scn, "none", no_leftovers / "wd", SETTINGS))
    assert run.slo_violated, f"{name}: the shop met its SLO for 75 s after the injection"
    assert not run.resolved and run.actions == 0



def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def test_the_bad_deploy_leaks_memory_under_load(no_leftovers: Path) -> None:
    async def main() -> tuple[float, float]:
        p = local.LocalPlatform(no_leftovers / "wd", [
            local.ServiceDef("auth", ("1.2.0", "1.2.1"), "1.2.0", 1, local.shop_command())],
            time.time)
        await p.start()
        try:
            await catalog.by_name("bad-deploy-memory-leak").inject(p)
            pid = p.replicas("auth")[0].pid
            before = _rss_mb(pid)
            async with httpx.AsyncClient(timeout=5.0) as http:
                for _ in range(300):
                    await http.get(f"{p.router_url}/auth/verify")
            return before, _rss_mb(pid)
        finally:
            await p.stop()

    before, after = asyncio.run(main())
    # 300 requests keep ~96 kB and 2,500 objects each alive: well over 20 MB more.
    assert after - before > 20, f"RSS {before:.0f} -> {after:.0f} MB"
