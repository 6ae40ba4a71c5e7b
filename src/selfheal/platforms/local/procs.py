"""Process supervision for the local platform: spawn, stop, and never leave an orphan.

Three layers keep the machine clean. Normal exit and Ctrl-C stop every child through
`ProcessTable.stop_all`. Each child asks the kernel for SIGTERM when selfheal dies
(PR_SET_PDEATHSIG), which covers SIGKILL of selfheal. And every child is written to a PID file
with its kernel start time, so the next start reaps whatever survived (for instance a child
whose parent died before the kernel hook was set) without ever killing a recycled PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import json
import os
import signal
import time
from pathlib import Path

from selfheal import errors

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGTERM us when our parent dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except OSError:
        pass  # not Linux: the PID file still reaps leftovers on the next start


def start_ticks(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; fields resume after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


@dataclasses.dataclass
class Proc:
    """A child of this run, or (adopted) a detached process a previous run started."""

    name: str
    pid: int
    ticks: int
    log_path: Path
    process: asyncio.subprocess.Process | None = None

    def running(self) -> bool:
        if self.process is not None:
            return self.process.returncode is None
        return start_ticks(self.pid) == self.ticks

    @property
    def returncode(self) -> int | None:
        return self.process.returncode if self.process is not None else None


class ProcessTable:
    """The children of this selfheal run, mirrored in a PID file."""

    def __init__(self, pidfile: Path) -> None:
        self.pidfile = pidfile
        self.procs: dict[str, Proc] = {}

    def reap_stale(self) -> list[int]:
        """Kill what a previous run recorded and left alive; returns the PIDs it stopped."""
        try:
            recorded = json.loads(self.pidfile.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError):
            recorded = {}
        killed = []
        for entry in recorded.values():
            pid, ticks = int(entry["pid"]), int(entry["ticks"])
            if start_ticks(pid) != ticks:
                continue  # gone, or the PID now belongs to someone else
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            killed.append(pid)
        deadline = time.monotonic() + 5
        while killed and time.monotonic() < deadline and any(start_ticks(p) for p in killed):
            time.sleep(0.05)
        self.pidfile.unlink(missing_ok=True)
        return killed

    def _write(self) -> None:
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        data = {n: {"pid": p.pid, "ticks": p.ticks} for n, p in self.procs.items()}
        tmp = self.pidfile.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, self.pidfile)

    async def spawn(self, name: str, argv: list[str], log_path: Path, cwd: Path,
                    *, detached: bool = False) -> Proc:
        """Start a process in its own group; unless `detached`, it dies with selfheal."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            try:
                process = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    cwd=cwd,
                    start_new_session=True,  # its own group: we stop it and its children
                    preexec_fn=None if detached else _die_with_parent,
                )
            except OSError as exc:
                raise errors.PlatformError(f"cannot start {name}: {exc}") from exc
        ticks = start_ticks(process.pid) or 0
        proc = Proc(name=name, pid=process.pid, ticks=ticks, log_path=log_path,
                    process=process)
        self.procs[name] = proc
        self._write()
        return proc

    def adopt(self, name: str, pid: int, ticks: int, log_path: Path) -> Proc | None:
        """Take over a detached process a previous run recorded, if it is still that process."""
        if start_ticks(pid) != ticks:
            return None
        proc = Proc(name=name, pid=pid, ticks=ticks, log_path=log_path)
        self.procs[name] = proc
        self._write()
        return proc

    async def stop(self, name: str, grace: float = 3.0) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        self._write()
        if not proc.running():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        if await self._gone(proc, grace):
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await self._gone(proc, 10.0)

    @staticmethod
    async def _gone(proc: Proc, timeout: float) -> bool:
        if proc.process is not None:
            try:
                await asyncio.wait_for(proc.process.wait(), timeout)
            except TimeoutError:
                return False
            return True
        # Not our child (adopted): poll until the kernel no longer knows it as that process.
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while loop.time() < end:
            if start_ticks(proc.pid) != proc.ticks:
                return True
            await asyncio.sleep(0.05)
        return False

    async def stop_all(self, grace: float = 3.0) -> None:
        await asyncio.gather(*(self.stop(n, grace) for n in list(self.procs)))
        self.pidfile.unlink(missing_ok=True)

    def kill_all_now(self) -> None:
        """Synchronous last resort for interpreter exit: SIGKILL every recorded group."""
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        self.procs.clear()
        self.pidfile.unlink(missing_ok=True)
