"""The store keeps the same promises on SQLite and on a real PostgreSQL server.

README says `storage.url` may be any SQLAlchemy URL and that `postgresql+psycopg://…` works
with the same schema: every test here runs on both (PostgreSQL started for the session by
tests/pg_server.py). Telemetry, incidents, approvals, trust and revocations read back as
written; the ledger's hash chain verifies and an edited row is caught; the detectors' saved
state is replaced whole and a restarted controller takes it back.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from selfheal import config, errors, model, policy
from selfheal.engine import controller as controller_mod
from selfheal.engine import serve
from selfheal.store import sql

pytestmark = pytest.mark.timeout(120)
T = 1_800_000_000.0


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> sql.SqlStore:
    url = (sql.sqlite_url(tmp_path / "selfheal.db") if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    made = sql.SqlStore(url)
    request.addfinalizer(made.close)
    return made


def test_telemetry_reads_back_as_written(store: sql.SqlStore) -> None:
    store.add_samples([
        model.Sample(t=T + i, service="auth", metric="p99_latency_s", value=0.01 * i)
        for i in range(5)] + [
        model.Sample(t=T + 2, service="auth", metric="p99_latency_s", value=math.nan,
                     replica="auth-1", version="1.2.1"),
        model.Sample(t=T + 3, service="cart", metric="up", value=1.0)])
    got = store.query("auth", "p99_latency_s", T + 1, T + 3)
    assert [(s.t, s.value) for s in got] == [(T + 1, 0.01), (T + 2, 0.02), (T + 3, 0.03)]
    (odd,) = store.query("auth", "p99_latency_s", T, T + 9, replica="auth-1")
    assert math.isnan(odd.value) and odd.version == "1.2.1"
    assert store.series_names(T, T + 9) == [("auth", "p99_latency_s"), ("cart", "up")]
    store.add_logs([model.LogRecord(T + 1, "auth", "ERROR", "token store: timeout 'x' \u00e9")])
    assert [r.message for r in store.logs("auth", T, T + 2)] == ["token store: timeout 'x' \u00e9"]
    change = model.Change(id="c-1", t=T + 1, service="auth", kind="deploy", who="ci-bot",
                          what="release 1.2.1", from_version="1.2.0", to_version="1.2.1")
    store.add_change(change)
    assert store.changes_between(T, T + 2) == [change]


def test_incidents_and_approvals_read_back_and_decide_once(store: sql.SqlStore) -> None:
    inc = model.Incident(id=model.IncidentId("inc-abc12345"), service="auth", opened_at=T,
                         title="auth: error_ratio anomalous", anomalies=())
    store.save_incident(inc, {"related": ["checkout"]}, now=T + 1)
    store.save_incident(inc, {"related": ["checkout", "frontend"]}, now=T + 2)
    (row,) = store.incidents()
    assert (row["id"], row["updated_at"], row["detail"]["related"]) == \
        ("inc-abc12345", T + 2, ["checkout", "frontend"])
    assert store.incident("inc-abc") == row  # an unambiguous prefix
    store.add_approval("ap-1", inc.id, T, T + 600, "sre", {"action": "rollback"})
    assert store.decide_approval("ap-1", "approved", "ana", "looks right", T + 5)
    assert not store.decide_approval("ap-1", "rejected", "bo", "too late", T + 6)
    approval = store.approval("ap-1")
    assert approval is not None
    assert (approval["state"], approval["decided_by"], approval["request"]) == \
        ("approved", "ana", {"action": "rollback"})
    store.put_trust({"agent": "selfheal", "action": "rollback", "successes": 3,
                     "failures": 0, "rejections": 0, "since_bad": 3, "demoted": False})
    store.put_trust({"agent": "selfheal", "action": "rollback", "successes": 4,
                     "failures": 0, "rejections": 0, "since_bad": 4, "demoted": False})
    assert [r["successes"] for r in store.trust_rows()] == [4]
    assert store.revoke("restart", "ana", "flapping", T)
    assert not store.revoke("restart", "ana", "again", T)
    assert list(store.revoked()) == ["restart"]


def test_the_ledger_chain_verifies_and_an_edited_row_is_caught(store: sql.SqlStore) -> None:
    for i in range(5):
        store.append_ledger(T + i, "inc-1", "note", {"i": i, "text": "caf\u00e9 \"quoted\""})
    assert store.verify_ledger() == 5
    assert [e.payload["i"] for e in store.ledger("inc-1")] == [0, 1, 2, 3, 4]
    with store.engine.begin() as conn:
        conn.execute(sa.update(sql.ledger_table).where(sql.ledger_table.c.seq == 3)
                     .values(payload='{"i": 30, "text": "edited"}'))
    with pytest.raises(errors.LedgerCorrupt) as err:
        store.verify_ledger()
    assert err.value.seq == 3


def test_the_saved_state_is_replaced_whole_and_a_restart_takes_it_back(
        store: sql.SqlStore, tmp_path: Path) -> None:
    assert store.load_state("detector") is None
    big = bytes(np.random.default_rng(0).integers(0, 256, 3_000_000, dtype=np.uint8))
    store.save_state("detector", T, big)
    store.save_state("detector", T + 1, b"\x00newer")
    assert store.load_state("detector") == (T + 1, b"\x00newer")
    store.save_state("detector", T + 2, big)
    assert store.load_state("detector") == (T + 2, big)
    # the controller's round trip through this database
    cfg = config.Config(workdir=tmp_path, platform=config.PlatformSettings(services={"a": []}))
    events: list[str] = []

    def controller(now: float) -> controller_mod.Controller:
        return controller_mod.Controller(
            cfg, serve.ObservedPlatform({"a": []}), store,
            policy.Gate(policy.parse(serve.OBSERVE_POLICY, "test")), {"a": ()},
            lambda: now, lambda e: events.append(e.message), feeds=[])

    first = controller(T)
    rng = np.random.default_rng(1)
    for i in range(200):
        first.detector.update(T + i, {("a", "rss_bytes"): float(1e8 + rng.normal(0, 1e5))})
    first.save_state(T + 199)
    second = controller(T + 200)
    second.warm_start()
    assert second.detector.save() == first.detector.save()
    assert any("restored from their saved state (1 series" in e for e in events)
