"""The ports: what the runtime needs from the outside world, as `typing.Protocol`s.

Adapters (`platforms.local`, `sources.scrape`, `store.sql`, later Prometheus, Kubernetes, OTLP,
an OpenAI-compatible reasoner) implement these; the engine depends only on them. Registration is
explicit, in `selfheal.engine.wiring`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from selfheal import diagnose, model


@dataclasses.dataclass(frozen=True)
class Target:
    """A scrape target: one replica's metrics endpoint."""

    service: str
    replica: str
    version: str
    url: str


@dataclasses.dataclass(frozen=True)
class Replica:
    service: str
    replica: str
    version: str
    pid: int
    port: int


class Platform(Protocol):
    """Where services run. Only the executor may call the mutating methods."""

    name: str

    def targets(self) -> list[Target]: ...

    def replicas(self, service: str) -> list[Replica]: ...

    def version(self, service: str) -> str: ...

    def previous_version(self, service: str) -> str | None: ...

    def known_versions(self, service: str) -> list[str]: ...

    def changes(self) -> list[model.Change]: ...

    # Every mutation takes a `request_id`: a retried request with the same id is applied at
    # most once and answers with the change it made (how a resumed selfheal never acts twice).

    async def deploy(self, service: str, version: str, *, who: str, why: str,
                     kind: str = "deploy", request_id: str = "") -> model.Change: ...

    async def replace_replicas(self, service: str, version: str, count: int, *, who: str,
                               why: str, request_id: str = "") -> model.Change: ...

    async def restart_replica(self, service: str, replica: str, *, who: str,
                              why: str, request_id: str = "") -> model.Change: ...

    async def scale(self, service: str, replicas: int, *, who: str, why: str,
                    request_id: str = "") -> model.Change: ...


@runtime_checkable
class Failover(Protocol):
    """A platform whose services can route around an unreachable dependency instance."""

    def failovers(self, service: str) -> list[tuple[str, str]]:
        """(caller, region) pairs: callers that now reach `service` as one region of a
        regional dependency, each with another region it could use instead."""
        ...


@dataclasses.dataclass(frozen=True)
class Collected:
    """What a feed brought in during one tick."""

    samples: tuple[model.Sample, ...] = ()
    logs: tuple[model.LogRecord, ...] = ()
    alerts: tuple[model.Alert, ...] = ()
    limits: Mapping[str, Mapping[str, float]] = dataclasses.field(default_factory=dict)
    """Metric -> service -> the value it must not reach (a memory limit), for the metrics
    whose limits the feed read this tick (`Detector.set_limits`)."""


class Feed(Protocol):
    """A push or pull source the controller polls once a tick (scraper, log tail, receivers).

    `kinds` names the signal kinds it provides, so diagnosis can tell "no data" from "quiet".
    """

    name: str
    kinds: frozenset[model.SignalKind]

    async def collect(self, now: float) -> Collected: ...

    async def close(self) -> None: ...


class MetricSource(Protocol):
    """Samples of one service's metric over a window; raises DataUnavailable when blind."""

    def query(self, service: str, metric: str, start: float, end: float) -> list[model.Sample]: ...


@dataclasses.dataclass(frozen=True, eq=False)
class HistoryChunk:
    """A stretch of history as columns, one per (service, signal): a fleet's hours held as
    NumPy arrays (9 bytes a point) rather than a dict a tick (~134 bytes a point).

    `values[i, j]` is the value of `keys[j]` at `t[i]` (NaN when it has none); `present[i, j]`
    says whether the source gave a point there at all (a point may be NaN: a ratio of no
    requests). Columns come in the order the source met their series; `rank`, when a series
    name came from more than one of the source's series, says that order tick by tick (the
    lowest rank present comes first), else it is None and the column order is that order."""

    keys: tuple[tuple[str, str], ...]
    t: npt.NDArray[np.float64]
    values: npt.NDArray[np.float64]
    present: npt.NDArray[np.bool_]
    rank: npt.NDArray[np.int64] | None = None
    limits: Mapping[str, Sequence[tuple[float, Mapping[str, float]]]] = \
        dataclasses.field(default_factory=dict)
    """Each service's own limits as they were over the chunk, when the source reads them
    (`detect.limitsteps.Steps`)."""

    def observed(self, i: int, metric: str) -> dict[str, float]:
        """Each service's finite value of `metric` at tick `i`."""
        return {svc: float(self.values[i, j]) for j, (svc, m) in enumerate(self.keys)
                if m == metric and self.present[i, j] and np.isfinite(self.values[i, j])}

    def order(self, i: int, cols: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """`cols` (column indexes, ascending) in the order the source met them at tick `i`."""
        if self.rank is None or cols.size < 2:
            return cols
        return cols[np.argsort(self.rank[i, cols], kind="stable")]

    def ticks(self) -> Iterator[tuple[float, dict[tuple[str, str], float]]]:
        """The chunk tick by tick, as `History.history` yields it."""
        for i, t in enumerate(self.t.tolist()):
            cols = self.order(i, np.flatnonzero(self.present[i]))
            row = self.values[i]
            yield t, {self.keys[j]: float(row[j]) for j in cols.tolist()}


class History(Protocol):
    """Days of every service's derived signals (Prometheus keeps them; selfheal's own store
    keeps minutes): what the detectors learn each series' rhythm from at a first start."""

    def chunks(self, start: float, end: float, step_s: float, skip: Collection[str] = (),
               on_skip: Callable[[str, str], None] | None = None) -> Iterator[HistoryChunk]:
        """Ticks `step_s` apart from `start` to before `end`, in time order, a chunk at a
        time: every signal but those in `skip`; a signal the source cannot answer is left out
        from then on, told to `on_skip(signal, why)`; raises DataUnavailable when it can
        answer none (the chunks already yielded stand)."""
        ...

    def history(self, start: float, end: float, step_s: float, skip: Collection[str] = (),
                on_skip: Callable[[str, str], None] | None = None
                ) -> Iterator[tuple[float, dict[tuple[str, str], float]]]:
        """The same ticks one at a time: (t, {(service, signal): value}) with the points the
        source gave (`HistoryChunk.ticks`)."""
        ...


class LogSource(Protocol):
    def logs(self, service: str | None, start: float, end: float) -> list[model.LogRecord]: ...


class ChangeSource(Protocol):
    def changes_between(self, start: float, end: float) -> list[model.Change]: ...


@runtime_checkable
class TraceSource(Protocol):
    def spans(self, start: float, end: float) -> list[model.Span]: ...


class Store(MetricSource, LogSource, ChangeSource, Protocol):
    """Durable state: telemetry, incidents and the ledger."""

    def add_samples(self, samples: Sequence[model.Sample]) -> None: ...

    def add_logs(self, records: Sequence[model.LogRecord]) -> None: ...

    def add_change(self, change: model.Change) -> None: ...

    def save_incident(self, incident: model.Incident, detail: dict[str, object]) -> None: ...

    def append_ledger(self, ts: float, incident_id: str, kind: str,
                      payload: dict[str, object]) -> model.LedgerEntry: ...

    def ledger(self) -> list[model.LedgerEntry]: ...


class Notifier(Protocol):
    """Where escalations go: a human must look."""

    def escalate(self, incident: model.Incident, reason: str,
                 context: dict[str, object]) -> None: ...


@dataclasses.dataclass(frozen=True)
class ModelPlan:
    """A catalogue action a model suggested for a service: a proposal, never executed as is.

    Only the action type and the target are taken from the model; the planner rebuilds the
    parameters from the platform's facts and the policy gate rules on the result.
    """

    service: str
    action: model.ActionKind
    rationale: str


@dataclasses.dataclass(frozen=True)
class Exchange:
    """One round trip to a reasoner, kept whole for the ledger (trace-back of every proposal).

    `prompt` is the exact request (model, messages, response format) as JSON and `response`
    the exact text the model returned; their SHA-256 digests identify them in every proposal
    derived from this exchange. `hypotheses` are evidence of kind MODEL that the reconciler
    weighs like an investigator's and that real evidence must confirm; `rejected` says why each
    part of the answer outside the schema or the catalogue was thrown away. `error` is set when
    no answer could be used at all (transport, timeout, budget, unparseable output).
    """

    reasoner: str
    model_name: str
    model_version: str
    prompt: str
    response: str
    prompt_sha256: str
    response_sha256: str
    tokens: int
    hypotheses: tuple[model.Evidence, ...] = ()
    plans: tuple[ModelPlan, ...] = ()
    narrative: str = ""
    rejected: tuple[str, ...] = ()
    error: str = ""
    response_format: str = ""


class Reasoner(Protocol):
    """A model that proposes hypotheses and plans; it never decides (design invariant 1).

    `propose` sees a compact evidence pack built from the window and the deterministic
    diagnosis (never raw telemetry), spends at most `budget_tokens` (prompt and answer), and
    returns the whole exchange. It raises nothing for a bad answer: what cannot be used is in
    `Exchange.rejected` / `Exchange.error`.
    """

    name: str

    def propose(self, window: diagnose.Window, diagnosis: model.Diagnosis,
                budget_tokens: int) -> Exchange: ...
