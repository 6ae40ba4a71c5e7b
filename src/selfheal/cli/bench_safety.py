"""`selfheal bench safety`: gate decisions and ledger appends per second."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, TaskID
from rich.table import Table

from selfheal.bench import safety
from selfheal.cli import render


def register(app: typer.Typer) -> None:
    app.command("safety")(bench_safety)


def bench_safety(
    decisions: Annotated[int, typer.Option(help="Gate decisions to time.", min=100)] = 20_000,
    appends: Annotated[int, typer.Option(help="Ledger appends to time.", min=10)] = 2_000,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object last.")]
    = False,
) -> None:
    """Policy-gate decisions per second (CEL rules, caps, signing) and durable SQLite ledger
    appends per second."""
    console = Console(stderr=json_out)
    with Progress(console=console, transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done)

        result = safety.run(decisions, appends, progress)
    table = Table("measure", "count", "per second")
    table.add_row("gate decisions", str(result.gate_decisions),
                  f"{result.gate_decisions_per_s:,.0f}")
    table.add_row("ledger appends (SQLite, durable)", str(result.ledger_appends),
                  f"{result.ledger_appends_per_s:,.0f}")
    console.print(table)
    if json_out:
        render.print_json(dataclasses.asdict(result))
