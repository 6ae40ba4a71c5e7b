"""What every investigator is: the `Investigator` protocol and small shared helpers.

Investigators are registered explicitly in `selfheal.diagnose.registry.INVESTIGATORS`; each one
reads one kind of signal from a `Window` and returns `model.Evidence` values that carry the exact
query or analysis it ran. They run in the registry's order and each sees the evidence of the
ones before it (`prior`), which is how topology and human theories reason over the rest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from selfheal import model
from selfheal.diagnose import window as window_mod


class Investigator(Protocol):
    """A plugin that reads one kind of signal and says what it saw, or that it could not."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> model.SignalKind: ...

    def investigate(
        self,
        window: window_mod.Window,
        prior: Sequence[model.Evidence],
        settings: window_mod.Settings,
    ) -> tuple[model.Evidence, ...]: ...


@dataclasses.dataclass(frozen=True)
class Against(model.Evidence):
    """Evidence *against* `service` being the root cause: its symptoms are explained elsewhere.

    The direction is this type (and its `against` field, which `model.to_jsonable` keeps), not a
    fault kind: `fault` says what the service suffers from (`DEPENDENCY`: a fault elsewhere
    reaches it) and `explained_by` names the service whose anomaly explains it. The reconciler
    subtracts it from the service's score and lists it in the hypothesis' `evidence_against`.
    """

    explained_by: str = ""
    against: bool = True


@dataclasses.dataclass(frozen=True)
class Names(model.Evidence):
    """Evidence about `service` that names other services as where its failure was seen.

    An error line such as "No instances available for ts-food-service" is the logging
    service's view of a failure to reach the named one: if the named service is anomalous by
    its own signals, it explains the line (the topology investigator says so with `Against`);
    if not, the failure is the logger's own.
    """

    named: tuple[str, ...] = ()


def is_against(item: model.Evidence) -> bool:
    """Does this item argue against its service being the cause?

    A payload read back from the ledger or the API as a plain `model.Evidence` carries no type;
    use `evidence_from_jsonable` to rebuild it. Until every reader does, a topology item whose
    fault is DEPENDENCY (the only thing the topology investigator says with it) reads as one.
    """
    if isinstance(item, Against):
        return item.against
    return item.kind is model.SignalKind.TOPOLOGY and item.fault is model.FaultKind.DEPENDENCY


def evidence_from_jsonable(raw: Mapping[str, Any]) -> model.Evidence:
    """Evidence from its `model.to_jsonable` form, `Against` and `Names` kept as such, its
    `measures` too (absent from evidence stored before they existed: none)."""
    fields: dict[str, Any] = {
        "investigator": str(raw["investigator"]),
        "kind": model.SignalKind(raw["kind"]),
        "status": model.EvidenceStatus(raw["status"]),
        "query": str(raw["query"]),
        "observation": str(raw["observation"]),
        "service": str(raw.get("service") or ""),
        "fault": model.FaultKind(raw.get("fault") or "unknown"),
        "strength": float(raw.get("strength") or 0.0),
        # evidence stored before measures existed has none; a non-finite one was stored
        # as null (JSON has no NaN) and measured nothing
        "measures": tuple((str(name), float(value)) for name, value
                          in raw.get("measures") or () if value is not None),
    }
    if raw.get("against"):
        return Against(**fields, explained_by=str(raw.get("explained_by") or ""))
    if raw.get("named"):
        return Names(**fields, named=tuple(str(n) for n in raw["named"]))
    return model.Evidence(**fields)


def no_data(name: str, kind: model.SignalKind, query: str, why: str) -> model.Evidence:
    """Evidence that points nowhere because the investigator could not see (design rule 6)."""
    return model.Evidence(
        investigator=name,
        kind=kind,
        status=model.EvidenceStatus.NO_DATA,
        query=query,
        observation=why,
    )


def saturate(excess: float, half: float) -> float:
    """Map a non-negative excess over a threshold to a strength in [0, 1): half at `half`."""
    if excess <= 0.0:
        return 0.0
    return excess / (excess + half)


def anomaly_by_service(
    evidence: Sequence[model.Evidence], kinds: frozenset[model.SignalKind]
) -> dict[str, float]:
    """The strongest OK evidence per service among `kinds` (victims of dependencies excluded)."""
    best: dict[str, float] = {}
    for item in evidence:
        if item.status is not model.EvidenceStatus.OK or not item.service:
            continue
        if item.kind not in kinds or is_against(item):
            continue
        best[item.service] = max(best.get(item.service, 0.0), item.strength)
    return best
