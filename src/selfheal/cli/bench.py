"""`selfheal bench …`: the published benchmarks we measure ourselves against.

Each benchmark lives in `selfheal.bench.<name>` (pure computation and reporting) and is
registered here explicitly, one `register(app)` call per benchmark module of the CLI.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Run the benchmarks: each prints a table and, with --json, one JSON object last.",
    no_args_is_help=True,
)

from selfheal.cli import bench_detect  # noqa: E402

bench_detect.register(app)

from selfheal.cli import bench_rca  # noqa: E402

bench_rca.register(app)

from selfheal.cli import bench_safety  # noqa: E402

bench_safety.register(app)

from selfheal.cli import bench_scenarios  # noqa: E402

bench_scenarios.register(app)
