"""The postmortem is written from ledger entries alone; a model's draft is marked as such."""

from __future__ import annotations

from selfheal import model, scribe


def _entry(seq: int, kind: str, payload: dict[str, object]) -> model.LedgerEntry:
    return model.LedgerEntry(seq=seq, ts=1000.0 + seq, incident_id="inc-1", kind=kind,
                             payload=payload, prev_hash="", hash="")


def test_model_narrative_is_shown_and_marked() -> None:
    inc = model.Incident(id=model.IncidentId("inc-1"), service="auth", opened_at=1000.0,
                         title="auth: rss", anomalies=())
    entries = [_entry(1, "reasoner.exchange", {
        "narrative": "Memory grew after the deploy.",
        "narrative_by": "drafted by model tiny (not verified by selfheal)"})]
    text = scribe.postmortem(inc, entries, {})
    assert "## Narrative (drafted by model tiny (not verified by selfheal))" in text
    assert "Memory grew after the deploy." in text
    assert "## Narrative" not in scribe.postmortem(inc, [], {})
