"""`selfheal bench rca`: root-cause analysis on Nezha's fault-injection data.

Registered on the bench group by `register(app)` (see cli/bench.py). Extracts the archives once
into a cache folder, diagnoses every fault with one configuration, prints a Rich table beside
the published results; with `--json` the last line of stdout is one JSON object. Progress and
per-case lines (`--verbose`) go to stderr.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from selfheal import errors
from selfheal.bench import rca
from selfheal.sources import nezha


def _default_cache() -> Path:
    return Path.cwd() / ".selfheal" / "cache" / "nezha"


def rca_command(
    nezha_dir: Annotated[
        Path,
        typer.Option("--nezha", help="Folder with nezha-*.tar.xz (or an extracted rca_data/ tree)"),
    ],
    day: Annotated[str | None, typer.Option(help="Only this day, e.g. 2023-01-30")] = None,
    cache: Annotated[
        Path | None,
        typer.Option(help="Where archives are extracted once (default .selfheal/cache/nezha)"),
    ] = None,
    horizon: Annotated[
        float, typer.Option(help="Seconds of data after each injection that may be read")
    ] = 180.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object last")] = False,
    verbose: Annotated[bool, typer.Option(help="One line per case on stderr")] = False,
) -> None:
    """Diagnose every injected fault and score AC@k, fault type, calibration and abstention."""
    console = Console()
    err = Console(stderr=True)
    started = time.perf_counter()
    try:
        root = nezha.ensure_extracted(nezha_dir, cache or _default_cache())
        days = rca.plan(root, day)
    except (errors.SelfhealError, OSError) as exc:
        err.print(f"[red]rca:[/red] {exc}")
        raise typer.Exit(2) from exc
    if not days:
        err.print(f"[red]rca:[/red] no day {day!r} under {root / 'rca_data'}")
        raise typer.Exit(2)
    total = sum(len(d.faults) for d in days)
    with Progress(
        TextColumn("[bold]Nezha RCA[/bold] {task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task(f"{total} faults, one configuration", total=total)

        def tick(case: rca.Case) -> None:
            progress.advance(task)
            if verbose:
                mark = "ok " if case.hit(1) else f"r{case.rank}"
                err.print(
                    f"{mark:5} {case.system:7} {case.fault.kind:15} {case.fault.service:30} "
                    f"top={list(case.ranked[:3])} p={case.top_probability:.2f} "
                    f"sufficient={case.sufficient} {case.top_fault.value}"
                )

        cases = rca.run(days, horizon_s=horizon, on_case=tick)
    seconds = time.perf_counter() - started
    scores = rca.by_system(cases)
    for system, score in scores.items():
        name = nezha.SYSTEM_NAMES.get(system, system)
        dates = ", ".join(sorted({c.day for c in cases if c.system == system}))
        table = Table(
            title=f"{name} ({dates}): {score.n} faults, service level",
            caption="* published on the full data (both days of the system)",
        )
        for column in ("method", "AC@1", "AC@3", "AC@5", "type acc", "ECE", "abstain", "s/case"):
            table.add_column(column, justify="right" if column != "method" else "left")
        table.add_row(
            "[bold]selfheal (this run)[/bold]",
            f"[bold]{score.ac1 * 100:.2f}[/bold]",
            f"{score.ac3 * 100:.2f}",
            f"{score.ac5 * 100:.2f}",
            f"{score.type_acc * 100:.2f}",
            f"{score.ece:.3f}",
            f"{score.abstain * 100:.1f}%",
            f"{score.s_per_case:.2f}",
        )
        for method, (a1, a3, a5) in rca.PUBLISHED.get(system, {}).items():
            table.add_row(
                f"{method} *",
                f"{a1:.2f}",
                f"{a3:.2f}",
                f"{a5:.2f}",
                "",
                "",
                "",
                "",
            )
        console.print(table)
    console.print(
        f"{len(cases)} faults in {seconds:.1f} s. Fault type is scored at selfheal's FaultKind "
        "granularity (cpu_* -> overload, network_delay -> latency, return/exception -> errors); "
        "ECE is over the top hypothesis' probability; abstain = diagnosis not sufficient to act."
    )
    if as_json:
        payload = {system: score.as_json() for system, score in scores.items()}
        sys.stdout.write(json.dumps(payload, sort_keys=True) + "\n")
        sys.stdout.flush()


def register(app: typer.Typer) -> None:
    app.command("rca")(rca_command)
