"""The demo shop: which services exist, whom they call, and how each version behaves.

Read by the shop's own processes (`selfheal.shop.service`) and by the demo, which hands the
services and the call graph to the local platform. Kept free of selfheal imports so a shop
process starts fast and stays independent of the agent that watches it.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Behaviour:
    """How one version of a service behaves; all fields are realistic failure knobs."""

    work_ms: float = 2.0
    leak_bytes_per_request: int = 0
    leak_objects_per_request: int = 0
    full_gc_every: int = 0  # a "cleanup" hook that forces a full collection every N requests
    io_ms: float = 0.0
    """Time waiting on a backend (a database, a payment provider) per request, not CPU."""
    pool: int = 0
    """Backend connections per replica (0: unbounded); the `pool_size` config overrides it.
    With `io_ms` this is the replica's capacity: pool / io seconds requests per second."""
    warmup_s: float = 0.0
    warmup_extra_ms: float = 0.0
    """A fresh replica is this much slower during its first `warmup_s` (cold caches, JIT)."""


@dataclasses.dataclass(frozen=True)
class Route:
    path: str
    calls: tuple[tuple[str, str], ...]  # (service, path) called in order
    regional: tuple[tuple[str, str], ...] = ()
    """Calls to a dependency served from several regions (`REGIONS`); the replica calls the
    region its regions file names, and skips the call when the shop runs without regions."""


@dataclasses.dataclass(frozen=True)
class ServiceSpec:
    name: str
    routes: tuple[Route, ...]
    versions: dict[str, Behaviour]
    initial_version: str
    replicas: int = 2


SHOP: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        name="frontend",
        routes=(
            Route("/browse", (("auth", "/verify"), ("catalog", "/items"))),
            Route("/cart", (("auth", "/verify"), ("cart", "/cart"))),
            Route("/buy", (("auth", "/verify"), ("checkout", "/checkout"))),
        ),
        versions={"2.4.0": Behaviour(work_ms=1.0)},
        initial_version="2.4.0",
    ),
    ServiceSpec(
        name="auth",
        routes=(Route("/verify", ()),),
        versions={
            "1.2.0": Behaviour(work_ms=2.0),
            # The bad deploy: a session cache that is never evicted. Every request keeps a
            # buffer and a nest of small objects alive, so RSS climbs and the collector's
            # full passes grow longer. Its "cleanup" hook forces a full collection every 20
            # requests, which frees nothing and stalls every request in flight.
            "1.2.1": Behaviour(
                work_ms=2.0, leak_bytes_per_request=96_000, leak_objects_per_request=2_500,
                full_gc_every=20,
            ),
        },
        initial_version="1.2.0",
    ),
    ServiceSpec(
        name="catalog",
        routes=(Route("/items", (), regional=(("inventory", "/stock"),)),),
        versions={
            "3.1.0": Behaviour(work_ms=3.0),
            # A healthy release whose fresh replicas warm their caches for a few seconds:
            # an expected latency blip right after the deploy, nothing to fix.
            "3.1.1": Behaviour(work_ms=3.0, warmup_s=12.0, warmup_extra_ms=40.0),
        },
        initial_version="3.1.0",
    ),
    ServiceSpec(
        name="cart",
        routes=(Route("/cart", ()),),
        versions={"1.0.4": Behaviour(work_ms=2.0)},
        initial_version="1.0.4",
    ),
    ServiceSpec(
        name="checkout",
        routes=(Route("/checkout", (("cart", "/cart"), ("catalog", "/items"))),),
        # Every order waits on the payment provider; one connection per replica bounds what a
        # replica can take (10 orders/s), so a surge queues here.
        versions={"0.9.2": Behaviour(work_ms=4.0, io_ms=100.0, pool=1)},
        initial_version="0.9.2",
    ),
)

REGIONS: dict[str, tuple[str, ...]] = {"inventory": ("east", "west")}
"""Dependencies served from several regions: logical name -> regions. Each region runs as its
own service `<name>-<region>`; a caller's regions file says which one it uses."""

REGIONAL: tuple[ServiceSpec, ...] = tuple(
    ServiceSpec(
        name=f"inventory-{region}",
        routes=(Route("/stock", ()),),
        versions={"5.0.3": Behaviour(work_ms=1.0)},
        initial_version="5.0.3",
        replicas=1,
    )
    for region in REGIONS["inventory"]
)
"""The regional services, run only by shops that have regions (the scenario suite)."""

ENTRY_SERVICE = "frontend"
ENTRY_PATHS = ("/browse", "/browse", "/cart", "/buy")


def spec(name: str) -> ServiceSpec:
    for s in SHOP + REGIONAL:
        if s.name == name:
            return s
    raise KeyError(name)


def dependencies(regions: bool = False) -> dict[str, tuple[str, ...]]:
    """The call graph: service -> the services it calls (with `regions`, every region of a
    regional dependency counts as a callee)."""
    services = SHOP + REGIONAL if regions else SHOP
    out = {}
    for s in services:
        callees = {svc for r in s.routes for svc, _ in r.calls}
        if regions:
            callees |= {f"{svc}-{region}" for r in s.routes for svc, _ in r.regional
                        for region in REGIONS[svc]}
        out[s.name] = tuple(sorted(callees))
    return out
