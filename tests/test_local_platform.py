"""The local platform on real OS processes: deploy, rollback, canary, restart, scale, reaping."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from selfheal import errors
from selfheal.platforms.local import platform as local
from selfheal.platforms.local import procs

from .conftest import processes_mentioning

SERVICES = [
    local.ServiceDef("auth", ("1.2.0", "1.2.1"), "1.2.0", 2, local.shop_command()),
    local.ServiceDef("catalog", ("3.1.0",), "3.1.0", 1, local.shop_command()),
]


def _get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return dict(json.loads(r.read()))


def _versions_served(p: local.LocalPlatform, n: int = 8) -> set[str]:
    return {str(_get(f"{p.router_url}/auth/healthz")["version"]) for _ in range(n)}


def test_lifecycle_on_real_processes(no_leftovers: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(no_leftovers)  # a relative workdir, as `selfheal demo` uses by default

    async def scenario() -> None:
        p = local.LocalPlatform(Path("wd"), SERVICES, time.time)
        await p.start()
        try:
            pids = p.pids()
            assert len(pids) == 4  # router + 2 auth + 1 catalog
            assert all(procs.start_ticks(pid) for pid in pids)
            assert _versions_served(p) == {"1.2.0"}
            assert _get(f"{p.router_url}/auth/verify")["service"] == "auth"

            change = await p.deploy("auth", "1.2.1", who="ci-bot", why="test")
            assert (change.who, change.from_version, change.to_version) == \
                ("ci-bot", "1.2.0", "1.2.1")
            assert _versions_served(p) == {"1.2.1"}
            assert p.previous_version("auth") == "1.2.0"

            await p.replace_replicas("auth", "1.2.0", 1, who="t", why="canary")
            assert sorted(r.version for r in p.replicas("auth")) == ["1.2.0", "1.2.1"]
            assert p.version("auth") == "1.2.1"  # a canary does not move the history

            await p.deploy("auth", "1.2.0", who="t", why="rollback", kind="rollback")
            assert _versions_served(p) == {"1.2.0"}

            before = {r.replica: r.pid for r in p.replicas("auth")}
            victim = sorted(before)[0]
            await p.restart_replica("auth", victim, who="t", why="test")
            after = {r.replica: r.pid for r in p.replicas("auth")}
            assert victim not in after and len(after) == 2
            assert procs.start_ticks(before[victim]) is None  # the old process is gone

            await p.scale("auth", 3, who="t", why="test")
            assert len(p.replicas("auth")) == 3
            await p.scale("auth", 1, who="t", why="test")
            assert len(p.replicas("auth")) == 1
            assert [c.kind for c in p.changes()] == ["deploy", "canary", "rollback", "restart",
                                                     "scale", "scale"]
            with pytest.raises(errors.PlatformError):
                await p.deploy("auth", "9.9.9", who="t", why="no such version")
        finally:
            await p.stop()

    asyncio.run(scenario())


def test_stale_processes_from_a_killed_run_are_reaped(tmp_path: Path) -> None:
    """A survivor recorded in the PID file is killed on the next start; a PID that now
    belongs to another process (different kernel start time) is left alone."""
    marker = str(tmp_path / "survivor")
    survivor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", marker],
                                start_new_session=True)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                                 start_new_session=True)
    try:
        ticks = procs.start_ticks(survivor.pid)
        assert ticks is not None
        pidfile = tmp_path / "run" / "pids.json"
        pidfile.parent.mkdir()
        pidfile.write_text(json.dumps({
            "auth-1": {"pid": survivor.pid, "ticks": ticks},
            "recycled": {"pid": bystander.pid, "ticks": 1},
        }))
        killed = procs.ProcessTable(pidfile).reap_stale()
        assert killed == [survivor.pid]
        survivor.wait(timeout=10)
        assert survivor.returncode == -signal.SIGKILL
        assert bystander.poll() is None
        assert not pidfile.exists()
        assert not processes_mentioning(marker)
    finally:
        for p in (survivor, bystander):
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()


def test_a_replica_kept_aside_survives_adoption_and_can_come_back(no_leftovers: Path) -> None:
    """A reversible restart keeps the old replica aside; a selfheal that restarts and adopts
    the detached platform can still undo the restart (the inverse needs that replica)."""
    async def main() -> None:
        first = local.LocalPlatform(no_leftovers / "wd", SERVICES, time.time, detached=True)
        await first.start()
        old = sorted(r.replica for r in first.replicas("auth"))[0]
        new = await first.replace_replica("auth", old)
        await first.scale("auth", 2, who="t", why="save state")  # any change saves the state
        await first.detach()
        second = local.LocalPlatform(no_leftovers / "wd", SERVICES, time.time, detached=True)
        await second.start()
        try:
            assert second.adopted and old in second.quarantine
            await second.readmit_replica("auth", old, new)
            assert old in {r.replica for r in second.replicas("auth")}
            assert new not in {r.replica for r in second.replicas("auth")}
        finally:
            await second.stop()
            for r in second.quarantine.values():  # nothing kept aside is left running
                await second.table.stop(r.replica)

    asyncio.run(main())
