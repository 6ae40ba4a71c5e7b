"""`bench rca` with a reasoner: the same metrics, and a useless model changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfheal import diagnose
from selfheal.bench import rca
from selfheal.reasoners import openai as openai_mod
from selfheal.sources import nezha
from tests.reasoners import reasoner_helpers as helpers

pytestmark = pytest.mark.timeout(240)

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "nezha"
CACHE = REPO / ".selfheal" / "cache" / "nezha"


def test_refused_answers_leave_the_deterministic_result_and_are_counted() -> None:
    if not DATA.is_dir():
        pytest.skip(f"Nezha data not found at {DATA}")
    day = nezha.Day(nezha.ensure_extracted(DATA, CACHE), "2022-08-22")
    fault = day.faults[0]
    plain = rca.run_case(day, fault, diagnose.DEFAULT_SETTINGS, 180.0)
    rogue = json.dumps({
        "hypotheses": [{"service": "not-a-service", "fault": "crash", "confidence": 1.0,
                        "reason": "guess"}],
        "plans": [{"service": "not-a-service", "action": "format_disk", "rationale": "x"}],
        "narrative": ""})
    with helpers.fake_server(helpers.FakeChat([rogue])) as chat:
        reasoner = openai_mod.OpenAIReasoner(openai_mod.Settings(base_url=chat.url, model="m"))
        asked = rca.run_case(day, fault, diagnose.DEFAULT_SETTINGS, 180.0, reasoner, 4000)
    assert len(chat.requests) == 1
    assert asked.model_refused == 2 and asked.model_error == "" and asked.model_tokens > 0
    assert (asked.ranked, asked.top_fault, asked.top_probability, asked.sufficient) == (
        plain.ranked, plain.top_fault, plain.top_probability, plain.sufficient)
    assert rca.score([asked]).as_json().keys() == rca.score([plain]).as_json().keys()
