"""Commands of the safety envelope: approvals, trust, revocation, policy checks.

They work on the same database as the running agent (`--db`), which picks up approvals and
revocations within a second. Who you are is your operating-system user; what you may approve
is the role the policy file gives that user.
"""

from __future__ import annotations

import getpass
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from selfheal import errors, model, policy
from selfheal.cli import records, render
from selfheal.policy import trust as trust_mod

PolicyOption = Annotated[Path | None, typer.Option(
    "--policy", help="The policy file that says who holds which role (default: built-in).")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why: recorded in the ledger.")]


def _policy(path: Path | None) -> policy.Policy:
    return policy.load(path) if path else policy.parse(policy.default_text(),
                                                       "<built-in policy>")


def _decide(approval_id: str, state: str, reason: str, db: Path,
            policy_file: Path | None) -> None:
    if not reason.strip():
        raise errors.ConfigError("--reason", "--reason", "a reason is required")
    pol = _policy(policy_file)
    store = records.open_store(db)
    try:
        row = store.approval(approval_id)
        if row is None:
            raise errors.SelfhealError(f"no single approval matches {approval_id!r}")
        user = getpass.getuser()
        if not pol.holds_role(user, row["role"]):
            raise errors.PolicyDenied(f"{user} does not hold the role {row['role']!r} "
                                      f"({pol.source})")
        if row["state"] != "pending":
            raise errors.SelfhealError(f"approval {row['id']} is already {row['state']}")
        now = time.time()
        store.append_ledger(now, row["incident_id"], f"approval.{state}", {
            "approval": row["id"], "by": user, "role": row["role"], "reason": reason})
        if not store.decide_approval(row["id"], state, user, reason, now):
            raise errors.SelfhealError(f"approval {row['id']} was decided meanwhile")
    finally:
        store.close()
    Console(highlight=False).print(f"{row['id']}: {state} by {user} — {reason}")


def approve(approval_id: Annotated[str, typer.Argument(help="Approval id (prefix ok).")],
            reason: ReasonOption, db: records.DbOption = records.DEFAULT_DB,
            policy_file: PolicyOption = None) -> None:
    """Approve a plan waiting for a human; the agent then mints the permit and acts."""
    _decide(approval_id, "approved", reason, db, policy_file)


def reject(approval_id: Annotated[str, typer.Argument(help="Approval id (prefix ok).")],
           reason: ReasonOption, db: records.DbOption = records.DEFAULT_DB,
           policy_file: PolicyOption = None) -> None:
    """Reject a plan waiting for a human; it is never executed and trust drops."""
    _decide(approval_id, "rejected", reason, db, policy_file)


def approvals(db: records.DbOption = records.DEFAULT_DB,
              json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List approvals, pending ones first."""
    store = records.open_store(db)
    try:
        rows = store.approvals()
    finally:
        store.close()
    rows.sort(key=lambda r: (r["state"] != "pending", r["created_at"]))
    if json_out:
        render.print_json(rows)
        return
    table = Table("id", "incident", "state", "role", "plan", "expires (UTC)", "decided by")
    for r in rows:
        steps = "; ".join(f"{s['kind']} {s['service']}" for s in r["request"]["plan"]["steps"])
        table.add_row(r["id"], r["incident_id"], r["state"], r["role"], steps,
                      render.clock(r["expires_at"]), r["decided_by"])
    Console().print(table)


def trust(db: records.DbOption = records.DEFAULT_DB, policy_file: PolicyOption = None,
          json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Trust per (agent, action type), learned from outcomes, and the mode it gives."""
    pol = _policy(policy_file)
    store = records.open_store(db)
    try:
        rows = store.trust_rows()
    finally:
        store.close()
    out = []
    for r in rows:
        state = trust_mod.TrustState(
            agent=r["agent"], action=model.ActionKind(r["action"]), successes=r["successes"],
            failures=r["failures"], rejections=r["rejections"], since_bad=r["since_bad"],
            demoted=bool(r["demoted"]))
        base = pol.mode("*", state.action)
        mode, why = trust_mod.effective_mode(base, state, pol.doc.trust)
        out.append({**r, "demoted": bool(r["demoted"]), "score": round(state.score, 3),
                    "mode": mode.value, "why": why})
    if json_out:
        render.print_json(out)
        return
    table = Table("agent", "action", "successes", "failures", "rejections", "score", "mode",
                  "note")
    for o in out:
        table.add_row(o["agent"], o["action"], str(o["successes"]), str(o["failures"]),
                      str(o["rejections"]), f"{o['score']:.2f}", o["mode"], o["why"])
    Console().print(table)


def _subject(name: str) -> str:
    return name.strip()


def revoke(subject: Annotated[str, typer.Argument(help="An agent (e.g. selfheal) or an "
                                                   "action type (e.g. rollback).")],
           reason: ReasonOption, db: records.DbOption = records.DEFAULT_DB) -> None:
    """Revoke authority at once: in-flight executions stop and are undone; new proposals
    are denied until `selfheal restore`."""
    store = records.open_store(db)
    try:
        done = store.revoke(_subject(subject), getpass.getuser(), reason, time.time())
    finally:
        store.close()
    Console(highlight=False).print(f"{subject}: revoked" if done else
                                   f"{subject} was already revoked")


def restore(subject: Annotated[str, typer.Argument(help="What `selfheal revoke` revoked.")],
            reason: ReasonOption, db: records.DbOption = records.DEFAULT_DB) -> None:
    """Give back authority taken by `selfheal revoke`."""
    store = records.open_store(db)
    try:
        done = store.restore(_subject(subject), getpass.getuser(), reason, time.time())
    finally:
        store.close()
    Console(highlight=False).print(f"{subject}: restored" if done else
                                   f"{subject} was not revoked")


def policy_check(path: Annotated[Path, typer.Argument(help="The policy file to check.")],
                 json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Validate a policy file (fields, CEL conditions) and say what it does."""
    pol = policy.load(path)
    if json_out:
        render.print_json({"ok": True, "sha256": pol.hash, "rules": [r.name for r in
                                                                     pol.doc.rules]})
        return
    c = Console(highlight=False)
    c.print(f"[green]{path}: valid[/green] (sha256 {pol.hash[:12]})")
    c.print(f"  default mode: {pol.doc.modes.default}")
    for i, r in enumerate(pol.doc.rules, 1):
        when = ", ".join(a.value for a in r.when.actions) or "any action"
        cond = f" if {r.condition}" if r.condition else ""
        c.print(f"  {i}. {r.name}: {r.verdict} for {when} on {', '.join(r.when.services)}"
                f"{cond}")
    lim = pol.doc.limits
    c.print(f"  limits: ≤{lim.max_service_fraction:.0%} of a service and "
            f"≤{lim.max_fleet_fraction:.0%} of the fleet per {lim.window_s:.0f} s, "
            f"≤{lim.max_concurrent} in flight")
