"""Log tailing for the local platform: new lines of each replica's log file become records.

Called by the engine once a tick. Services write JSON lines (`ts`, `level`, `msg`); anything
else — a traceback, a hostile or binary line — is kept as a `RAW` record, cut to a safe length
and stripped of control characters, so a log line can never break the store or the terminal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from selfheal import model, ports

MAX_LINE = 2000
MAX_READ = 4 * 1024 * 1024  # per file per tick: a log flood cannot stall the loop
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean(text: str) -> str:
    return _CONTROL.sub("?", text)[:MAX_LINE]


def parse_line(line: str, service: str, replica: str, now: float) -> model.LogRecord:
    try:
        obj = json.loads(line)
        if not isinstance(obj, dict):
            raise TypeError("not an object")
        ts = float(obj.get("ts", now))
        level = clean(str(obj.get("level", "INFO"))).upper()[:16]
        msg = clean(str(obj.get("msg", "")))
    except (ValueError, TypeError):
        return model.LogRecord(t=now, service=service, level="RAW", message=clean(line),
                               replica=replica)
    return model.LogRecord(t=ts, service=service, level=level, message=msg, replica=replica)


class LogTailer:
    """Follows every `*.log` file in a folder from where it last stopped (a `ports.Feed`)."""

    name = "logtail"
    kinds = frozenset({model.SignalKind.LOGS})

    def __init__(self, folder: Path, service_of: Callable[[str], str]) -> None:
        self.folder = folder
        self.service_of = service_of
        self.offsets: dict[Path, int] = {}

    def skip_existing(self) -> None:
        """Start at the end of what is already there (an earlier run's lines are history)."""
        for path in self.folder.glob("*.log"):
            self.offsets[path] = path.stat().st_size

    async def collect(self, now: float) -> ports.Collected:
        return ports.Collected(logs=tuple(self.poll(now)))

    async def close(self) -> None:
        return None

    def poll(self, now: float) -> list[model.LogRecord]:
        out: list[model.LogRecord] = []
        for path in sorted(self.folder.glob("*.log")):
            offset = self.offsets.get(path, 0)
            try:
                size = path.stat().st_size
                if size < offset:
                    offset = 0  # truncated or replaced
                if size == offset:
                    continue
                with open(path, "rb") as f:
                    f.seek(offset)
                    data = f.read(MAX_READ)
            except OSError:
                continue
            end = data.rfind(b"\n")
            if end < 0:
                if len(data) < MAX_READ:
                    continue  # a partial line: wait for its end
                end = len(data) - 1
            self.offsets[path] = offset + end + 1
            replica = path.stem
            service = self.service_of(replica)
            for raw in data[: end + 1].splitlines():
                line = raw.decode("utf-8", errors="replace").strip()
                if line:
                    out.append(parse_line(line, service, replica, now))
        return out
