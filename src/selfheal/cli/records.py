"""Commands that read what selfheal recorded: incidents, one incident, the ledger's integrity."""

from __future__ import annotations

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


def _open(db: Path) -> sql.SqlStore:
    if not db.is_file():
        raise errors.ConfigError(str(db), "--db", "no such database file")
    return sql.SqlStore(sql.sqlite_url(db), create=False)


def ledger_verify(db: DbOption = Path(".selfheal/selfheal.db"),
                  json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Check the hash chain: exit 0 when intact; exit 1 naming the first changed, removed or
    reordered entry otherwise."""
    store = _open(db)
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


def incidents(db: DbOption = Path(".selfheal/selfheal.db"),
              json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List incidents, oldest first."""
    store = _open(db)
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
         db: DbOption = Path(".selfheal/selfheal.db"),
         json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show one incident: diagnosis with its evidence, actions, verification and timeline."""
    store = _open(db)
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

