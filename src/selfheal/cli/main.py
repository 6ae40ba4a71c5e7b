"""Entry point of the `selfheal` command: builds the Typer application from its parts.

Every sub-command group is registered here explicitly; errors of ours (`SelfhealError`) are
turned into one clear line and an exit code at this boundary, never a traceback.
"""

from __future__ import annotations

import typer

from selfheal.cli import bench

app = typer.Typer(
    name="selfheal",
    help="selfheal: an autonomous operations agent that detects, diagnoses, heals, verifies "
    "and writes down every step.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(bench.app, name="bench")


def main() -> None:
    app()
