"""Reasoners: models that propose hypotheses and plans on a leash (they never decide).

The one place reasoners are registered and built from the settings (`from_settings`, called
once at start-up by the engine's workflow and by `selfheal bench rca --reasoner`), plus the pure
helpers both use: what goes into the ledger for an exchange (`ledger_payload`), how the
exchange's hypotheses re-enter diagnosis (`with_hypotheses`) and how a model's plan may only
choose the action family of the top hypothesis, for the planner to rebuild (`adopt_plan`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from selfheal import catalogue, config, diagnose, errors, model, plan, ports


def read_api_key(settings: config.Reasoner, environ: Mapping[str, str]) -> str:
    """The API key from the file or the environment variable the settings name ("" if none)."""
    if settings.api_key_file is not None:
        path = Path(settings.api_key_file).expanduser()
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise errors.ConfigError(str(path), "reasoner.api_key_file",
                                     f"cannot read the API key: {exc.strerror or exc}") from exc
    if settings.api_key_env:
        key = environ.get(settings.api_key_env, "")
        if not key:
            raise errors.ConfigError("environment", "reasoner.api_key_env",
                                     f"{settings.api_key_env} is not set")
        return key
    return ""


def from_settings(settings: config.Reasoner,
                  environ: Mapping[str, str] | None = None) -> ports.Reasoner | None:
    """The configured reasoner, or None when it is switched off (everything deterministic)."""
    if not settings.enabled:
        return None
    key = read_api_key(settings, os.environ if environ is None else environ)
    # Imported here: the `openai` client is needed only when a reasoner is switched on.
    from selfheal.reasoners import openai as openai_mod

    return openai_mod.OpenAIReasoner(openai_mod.Settings(
        base_url=settings.base_url, model=settings.model, api_key=key,
        timeout_s=settings.timeout_s, max_answer_tokens=settings.max_answer_tokens,
        temperature=settings.temperature))


def ledger_payload(ex: ports.Exchange) -> dict[str, object]:
    """The `reasoner.exchange` ledger entry: the whole prompt and response with their digests."""
    return {
        "reasoner": ex.reasoner, "model": ex.model_name, "model_version": ex.model_version,
        "prompt_sha256": ex.prompt_sha256, "response_sha256": ex.response_sha256,
        "prompt": ex.prompt, "response": ex.response, "tokens": ex.tokens,
        "response_format": ex.response_format, "error": ex.error,
        "hypotheses": [{"service": e.service, "fault": e.fault.value,
                        "confidence": e.strength, "observation": e.observation}
                       for e in ex.hypotheses],
        "plans": [{"service": p.service, "action": p.action.value, "rationale": p.rationale}
                  for p in ex.plans],
        "narrative": ex.narrative,
        "narrative_by": f"drafted by model {ex.model_name} (not verified by selfheal)"
        if ex.narrative else "",
        "rejected": list(ex.rejected),
    }


def with_hypotheses(window: diagnose.Window, ex: ports.Exchange) -> diagnose.Window:
    """The window with the exchange's hypotheses, for the reconciler to weigh as MODEL evidence."""
    return dataclasses.replace(window, model_hypotheses=ex.hypotheses)


def adopt_plan(diag: model.Diagnosis,
               ex: ports.Exchange) -> tuple[model.Diagnosis, ports.ModelPlan | None]:
    """Let a model choose the action family of the top hypothesis when the rules found none.

    Only a catalogue action for the top hypothesis' own service is taken, only its type: the
    planner rebuilds the parameters from the platform's facts and the gate rules as always
    (on evidence the model cannot add to). Returns the diagnosis unchanged otherwise.
    """
    top = diag.top
    if top is None or plan.family(top, diag.evidence) is not None:
        return diag, None
    for p in ex.plans:
        if p.service == top.service and catalogue.lookup(p.action) is not None:
            hyps = (dataclasses.replace(top, action_family=p.action), *diag.hypotheses[1:])
            return dataclasses.replace(diag, hypotheses=hyps), p
    return diag, None


__all__ = ["adopt_plan", "from_settings", "ledger_payload", "read_api_key", "with_hypotheses"]
