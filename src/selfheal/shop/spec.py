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


@dataclasses.dataclass(frozen=True)
class Route:
    path: str
    calls: tuple[tuple[str, str], ...]  # (service, path) called in order


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
        routes=(Route("/items", ()),),
        versions={"3.1.0": Behaviour(work_ms=3.0)},
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
        versions={"0.9.2": Behaviour(work_ms=4.0)},
        initial_version="0.9.2",
    ),
)

ENTRY_SERVICE = "frontend"
ENTRY_PATHS = ("/browse", "/browse", "/cart", "/buy")


def spec(name: str) -> ServiceSpec:
    for s in SHOP:
        if s.name == name:
            return s
    raise KeyError(name)


def dependencies() -> dict[str, tuple[str, ...]]:
    """The call graph: service -> the services it calls."""
    return {
        s.name: tuple(sorted({svc for r in s.routes for svc, _ in r.calls})) for s in SHOP
    }
