"""`selfheal serve --config FILE`: run the agent until stopped.

Builds the settings and the policy, hands the runtime (`selfheal.engine.serve`) the HTTP
application factory of `selfheal.api`, and narrates the controller's events on stderr. Stops
cleanly on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import fastapi
import typer
from rich.console import Console

from selfheal import api
from selfheal import config as config_mod
from selfheal.api import web
from selfheal.cli import render
from selfheal.engine import controller as controller_mod
from selfheal.engine import serve as serve_mod


def make_app(parts: serve_mod.Parts, routers: Sequence[fastapi.APIRouter] = ()) -> Any:
    return api.create_app(api.Receivers(body_limit_bytes=parts.body_limit_bytes,
                                        registry=parts.registry, health=parts.health,
                                        alerts=parts.alerts, otlp=parts.otlp),
                          routers=routers)


def serve(
    config: Annotated[Path | None, typer.Option(help="YAML config file (see docs/sources.md)."
                                                )] = None,
    policy_file: Annotated[Path | None, typer.Option("--policy", help="YAML policy file; "
                                                     "default: observe-only with platform "
                                                     "'none'.")] = None,
    host: Annotated[str | None, typer.Option(help="Listen address (overrides serve.host)."
                                             )] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (overrides serve.port; 0 picks "
                                             "a free one).")] = None,
    workdir: Annotated[Path | None, typer.Option(help="Where state, the ledger and "
                                                 "postmortems go (default .selfheal).")] = None,
) -> None:
    """Run selfheal as a long-running agent: Prometheus, Alertmanager and OTLP sources as
    configured, the control loop, and an HTTP server with the receivers, /metrics and
    /healthz. Stops cleanly on SIGTERM or Ctrl-C.
    """
    cfg = config_mod.load(config)
    serve_over = cfg.serve.model_copy(update={k: v for k, v in (("host", host), ("port", port))
                                              if v is not None})
    cfg = cfg.model_copy(update={"serve": serve_over}
                         | ({"workdir": workdir} if workdir is not None else {}))
    if policy_file is not None:
        cfg = cfg.model_copy(update={"policy": policy_file})
    pol = serve_mod.load_policy(cfg)
    console = Console(stderr=True, highlight=False)
    # the tick and the rate window follow Prometheus's scrape interval unless the file sets them
    with console.status("[bold]serve[/bold] asking Prometheus how often it scrapes"):
        learned = serve_mod.saved_spacing(cfg) if cfg.sources.prometheus else None
        cfg, notes = serve_mod.fit_to_prometheus(cfg, learned)
    # The web workspace and its API (docs/api.md), fed live from the controller's events.
    workspace = web.open_workspace(cfg.database_url(), pol, cfg.workdir,
                                   {s: tuple(c) for s, c in cfg.platform.services.items()},
                                   cfg.sources.prometheus)
    to_hub = web.forward(workspace.hub)

    def on_event(e: controller_mod.Event) -> None:
        to_hub(e)
        render.stage_line(console, e.t, e.stage, e.message)

    def on_ready(url: str) -> None:
        sources = [name for name, on in (
            ("prometheus", cfg.sources.prometheus is not None),
            ("alertmanager", cfg.sources.alertmanager.enabled),
            ("otlp", cfg.sources.otlp.enabled)) if on]
        console.print(f"[bold]selfheal serve[/bold] listening on {url} — sources: "
                      f"{', '.join(sources) or 'none'}; platform {cfg.platform.kind}; "
                      f"policy {pol.source} (sha256 {pol.hash[:12]}); state in {cfg.workdir}/")

    try:
        asyncio.run(serve_mod.run(cfg, pol, functools.partial(
            make_app, routers=web.routers(workspace)), on_event, on_ready=on_ready,
            notes=notes))
    finally:
        workspace.close()
    console.print("stopped")

