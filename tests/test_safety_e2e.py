"""The safety envelope on the real demo: a human approves through the CLI; a revocation
mid-flight stops the rollback and undoes it. Slow: each runs the real shop."""

from __future__ import annotations

import getpass
import json
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _start(cmd: list[str], workdir: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*cmd, "demo", "--json", "--workdir", str(workdir), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err[-3000:]
    return dict(json.loads(out.strip().splitlines()[-1]))


def _ledger_kinds(db: Path) -> list[str]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db) as conn:
            return [k for (k,) in conn.execute("SELECT kind FROM ledger ORDER BY seq")]
    except sqlite3.OperationalError:
        return []


def _cli(cmd: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60,
                          check=False)


def test_a_human_approves_through_the_cli_and_the_rollback_runs(
        no_leftovers: Path, selfheal_cmd: list[str]) -> None:
    user = getpass.getuser()
    pol = no_leftovers / "policy.yaml"
    pol.write_text(f"version: 1\nmodes: {{default: auto}}\nroles: {{sre: [{user}]}}\n"
                   "rules:\n  - name: rollback-needs-sre\n    when: {actions: [rollback]}\n"
                   "    verdict: require_approval\n    approver_role: sre\n"
                   "    approval_timeout_s: 150\n")
    wd = no_leftovers / "wd"
    db = wd / "selfheal.db"
    proc = _start(selfheal_cmd, wd, "--policy", str(pol))
    pending: list[dict[str, Any]] = []
    deadline = time.monotonic() + 200
    while time.monotonic() < deadline and not pending and proc.poll() is None:
        time.sleep(1)
        if db.exists():
            res = _cli(selfheal_cmd, "approvals", "--json", "--db", str(db))
            if res.returncode == 0:
                pending = [a for a in json.loads(res.stdout) if a["state"] == "pending"]
    assert pending, "no approval was requested"
    request = pending[0]["request"]
    assert request["plan"]["steps"][0]["kind"] == "rollback"
    assert request["inverse"][0]["kind"] == "deploy"  # the inverse travels with the request
    assert "execution.intent" not in _ledger_kinds(db)  # nothing ran before the approval
    empty = _cli(selfheal_cmd, "approve", pending[0]["id"], "--reason", " ", "--db", str(db),
                 "--policy", str(pol))
    assert empty.returncode == 2  # a reason is required
    ok = _cli(selfheal_cmd, "approve", pending[0]["id"], "--reason", "leak confirmed",
              "--db", str(db), "--policy", str(pol))
    assert ok.returncode == 0, ok.stderr
    out = _finish(proc)
    assert out["verified"] is True
    assert [a["phase"] for a in out["actions"]] == ["canary", "full"]
    kinds = _ledger_kinds(db)
    for k in ("approval.requested", "approval.approved", "approval.granted"):
        assert k in kinds
    assert kinds.index("approval.granted") < kinds.index("execution.intent")
    with sqlite3.connect(db) as conn:
        rules = [json.loads(p)["decision"]["rule"] for (p,) in conn.execute(
            "SELECT payload FROM ledger WHERE kind='decision' ORDER BY seq")]
    assert rules[-2:] == ["rollback-needs-sre", "approval:sre"]


def test_revoking_rollback_mid_flight_stops_and_undoes_it(
        no_leftovers: Path, selfheal_cmd: list[str]) -> None:
    wd = no_leftovers / "wd"
    db = wd / "selfheal.db"
    proc = _start(selfheal_cmd, wd)
    deadline = time.monotonic() + 200
    while time.monotonic() < deadline and proc.poll() is None:
        if "execution.result" in _ledger_kinds(db):  # the canary is running
            break
        time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("the canary never started")
    res = _cli(selfheal_cmd, "revoke", "rollback", "--reason", "game day", "--db", str(db))
    assert res.returncode == 0, res.stderr
    out = _finish(proc)
    assert out["escalated"] is True and out["verified"] is False
    assert out["rolled_back"] is True
    phases = [a["phase"] for a in out["actions"]]
    assert phases[0] == "canary" and phases[-1] == "undo" and "full" not in phases
    kinds = _ledger_kinds(db)
    assert kinds.index("revocation") < kinds.index("escalation")
    # until restored, the gate denies rollback
    assert _cli(selfheal_cmd, "restore", "rollback", "--reason", "over", "--db",
                str(db)).returncode == 0
    assert "restoration" in _ledger_kinds(db)
    replay = _cli(selfheal_cmd, "ledger", "replay", out["incident"], "--json", "--db", str(db))
    assert replay.returncode == 0, replay.stderr
    steps = [s["kind"] for s in json.loads(replay.stdout)["steps"]]
    assert steps[0] == "incident.opened" and "decision" in steps and "escalation" in steps


def test_an_unanswered_approval_expires_into_a_suggestion(no_leftovers: Path,
                                                          selfheal_cmd: list[str]) -> None:
    pol = no_leftovers / "policy.yaml"
    pol.write_text("version: 1\nmodes: {default: auto}\nrules:\n  - name: ask\n"
                   "    when: {actions: [rollback]}\n    verdict: require_approval\n"
                   "    approval_timeout_s: 3\n")
    wd = no_leftovers / "wd"
    out = _finish(_start(selfheal_cmd, wd, "--policy", str(pol)))
    assert out["escalated"] is True and out["actions"] == []
    kinds = _ledger_kinds(wd / "selfheal.db")
    assert "approval.expired" in kinds and "execution.intent" not in kinds
    listed = json.loads(_cli(selfheal_cmd, "approvals", "--json", "--db",
                             str(wd / "selfheal.db")).stdout)
    assert [a["state"] for a in listed] == ["expired"]
