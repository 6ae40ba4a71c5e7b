"""`selfheal bench nab` and `selfheal bench detect-scale`: the detection benchmarks.

Registered on the bench group by `register(app)` (see cli/bench.py). Each prints a Rich table;
with `--json` the last line of stdout is one JSON object. Progress goes to stderr.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from selfheal import errors
from selfheal.bench import detect_scale, nab, nab_plot, nab_score
from selfheal.cli import render
from selfheal.detect import settings as settings_mod


class NabConfig(enum.StrEnum):
    """Which detector `bench nab` scores."""

    NAB = "nab"
    """The one configuration tuned for NAB, scored by its ranking score (`nab.run`)."""
    PRODUCT = "product"
    """The product defaults, scored by the alarms they raise (`nab.product_alarms`)."""


class Season(enum.StrEnum):
    """`detect.season`: what the product's baselines learn of a series' rhythm."""

    WEEKLY = "weekly"
    DAILY = "daily"
    OFF = "off"


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def nab_command(
    data: Annotated[Path, typer.Option(help="NAB-layout folder: data/<category>/*.csv, labels/")],
    out: Annotated[
        Path | None, typer.Option(
            help="Write NAB result CSVs under this folder (its selfheal/ and plots/ are "
            "replaced whole when the run is done; nothing else in it is touched)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object last")] = False,
    robustness: Annotated[
        bool,
        typer.Option(
            "--robustness",
            help=f"Also score the {nab.NEIGHBOURS} "
            "neighbouring configurations (each tuned knob moved one step each way) and print "
            "the mean and minimum over them and the configuration: the more honest figure "
            "for unseen series (about 15 minutes)",
        ),
    ] = False,
    per_file: Annotated[
        int,
        typer.Option(
            "--per-file",
            help="Also list the N files that cost the most on the standard profile (0: none)",
        ),
    ] = 0,
    config: Annotated[
        NabConfig,
        typer.Option(
            "--config",
            help="nab: the one configuration tuned for NAB, scored by its ranking score at the "
            "corpus-wide threshold NAB's rules choose. product: the product defaults that "
            "`selfheal serve` and the demo use, scored by the alarms they raise (no threshold "
            "to choose): what the shipped detector does on these series",
        ),
    ] = NabConfig.NAB,
    season: Annotated[
        Season,
        typer.Option(
            help="With --config product: the product's seasonality (`detect.season`), "
            "weekly (the default), daily or off",
        ),
    ] = Season.WEEKLY,
) -> None:
    """Run the detector online over every NAB file and score it (three profiles).

    With --out, also writes one picture per file (series, windows, score, detections) and an
    index page ranking the files by what they cost: DIR/plots/index.html.
    """
    console = Console()
    err = Console(stderr=True)
    product = config is NabConfig.PRODUCT
    if not product and season is not Season.WEEKLY:
        render.say("nab: --season sets the product's seasonality; use it with --config product")
        raise typer.Exit(2)
    if product and robustness:
        render.say("nab: --robustness measures the neighbours of the NAB configuration; "
                   "it does not apply to --config product")
        raise typer.Exit(2)
    blocked = _unwritable(out) if out is not None else None
    if blocked:
        render.say(f"nab: --out {out}: {blocked}")
        raise typer.Exit(2)
    try:
        files = nab.load(data)
    except errors.SelfhealError as exc:
        render.say(f"nab: {exc}")
        raise typer.Exit(2) from exc
    started = time.perf_counter()
    with Progress(
        TextColumn("[bold]NAB[/bold] {task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task(f"{len(files)} files, one configuration", total=1)

        def tick(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        scores = (
            nab.product_alarms(
                files, settings_mod.Settings(**settings_mod.season_overrides(season.value)),
                progress=tick)
            if product else nab.run(files, progress=tick)
        )
    seconds = time.perf_counter() - started
    if product:
        results = [nab_score.score(files, scores, p, threshold=nab.PRODUCT_ALARM)
                   for p in nab_score.PROFILES]
    else:
        results = nab_score.score_all(files, scores)
    standard = results[0]
    breakdown = nab_score.per_file(files, scores, nab_score.PROFILES[0], standard.threshold)
    # the halves choose a threshold on one half for the other: the product has none to choose
    split = [] if product else nab_score.halves(files, scores)
    index = None
    if out is not None:
        try:
            index = _write_out(out, files, scores, standard, breakdown)
        except OSError as exc:
            render.say(f"nab: --out {out}: cannot write the results: {exc.strerror or exc}")
            raise typer.Exit(1) from exc

    table = Table(title=f"NAB: {len(files)} files, {sum(len(f.windows) for f in files)} windows")
    table.add_column("detector")
    for p in nab_score.PROFILES:
        table.add_column(p.name, justify="right")
    table.add_row(
        f"[bold]{nab.DETECTOR_NAME}[/bold] "
        f"({f'product defaults, season {season}, ' if product else ''}this run)",
        *(f"[bold]{r.normalized:.2f}[/bold]" for r in results),
    )
    for name, *published in nab.PUBLISHED:
        table.add_row(name, *(f"{v:.2f}" for v in published))
    console.print(table)
    detail = Table(title="every alarm the product raises (no threshold)" if product
                   else "at the corpus-wide threshold of each profile")
    for col in ("profile", "threshold", "raw", "TP windows", "FN windows", "FP rows"):
        detail.add_column(col, justify="right")
    for r in results:
        detail.add_row(
            r.profile, f"{r.threshold:.4f}", f"{r.raw:.2f}", str(r.tp), str(r.fn), str(r.fp)
        )
    console.print(detail)
    halves_table = Table(
        title="halves (alternate files): own threshold / threshold chosen on the other half"
    )
    halves_table.add_column("half")
    halves_table.add_column("files", justify="right")
    for p in nab_score.PROFILES:
        halves_table.add_column(p.name, justify="right")
    for h in split:
        halves_table.add_row(
            h.name,
            str(h.files),
            *(
                f"{h.own.get(p.name, math.nan):.2f} / {h.held_out.get(p.name, math.nan):.2f}"
                for p in nab_score.PROFILES
            ),
        )
    if split:
        console.print(halves_table)
    if per_file > 0:
        worst = sorted(breakdown, key=lambda r: -r.loss)[:per_file]
        costly = Table(title=f"the {len(worst)} costliest files (standard profile)")
        for name in ("file", "found", "FP rows", "raw", "loss", "onsets"):
            if name == "file":
                costly.add_column(name, max_width=24, overflow="ellipsis", no_wrap=True)
            else:
                costly.add_column(name, justify="left" if name == "onsets" else "right")
        for fs in worst:
            onsets = " ".join("miss" if o is None else f"{o:.2f}" for o in fs.onsets)
            costly.add_row(
                Path(fs.name).stem,
                f"{fs.tp}/{fs.windows}",
                str(fs.fp),
                f"{fs.raw:+.2f}",
                f"{fs.loss:.2f}",
                onsets,
            )
        console.print("onsets: where each window's first detection fell (0 = its start)")
        console.print(costly)
    console.print(f"{sum(len(f.values) for f in files)} rows in {seconds:.1f} s")
    if index is not None:
        console.print(f"pictures: {index}")
    neighbours = None
    if robustness:
        neighbours = nab.perturbed(files)
        rob = Table(title=f"over the configuration and its {nab.NEIGHBOURS} neighbours")
        rob.add_column("")
        for p in nab_score.PROFILES:
            rob.add_column(p.name, justify="right")
        for stat in ("mean", "min"):
            rob.add_row(stat, *(f"{neighbours[p.name][stat]:.2f}" for p in nab_score.PROFILES))
        console.print(rob)
    absent = nab.missing(data)
    if absent:
        console.print(
            f"[yellow]note:[/yellow] {len(absent)} labelled file(s) have no data and are not "
            f"scored ({', '.join(absent)}); the published scores include them, so the "
            "comparison is approximate"
        )
    if as_json:
        extra: dict[str, Any] = {}
        if neighbours is not None:
            extra["perturbed"] = neighbours
        _print_json(
            {
                **extra,
                "benchmark": "nab",
                "detector": nab.DETECTOR_NAME,
                "config": config.value,
                **({"season": season.value} if product else {}),
                "files": len(files),
                "windows": sum(len(f.windows) for f in files),
                "missing_files": absent,
                "seconds": round(seconds, 3),
                "scores": {r.profile: round(r.normalized, 2) for r in results},
                "halves": {
                    h.name: {"files": h.files, "scores": h.own, "held_out": h.held_out}
                    for h in split
                },
                "profiles": [dataclasses.asdict(r) for r in results],
                "per_file": [
                    {k: v for k, v in dataclasses.asdict(fs).items() if k != "detections"}
                    for fs in breakdown
                ],
                "published": {
                    name: dict(zip([p.name for p in nab_score.PROFILES], vals, strict=True))
                    for name, *vals in nab.PUBLISHED
                },
            }
        )


def _unwritable(out: Path) -> str | None:
    """Why `--out` cannot be the results' folder (checked before the run), or None."""
    if out.exists() and not out.is_dir():
        return "exists and is not a folder"
    for above in out.parents:
        if above.exists():
            return None if above.is_dir() else f"{above} is not a folder"
    return None


def _write_out(out: Path, files: Sequence[nab.NabFile], scores: Sequence[nab.F64],
               standard: nab_score.ProfileScore, breakdown: Sequence[nab_score.FileScore]
               ) -> Path:
    """The result CSVs and the pictures, written beside `out` first and moved into it once
    all are written: a failure part-way leaves the folder as it was. Returns the index page."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        nab.write_results(tmp, files, scores)
        index = nab_plot.write(tmp, files, scores, standard, breakdown)
        out.mkdir(exist_ok=True)
        for part in sorted(tmp.iterdir()):
            target = out / part.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            part.rename(target)
        return out / index.relative_to(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def detect_scale_command(
    series: Annotated[int, typer.Option(help="How many series to update each tick")] = 100_000,
    ticks: Annotated[int, typer.Option(help="Timed ticks")] = 100,
    season: Annotated[
        Season,
        typer.Option(
            help="The product's seasonality (`detect.season`): weekly (the default: a daily "
            "profile of the level plus the hour of the week), daily, or off",
        ),
    ] = Season.WEEKLY,
    nab_config: Annotated[
        bool,
        typer.Option(help="The NAB configuration (seasonal, weighted, record, novelty) instead"),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object last")] = False,
) -> None:
    """Update N series tick by tick with the vectorised core; report updates/s and state."""
    if series < 1 or ticks < 1:
        render.say("detect-scale: --series and --ticks must be >= 1")
        raise typer.Exit(2)
    if nab_config:
        cfg = nab.nab_settings()
        title = "the NAB configuration"
    else:
        cfg = settings_mod.Settings(**settings_mod.season_overrides(season.value))
        title = "product defaults" + ("" if season is Season.WEEKLY else f", season {season}")
    try:
        result = detect_scale.run(
            series=series, ticks=ticks, settings=cfg, novel=nab.NOVELTY if nab_config else None
        )
    except MemoryError as exc:
        render.say(f"detect-scale: not enough memory for {series:,} series ({exc}); try "
                   "fewer --series")
        raise typer.Exit(1) from exc
    table = Table(title=f"detection at scale (one core, NumPy, {title})")
    for col in ("series", "ticks", "seconds", "updates/s", "bytes/series", "firing"):
        table.add_column(col, justify="right")
    table.add_row(
        f"{result.series:,}",
        str(result.ticks),
        f"{result.seconds:.2f}",
        f"{result.updates_per_s:,.0f}",
        f"{result.bytes_per_series:.0f}",
        f"{100 * result.firing_fraction:.2f}%",
    )
    Console().print(table)
    if result.saved_bytes_per_series:
        render.say(f"saved state: {result.saved_bytes_per_series:.0f} bytes a series, "
                   f"saved in {result.save_s:.2f} s, loaded into a detector in "
                   f"{result.load_s:.2f} s (what a restart of `selfheal serve` pays); the "
                   f"loaded detector holds {result.detector_bytes_per_series:.0f} bytes a "
                   "series with the names and their index")
    if as_json:
        _print_json(
            {
                "series": result.series,
                "updates_per_s": round(result.updates_per_s),
                "bytes_per_series": round(result.bytes_per_series, 1),
                "ticks": result.ticks,
                "season": "nab" if nab_config else season.value,
                "config": "nab" if nab_config else "product",
                "seconds": round(result.seconds, 3),
                "saved_bytes_per_series": round(result.saved_bytes_per_series, 1),
                "save_s": round(result.save_s, 3),
                "load_s": round(result.load_s, 3),
                "detector_bytes_per_series": round(result.detector_bytes_per_series, 1),
            }
        )


def register(app: typer.Typer) -> None:
    """Add the detection benchmarks to the `selfheal bench` group."""
    app.command("nab")(nab_command)
    app.command("detect-scale")(detect_scale_command)
