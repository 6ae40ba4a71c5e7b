"""Each state-level catalogue action and its inverse, on real shop processes.

Every test starts a small local platform (real OS processes behind the router), breaks the
state the action repairs, runs the action through `LocalPlatform.remedy` and checks the shop
works again, then runs the catalogue's inverse and checks the broken state is back: the
inverse restores exactly what the action replaced.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from selfheal import catalogue, errors, model, plan
from selfheal.platforms.local import platform as local
from selfheal.platforms.local import procs, remedies
from selfheal.platforms.local import state as state_mod

pytestmark = pytest.mark.timeout(120)


def _svc(name: str, **kw: object) -> local.ServiceDef:
    versions = {"auth": "1.2.0", "catalog": "3.1.0", "cart": "1.0.4", "checkout": "0.9.2",
                "inventory-east": "5.0.3", "inventory-west": "5.0.3"}
    return local.ServiceDef(name, (versions[name],), versions[name], 1, local.shop_command(),
                            **kw)  # type: ignore[arg-type]


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def _answers(url: str) -> bool:
    """Whether `url` answers 200 within the 1 s the unhealthy-replica check allows."""
    try:
        with urllib.request.urlopen(url, timeout=1.0) as r:
            return int(r.status) == 200
    except (urllib.error.URLError, TimeoutError, OSError):
        return False


async def _until(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll `check` (the replicas re-read their state files every half second)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if await asyncio.to_thread(check):
            return True
        await asyncio.sleep(0.2)
    return False


def _run(workdir: Path, services: list[local.ServiceDef],
         body: Callable[[local.LocalPlatform], Awaitable[None]]) -> None:
    async def main() -> None:
        p = local.LocalPlatform(workdir, services, time.time)
        await p.start()
        try:
            await body(p)
        finally:
            await p.stop()
    asyncio.run(main())


def _forward(kind: model.ActionKind, service: str, snap: str = "s1",
             **extra: str) -> tuple[model.Action, model.Action]:
    action = model.Action(kind, service, model.params(snapshot=snap, **extra))
    assert catalogue.validate(action) is None
    inv = catalogue.inverse(action)
    assert inv is not None and catalogue.validate(inv) is None
    return action, inv


def test_config_revert_and_its_inverse(no_leftovers: Path) -> None:
    async def body(p: local.LocalPlatform) -> None:
        health = f"{p.router_url}/checkout/healthz"
        assert _status(health) == 200
        change = await p.change_config("checkout", {"pool_size": -1}, who="alice", why="t")
        assert (change.kind, change.from_version, change.to_version) == ("config", "r1", "r2")
        assert await _until(lambda: _status(health) == 503)  # workers crashed on the bad config
        action, inv = _forward(model.ActionKind.CONFIG_REVERT, "checkout")
        done = await p.remedy(action, who="t", why="test", request_id="req-1")
        assert (done.from_version, done.to_version) == ("r2", "r1")
        assert await _until(lambda: _status(health) == 200)
        again = await p.remedy(action, who="t", why="test", request_id="req-1")
        assert again == done  # a retried request is applied once
        await p.remedy(inv, who="t", why="undo", request_id="req-2")
        assert await _until(lambda: _status(health) == 503)
        # A replica started on the bad config dies at once: a restart cannot fix it.
        with pytest.raises(errors.PlatformError):
            await p.restart_replica("checkout", p.replicas("checkout")[0].replica, who="t",
                                    why="crash loop")

    _run(no_leftovers / "wd", [_svc("checkout")], body)


def test_cache_flush_and_its_inverse(no_leftovers: Path) -> None:
    async def body(p: local.LocalPlatform) -> None:
        items = f"{p.router_url}/catalog/items"
        assert _status(items) == 200
        r = p.replicas("catalog")[0]
        req = urllib.request.Request(
            f"http://127.0.0.1:{r.port}/admin/cache/put", method="POST",
            data=b'{"key": "/items", "value": {"corrupt": "x"}}',
            headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=5).close()
        assert _status(items) == 500
        action, inv = _forward(model.ActionKind.CACHE_FLUSH, "catalog")
        await p.remedy(action, who="t", why="test")
        assert _status(items) == 200
        await p.remedy(inv, who="t", why="undo")
        assert _status(items) == 500  # the poisoned entry is back, as the snapshot held it

    _run(no_leftovers / "wd", [_svc("catalog")], body)


def test_cert_renew_and_its_inverse(no_leftovers: Path) -> None:
    async def body(p: local.LocalPlatform) -> None:
        verify = f"{p.router_url}/auth/verify"
        assert _status(verify) == 200
        state_mod.issue_cert(p.state, "auth", time.time(), 1.0)
        assert await _until(lambda: _status(verify) == 500)  # expired
        old = state_mod.cert_info(p.state.cert("auth"))
        action, inv = _forward(model.ActionKind.CERT_RENEW, "auth")
        await p.remedy(action, who="t", why="test")
        new = state_mod.cert_info(p.state.cert("auth"))
        assert old is not None and new is not None and new[0] != old[0]
        assert new[1] > time.time() + 80 * 86_400
        assert state_mod.verify_cert(p.state, "auth")  # signed by the local CA
        assert await _until(lambda: _status(verify) == 200)
        await p.remedy(inv, who="t", why="undo")
        assert state_mod.cert_info(p.state.cert("auth")) == old
        assert await _until(lambda: _status(verify) == 500)

    _run(no_leftovers / "wd", [_svc("auth", tls=True)], body)


def test_credential_rotate_reloads_consumers_and_its_inverse(no_leftovers: Path) -> None:
    async def body(p: local.LocalPlatform) -> None:
        cart = f"{p.router_url}/cart/cart"
        assert _status(cart) == 200
        state_mod.issue_secret(p.state, "cart-db", time.time(), -1.0)  # already expired
        assert _status(cart) == 200  # the consumer still holds the old one until it reloads
        await p.signal_replicas("cart", signal.SIGHUP)
        assert await _until(lambda: _status(cart) == 500)
        action, inv = _forward(model.ActionKind.CREDENTIAL_ROTATE, "cart")
        done = await p.remedy(action, who="t", why="test")
        assert done.to_version == "v3"
        assert await _until(lambda: _status(cart) == 200)
        await p.remedy(inv, who="t", why="undo")
        assert await _until(lambda: _status(cart) == 500)

    _run(no_leftovers / "wd", [_svc("cart", credential="cart-db")], body)


def test_traffic_shift_and_its_inverse(no_leftovers: Path) -> None:
    async def body(p: local.LocalPlatform) -> None:
        items = f"{p.router_url}/catalog/items"
        assert _status(items) == 200
        state_mod.write_json(p.state.faults("inventory-east"), {"outage": "region down"})
        assert await _until(lambda: _status(items) == 502)
        # what the planner is told: catalog reaches inventory-east and could use west
        assert p.failovers("inventory-east") == [("catalog", "west")]
        assert p.failovers("inventory-west") == [] and p.failovers("catalog") == []
        action, inv = _forward(model.ActionKind.TRAFFIC_SHIFT, "catalog")
        done = await p.remedy(action, who="t", why="test")
        assert (done.from_version, done.to_version) == ("east", "west")
        assert await _until(lambda: _status(items) == 200)
        assert p.failovers("inventory-east") == []  # nothing routes to east any more
        assert p.failovers("inventory-west") == [("catalog", "east")]
        await p.remedy(inv, who="t", why="undo")
        assert await _until(lambda: _status(items) == 502)
        with pytest.raises(errors.PlatformError):  # a service with no regional dependency
            await p.remedy(_forward(model.ActionKind.TRAFFIC_SHIFT, "inventory-west")[0],
                           who="t", why="test")

    _run(no_leftovers / "wd",
         [_svc("catalog", regional=(("inventory", ("east", "west")),)),
          _svc("inventory-east"), _svc("inventory-west")], body)


def test_code_revert_on_a_branch_with_a_pr_draft_and_its_inverse(no_leftovers: Path) -> None:
    async def body(p: local.LocalPlatform) -> None:
        repo = p.repos / "auth"
        sha = await remedies.commit(p, "auth", "sessions.py", "SESSIONS = []\n",
                                    "cache sessions in memory")
        action, inv = _forward(model.ActionKind.CODE_REVERT, "auth", commit=sha,
                               incident="inc-1", reason="auth leaked memory after 1.2.1")
        await p.remedy(action, who="t", why="test")
        branch = f"selfheal/revert-{sha[:8]}"

        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", str(repo), *args], check=True,
                                  capture_output=True, text=True).stdout.strip()

        assert git("rev-parse", "main") == sha  # main is untouched
        assert "sessions.py" not in git("ls-tree", "--name-only", branch)
        assert git("log", "-1", "--format=%s", branch).startswith('Revert "cache sessions')
        draft = (p.repos / "auth.prs" / f"{branch.replace('/', '-')}.md").read_text()
        assert "inc-1" in draft and "auth leaked memory" in draft and sha[:12] in draft
        await p.remedy(inv, who="t", why="undo")
        assert branch not in git("branch", "--list", branch)
        assert not (p.repos / "auth.prs" / f"{branch.replace('/', '-')}.md").exists()

    _run(no_leftovers / "wd", [_svc("auth")], body)


def test_code_revert_of_a_release_range_as_the_planner_proposes_it(no_leftovers: Path) -> None:
    """A release of two commits (v1.2.0..v1.2.1), reverted as the planner's follow-up to a
    rollback proposes it: both commits undone on the branch, main untouched; a hostile or
    unknown revision is refused before git runs anything."""
    async def body(p: local.LocalPlatform) -> None:
        repo = p.repos / "auth"
        await remedies.commit(p, "auth", "a.py", "A = 1\n", "first part of 1.2.1")
        head = await remedies.ship(p, "auth", "1.2.1", "b.py", "B = 2\n", "second part")
        rollback = model.Action(model.ActionKind.ROLLBACK, "auth",
                                model.params(from_version="1.2.1", to_version="1.2.0"))
        fix = plan.code_fix(rollback, model.IncidentId("inc-9"), model.PlanId("plan-9"),
                            "auth leaked memory")
        assert fix is not None and fix.steps[0].param("commit") == "v1.2.0..v1.2.1"
        done = await p.remedy(fix.steps[0], who="t", why="test")
        branch = f"selfheal/revert-{head[:8]}"
        assert branch in done.what

        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", str(repo), *args], check=True,
                                  capture_output=True, text=True).stdout.strip()

        assert git("rev-parse", "main") == head
        assert set(git("ls-tree", "--name-only", branch).split()) == {"service.json"}
        assert git("rev-list", "--count", f"main..{branch}") == "2"
        for bad in ("--output=/tmp/x", "v9.9.9..v1.2.1"):
            hostile = model.Action(model.ActionKind.CODE_REVERT, "auth",
                                   model.params(commit=bad, snapshot="s"))
            assert catalogue.validate(hostile) is not None or bad.startswith("v9")
            with pytest.raises(errors.PlatformError):
                await p.remedy(hostile, who="t", why="test")
        assert git("rev-parse", "main") == head

    _run(no_leftovers / "wd", [_svc("auth")], body)


def test_reversible_restart_of_unhealthy_replicas_and_its_inverse(no_leftovers: Path) -> None:
    async def body(p: local.LocalPlatform) -> None:
        action, inv = _forward(model.ActionKind.RESTART, "cart", replica="unhealthy")
        with pytest.raises(errors.PlatformError):  # nothing fails its health check yet
            await p.remedy(action, who="t", why="test", request_id="r0")
        before = {r.replica: r.pid for r in p.replicas("cart")}
        sick = sorted(p.replicas("cart"), key=lambda r: r.replica)[0]
        os.kill(sick.pid, signal.SIGUSR1)  # the replica hangs
        # once its handler has run (a loaded host may take a while to schedule it): the
        # remedy's own check gives a replica 1 s to answer
        assert await _until(lambda: not _answers(f"http://127.0.0.1:{sick.port}/healthz"))
        await p.remedy(action, who="t", why="test", request_id="r1")
        now = {r.replica: r.pid for r in p.replicas("cart")}
        fresh = set(now) - set(before)
        assert len(fresh) == 1 and sick.replica not in now and len(now) == 2
        assert sick.replica in p.quarantine and p.quarantine[sick.replica].proc.running()
        assert all(_status(f"{p.router_url}/cart/cart") == 200 for _ in range(6))
        await p.remedy(inv, who="t", why="undo", request_id="r2")
        assert {r.replica: r.pid for r in p.replicas("cart")} == before
        assert not p.quarantine
        assert procs.start_ticks(now[fresh.pop()]) is None  # the fresh one was stopped

    _run(no_leftovers / "wd", [local.ServiceDef("cart", ("1.0.4",), "1.0.4", 2,
                                                local.shop_command())], body)
