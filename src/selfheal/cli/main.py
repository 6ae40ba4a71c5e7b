"""Entry point of the `selfheal` command: builds the Typer application from its parts.

Every sub-command is registered here explicitly; errors of ours (`SelfhealError`) are turned
into one clear line and an exit code at this boundary, never a traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from selfheal import errors
from selfheal.cli import (
    bench,
    demo_cmd,
    detect_cmd,
    records,
    render,
    safety,
    serve_cmd,
    tokens,
)

app = typer.Typer(
    name="selfheal",
    help="selfheal: an autonomous operations agent that detects, diagnoses, heals, verifies "
    "and writes down every step.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def guarded(fn: F) -> F:
    """Our own errors become one line on stderr: exit 2 for bad input, 1 otherwise."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except errors.ConfigError as exc:
            render.say(f"error: {exc}")
            raise typer.Exit(2) from None
        except errors.LedgerCorrupt as exc:
            render.say(f"ledger corrupt: {exc}")
            raise typer.Exit(1) from None
        except errors.SelfhealError as exc:
            render.say(f"error: {exc}")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


app.command("demo")(guarded(demo_cmd.demo))
app.command("serve")(guarded(serve_cmd.serve))
app.command("detect")(guarded(detect_cmd.detect))
app.command("incidents")(guarded(records.incidents))
app.command("show")(guarded(records.show))
ledger_app = typer.Typer(help="Inspect the tamper-evident ledger.", no_args_is_help=True)
ledger_app.command("verify")(guarded(records.ledger_verify))
ledger_app.command("replay")(guarded(records.ledger_replay))
ledger_app.command("export")(guarded(records.ledger_export))
app.command("approve")(guarded(safety.approve))
app.command("reject")(guarded(safety.reject))
app.command("approvals")(guarded(safety.approvals))
app.command("trust")(guarded(safety.trust))
app.command("revoke")(guarded(safety.revoke))
app.command("restore")(guarded(safety.restore))
policy_app = typer.Typer(help="Policy files.", no_args_is_help=True)
policy_app.command("check")(guarded(safety.policy_check))
app.add_typer(policy_app, name="policy")
app.add_typer(ledger_app, name="ledger")
app.add_typer(bench.app, name="bench")
app.add_typer(tokens.build(guarded), name="token")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
