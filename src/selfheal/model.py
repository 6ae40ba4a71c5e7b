"""The values that flow through the loop: frozen dataclasses, enums and id types, no I/O.

Every stage takes and returns these values; the runtime persists them and the ledger records
them. `to_jsonable` turns any of them into plain JSON data for the ledger, the API and `--json`.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from typing import Any, NewType

IncidentId = NewType("IncidentId", str)
AnomalyId = NewType("AnomalyId", str)
PlanId = NewType("PlanId", str)
PermitId = NewType("PermitId", str)
ExecutionId = NewType("ExecutionId", str)
ChangeId = NewType("ChangeId", str)

Params = tuple[tuple[str, str], ...]
"""Action parameters as sorted (name, value) pairs: hashable, ordered, immutable."""


def params(**kwargs: object) -> Params:
    """Build `Params` from keyword arguments, values as strings, sorted by name."""
    return tuple(sorted((k, str(v)) for k, v in kwargs.items()))


class SignalKind(enum.StrEnum):
    """The independent kinds of signal an investigator can read."""

    METRICS = "metrics"
    LOGS = "logs"
    TRACES = "traces"
    CHANGES = "changes"
    TOPOLOGY = "topology"
    ALERTS = "alerts"
    HUMAN = "human"
    MODEL = "model"


class EvidenceStatus(enum.StrEnum):
    OK = "ok"
    NO_DATA = "no_data"
    ERROR = "error"


class FaultKind(enum.StrEnum):
    """What is wrong with a service, as far as diagnosis can tell."""

    BAD_DEPLOY = "bad_deploy"
    MEMORY_LEAK = "memory_leak"
    LATENCY = "latency"
    ERRORS = "errors"
    CRASH = "crash"
    CONFIG = "config"
    OVERLOAD = "overload"
    DEPENDENCY = "dependency"
    CERTIFICATE = "certificate"
    CREDENTIAL = "credential"
    CACHE = "cache"
    HUNG = "hung"
    UNKNOWN = "unknown"
    UNREACHABLE = "unreachable"
    """Every replica went silent at once: down, or cut off (a region outage)."""


class ActionKind(enum.StrEnum):
    """The typed action catalogue (see `selfheal.catalogue` for inverses and risk)."""

    ROLLBACK = "rollback"
    DEPLOY = "deploy"
    RESTART = "restart"
    SCALE = "scale"
    CONFIG_REVERT = "config_revert"
    CACHE_FLUSH = "cache_flush"
    CERT_RENEW = "cert_renew"
    CREDENTIAL_ROTATE = "credential_rotate"
    TRAFFIC_SHIFT = "traffic_shift"
    CODE_REVERT = "code_revert"


class RiskClass(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Mode(enum.StrEnum):
    """Autonomy modes, from least to most autonomous."""

    OBSERVE = "observe"
    SUGGEST = "suggest"
    APPROVE = "approve"
    AUTO = "auto"


class Verdict(enum.StrEnum):
    ALLOW = "allow"
    REQUIRE_APPROVAL = "require_approval"
    DENY = "deny"


class IncidentState(enum.StrEnum):
    """The incident state machine, persisted write-ahead by the engine."""

    OPEN = "open"
    DIAGNOSED = "diagnosed"
    AWAITING_APPROVAL = "awaiting_approval"
    ACTING = "acting"
    VERIFYING = "verifying"
    RESOLVED = "resolved"
    ESCALATED = "escalated"
    MERGED = "merged"  # the same root cause as another incident, which carries on


class ExecutionStatus(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNDONE = "undone"


@dataclasses.dataclass(frozen=True)
class Sample:
    """One point of one series: a metric of one replica (or of the whole service)."""

    t: float
    service: str
    metric: str
    value: float
    replica: str = ""
    version: str = ""


@dataclasses.dataclass(frozen=True)
class LogRecord:
    t: float
    service: str
    level: str
    message: str
    replica: str = ""


@dataclasses.dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str
    service: str
    name: str
    start: float
    end: float
    error: bool = False


@dataclasses.dataclass(frozen=True)
class Change:
    """A deploy, rollback, scaling or config change: who did what, when."""

    id: ChangeId
    t: float
    service: str
    kind: str
    who: str
    what: str
    from_version: str = ""
    to_version: str = ""


@dataclasses.dataclass(frozen=True)
class Alert:
    fingerprint: str
    name: str
    status: str
    service: str
    starts_at: float
    labels: Params = ()
    annotations: Params = ()


@dataclasses.dataclass(frozen=True)
class Anomaly:
    """A detector's finding on one series, with the explanation a human reads."""

    id: AnomalyId
    service: str
    metric: str
    detector: str
    started_at: float
    detected_at: float
    score: float
    baseline: float
    observed: float
    explanation: str
    expected: bool = False
    expected_reason: str = ""


@dataclasses.dataclass(frozen=True)
class Incident:
    id: IncidentId
    service: str
    opened_at: float
    title: str
    anomalies: tuple[Anomaly, ...]
    state: IncidentState = IncidentState.OPEN
    alerts: tuple[Alert, ...] = ()


REQUEST_RATE_BASELINE = "request_rate_baseline"
"""`Evidence.measures` name: the service's usual request rate before the incident (per s)."""
REQUEST_RATE_NOW = "request_rate_now"
"""`Evidence.measures` name: the request rate the service serves in the incident (per s)."""


@dataclasses.dataclass(frozen=True)
class Evidence:
    """What one investigator saw: the exact query, the observation, where it points.

    `strength` in [0, 1] says how strongly it points at `service` / `fault`; evidence with
    status NO_DATA or ERROR points nowhere and says why in `observation`. The observation is
    for people; what a later stage acts on is typed: `kind`, `fault`, `strength` and
    `measures`, named numbers the investigator measured (the names are the constants above,
    e.g. `REQUEST_RATE_BASELINE`), finite, in the order it gives them.
    """

    investigator: str
    kind: SignalKind
    status: EvidenceStatus
    query: str
    observation: str
    service: str = ""
    fault: FaultKind = FaultKind.UNKNOWN
    strength: float = 0.0
    measures: tuple[tuple[str, float], ...] = ()

    def measure(self, name: str) -> float | None:
        """The value of measure `name`, or None when the investigator did not give it."""
        return next((value for key, value in self.measures if key == name), None)


@dataclasses.dataclass(frozen=True)
class Hypothesis:
    service: str
    fault: FaultKind
    action_family: ActionKind | None
    probability: float
    evidence_for: tuple[Evidence, ...]
    evidence_against: tuple[Evidence, ...] = ()
    summary: str = ""


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    """Ranked hypotheses; `sufficient` is False when evidence is too thin to act on."""

    incident_id: IncidentId
    at: float
    hypotheses: tuple[Hypothesis, ...]
    sufficient: bool
    missing: tuple[str, ...] = ()
    evidence: tuple[Evidence, ...] = ()

    @property
    def top(self) -> Hypothesis | None:
        return self.hypotheses[0] if self.hypotheses else None


@dataclasses.dataclass(frozen=True)
class Action:
    """One typed step against one service; `params` are the catalogue's parameters."""

    kind: ActionKind
    service: str
    params: Params = ()

    def param(self, name: str, default: str = "") -> str:
        return dict(self.params).get(name, default)

    def describe(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params)
        return f"{self.kind.value} {self.service}" + (f" ({args})" if args else "")


@dataclasses.dataclass(frozen=True)
class Plan:
    """A proposal: steps to run in order, with what would undo them. Not yet permitted."""

    id: PlanId
    incident_id: IncidentId
    steps: tuple[Action, ...]
    inverse: tuple[Action, ...]
    rationale: str
    risk: RiskClass
    canary: bool = True
    proposed_by: str = "selfheal"


@dataclasses.dataclass(frozen=True)
class Decision:
    """The policy gate's verdict on a plan, with the rule that decided and the policy hash."""

    plan_id: PlanId
    verdict: Verdict
    rule: str
    reason: str
    policy_hash: str
    at: float
    approver_role: str = ""


@dataclasses.dataclass(frozen=True)
class Permit:
    """The only thing the executor accepts; minted and signed by the policy gate alone."""

    id: PermitId
    plan_id: PlanId
    action: Action
    issued_at: float
    expires_at: float
    policy_hash: str
    signature: str


@dataclasses.dataclass(frozen=True)
class Execution:
    id: ExecutionId
    permit_id: PermitId
    action: Action
    started_at: float
    finished_at: float
    status: ExecutionStatus
    detail: str = ""
    phase: str = ""  # canary | full | undo


@dataclasses.dataclass(frozen=True)
class Check:
    """One verification check: a signal compared with its baseline and bound."""

    name: str
    passed: bool
    observed: float
    baseline: float
    bound: float
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class Verification:
    at: float
    passed: bool
    checks: tuple[Check, ...]
    scope: str = "service"


@dataclasses.dataclass(frozen=True)
class LedgerEntry:
    """One hash-chained, append-only record of a transition."""

    seq: int
    ts: float
    incident_id: str
    kind: str
    payload: Mapping[str, Any]
    prev_hash: str
    hash: str


def to_jsonable(value: Any) -> Any:
    """Plain JSON data (dicts, lists, str, numbers) for any model value."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float) and math.isnan(value):  # NaN is not JSON
        return None
    return value
