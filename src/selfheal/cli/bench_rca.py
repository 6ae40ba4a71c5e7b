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

import pydantic
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from selfheal import config, errors, reasoners
from selfheal.bench import rca
from selfheal.cli import render
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
    reasoner: Annotated[
        str | None,
        typer.Option(help="Also ask a model for hypotheses: 'openai' (any OpenAI-compatible "
                     "endpoint)"),
    ] = None,
    base_url: Annotated[
        str, typer.Option(help="The reasoner's endpoint, e.g. http://127.0.0.1:8080/v1")
    ] = "http://127.0.0.1:8080/v1",
    model_name: Annotated[str, typer.Option("--model", help="The reasoner's model name")] = "",
    api_key_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the API key")
    ] = None,
    budget: Annotated[int, typer.Option(help="Token budget per case (prompt + answer)")] = 4000,
    timeout: Annotated[float, typer.Option(help="Seconds per model call")] = 60.0,
) -> None:
    """Diagnose every injected fault and score AC@k, fault type, calibration and abstention."""
    console = Console()
    err = Console(stderr=True)
    started = time.perf_counter()
    try:
        model_reasoner = None
        if reasoner is not None:
            if reasoner != "openai":
                raise errors.ConfigError("--reasoner", "", f"unknown reasoner {reasoner!r} "
                                         "(known: openai)")
            try:
                settings = config.Reasoner(enabled=True, base_url=base_url, model=model_name,
                                           api_key_env=api_key_env, timeout_s=timeout,
                                           max_tokens_per_incident=budget)
            except pydantic.ValidationError as exc:
                first = exc.errors()[0]
                raise errors.ConfigError("--reasoner", ".".join(map(str, first["loc"])),
                                         first["msg"]) from exc
            model_reasoner = reasoners.from_settings(settings)
        root = nezha.ensure_extracted(nezha_dir, cache or _default_cache())
        days = rca.plan(root, day)
    except (errors.SelfhealError, OSError) as exc:
        render.say(f"rca: {exc}")
        raise typer.Exit(2) from exc
    if not days:
        render.say(f"rca: no day {day!r} under {root / 'rca_data'}")
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

        cases = rca.run(days, horizon_s=horizon, on_case=tick, reasoner=model_reasoner,
                        budget_tokens=budget)
    seconds = time.perf_counter() - started
    scores = rca.by_system(cases)
    for system, score in scores.items():
        name = nezha.SYSTEM_NAMES.get(system, system)
        dates = ", ".join(sorted({c.day for c in cases if c.system == system}))
        table = Table(
            title=f"{name} ({dates}): {score.n} faults, service level",
            caption="* published on the full data (both days of the system)",
        )
        columns = (
            "method", "AC@1", "AC@3", "AC@5", "type acc", "ECE", "abstain", "AC@1 acted", "s/case"
        )
        for column in columns:
            table.add_column(column, justify="right" if column != "method" else "left")
        table.add_row(
            "[bold]selfheal (this run)[/bold]",
            f"[bold]{score.ac1 * 100:.2f}[/bold]",
            f"{score.ac3 * 100:.2f}",
            f"{score.ac5 * 100:.2f}",
            f"{score.type_acc * 100:.2f}",
            f"{score.ece:.3f}",
            f"{score.abstain * 100:.1f}%",
            "-" if score.selective_ac1 is None
            else f"{score.selective_ac1 * 100:.1f} ({score.acted})",
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
                "",
            )
        console.print(table)
    console.print(
        f"{len(cases)} faults in {seconds:.1f} s. Fault type is scored at selfheal's FaultKind "
        "granularity (cpu_* -> overload, network_delay -> latency, return/exception -> errors); "
        "ECE is over the top hypothesis' probability; abstain = diagnosis not sufficient to act; "
        "AC@1 acted = AC@1 among the cases it did not abstain on (their number)."
    )
    if model_reasoner is not None:
        failed = sum(bool(c.model_error) for c in cases)
        console.print(
            f"Reasoner {reasoner} model {model_name!r} at {base_url}: {len(cases)} calls, "
            f"{failed} unusable answers, {sum(c.model_refused for c in cases)} refused parts, "
            f"{sum(c.model_tokens for c in cases)} tokens; the metrics above include its "
            "hypotheses (weighed as MODEL evidence)."
        )
        if verbose:
            for error in sorted({c.model_error for c in cases if c.model_error})[:10]:
                err.print(f"reasoner error: {error}")
    if as_json:
        payload: dict[str, object] = {
            system: score.as_json() for system, score in scores.items()}
        if model_reasoner is not None:
            payload["reasoner"] = {
                "kind": reasoner, "model": model_name, "calls": len(cases),
                "unusable": sum(bool(c.model_error) for c in cases),
                "refused_parts": sum(c.model_refused for c in cases),
                "tokens": sum(c.model_tokens for c in cases)}
        sys.stdout.write(json.dumps(payload, sort_keys=True) + "\n")
        sys.stdout.flush()


def register(app: typer.Typer) -> None:
    app.command("rca")(rca_command)
