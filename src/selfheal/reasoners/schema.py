"""The shape of a reasoner's answer: pydantic models at the trust boundary, and their JSON schema.

A model's output is untrusted input. `answer_schema` is sent as the request's `response_format`
(json_schema), narrowed to the services of the incident, so a server that honours it can only
produce a well-formed answer; `parse` validates whatever came back anyway (servers that ignore
the schema, the `json_object` fallback), keeps each hypothesis and plan that is valid and says
why every other part was rejected. Action types are the catalogue's enum: a plan naming
anything else is rejected, never executed. Called by `selfheal.reasoners.openai`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import pydantic

from selfheal import model

MAX_HYPOTHESES = 5
MAX_PLANS = 3
MAX_TEXT = 400
MAX_NARRATIVE = 1200


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class HypothesisOut(_Strict):
    service: str = pydantic.Field(min_length=1, max_length=64)
    fault: model.FaultKind
    confidence: float = pydantic.Field(ge=0.0, le=1.0)
    reason: str = pydantic.Field(max_length=MAX_TEXT)


class PlanOut(_Strict):
    service: str = pydantic.Field(min_length=1, max_length=64)
    action: model.ActionKind
    rationale: str = pydantic.Field(max_length=MAX_TEXT)


class Answer(_Strict):
    hypotheses: list[HypothesisOut] = pydantic.Field(max_length=MAX_HYPOTHESES)
    plans: list[PlanOut] = pydantic.Field(max_length=MAX_PLANS)
    narrative: str = pydantic.Field(max_length=MAX_NARRATIVE)


def answer_schema(services: Sequence[str]) -> dict[str, Any]:
    """The JSON schema of `Answer`, with `service` narrowed to the incident's services."""
    schema = copy.deepcopy(Answer.model_json_schema())
    if services:
        for name in ("HypothesisOut", "PlanOut"):
            props = schema["$defs"][name]["properties"]
            props["service"] = {"type": "string", "enum": sorted(services)}
    return schema


@dataclasses.dataclass(frozen=True)
class Parsed:
    """What survived validation, and why everything else did not."""

    hypotheses: tuple[HypothesisOut, ...] = ()
    plans: tuple[PlanOut, ...] = ()
    narrative: str = ""
    rejected: tuple[str, ...] = ()
    error: str = ""


def _why(exc: pydantic.ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top)"
    return f"{where}: {first['msg']}"[:300]


def _clip(value: object) -> str:
    return json.dumps(value, ensure_ascii=True, default=str)[:200]


def parse(text: str, services: Sequence[str]) -> Parsed:
    """Validate a model's answer part by part against `Answer` and the incident's services."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        return Parsed(error=f"the answer is not JSON: {exc}"[:300])
    if not isinstance(raw, dict):
        return Parsed(error=f"the answer is not a JSON object: {_clip(raw)}")
    known = set(services)
    rejected: list[str] = []
    extra = sorted(set(raw) - set(Answer.model_fields))
    if extra:
        rejected.append(f"fields outside the schema ignored: {', '.join(extra)[:200]}")
    hypotheses: list[HypothesisOut] = []
    plans: list[PlanOut] = []
    raw_h = raw.get("hypotheses", [])
    raw_p = raw.get("plans", [])
    for label, items in (("hypotheses", raw_h), ("plans", raw_p)):
        if not isinstance(items, list):
            rejected.append(f"{label} is not a list: {_clip(items)}")
    for i, item in enumerate(raw_h if isinstance(raw_h, list) else []):
        try:
            h = HypothesisOut.model_validate(item)
        except pydantic.ValidationError as exc:
            rejected.append(f"hypothesis {i} outside the schema ({_why(exc)}): {_clip(item)}")
            continue
        if known and h.service not in known:
            rejected.append(f"hypothesis {i} names {h.service!r}, not a service of this "
                            "incident")
        elif len(hypotheses) >= MAX_HYPOTHESES:
            rejected.append(f"hypothesis {i} beyond the first {MAX_HYPOTHESES}")
        else:
            hypotheses.append(h)
    for i, item in enumerate(raw_p if isinstance(raw_p, list) else []):
        try:
            p = PlanOut.model_validate(item)
        except pydantic.ValidationError as exc:
            rejected.append(f"plan {i} outside the schema or the catalogue ({_why(exc)}): "
                            f"{_clip(item)}")
            continue
        if known and p.service not in known:
            rejected.append(f"plan {i} targets {p.service!r}, not a service of this incident")
        elif len(plans) >= MAX_PLANS:
            rejected.append(f"plan {i} beyond the first {MAX_PLANS}")
        else:
            plans.append(p)
    narrative = raw.get("narrative", "")
    if not isinstance(narrative, str):
        rejected.append(f"narrative is not a string: {_clip(narrative)}")
        narrative = ""
    elif len(narrative) > MAX_NARRATIVE:
        rejected.append(f"narrative cut to {MAX_NARRATIVE} characters")
        narrative = narrative[:MAX_NARRATIVE]
    return Parsed(tuple(hypotheses), tuple(plans), narrative, tuple(rejected))
