"""Policy files: the YAML the user keeps with their config, validated at the trust boundary.

A policy says, per service, how autonomous selfheal may be (`observe`, `suggest`, `approve`,
`auto`) and which actions are allowed, need a human, or are denied, by ordered rules (first
match wins; no match is a deny). Every decision records the policy's content hash, so the
ledger shows exactly which text decided.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import pydantic
import yaml

from selfheal import errors, model

VerdictName = Literal["allow", "require_approval", "deny"]
ModeName = Literal["observe", "suggest", "approve", "auto"]


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
    verdict: VerdictName
    approver_role: str = "sre"
    approval_timeout_s: float = pydantic.Field(default=900.0, gt=0)


class Modes(_Strict):
    default: ModeName = "suggest"
    services: dict[str, ModeName] = pydantic.Field(default_factory=dict)


class PolicyDoc(_Strict):
    version: Literal[1]
    modes: Modes = pydantic.Field(default_factory=Modes)
    rules: list[Rule] = pydantic.Field(default_factory=list)


_RISK_ORDER = [model.RiskClass.LOW, model.RiskClass.MEDIUM, model.RiskClass.HIGH]


class Policy:
    """A validated policy document and the hash of the text it came from."""

    def __init__(self, doc: PolicyDoc, source: str, text: str) -> None:
        self.doc = doc
        self.source = source
        self.hash = hashlib.sha256(text.encode()).hexdigest()

    def mode(self, service: str) -> model.Mode:
        return model.Mode(self.doc.modes.services.get(service, self.doc.modes.default))

    def match(self, action: model.Action, risk: model.RiskClass) -> Rule | None:
        for rule in self.doc.rules:
            w = rule.when
            if w.actions and action.kind not in w.actions:
                continue
            if "*" not in w.services and action.service not in w.services:
                continue
            if _RISK_ORDER.index(risk) > _RISK_ORDER.index(w.max_risk):
                continue
            return rule
        return None


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
        field = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise errors.ConfigError(source, field, first["msg"]) from exc
    names = [r.name for r in doc.rules]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise errors.ConfigError(source, "rules", f"rule names must be unique: {dupes}")
    return Policy(doc, source, text)


def load(path: Path) -> Policy:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise errors.ConfigError(str(path), "", f"cannot read the policy file: "
                                 f"{exc.strerror or exc}") from exc
    return parse(text, str(path))


def default_text() -> str:
    return (Path(__file__).resolve().parent.parent / "defaults" / "policy.yaml").read_text(
        encoding="utf-8")
