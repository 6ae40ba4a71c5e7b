"""`selfheal bench scenarios`: the healing scenario suite, selfheal beside the reflex baseline.

Registered on the bench group by `register(app)` (see cli/bench.py). Runs each scenario of
`selfheal.scenarios.catalog` on real processes with each agent, `--parallel` runs at a time
(each in its own process, with its own shop), prints one table row per run and the totals;
with `--json` the last line of stdout is `{"scenarios": [...], "totals": {...}}`. Progress
goes to stderr.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from selfheal.bench import scenarios as bench
from selfheal.cli import render
from selfheal.scenarios import catalog


def register(app: typer.Typer) -> None:
    app.command("scenarios")(scenarios_command)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def scenarios_command(
    only: Annotated[list[str] | None, typer.Option(
        "--only", help="Run only this scenario (repeatable)")] = None,
    repeat: Annotated[int, typer.Option(help="Run the suite this many times", min=1)] = 1,
    agent: Annotated[list[str] | None, typer.Option(
        help="selfheal and/or reflex (default both)")] = None,
    workdir: Annotated[Path, typer.Option(help="Where runs keep their files")] =
    Path(".selfheal") / "bench-scenarios",
    baseline: Annotated[float, typer.Option(help="Seconds of baseline before injecting",
                                            min=10)] = 30.0,
    timeout: Annotated[float, typer.Option(help="Seconds a run may take after injecting",
                                           min=30)] = 100.0,
    parallel: Annotated[int, typer.Option(
        help="Runs at a time, each in its own process with its own shop (the suite takes "
             "about 40 min one at a time on 2 cores)", min=1, max=8)] = 2,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object last.")]
    = False,
    verbose: Annotated[bool, typer.Option(help="Narrate each run on stderr")] = False,
) -> None:
    """Break the shop ten ways on real processes; measure selfheal and reflexes healing it."""
    err = Console(stderr=True)
    out = Console(stderr=json_out)
    names = [s.name for s in catalog.SCENARIOS]
    for name in only or []:
        if name not in names:
            render.say(f"scenarios: no scenario {name!r}; known: {', '.join(names)}")
            raise typer.Exit(2)
    agents = tuple(a for a in bench.AGENTS if not agent or a in agent)
    if not agents:
        render.say("scenarios: --agent must be selfheal or reflex")
        raise typer.Exit(2)
    settings = bench.Settings(baseline_s=baseline, timeout_s=timeout)
    started = time.perf_counter()

    def on_run(run: bench.Run) -> None:
        mark = "[green]resolved[/green]" if run.resolved else "[red]not resolved[/red]"
        err.print(f"{run.name} / {run.agent}: {mark} mttr {_fmt(run.mttr_s)} s, "
                  f"{run.actions} action(s), {run.harmful_actions} harmful, escalated "
                  f"{run.escalated} ({run.wall_s:.0f} s) {run.note[:160]}")

    runs = asyncio.run(bench.run_suite(
        only or names, agents, repeat, workdir.resolve(), settings, on_run,
        (lambda s: err.print(f"[dim]{s}[/dim]")) if verbose else (lambda s: None),
        parallel=parallel, verbose=verbose))
    table = Table("scenario", "agent", "expect", "resolved", "ttd s", "ttdiag s", "mttr s",
                  "actions", "harmful", "escalated")
    for r in runs:
        table.add_row(r.name, r.agent, r.expect, "yes" if r.resolved else "no", _fmt(r.ttd_s),
                      _fmt(r.ttdiag_s), _fmt(r.mttr_s), str(r.actions), str(r.harmful_actions),
                      "yes" if r.escalated else "no")
    out.print(table)
    tot = bench.totals(runs)
    for name, t in tot.items():
        out.print(f"{name}: resolved {t['resolved']}/{t['runs']}, median MTTR "
                  f"{_fmt(t['median_mttr_s'])} s, {t['actions']} actions, "
                  f"{t['harmful_actions']} harmful, {t['escalations']} escalations")
    out.print(f"suite wall time {time.perf_counter() - started:.0f} s")
    if json_out:
        render.print_json({"scenarios": [r.row() for r in runs], "totals": tot,
                           "wall_s": round(time.perf_counter() - started, 1)})
