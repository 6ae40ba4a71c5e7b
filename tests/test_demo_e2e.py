"""`selfheal demo` end to end on real processes, as a user runs it.

Slow (about two and a half minutes): it really starts the shop, really breaks auth, and waits
for selfheal to heal it.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import processes_mentioning

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _demo(cmd: list[str], workdir: Path, *extra: str) -> dict[str, Any]:
    res = subprocess.run([*cmd, "demo", "--json", "--workdir", str(workdir), *extra],
                         capture_output=True, text=True, timeout=420, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.strip().splitlines()
    assert lines, res.stderr[-3000:]
    return dict(json.loads(lines[-1]))


def test_demo_heals_after_a_killed_run_and_leaves_nothing(no_leftovers: Path,
                                                          selfheal_cmd: list[str]) -> None:
    workdir = no_leftovers / "wd"
    # 1. A run killed with SIGKILL while the shop is up must leave nothing behind.
    first = subprocess.Popen([*selfheal_cmd, "demo", "--workdir", str(workdir)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pidfile = workdir / "run" / "pids.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if pidfile.exists() and len(json.loads(pidfile.read_text() or "{}")) >= 8:
            break
        time.sleep(0.2)
    else:
        first.kill()
        pytest.fail("the shop did not start within 60 s")
    assert processes_mentioning(str(workdir))
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)

    # 2. The next run reaps whatever survived, then heals the bad deploy.
    out = _demo(selfheal_cmd, workdir)
    assert out["scenario"] == "bad-deploy-memory-leak"
    assert out["detected_at"] > out["fault_injected_at"]
    diag = out["diagnosis"]
    assert diag["service"] == "auth"
    assert diag["sufficient"] is True
    assert 0.5 < diag["confidence"] <= 1.0
    kinds = {e.split(":", 1)[0] for e in diag["evidence"]}
    assert {"metrics", "changes"} <= kinds
    rollbacks = [a for a in out["actions"] if a["kind"] == "rollback" and a["target"] == "auth"]
    assert [a["phase"] for a in rollbacks] == ["canary", "full"]
    assert all(a["status"] == "succeeded" for a in rollbacks)
    assert out["verified"] is True and out["rolled_back"] is False
    assert out["mttr_s"] > 0
    postmortem = Path(out["postmortem"]).read_text()
    for heading in ("## Root cause", "## Timeline", "## Evidence", "## Actions",
                    "## Verification", "## Follow-ups"):
        assert heading in postmortem
    # the durable fix: release 1.2.1's commit reverted on a branch, main untouched
    fixes = [a for a in out["actions"] if a["kind"] == "code_revert"]
    assert [(a["target"], a["status"]) for a in fixes] == [("auth", "succeeded")]
    branches = subprocess.run(["git", "-C", str(workdir / "repos" / "auth"), "branch",
                               "--list", "selfheal/revert-*", "--format=%(refname:short)"],
                              capture_output=True, text=True, check=True).stdout.split()
    assert len(branches) == 1 and f"branch {branches[0]}" in postmortem
    assert "Review and merge the code fix" in postmortem
    assert not processes_mentioning(str(workdir))

    # 3. The ledger verifies, and editing one row of it is detected.
    db = Path(out["ledger"])
    ok = subprocess.run([*selfheal_cmd, "ledger", "verify", "--db", str(db)],
                        capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
    with sqlite3.connect(db) as conn:
        seq, payload = conn.execute("SELECT seq, payload FROM ledger WHERE kind='decision'"
                                    ).fetchone()
        conn.execute("UPDATE ledger SET payload=? WHERE seq=?",
                     (payload.replace("allow", "deny"), seq))
    bad = subprocess.run([*selfheal_cmd, "ledger", "verify", "--db", str(db)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode != 0
    assert f"entry {seq}" in bad.stderr

    listed = subprocess.run([*selfheal_cmd, "incidents", "--json", "--db", str(db)],
                            capture_output=True, text=True, timeout=60, check=True)
    states = {i["id"]: i["state"] for i in json.loads(listed.stdout)}
    assert states[out["incident"]] == "resolved"


def test_policy_forbidding_rollback_escalates_without_a_platform_call(
        no_leftovers: Path, selfheal_cmd: list[str]) -> None:
    pol = no_leftovers / "policy.yaml"
    pol.write_text("version: 1\nmodes: {default: auto}\nrules:\n"
                   "  - name: no-rollback\n    when: {actions: [rollback]}\n"
                   "    verdict: deny\n")
    out = _demo(selfheal_cmd, no_leftovers / "wd", "--policy", str(pol))
    assert out["diagnosis"]["service"] == "auth"
    assert out["escalated"] is True and out["verified"] is False
    assert out["actions"] == []
    with sqlite3.connect(out["ledger"]) as conn:
        kinds = [k for (k,) in conn.execute("SELECT kind FROM ledger")]
        who = {w for (w,) in conn.execute("SELECT who FROM changes")}
        decision = conn.execute("SELECT payload FROM ledger WHERE kind='decision'").fetchone()
    assert "execution.intent" not in kinds and "escalation" in kinds
    assert who == {"ci-bot"}  # the only change to the platform is the bad deploy itself
    assert '"rule":"no-rollback"' in decision[0]


def test_ctrl_c_mid_demo_stops_every_process(no_leftovers: Path,
                                             selfheal_cmd: list[str]) -> None:
    workdir = no_leftovers / "wd"
    run = subprocess.Popen([*selfheal_cmd, "demo", "--workdir", str(workdir)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    pidfile = workdir / "run" / "pids.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if pidfile.exists() and len(json.loads(pidfile.read_text() or "{}")) >= 12:
            break
        time.sleep(0.2)
    else:
        run.kill()
        pytest.fail("the shop and load generator did not start within 60 s")
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=60)
    assert run.returncode != 0
    assert "Traceback" not in err
    assert not processes_mentioning(str(workdir))
    assert not pidfile.exists()
