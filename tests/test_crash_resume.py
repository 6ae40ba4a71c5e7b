"""Write-ahead in practice: SIGKILL between the ledger entry and the platform call (or just
after the call) is resolved on restart — completed and verified, never done twice, never lost.

Slow: each case runs the real shop on a detached local platform, which outlives the killed
selfheal as a real control plane would.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

HARNESS = str(Path(__file__).with_name("crash_harness.py"))


@pytest.mark.parametrize("failpoint", ["after-intent:full", "after-call:full"])
def test_killed_between_intent_and_result_is_completed_once_on_restart(
        no_leftovers: Path, selfheal_cmd: list[str], failpoint: str) -> None:
    wd = no_leftovers / "wd"
    killed = subprocess.run([sys.executable, HARNESS, "run", str(wd), failpoint],
                            capture_output=True, text=True, timeout=300, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    db = wd / "selfheal.db"
    with sqlite3.connect(db) as conn:
        before = [(k, json.loads(p)) for k, p in conn.execute(
            "SELECT kind, payload FROM ledger ORDER BY seq")]
    intent = [p for k, p in before if k == "execution.intent" and p["phase"] == "full"]
    assert len(intent) == 1
    assert not [p for k, p in before if k == "execution.result" and p["phase"] == "full"]

    res = subprocess.run([sys.executable, HARNESS, "recover", str(wd)], capture_output=True,
                         text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert len(out["resumed"]) == 1
    assert set(out["states"].values()) == {"resolved"}
    rollbacks = [c for c in out["changes"] if c["kind"] == "rollback"]
    assert len(rollbacks) == 1, out["changes"]  # done exactly once, whichever side of the call
    assert out["auth_versions"] == ["1.2.0", "1.2.0"]
    with sqlite3.connect(db) as conn:
        after = [(k, json.loads(p)) for k, p in conn.execute(
            "SELECT kind, payload FROM ledger ORDER BY seq")]
    exec_id = intent[0]["execution"]
    results = [p for k, p in after if k == "execution.result"
               and p["execution"]["id"] == exec_id]
    assert len(results) == 1 and results[0]["execution"]["status"] == "succeeded"
    kinds = [k for k, _ in after]
    assert "resumed" in kinds and kinds[-3:].count("postmortem") == 1
    assert kinds.index("resumed") < kinds.index("verification")
    ok = subprocess.run([*selfheal_cmd, "ledger", "verify", "--db", str(db)],
                        capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
