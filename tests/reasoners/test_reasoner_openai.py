"""The OpenAI-compatible adapter over a real HTTP round trip to a local stand-in server."""

from __future__ import annotations

import json
import socket

from selfheal import diagnose, model
from selfheal.reasoners import openai as openai_mod
from tests.reasoners import reasoner_helpers as helpers


def _reasoner(url: str, timeout_s: float = 10.0) -> openai_mod.OpenAIReasoner:
    return openai_mod.OpenAIReasoner(openai_mod.Settings(
        base_url=url, model="smol-test", api_key="sk-secret-value", timeout_s=timeout_s))


def _inputs() -> tuple[diagnose.Window, model.Diagnosis]:
    window = helpers.window()
    return window, diagnose.diagnose(window, window.end)


def test_schema_constrained_request_and_a_traceable_exchange() -> None:
    window, diag = _inputs()
    with helpers.fake_server(helpers.FakeChat([helpers.answer()])) as chat:
        ex = _reasoner(chat.url).propose(window, diag, 4000)
    assert len(chat.requests) == 1
    sent = chat.requests[0]
    fmt = sent["response_format"]
    assert fmt["type"] == "json_schema"
    service_enum = fmt["json_schema"]["schema"]["$defs"]["PlanOut"]["properties"]["service"]
    assert service_enum["enum"] == list(window.services())
    assert sent["max_tokens"] <= 2000 and sent["model"] == "smol-test"
    # Trace-back: the prompt is the request, whole; the digests identify prompt and response.
    assert json.loads(ex.prompt)["messages"] == sent["messages"]
    assert ex.prompt_sha256 == openai_mod.sha256(ex.prompt)
    assert ex.response == helpers.answer()
    assert ex.response_sha256 == openai_mod.sha256(ex.response)
    assert ex.model_version == "fake-model-v1 fp-test"
    assert ex.error == "" and ex.rejected == () and ex.response_format == "json_schema"
    assert ex.tokens > 0
    [h] = ex.hypotheses
    assert (h.kind, h.service, h.fault, h.strength) == (
        model.SignalKind.MODEL, "auth", model.FaultKind.MEMORY_LEAK, 0.8)
    assert ex.prompt_sha256[:16] in h.query
    assert [(p.service, p.action) for p in ex.plans] == [("auth", model.ActionKind.ROLLBACK)]
    assert "sk-secret-value" not in ex.prompt and "sk-secret-value" not in repr(ex)


def test_a_server_without_json_schema_gets_json_object_once_and_for_all() -> None:
    window, diag = _inputs()
    chat = helpers.FakeChat([helpers.answer(), helpers.answer()], refuse_schema=True)
    with helpers.fake_server(chat):
        reasoner = _reasoner(chat.url)
        first = reasoner.propose(window, diag, 4000)
        second = reasoner.propose(window, diag, 4000)
    kinds = [r["response_format"]["type"] for r in chat.requests]
    assert kinds == ["json_schema", "json_object", "json_object"]
    assert first.response_format == "json_object" and len(first.hypotheses) == 1
    assert any("fell back to json_object" in r for r in first.rejected)
    assert second.rejected == () and len(second.plans) == 1


def test_free_text_and_out_of_catalogue_answers_are_refused_never_raised() -> None:
    window, diag = _inputs()
    bad_plan = helpers.answer(plans=[{"service": "auth", "action": "kubectl delete ns prod",
                                      "rationale": "clean slate"}])
    chat = helpers.FakeChat(["Sure! Restart everything.", bad_plan])
    with helpers.fake_server(chat):
        reasoner = _reasoner(chat.url)
        prose = reasoner.propose(window, diag, 4000)
        rogue = reasoner.propose(window, diag, 4000)
    assert prose.error.startswith("the answer is not JSON")
    assert prose.hypotheses == () and prose.plans == ()
    assert prose.response == "Sure! Restart everything."  # kept whole for the ledger
    assert rogue.plans == () and len(rogue.hypotheses) == 1
    assert "kubectl delete ns prod" in rogue.rejected[0]


def test_an_unreachable_or_slow_server_is_an_error_value() -> None:
    window, diag = _inputs()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = _reasoner(f"http://127.0.0.1:{port}/v1").propose(window, diag, 4000)
    assert "APIConnectionError" in down.error and down.hypotheses == ()
    with helpers.fake_server(helpers.FakeChat([helpers.answer()], delay_s=1.5)) as chat:
        slow = _reasoner(chat.url, timeout_s=0.3).propose(window, diag, 4000)
    assert "Timeout" in slow.error and slow.hypotheses == ()


def test_a_budget_too_small_sends_nothing() -> None:
    window, diag = _inputs()
    with helpers.fake_server(helpers.FakeChat([helpers.answer()])) as chat:
        ex = _reasoner(chat.url).propose(window, diag, 100)
    assert chat.requests == [] and "too small" in ex.error and ex.tokens == 0


def test_the_prompt_fits_the_budget() -> None:
    window, diag = _inputs()
    with helpers.fake_server(helpers.FakeChat([helpers.answer()] * 2)) as chat:
        reasoner = _reasoner(chat.url)
        roomy = reasoner.propose(window, diag, 8000)
        tight = reasoner.propose(window, diag, 1200)
    for ex, budget in ((roomy, 8000), (tight, 1200)):
        request = json.loads(ex.prompt)
        chars = sum(len(m["content"]) for m in request["messages"])
        assert chars / openai_mod.CHARS_PER_TOKEN + request["max_tokens"] <= budget
    assert len(tight.prompt) < len(roomy.prompt)
