"""Commands that read what selfheal recorded: incidents, one incident, the ledger's integrity."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from selfheal import errors
from selfheal.cli import render
from selfheal.store import sql

DbOption = Annotated[Path, typer.Option("--db", help="The SQLite database "
                                        "(default .selfheal/selfheal.db).")]
DEFAULT_DB = Path(".selfheal/selfheal.db")


def open_store(db: Path) -> sql.SqlStore:
    if not db.is_file():
        raise errors.ConfigError(str(db), "--db", "no such database file")
    return sql.SqlStore(sql.sqlite_url(db), create=False)


def ledger_verify(db: DbOption = DEFAULT_DB,
                  json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Check the hash chain: exit 0 when intact; exit 1 naming the first changed, removed or
    reordered entry otherwise."""
    store = open_store(db)
    try:
        try:
            count = store.verify_ledger()
        except errors.LedgerCorrupt as exc:
            if json_out:
                render.print_json({"ok": False, "first_bad_seq": exc.seq,
                                   "problem": exc.problem})
            raise
    finally:
        store.close()
    if json_out:
        render.print_json({"ok": True, "entries": count})
    else:
        Console(highlight=False).print(f"[green]ledger intact[/green]: {count} entries, "
                                       "hash chain verified")


def incidents(db: DbOption = DEFAULT_DB,
              json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List incidents, oldest first."""
    store = open_store(db)
    try:
        rows = store.incidents()
    finally:
        store.close()
    if json_out:
        render.print_json([{k: r[k] for k in ("id", "service", "opened_at", "state", "title")}
                           for r in rows])
        return
    table = Table("id", "opened (UTC)", "service", "state", "title")
    for r in rows:
        table.add_row(r["id"], render.clock(r["opened_at"]), r["service"], r["state"],
                      r["title"])
    Console().print(table)


def show(incident_id: Annotated[str, typer.Argument(help="Incident id (a unique prefix "
                                                    "will do).")],
         db: DbOption = DEFAULT_DB,
         json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show one incident: diagnosis with its evidence, actions, verification and timeline."""
    store = open_store(db)
    try:
        row = store.incident(incident_id)
        entries = store.ledger(row["id"]) if row else []
    finally:
        store.close()
    if row is None:
        raise errors.SelfhealError(f"no single incident matches {incident_id!r}")
    if json_out:
        render.print_json({**row, "ledger": [{"seq": e.seq, "ts": e.ts, "kind": e.kind,
                                              "payload": e.payload} for e in entries]})
        return
    c = Console(highlight=False)
    d: dict[str, Any] = row["detail"]
    c.print(f"[bold]{row['id']}[/bold]  {row['title']}  [{row['state']}]")
    diag = d.get("diagnosis") or {}
    for i, h in enumerate(diag.get("hypotheses", [])[:3]):
        c.print(f"  #{i + 1} {h['service']} {h['fault']} p={h['probability']:.2f} "
                f"{h.get('summary', '')}")
        if i == 0:
            for ev in h["evidence_for"]:
                c.print(f"      • [{ev['kind']}] {ev['observation']}")
    if diag and not diag.get("sufficient"):
        c.print(f"  [yellow]insufficient evidence[/yellow]: {'; '.join(diag.get('missing', []))}")
    for x in d.get("executions") or []:
        c.print(f"  action: {x['action']['kind']} {x['action']['service']} → {x['status']} "
                f"({x['detail']})")
    ver = d.get("verification")
    if ver:
        c.print(f"  verification: {'passed' if ver['passed'] else 'FAILED'}")
        for chk in ver["checks"]:
            c.print(f"      {chk['detail']}")
    c.print("  timeline:")
    for e in entries:
        c.print(f"    {render.clock(e.ts)}  #{e.seq:<4} {e.kind}")
    if d.get("postmortem"):
        c.print(f"  postmortem: {d['postmortem']}")



def ledger_replay(incident_id: Annotated[str, typer.Argument(help="Incident id (prefix ok).")],
                  db: DbOption = DEFAULT_DB,
                  json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Replay an incident from the ledger alone: signal → evidence → hypotheses → decision
    (rule, policy hash) → each platform call → verification → outcome. The chain is verified
    first; a broken chain is refused."""
    store = open_store(db)
    try:
        store.verify_ledger()
        row = store.incident(incident_id)
        if row is None:
            raise errors.SelfhealError(f"no single incident matches {incident_id!r}")
        entries = store.ledger(row["id"])
    finally:
        store.close()
    steps = [replay_step(e.kind, e.payload) for e in entries]
    if json_out:
        render.print_json({"incident": row["id"], "steps": [
            {"seq": e.seq, "ts": e.ts, "kind": e.kind, "summary": s, "hash": e.hash}
            for e, s in zip(entries, steps, strict=True)]})
        return
    c = Console(highlight=False)
    c.print(f"[bold]{row['id']}[/bold] {row['title']} — replayed from {len(entries)} verified "
            "ledger entries")
    for e, s in zip(entries, steps, strict=True):
        c.print(f"  {render.clock(e.ts)} #{e.seq:<5} {e.kind:<20} {s}")


def replay_step(kind: str, p: Mapping[str, Any]) -> str:
    """One line a human reads for one ledger entry."""
    if kind == "incident.opened":
        inc = p["incident"]
        sig = "; ".join(a["explanation"] for a in inc["anomalies"][:2] if not a["expected"])
        return f"{inc['title']}: {sig}"
    if kind == "diagnosis":
        d = p["diagnosis"]
        hyps = ", ".join(f"{h['service']}/{h['fault']} {h['probability']:.2f}"
                         for h in d["hypotheses"][:3])
        ev = len([e for e in d["evidence"] if e["status"] == "ok"])
        return f"{ev} evidence; hypotheses {hyps}; sufficient={d['sufficient']}"
    if kind == "plan":
        return "; ".join(f"{s['kind']} {s['service']}" for s in p["plan"]["steps"])
    if kind == "decision":
        d = p["decision"]
        return f"{d['verdict']} by rule {d['rule']} (policy {d['policy_hash'][:12]})"
    if kind == "execution.intent":
        return f"intent {p['phase']}: {p['action']['kind']} {p['action']['service']}"
    if kind == "execution.result":
        x = p["execution"]
        return f"{p['phase']}: {x['status']} — {x['detail']}"
    if kind.startswith("verification"):
        v = p["verification"]
        return ("passed" if v["passed"] else "FAILED") + ": " + \
            "; ".join(c["detail"] for c in v["checks"])
    if kind in ("escalation", "merged"):
        return str(p.get("reason", ""))
    if kind.startswith("approval."):
        return f"{p.get('approval', '')} {p.get('by', '')} {p.get('reason', '')}".strip()
    if kind == "trust":
        return f"{p['action']} {p['outcome']} → score {p['score']:.2f}"
    return ", ".join(f"{k}={v}" for k, v in p.items() if isinstance(v, str | int | float))[:160]


def ledger_export(db: DbOption = DEFAULT_DB,
                  out: Annotated[Path | None, typer.Option(help="File to write (default "
                                                           "stdout).")] = None) -> None:
    """Export the whole ledger as JSON Lines (one entry a line, with its hashes)."""
    store = open_store(db)
    try:
        lines = [json.dumps({"seq": r.seq, "ts": r.ts, "incident_id": r.incident_id,
                             "kind": r.kind, "payload": json.loads(r.payload),
                             "prev_hash": r.prev_hash, "hash": r.hash}, sort_keys=True)
                 for r in store.ledger_rows()]
    finally:
        store.close()
    text = "".join(line + "\n" for line in lines)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        Console(stderr=True).print(f"{len(lines)} entries written to {out}")
