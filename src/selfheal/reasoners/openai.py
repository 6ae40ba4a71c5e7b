"""A reasoner over any OpenAI-compatible chat endpoint (OpenAI, vLLM, llama.cpp's llama-server…).

It sends the compact evidence pack (`reasoners.pack`), asks for an answer constrained by the
JSON schema of `reasoners.schema` (`response_format` json_schema; when the server refuses that,
`json_object` once and for all, and validation does the rest) and returns the whole exchange —
prompt, response, their digests, the model's name and version, the tokens spent — with the
parts of the answer that passed the schema and the catalogue, and why the others did not. It
never raises for a bad or missing answer: the engine records it and carries on
deterministically. Built by `selfheal.reasoners.from_settings` at start-up.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, cast

import openai

from selfheal import diagnose, model, ports
from selfheal.reasoners import pack as pack_mod
from selfheal.reasoners import schema as schema_mod

CHARS_PER_TOKEN = 3.0
"""A conservative guess (JSON is dense) to size the prompt before the server counts it."""
MIN_ANSWER_TOKENS = 64


@dataclasses.dataclass(frozen=True)
class Settings:
    base_url: str
    model: str
    api_key: str = dataclasses.field(default="", repr=False)
    timeout_s: float = 30.0
    max_answer_tokens: int = 768
    temperature: float = 0.0


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _schema_format(services: tuple[str, ...]) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "selfheal_answer",
            "strict": True,
            "schema": schema_mod.answer_schema(services),
        },
    }


class OpenAIReasoner:
    """`ports.Reasoner` over the `openai` client; synchronous (the engine runs it in a thread)."""

    name = "openai"

    def __init__(self, settings: Settings, client: openai.OpenAI | None = None) -> None:
        self.settings = settings
        self.client = client or openai.OpenAI(
            base_url=settings.base_url,
            # Local servers need no key, but the client insists on one.
            api_key=settings.api_key or "no-key",
            timeout=settings.timeout_s,
            max_retries=0,
        )
        self.schema_supported = True
        """Set to False the first time the server refuses a json_schema response format."""

    def propose(self, window: diagnose.Window, diagnosis: model.Diagnosis,
                budget_tokens: int) -> ports.Exchange:
        s = self.settings
        answer_tokens = min(s.max_answer_tokens, budget_tokens // 2)
        prompt_chars = int((budget_tokens - answer_tokens) * CHARS_PER_TOKEN) \
            - len(pack_mod.SYSTEM)
        if answer_tokens < MIN_ANSWER_TOKENS or prompt_chars < 1000:
            return self._failed("", "", 0, f"token budget {budget_tokens} too small for a "
                                "useful exchange; the reasoner was not called", "")
        pk = pack_mod.build(window, diagnosis, prompt_chars - pack_mod.WRAPPER_CHARS)
        # The pack cannot shrink below its frame (catalogue, fault kinds): the answer gives way.
        used = int((len(pk.system) + len(pk.user)) / CHARS_PER_TOKEN) + 1
        answer_tokens = min(answer_tokens, budget_tokens - used)
        if answer_tokens < MIN_ANSWER_TOKENS:
            return self._failed("", "", 0, f"token budget {budget_tokens} too small: the "
                                f"evidence pack alone needs about {used} tokens; the reasoner "
                                "was not called", "")
        messages = [{"role": "system", "content": pk.system},
                    {"role": "user", "content": pk.user}]
        fmt = _schema_format(pk.services) if self.schema_supported \
            else {"type": "json_object"}
        notes: list[str] = []
        try:
            response = self._call(messages, fmt, answer_tokens)
        except openai.BadRequestError as exc:
            if fmt["type"] != "json_schema":
                return self._failed(self._prompt(messages, fmt, answer_tokens), "", 0,
                                    f"the server refused the request: {exc}"[:400], "")
            self.schema_supported = False
            notes.append(f"the server refused a json_schema response format ({exc}"[:300]
                         + "); fell back to json_object and validation")
            fmt = {"type": "json_object"}
            try:
                response = self._call(messages, fmt, answer_tokens)
            except openai.OpenAIError as exc2:
                return self._failed(self._prompt(messages, fmt, answer_tokens), "", 0,
                                    f"{type(exc2).__name__}: {exc2}"[:400], fmt["type"])
        except openai.OpenAIError as exc:
            return self._failed(self._prompt(messages, fmt, answer_tokens), "", 0,
                                f"{type(exc).__name__}: {exc}"[:400], str(fmt["type"]))
        prompt = self._prompt(messages, fmt, answer_tokens)
        choice = response.choices[0] if response.choices else None
        text = (choice.message.content or "") if choice is not None else ""
        usage = response.usage
        tokens = usage.total_tokens if usage is not None else \
            int((len(prompt) + len(text)) / CHARS_PER_TOKEN)
        version = " ".join(v for v in (response.model, response.system_fingerprint or "") if v)
        parsed = schema_mod.parse(text, pk.services)
        error = parsed.error
        if error and choice is not None and choice.finish_reason == "length":
            error += f" (the answer hit the limit of {answer_tokens} tokens)"
        prompt_sha = sha256(prompt)
        tag = f"model:{s.model}"
        hypotheses = tuple(
            model.Evidence(
                investigator=tag,
                kind=model.SignalKind.MODEL,
                status=model.EvidenceStatus.OK,
                query=f"reasoner {self.name} {s.model}, prompt sha256 {prompt_sha[:16]}",
                observation=f"proposed by {tag}: {h.fault.value}: {pack_mod.quote(h.reason)}",
                service=h.service,
                fault=h.fault,
                strength=h.confidence,
            )
            for h in parsed.hypotheses
        )
        plans = tuple(ports.ModelPlan(p.service, p.action, pack_mod.quote(p.rationale))
                      for p in parsed.plans)
        return ports.Exchange(
            reasoner=self.name, model_name=s.model, model_version=version, prompt=prompt,
            response=text, prompt_sha256=prompt_sha, response_sha256=sha256(text),
            tokens=tokens, hypotheses=hypotheses, plans=plans, narrative=parsed.narrative,
            rejected=tuple(notes) + parsed.rejected, error=error,
            response_format=str(fmt["type"]))

    def _call(self, messages: list[dict[str, str]], fmt: dict[str, Any],
              answer_tokens: int) -> Any:
        return self.client.chat.completions.create(
            model=self.settings.model,
            messages=cast(Any, messages),
            max_tokens=answer_tokens,
            temperature=self.settings.temperature,
            response_format=cast(Any, fmt),
        )

    def _prompt(self, messages: list[dict[str, str]], fmt: dict[str, Any],
                answer_tokens: int) -> str:
        """The exact request, as canonical JSON (what the digest identifies)."""
        return json.dumps({"model": self.settings.model, "messages": messages,
                           "max_tokens": answer_tokens,
                           "temperature": self.settings.temperature,
                           "response_format": fmt}, sort_keys=True, ensure_ascii=False)

    def _failed(self, prompt: str, response: str, tokens: int, error: str,
                fmt: str) -> ports.Exchange:
        return ports.Exchange(
            reasoner=self.name, model_name=self.settings.model, model_version="", prompt=prompt,
            response=response, prompt_sha256=sha256(prompt), response_sha256=sha256(response),
            tokens=tokens, error=error, response_format=fmt)
