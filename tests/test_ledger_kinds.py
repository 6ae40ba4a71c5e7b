"""The store reads ledger entries by kind and by incident through indexes, on SQLite as it runs.

A starting controller needs a handful of kinds (the drains) out of every entry ever written:
`SqlStore.ledger_of_kinds` returns exactly those, in ledger order, and SQLite answers it
from the kind index, which a database made before the index existed gets when it is opened.
The drains a controller restores through it are the ones a walk of the whole chain finds.
One incident's entries (`show`, replay, the postmortem) come through the incident index and are
exactly that incident's entries of the whole chain, in order.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from pathlib import Path

import hypothesis
import pytest
from hypothesis import strategies as st

from selfheal.engine import drains
from selfheal.store import sql

pytestmark = pytest.mark.timeout(120)

KINDS = ("signal.change", "incident.opened", drains.DRAINED, drains.UNDRAINED, "outcome")


def _store(path: Path) -> sql.SqlStore:
    return sql.SqlStore(sql.sqlite_url(path / "selfheal.db"))


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(
    written=st.lists(st.tuples(st.sampled_from(KINDS), st.floats(0, 1e6)), max_size=30),
    wanted=st.sets(st.sampled_from((*KINDS, "never.written"))))
def test_the_query_returns_only_those_kinds_in_ledger_order(
        written: list[tuple[str, float]], wanted: set[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = _store(Path(tmp))
        for i, (kind, ts) in enumerate(written):  # timestamps out of order on purpose
            store.append_ledger(ts, f"inc-{i % 3}", kind, {"n": i})
        got = store.ledger_of_kinds(wanted)
        every = list(store.ledger_rows())
        store.close()
    assert got == [r for r in every if r.kind in wanted]
    assert [r.seq for r in got] == sorted(r.seq for r in got)


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(
    written=st.lists(st.tuples(st.sampled_from(("inc-a", "inc-b", "", "inc-c")),
                               st.booleans()), max_size=30),
    wanted=st.sampled_from(("inc-a", "inc-b", "", "never")))
def test_one_incidents_entries_are_exactly_its_entries_of_the_chain(
        written: list[tuple[str, bool]], wanted: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        store = _store(path)
        for i, (incident, _) in enumerate(written):
            store.append_ledger(float(-i), incident, "outcome", {"n": i})
        store.close()
        if any(not readable for _, readable in written):
            with sqlite3.connect(path / "selfheal.db") as conn:  # text that is not JSON
                for i, (_, readable) in enumerate(written):
                    if not readable:
                        conn.execute("UPDATE ledger SET payload = ? WHERE seq = ?",
                                     ("{broken", i + 1))
        store = _store(path)
        got = store.ledger(wanted)
        every = store.ledger()
        store.close()
    assert got == [e for e in every if e.incident_id == wanted]
    assert [e.payload for e in got] == [
        {"n": i} if readable else {"unreadable": "{broken"}
        for i, (incident, readable) in enumerate(written) if incident == wanted]


def test_a_database_made_before_the_index_gets_it_and_the_query_uses_it(
        tmp_path: Path) -> None:
    store = _store(tmp_path)
    for i in range(20):
        store.append_ledger(float(i), "", KINDS[i % len(KINDS)], {"n": i})
    store.close()
    db = tmp_path / "selfheal.db"
    with sqlite3.connect(db) as conn:  # as an older selfheal left it: no kind index
        conn.execute("DROP INDEX ix_ledger_kind")
        assert "ix_ledger_kind" not in {r[1] for r in conn.execute("PRAGMA index_list(ledger)")}

    store = _store(tmp_path)  # opening it migrates
    assert store.verify_ledger() == 20  # the chain is untouched
    rows = store.ledger_of_kinds([drains.DRAINED])
    store.close()
    assert [json.loads(r.payload)["n"] for r in rows] == [
        i for i in range(20) if KINDS[i % len(KINDS)] == drains.DRAINED]
    with sqlite3.connect(db) as conn:
        assert "ix_ledger_kind" in {r[1] for r in conn.execute("PRAGMA index_list(ledger)")}
        plan = " ".join(str(r[-1]) for r in conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM ledger WHERE kind IN (?, ?) ORDER BY seq",
            (drains.DRAINED, drains.UNDRAINED)))
    assert "ix_ledger_kind" in plan, plan
    with sqlite3.connect(db) as conn:
        conn.execute("DROP INDEX ix_ledger_incident")
    store = _store(tmp_path)  # the incident index comes back the same way
    assert [e.payload["n"] for e in store.ledger("")] == list(range(20))
    store.close()
    with sqlite3.connect(db) as conn:
        plan = " ".join(str(r[-1]) for r in conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM ledger WHERE incident_id = ? ORDER BY seq",
            ("inc-1",)))
    assert "ix_ledger_incident" in plan, plan
    # Opening it again changes nothing (the migration is idempotent).
    _store(tmp_path).close()


def _restore_by_walking(store: sql.SqlStore) -> dict[str, drains.Drain]:
    """What the controller did before the query: read every entry of the chain."""
    drained: dict[str, drains.Drain] = {}
    for row in store.ledger_rows():
        if row.kind not in (drains.DRAINED, drains.UNDRAINED):
            continue
        try:
            p = json.loads(row.payload)
            service, since, why = p["service"], p["since"], p["why"]
        except (ValueError, KeyError, TypeError):
            continue
        if row.kind == drains.DRAINED:
            drained[str(service)] = drains.Drain(float(since), str(why), row.incident_id,
                                                 str(p.get("caller", "")))
        else:
            drained.pop(str(service), None)
    return drained


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(st.lists(st.tuples(
    st.sampled_from((drains.DRAINED, drains.UNDRAINED, "signal.change", "escalation")),
    st.sampled_from(("cart", "inventory-east", "auth")),
    st.booleans()), max_size=25))
def test_the_restore_through_the_query_finds_what_a_walk_of_the_chain_finds(
        entries: list[tuple[str, str, bool]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = _store(Path(tmp))
        for i, (kind, svc, readable) in enumerate(entries):
            payload: dict[str, object] = {"service": svc, "since": float(i),
                                          "why": f"why {i}", "caller": "catalog"}
            if not readable:
                del payload["since"]  # an entry the restore must skip
            store.append_ledger(float(i), f"inc-{i}", kind, payload)
        by_query, by_walk = drains.restore(store), _restore_by_walking(store)
        store.close()
    assert by_query == by_walk
