"""The hash-chained ledger: intact chains verify; any edit, removal or reorder is named."""

from __future__ import annotations

import dataclasses
import sqlite3
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfheal import errors, ledger
from selfheal.store import sql


def _store(tmp_path: Path, n: int) -> tuple[sql.SqlStore, Path]:
    db = tmp_path / "ledger.db"
    store = sql.SqlStore(sql.sqlite_url(db))
    for i in range(n):
        store.append_ledger(1000.0 + i, f"inc-{i % 3}", f"kind-{i}", {"i": i, "note": "x" * i})
    return store, db


def _verify_cli(selfheal_cmd: list[str], db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*selfheal_cmd, "ledger", "verify", "--db", str(db)],
                          capture_output=True, text=True, timeout=60, check=False)


def test_intact_ledger_verifies(tmp_path: Path, selfheal_cmd: list[str]) -> None:
    store, db = _store(tmp_path, 6)
    assert store.verify_ledger() == 6
    res = _verify_cli(selfheal_cmd, db)
    assert res.returncode == 0, res.stderr
    assert "6 entries" in res.stdout


def test_edited_row_fails_and_is_named(tmp_path: Path, selfheal_cmd: list[str]) -> None:
    _, db = _store(tmp_path, 6)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE ledger SET payload = ? WHERE seq = 4", ('{"i":4,"note":"y"}',))
    res = _verify_cli(selfheal_cmd, db)
    assert res.returncode != 0
    assert "entry 4" in res.stderr


def test_removed_row_fails(tmp_path: Path, selfheal_cmd: list[str]) -> None:
    _, db = _store(tmp_path, 6)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM ledger WHERE seq = 3")
    res = _verify_cli(selfheal_cmd, db)
    assert res.returncode != 0
    assert "entry 3" in res.stderr


def test_removed_newest_rows_fail(tmp_path: Path, selfheal_cmd: list[str]) -> None:
    _, db = _store(tmp_path, 6)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM ledger WHERE seq >= 5")
    res = _verify_cli(selfheal_cmd, db)
    assert res.returncode != 0
    assert "removed" in res.stderr


def test_reordered_rows_fail(tmp_path: Path, selfheal_cmd: list[str]) -> None:
    _, db = _store(tmp_path, 6)
    with sqlite3.connect(db) as conn:
        rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT seq, ts, incident_id, kind, payload, prev_hash, hash FROM ledger")}
        for seq, other in ((2, 5), (5, 2)):
            conn.execute("UPDATE ledger SET ts=?, incident_id=?, kind=?, payload=?, "
                         "prev_hash=?, hash=? WHERE seq=?", (*rows[other], seq))
    res = _verify_cli(selfheal_cmd, db)
    assert res.returncode != 0
    assert "entry 2" in res.stderr


def test_missing_database_is_a_clear_error(tmp_path: Path, selfheal_cmd: list[str]) -> None:
    res = _verify_cli(selfheal_cmd, tmp_path / "nope.db")
    assert res.returncode == 2
    assert "nope.db" in res.stderr and "Traceback" not in res.stderr


def _raw(store: sql.SqlStore) -> list[ledger.RawEntry]:
    return list(store.ledger_rows())


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 12), data=st.data())
def test_any_single_field_change_is_detected(tmp_path_factory: pytest.TempPathFactory, n: int,
                                             data: st.DataObject) -> None:
    store, _ = _store(tmp_path_factory.mktemp("l"), n)
    entries = _raw(store)
    assert ledger.verify(entries) == n
    idx = data.draw(st.integers(0, n - 1))
    field = data.draw(st.sampled_from(["ts", "incident_id", "kind", "payload", "prev_hash",
                                       "hash"]))
    e = entries[idx]
    changed = {"ts": e.ts + 1.0, "incident_id": e.incident_id + "x", "kind": e.kind + "x",
               "payload": e.payload.replace("}", ',"z":1}'), "prev_hash": "f" * 64,
               "hash": "e" * 64}[field]
    entries[idx] = dataclasses.replace(e, **{field: changed})
    with pytest.raises(errors.LedgerCorrupt) as info:
        ledger.verify(entries)
    assert info.value.seq == e.seq  # the first bad entry is exactly the changed one
    store.close()


_WRITER = """
import sys
from selfheal.store import sql
store = sql.SqlStore(sql.sqlite_url(sys.argv[1]))
for i in range(int(sys.argv[2])):
    store.append_ledger(float(i), "inc-" + sys.argv[3], "k", {"i": i, "who": sys.argv[3]})
"""


def test_two_processes_appending_at_once_keep_one_valid_chain(tmp_path: Path) -> None:
    """The agent and the CLI (or the workspace) append to the same ledger at the same time:
    no entry is lost, the chain verifies, and the remembered head is the newest entry."""
    import sys

    db = tmp_path / "shared.db"
    sql.SqlStore(sql.sqlite_url(db)).close()
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(db), "60", name])
             for name in ("agent", "cli")]
    for p in procs:
        assert p.wait(timeout=120) == 0
    store = sql.SqlStore(sql.sqlite_url(db))
    assert store.verify_ledger() == 120
    whos = [e.payload["who"] for e in store.ledger()]
    assert whos.count("agent") == 60 and whos.count("cli") == 60
    store.close()
