"""Policy files: the YAML the user keeps with their config, validated at the trust boundary.

A policy says, per service and action type, how autonomous selfheal may be (`observe`,
`suggest`, `approve`, `auto`), which actions are allowed, need a human, or are denied — by
ordered rules whose optional `condition` is a CEL expression (cel-python) over the action, the
target, the incident, the time and the trust score — and the blast-radius limits the gate
enforces. First matching rule wins; no match is a deny. Every decision records the policy's
content hash, so the ledger shows exactly which text decided. Errors name the line.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import celpy
import celpy.adapter
import celpy.celparser
import celpy.celtypes
import celpy.evaluation
import pydantic
import yaml

from selfheal import errors, model

VerdictName = Literal["allow", "require_approval", "deny"]
ModeName = Literal["observe", "suggest", "approve", "auto"]
_MODE_ORDER = ["observe", "suggest", "approve", "auto"]


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class Match(_Strict):
    actions: list[model.ActionKind] = pydantic.Field(default_factory=list)
    services: list[str] = pydantic.Field(default_factory=lambda: ["*"])
    max_risk: model.RiskClass = model.RiskClass.HIGH


class Rule(_Strict):
    name: str = pydantic.Field(min_length=1)
    description: str = ""
    when: Match = pydantic.Field(default_factory=Match)
    condition: str = ""
    """A CEL expression that must also be true (see README, "Policy")."""
    verdict: VerdictName
    approver_role: str = "sre"
    approval_timeout_s: float = pydantic.Field(default=900.0, gt=0)
    on_expiry: Literal["suggest", "deny"] = "suggest"


class Modes(_Strict):
    default: ModeName = "suggest"
    services: dict[str, ModeName] = pydantic.Field(default_factory=dict)
    actions: dict[model.ActionKind, ModeName] = pydantic.Field(default_factory=dict)


class Target(_Strict):
    tier: str = "default"
    region: str = "local"
    labels: dict[str, str] = pydantic.Field(default_factory=dict)


class Freeze(_Strict):
    start: dt.datetime
    end: dt.datetime
    services: list[str] = pydantic.Field(default_factory=lambda: ["*"])
    reason: str = "change freeze"


class Limits(_Strict):
    """Blast-radius caps, enforced by the gate over sliding windows."""

    window_s: float = pydantic.Field(default=60.0, gt=0)
    max_service_fraction: float = pydantic.Field(default=1.0, gt=0, le=1)
    """Of one service's replicas, the fraction that may be touched per window."""
    max_fleet_fraction: float = pydantic.Field(default=0.5, gt=0, le=1)
    """Of all replicas of all services, the fraction that may be touched per window."""
    max_concurrent: int = pydantic.Field(default=2, ge=1)
    max_actions_per_window: int = pydantic.Field(default=6, ge=1)
    allowed_tiers: list[str] = pydantic.Field(default_factory=lambda: ["*"])
    allowed_regions: list[str] = pydantic.Field(default_factory=lambda: ["*"])


class Trust(_Strict):
    """How autonomy is earned and lost per (agent, action type)."""

    graduate_at: float = pydantic.Field(default=0.8, gt=0, le=1)
    min_outcomes: int = pydantic.Field(default=5, ge=1)
    earn_auto: list[model.ActionKind] = pydantic.Field(default_factory=list)
    """Action types in `approve` mode that graduate to `auto` once trusted."""


class PolicyDoc(_Strict):
    version: Literal[1]
    modes: Modes = pydantic.Field(default_factory=Modes)
    rules: list[Rule] = pydantic.Field(default_factory=list)
    targets: dict[str, Target] = pydantic.Field(default_factory=dict)
    freezes: list[Freeze] = pydantic.Field(default_factory=list)
    limits: Limits = pydantic.Field(default_factory=Limits)
    roles: dict[str, list[str]] = pydantic.Field(default_factory=lambda: {"sre": ["*"]})
    """role -> the users (OS or API users) who hold it; "*" means anyone."""
    trust: Trust = pydantic.Field(default_factory=Trust)


_RISK_ORDER = [model.RiskClass.LOW, model.RiskClass.MEDIUM, model.RiskClass.HIGH]
_CEL = celpy.Environment()


class Policy:
    """A validated policy document, its compiled conditions and the hash of its text."""

    def __init__(self, doc: PolicyDoc, source: str, text: str,
                 programs: Mapping[str, Any]) -> None:
        self.doc = doc
        self.source = source
        self.hash = hashlib.sha256(text.encode()).hexdigest()
        self._programs = dict(programs)

    def mode(self, service: str, action: model.ActionKind | None = None) -> model.Mode:
        """The least autonomous of the service's and the action type's modes."""
        modes = [self.doc.modes.services.get(service, self.doc.modes.default)]
        if action is not None and action in self.doc.modes.actions:
            modes.append(self.doc.modes.actions[action])
        return model.Mode(min(modes, key=_MODE_ORDER.index))

    def target(self, service: str) -> Target:
        return self.doc.targets.get(service, Target())

    def freeze(self, service: str, now: float) -> Freeze | None:
        for f in self.doc.freezes:
            if f.start.timestamp() <= now <= f.end.timestamp() and \
                    ("*" in f.services or service in f.services):
                return f
        return None

    def holds_role(self, user: str, role: str) -> bool:
        members = self.doc.roles.get(role, [])
        return "*" in members or user in members

    def match(self, action: model.Action, risk: model.RiskClass,
              activation: Mapping[str, Any]) -> tuple[Rule | None, str]:
        """The first rule that matches, or None; the second value explains a failed condition."""
        for rule in self.doc.rules:
            w = rule.when
            if w.actions and action.kind not in w.actions:
                continue
            if "*" not in w.services and action.service not in w.services:
                continue
            if _RISK_ORDER.index(risk) > _RISK_ORDER.index(w.max_risk):
                continue
            if rule.condition:
                ok, problem = self._eval(rule, activation)
                if problem:
                    # Fail closed: a condition that cannot be evaluated decides as a deny.
                    return Rule(name=rule.name, verdict="deny",
                                description=f"condition could not be evaluated: {problem}"), \
                        problem
                if not ok:
                    continue
            return rule, ""
        return None, ""

    def _eval(self, rule: Rule, activation: Mapping[str, Any]) -> tuple[bool, str]:
        try:
            result = self._programs[rule.name].evaluate(celpy.adapter.json_to_cel(dict(activation)))
        except (celpy.evaluation.CELEvalError, KeyError, TypeError, ValueError) as exc:
            return False, f"{type(exc).__name__}: {str(exc)[:200]}"
        if isinstance(result, celpy.evaluation.CELEvalError):
            return False, str(result)[:200]
        if not isinstance(result, bool | celpy.celtypes.BoolType):
            return False, f"the condition gave {type(result).__name__}, not a boolean"
        return bool(result), ""


def _line(text: str, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the YAML node at `loc` (or of its nearest existing parent)."""
    try:
        node: Any = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None if node is None else node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == str(part)), None)
            if nxt is None:
                key = next((k for k, _ in node.value if k.value == str(part)), None)
                return key.start_mark.line + 1 if key is not None else line
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                and part < len(node.value):
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line


def parse(text: str, source: str) -> Policy:
    """Validate policy text; raise `ConfigError` naming the file, the field and the line."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "YAML"
        raise errors.ConfigError(source, where, f"not valid YAML: "
                                 f"{getattr(exc, 'problem', None) or exc}") from exc
    if not isinstance(raw, dict):
        raise errors.ConfigError(source, "", "a policy must be a YAML mapping with 'version: 1'")
    try:
        doc = PolicyDoc.model_validate(raw)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        field = ".".join(str(p) for p in loc) or "(top)"
        line = _line(text, loc)
        raise errors.ConfigError(source, field + (f" (line {line})" if line else ""),
                                 first["msg"]) from exc
    names = [r.name for r in doc.rules]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise errors.ConfigError(source, "rules", f"rule names must be unique: {dupes}")
    programs = {}
    for i, rule in enumerate(doc.rules):
        if not rule.condition:
            continue
        try:
            programs[rule.name] = _CEL.program(_CEL.compile(rule.condition))
        except celpy.celparser.CELParseError as exc:
            line = _line(text, ("rules", i, "condition"))
            raise errors.ConfigError(
                source, f"rules.{i}.condition" + (f" (line {line})" if line else ""),
                "not a valid CEL expression: " + " ".join(str(exc).split())) from exc
    return Policy(doc, source, text, programs)


def load(path: Path) -> Policy:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise errors.ConfigError(str(path), "", f"cannot read the policy file: "
                                 f"{exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise errors.ConfigError(str(path), "", "the policy file is not UTF-8 text") from exc
    return parse(text, str(path))


def default_text() -> str:
    return (Path(__file__).resolve().parent.parent / "defaults" / "policy.yaml").read_text(
        encoding="utf-8")
