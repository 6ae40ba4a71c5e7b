"""Rendering helpers shared by the CLI commands: the live narration and JSON output."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape

STAGE_STYLE = {
    "change": "cyan", "detect": "yellow", "diagnose": "magenta", "plan": "blue",
    "gate": "blue", "canary": "bright_blue", "act": "green", "verify": "bright_green",
    "resolved": "bold green", "escalate": "bold red", "undo": "red", "recover": "red",
}


def clock(t: float) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%H:%M:%S")


def stage_line(console: Console, t: float, stage: str, message: str) -> None:
    style = STAGE_STYLE.get(stage, "white")
    console.print(f"[dim]{clock(t)}[/dim] [{style}]{stage:>9}[/{style}]  {escape(message)}")


def say(line: str) -> None:
    """One unwrapped line on stderr, as it is (no markup: a "[start, end]" stays), whatever
    the terminal width: scripts grep it."""
    Console(stderr=True, soft_wrap=True, highlight=False).print(line, markup=False)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()
