"""`selfheal demo`: the product in one command, narrated live.

Starts the demo shop on real processes, breaks `auth` with a bad deploy and lets selfheal heal
it. Narrates each stage as it happens with a progress bar while it waits; with `--json` the
narration goes to stderr and stdout carries exactly one JSON object.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from selfheal import config as config_mod
from selfheal import policy
from selfheal.api import web
from selfheal.cli import render, serve_cmd
from selfheal.engine import controller as controller_mod
from selfheal.engine import demo as demo_mod
from selfheal.engine import prometheus_demo
from selfheal.shop import spec as shop_spec


def demo(
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object (the "
                                           "result) as the last line of stdout.")] = False,
    config: Annotated[Path | None, typer.Option(help="YAML config file (see README, "
                                                "'Configuration').")] = None,
    policy_file: Annotated[Path | None, typer.Option("--policy", help="YAML policy file; "
                                                     "default: the built-in policy, which "
                                                     "allows autonomous rollback.")] = None,
    workdir: Annotated[Path | None, typer.Option(help="Where state, logs, the ledger and "
                                                 "postmortems go (default .selfheal).")] = None,
    prometheus: Annotated[bool, typer.Option("--prometheus", help="Also run a real Prometheus "
                                             "scraping the shop and a real Alertmanager "
                                             "delivering its memory alert to selfheal (needs "
                                             "the Debian packages prometheus and "
                                             "prometheus-alertmanager).")] = False,
    open_: Annotated[bool, typer.Option("--open", help="Serve the web workspace during the "
                                        "demo, print its URL and a sign-in link, and keep "
                                        "serving after the demo ends (until Ctrl-C).")] = False,
    port: Annotated[int, typer.Option("--port", help="The workspace's port with --open (0 "
                                      "picks a free one).")] = 8765,
) -> None:
    """Run the demo: a shop of 5 services on real processes gets a bad deploy of auth
    (v1.2.1 leaks memory); selfheal detects, diagnoses, rolls back on a canary first,
    verifies, and writes the postmortem. Takes about 90 seconds.
    """
    cfg = config_mod.load(config)
    if workdir is not None:
        cfg = cfg.model_copy(update={"workdir": workdir})
    pol_path = policy_file or cfg.policy
    pol = policy.load(pol_path) if pol_path else policy.parse(policy.default_text(),
                                                              "<built-in policy>")
    demo_mod.check_ready(cfg)
    stack = None
    if prometheus:
        prometheus_demo.find_binaries()  # fail before anything starts
        stack = prometheus_demo.Options(make_app=serve_cmd.make_app)
    console = Console(stderr=json_out, highlight=False)
    console.print(f"[bold]selfheal demo[/bold] — scenario [cyan]{demo_mod.SCENARIO}[/cyan]; "
                  f"state in {cfg.workdir}/, policy {pol.source} (sha256 {pol.hash[:12]})")
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                        TimeElapsedColumn(), console=console, transient=True)
    current: dict[str, object] = {}

    workspace = web.open_workspace(cfg.database_url(), pol, cfg.workdir,
                                   shop_spec.dependencies()) if open_ else None
    to_hub = web.forward(workspace.hub) if workspace else None

    def on_event(e: controller_mod.Event) -> None:
        if to_hub is not None:
            to_hub(e)
        render.stage_line(console, e.t, e.stage, e.message)
        explanation = e.data.get("explanation")
        if explanation:
            console.print(f"{'':19}[dim]{explanation}[/dim]")
        for line in e.data.get("evidence") or []:
            console.print(f"{'':19}[dim]• {line}[/dim]")

    def on_phase(name: str, seconds: float) -> None:
        for task in progress.tasks:
            progress.remove_task(task.id)
        total = seconds if seconds > 0 else None
        current["task"] = progress.add_task(name, total=total)
        current["start"] = time.monotonic()
        current["total"] = seconds

    def report(result: demo_mod.Result) -> None:
        _report(console, json_out, cfg, result)

    async def ticker() -> None:
        while True:
            task = current.get("task")
            if task is not None and current.get("total"):
                progress.update(task, completed=time.monotonic() - float(current["start"]))  # type: ignore[arg-type]
            await asyncio.sleep(0.2)

    async def main() -> demo_mod.Result:
        server = web.Server(workspace, port=port) if workspace else None
        if server is not None:
            url = await server.start()
            console.print(f"[bold]Workspace[/bold]: {url}/  — sign in: "
                          f"{web.sign_in_link(server.ws, url)}", soft_wrap=True)
        tick = asyncio.create_task(ticker())
        try:
            with progress:
                result = await demo_mod.run(cfg, pol, on_event, on_phase, prometheus=stack)
            tick.cancel()
            if server is not None:
                report(result)
                console.print(f"[bold]Still serving the workspace[/bold] at {server.url}/ — "
                              "Ctrl-C to stop.")
                await _until_stopped()
            return result
        finally:
            tick.cancel()
            if server is not None:
                await server.stop()

    result = asyncio.run(main())
    if not open_:
        report(result)
    if not result.finished:
        raise typer.Exit(1)


async def _until_stopped() -> None:
    """Wait for Ctrl-C or SIGTERM (handled here, so stopping is a clean exit)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):
                loop.remove_signal_handler(sig)


def _report(console: Console, json_out: bool, cfg: config_mod.Config,
            result: demo_mod.Result) -> None:
    summary = result.summary()
    if not result.finished:
        console.print("[bold red]The demo did not finish in time[/bold red] "
                      f"(timeout {cfg.demo.timeout_s:.0f} s).")
    elif summary["verified"]:
        console.print(f"[bold green]Healed.[/bold green] {demo_mod.BAD_SERVICE} recovered and "
                      f"verified {summary['mttr_s']} s after the bad deploy.")
    else:
        console.print("[bold yellow]Escalated to a human.[/bold yellow] See the postmortem.")
    console.print(f"Postmortem: {summary['postmortem']}")
    console.print(f"Ledger:     {summary['ledger']}  (check it: selfheal ledger verify --db "
                  f"{summary['ledger']})")
    if json_out:
        render.print_json(summary)
