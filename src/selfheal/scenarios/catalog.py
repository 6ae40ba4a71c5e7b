"""The ten scenarios of issue #8: how each one breaks the running shop, and what is expected.

Each scenario injects a realistic failure through the same doors an operator, a CI bot or the
world would use: a deploy, a config change, a burst of traffic, a poisoned cache entry, a
certificate or a credential that runs out, a region that goes dark, a process that hangs.
`expect` says what a good agent does: resolve it, escalate it to a human (no known remedy), or
leave it alone (nothing is wrong). `targets` are the services an action may rightly touch.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Literal

import httpx

from selfheal.platforms.local import platform as local
from selfheal.platforms.local import remedies
from selfheal.platforms.local import state as state_mod
from selfheal.shop import spec as shop_spec

Expect = Literal["resolve", "escalate", "leave"]


def shop_services(replicas: int = 2) -> list[local.ServiceDef]:
    """The shop with regions, as the scenario suite runs it (seven services)."""
    out = []
    for s in shop_spec.SHOP + shop_spec.REGIONAL:
        regional = tuple((dep, shop_spec.REGIONS[dep]) for r in s.routes for dep, _ in r.regional)
        out.append(local.ServiceDef(
            s.name, tuple(s.versions), s.initial_version,
            s.replicas if s.name.startswith("inventory-") else replicas, local.shop_command(),
            credential={"cart": "cart-db"}.get(s.name, ""), tls=s.name == "auth",
            regional=regional))
    return out


@dataclasses.dataclass(frozen=True)
class Injected:
    """What an injection did: when the failure starts to bite, and a line for the report."""

    at: float
    what: str


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    expect: Expect
    targets: frozenset[str]
    inject: Callable[[local.LocalPlatform], Awaitable[Injected]]
    culprit: str = ""
    """Where the failure lives; incidents on it or on its callers are about this scenario."""
    healed: Callable[[local.LocalPlatform], Awaitable[bool]] | None = None
    """Ground truth: is the injected fault gone? (None: only the SLO can tell.)"""

    def involved(self) -> frozenset[str]:
        """The culprit, the targets and every service that calls them, directly or not."""
        graph = shop_spec.dependencies(regions=True)
        seen = {self.culprit, *self.targets} - {""}
        grew = True
        while grew:
            callers = {s for s, callees in graph.items() if seen & set(callees)}
            grew = not callers <= seen
            seen |= callers
        return frozenset(seen)


async def _bad_deploy(p: local.LocalPlatform) -> Injected:
    sha = await remedies.ship(p, "auth", "1.2.1", "sessions.py",
                              "SESSIONS = []  # cache every session in memory\n",
                              "cache sessions in memory")
    change = await p.deploy("auth", "1.2.1", who="ci-bot",
                            why=f"release 1.2.1: cache sessions in memory ({sha[:8]})")
    return Injected(change.t, "auth 1.2.1 deployed (leaks memory per request)")


async def _bad_config(p: local.LocalPlatform) -> Injected:
    change = await p.change_config("checkout", {"pool_size": -1}, who="alice",
                                   why="shrink the payment connection pool")
    return Injected(change.t, "checkout config r2 sets pool_size=-1 (invalid)")


async def _surge(p: local.LocalPlatform) -> Injected:
    await p.table.spawn("surge", [sys.executable, "-m", "selfheal.shop.loadgen", "--router",
                                  p.router_url, "--rps", "16", "--workers", "24",
                                  "--paths", "/buy", "--duration", "600"],
                        p.rundir / "logs" / "surge.out", p.workdir)
    return Injected(p.clock(), "a surge of 16 more orders/s on /buy (checkout holds ~20/s)")


async def _poisoned_cache(p: local.LocalPlatform) -> Injected:
    async with httpx.AsyncClient(timeout=5.0) as http:
        for r in p.replicas("catalog"):
            resp = await http.post(f"http://127.0.0.1:{r.port}/admin/cache/put",
                                   json={"key": "/items", "value": {"corrupt": "price=NaN"}})
            resp.raise_for_status()
    return Injected(p.clock(), "a corrupt entry for /items written into catalog's cache")


async def _cert(p: local.LocalPlatform) -> Injected:
    now = p.clock()
    # The certificate that was installed last quarter runs out 20 s from now.
    state_mod.issue_cert(p.state, "auth", now, 20.0)
    return Injected(now + 20.0, "auth's certificate expires 20 s after injection")


async def _credential(p: local.LocalPlatform) -> Injected:
    now = p.clock()
    state_mod.issue_secret(p.state, "cart-db", now, 5.0)
    await p.signal_replicas("cart", signal.SIGHUP)
    return Injected(now + 5.0, "cart's database credential expires 5 s after injection")


async def _region(p: local.LocalPlatform) -> Injected:
    state_mod.write_json(p.state.faults("inventory-east"), {"outage": "region east is down"})
    return Injected(p.clock(), "region east of inventory unreachable")


async def _hung(p: local.LocalPlatform) -> Injected:
    victim = sorted(p.replicas("cart"), key=lambda r: r.replica)[0]
    os.kill(victim.pid, signal.SIGUSR1)
    return Injected(p.clock(), f"replica {victim.replica} of cart hangs")


async def _novel(p: local.LocalPlatform) -> Injected:
    state_mod.write_json(p.state.faults("checkout"), {"novel": True})
    return Injected(p.clock(), "checkout's orders rejected by a ledger constraint (no remedy)")


async def _healthy_deploy(p: local.LocalPlatform) -> Injected:
    change = await p.deploy("catalog", "3.1.1", who="ci-bot",
                            why="release 3.1.1: warm the price cache at start")
    return Injected(change.t, "catalog 3.1.1 deployed (a short warm-up latency blip)")


async def _all_healthy(p: local.LocalPlatform, service: str) -> bool:
    async with httpx.AsyncClient(timeout=1.0) as http:
        for r in p.replicas(service):
            try:
                resp = await http.get(f"http://127.0.0.1:{r.port}/healthz")
            except httpx.HTTPError:
                return False
            if resp.status_code != 200:
                return False
    return bool(p.replicas(service))


async def _leak_gone(p: local.LocalPlatform) -> bool:
    return all(r.version != "1.2.1" for r in p.replicas("auth"))


async def _config_ok(p: local.LocalPlatform) -> bool:
    config = state_mod.read_json(p.state.config("checkout")) or {}
    return int(config.get("pool_size", 0)) >= 0 and await _all_healthy(p, "checkout")


async def _cache_clean(p: local.LocalPlatform) -> bool:
    async with httpx.AsyncClient(timeout=2.0) as http:
        for r in p.replicas("catalog"):
            try:
                entries = (await http.get(f"http://127.0.0.1:{r.port}/admin/cache")).json()
            except (httpx.HTTPError, ValueError):
                return False
            if any(isinstance(v, dict) and "corrupt" in v for v in entries.values()):
                return False
    return True


async def _cert_valid(p: local.LocalPlatform) -> bool:
    info = state_mod.cert_info(p.state.cert("auth"))
    return info is not None and info[1] > p.clock() + 3600


async def _credential_valid(p: local.LocalPlatform) -> bool:
    secret = state_mod.read_json(p.state.secret("cart-db")) or {}
    return float(secret.get("expires_at", 0)) > p.clock() + 3600


async def _off_east(p: local.LocalPlatform) -> bool:
    regions = state_mod.read_json(p.state.regions("catalog")) or {}
    return regions.get("inventory") != "east"


async def _capacity_raised(p: local.LocalPlatform) -> bool:
    # the surge is 16 orders/s on top of ~20/s that two replicas carry: it needs more of them
    return len(p.replicas("checkout")) > 2 and await _all_healthy(p, "checkout")


async def _cart_alive(p: local.LocalPlatform) -> bool:
    return await _all_healthy(p, "cart")


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("bad-deploy-memory-leak", "a bad deploy of auth leaks memory and stalls in GC",
             "resolve", frozenset({"auth"}), _bad_deploy, culprit="auth",
             healed=_leak_gone),
    Scenario("config-crash-loop", "a bad config change crashes checkout's workers; restarts "
             "die at once", "resolve", frozenset({"checkout"}), _bad_config, culprit="checkout",
             healed=_config_ok),
    Scenario("traffic-surge", "orders quadruple; checkout's connection pools queue",
             "resolve", frozenset({"checkout"}), _surge, culprit="checkout",
             healed=_capacity_raised),
    Scenario("poisoned-cache", "a corrupt cache entry makes catalog fail every /items",
             "resolve", frozenset({"catalog"}), _poisoned_cache, culprit="catalog",
             healed=_cache_clean),
    Scenario("expiring-certificate", "auth's TLS certificate expires (warnings first)",
             "resolve", frozenset({"auth"}), _cert, culprit="auth",
             healed=_cert_valid),
    Scenario("expired-credential", "cart's database credential expires",
             "resolve", frozenset({"cart"}), _credential, culprit="cart",
             healed=_credential_valid),
    Scenario("region-outage", "inventory's east region goes dark under catalog",
             "resolve", frozenset({"catalog"}), _region, culprit="inventory-east",
             healed=_off_east),
    Scenario("hung-replica", "one cart replica deadlocks", "resolve", frozenset({"cart"}),
             _hung, culprit="cart",
             healed=_cart_alive),
    Scenario("novel-failure", "checkout fails in a way no catalogue action fixes",
             "escalate", frozenset(), _novel, culprit="checkout"),
    Scenario("healthy-deploy", "a good catalog release with an expected latency blip",
             "leave", frozenset(), _healthy_deploy, culprit="catalog"),
)


def by_name(name: str) -> Scenario:
    for s in SCENARIOS:
        if s.name == name:
            return s
    raise KeyError(name)

