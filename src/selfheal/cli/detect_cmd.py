"""`selfheal detect FILE`: what the shipped detector would have reported on your own series."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Annotated

import pydantic
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from selfheal import config as config_mod
from selfheal import errors, replay, replay_plot
from selfheal.cli import render
from selfheal.detect import expiry
from selfheal.engine.controller import detector_settings
from selfheal.sources import prometheus


def detect(
    samples_csv: Annotated[Path | None, typer.Argument(
        metavar="FILE",
        help="A CSV of your series, one sample a row: timestamp,service,metric,value "
        "(timestamp in Unix seconds or ISO 8601, UTC unless it says otherwise; an empty or "
        "NaN value is a missing sample; more columns are ignored). Or --prometheus")] = None,
    prometheus_url: Annotated[str | None, typer.Option(
        "--prometheus", metavar="URL",
        help="Read the series from this Prometheus instead of a FILE: the signals `selfheal "
        "serve` would watch (the queries, service label and rate window of --config's "
        "sources.prometheus, or the defaults) over the last --days, one point every --step "
        "seconds")] = None,
    days: Annotated[float, typer.Option(
        help="With --prometheus: how many days back to read", min=0.01, max=35)] = 7.0,
    step: Annotated[float, typer.Option(
        help="With --prometheus: seconds between two points (a week at 60 s is 10,080 "
        "ticks)", min=1, max=3600)] = 60.0,
    changes: Annotated[Path | None, typer.Option(
        help="A CSV of the deploys and config changes of the same time: "
        "timestamp,service,kind[,what,to_version,who]. An episode that starts inside a "
        "change's settle window is expected and opens no incident unless it outlasts it")] = None,
    config: Annotated[Path | None, typer.Option(
        help="selfheal's config file: its detect section (season, report_z, slo, settle_s, "
        "...) and maintenance windows apply, as in `selfheal serve`")] = None,
    plot: Annotated[Path | None, typer.Option(
        help="Write an HTML page with a picture of every series that had an episode "
        "reported: the episodes, whether each would open an incident, and the changes")] = None,
    top: Annotated[int, typer.Option(
        help="Episodes listed in the table (all of them are in --json)", min=0)] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object last")] = False,
) -> None:
    """Run the product detector over exported series, offline, and list what it would have
    reported: each episode with its explanation, whether it was expected (a deploy's settle
    window, a maintenance window) and whether its service's fused finding would have opened
    an incident (a page).

    The detector is the one `selfheal serve` uses, with your config's detect section; it sees
    the rows in time order, each tick only the past, as it would live. Use it to judge the
    pages on series you know before selfheal watches anything.

    Examples: selfheal detect metrics.csv --changes deploys.csv --plot detect.html;
    selfheal detect --prometheus http://prometheus:9090 --days 7 --plot week.html
    """
    err = Console(stderr=True)
    if (samples_csv is None) == (prometheus_url is None):
        render.say("detect: give either a FILE of samples or --prometheus URL (one of them)")
        raise typer.Exit(2)
    try:
        cfg = config_mod.load(config)
        change_list = replay.read_changes(changes) if changes is not None else ()
        if samples_csv is not None:
            samples = replay.read_samples(samples_csv)
    except errors.SelfhealError as exc:
        render.say(f"detect: {exc}")
        raise typer.Exit(2) from exc
    if prometheus_url is not None:
        samples = _from_prometheus(cfg, prometheus_url, days, step, err)
    if samples.aligned_s:
        merged = f" ({samples.merged} sample(s) on a point their series had: the later kept)" \
            if samples.merged else ""
        render.say(f"detect: the series were sampled at different moments: aligned to one "
                   f"{samples.aligned_s:g} s grid, one tick a point{merged}")
    maintenance = tuple((m.start, m.end, m.service) for m in cfg.maintenance)
    if samples.spacing_s > replay.COARSE_S and not cfg.detect.min_scale:
        render.say(
            f"detect: the samples are {samples.spacing_s:g} s apart; the default noise floors "
            "suit rates over ~10 s windows (an error ratio's is 2 points), so on smoother "
            "series a jump may be seen late: consider `detect.min_scale` in --config "
            "(README: Your own series, offline)")
    with Progress(TextColumn("[bold]detect[/bold] {task.description}"), BarColumn(),
                  TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(),
                  console=err, transient=True) as progress:
        task = progress.add_task(
            f"{len(samples.series)} series, {len(samples.ticks)} ticks", total=1)
        result = replay.run(
            samples, detector_settings(cfg.detect), change_list, maintenance,
            settle_s=cfg.detect.settle_s,
            progress=lambda done, total: progress.update(task, completed=done, total=total))
    for note in result.notes:
        render.say(f"detect: {note}")
    drawn = None
    if plot is not None:
        try:
            drawn = replay_plot.write(plot, samples, result, change_list)
        except OSError as exc:
            render.say(f"detect: cannot write {plot}: {exc.strerror or exc}")
            raise typer.Exit(1) from exc

    table = Table(title=f"{len(result.episodes)} episode(s) reported on {result.series} "
                  f"series over {result.ticks} ticks; {result.incidents} incident(s) opened")
    for name in ("started (UTC)", "series", "detector", "score", "verdict", "explanation"):
        table.add_column(name, justify="right" if name == "score" else "left",
                         overflow="fold", min_width=11 if name == "started (UTC)" else None)
    for e in result.episodes[:top]:
        verdict = ("expected" if e.expected else
                   "[red]incident[/red]" if e.opens_incident else "reported")
        table.add_row(replay_plot.when(e.first.started_at)[5:16],
                      escape(f"{e.first.service}/{e.first.metric}"), e.first.detector,
                      f"{e.peak_score:.2f}", verdict, escape(e.first.explanation))
    Console().print(table)
    if len(result.episodes) > top:
        render.say(f"... and {len(result.episodes) - top} more (--top, or --json for all)")
    if drawn is not None:
        render.say(f"plot: {plot} ({drawn} series drawn)")
    if as_json:
        render.print_json({
            "file": str(samples_csv) if samples_csv is not None else prometheus_url,
            "series": result.series,
            "ticks": result.ticks,
            "rows": samples.rows,
            "changes": len(change_list),
            "first_t": result.first_t,
            "last_t": result.last_t,
            "incidents": result.incidents,
            "notes": list(result.notes),
            "episodes": [
                {**dataclasses.asdict(e.first), "last_t": e.last_t, "peak_score": e.peak_score,
                 "reports": e.reports, "expected": e.expected, "expected_reason": e.reason,
                 "opens_incident": e.opens_incident}
                for e in result.episodes
            ],
        })


def _from_prometheus(cfg: config_mod.Config, url: str, days: float, step: float,
                     err: Console) -> replay.Samples:
    """The series `selfheal serve` would watch, as Prometheus kept them over the last days,
    with each service's limits as they were (`limit_queries`)."""
    given = cfg.sources.prometheus
    try:
        section = config_mod.PrometheusSource(**{
            **(given.model_dump(exclude_unset=True) if given else {}), "url": url})
    except pydantic.ValidationError as exc:
        render.say(f"detect: --prometheus {url!r}: {exc.errors()[0]['msg']}")
        raise typer.Exit(2) from exc
    source = prometheus.PrometheusSource.from_config(section)
    end = time.time()
    try:
        if "rate_window" not in section.model_fields_set:
            # rates over 4 of Prometheus's scrapes, as `serve` fits them (a query frontend
            # without /api/v1/targets keeps the default; the tick here is --step's)
            try:
                fit = prometheus.cadence(source.targets(), math.inf, section.rate_window,
                                         tick_set=True, window_set=False,
                                         service_label=section.service_label)
            except errors.DataUnavailable as exc:
                render.say(f"detect: rates over [{section.rate_window}] (could not ask "
                           f"Prometheus how often it scrapes: {exc})")
            else:
                source.rate_window = fit.rate_window
                for note in fit.notes:
                    render.say(f"detect: {note}")
        with err.status(f"[bold]detect[/bold] reading {days:g} days from {url}"):
            samples = replay.from_history(
                source, end - days * 86_400, end, step, skip=expiry.WHAT,
                on_skip=lambda signal, why: render.say(f"detect: {signal} left out: {why}"))
        for metric in section.watched_limit_queries:
            if metric in samples.limits:
                services = {svc for _, now in samples.limits[metric] for svc in now}
                render.say(f"detect: {metric} limits of {len(services)} service(s) from "
                           "Prometheus, as they were over the range (read every "
                           f"{section.limit_refresh_s:g} s)")
        return samples
    except errors.DataUnavailable as exc:
        render.say(f"detect: {exc}")
        raise typer.Exit(1) from exc
    finally:
        source.close()
