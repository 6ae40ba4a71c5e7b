"""The local platform's state-level actions: config revert, cache flush, certificate renewal,
credential rotation, traffic shift and code revert — each with the snapshot its inverse needs.

Called by `LocalPlatform.remedy` (under its lock, once per request id). A forward action names
a `snapshot` id: before it changes anything it saves what it replaces under that id, and the
inverse action (the same kind with `restore=<id>`) puts exactly that back. So every one of these
actions has a clean inverse that is known when the plan is made, before anything ran.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import signal
from typing import TYPE_CHECKING, Any

import httpx

from selfheal import errors, model
from selfheal.platforms.local import state as state_mod

if TYPE_CHECKING:
    from selfheal.platforms.local.platform import LocalPlatform

CERT_VALID_S = 90 * 86_400.0
SECRET_VALID_S = 86_400.0
DEFAULT_CONFIG: dict[str, Any] = {"pool_size": 0, "log_level": "INFO"}


@dataclasses.dataclass(frozen=True)
class Done:
    what: str
    before: str = ""
    after: str = ""


# -- start-up -----------------------------------------------------------------------------

async def prepare(p: LocalPlatform) -> None:
    """A fresh state folder: config r1, certificates, credentials, regions, one git repo each."""
    now = p.clock()
    shutil.rmtree(p.state.root, ignore_errors=True)
    shutil.rmtree(p.repos, ignore_errors=True)
    for svc in p.services.values():
        config = {**DEFAULT_CONFIG, "revision": "r1"}
        state_mod.write_json(p.state.config_revision(svc.name, "r1"), config)
        state_mod.write_json(p.state.config(svc.name), config)
        state_mod.write_json(_history_path(p, svc.name), ["r1"])
        if svc.tls:
            state_mod.issue_cert(p.state, svc.name, now, CERT_VALID_S)
        if svc.credential and not p.state.secret(svc.credential).exists():
            state_mod.issue_secret(p.state, svc.credential, now, SECRET_VALID_S)
        if svc.regional:
            state_mod.write_json(p.state.regions(svc.name),
                                 {dep: regions[0] for dep, regions in svc.regional})
    if shutil.which("git") is not None:
        await asyncio.gather(*(init_repo(p, s.name, s.initial_version)
                               for s in p.services.values()))


async def git(p: LocalPlatform, service: str, *args: str) -> str:
    """Run git in the service's repository; its output, or PlatformError with git's words."""
    repo = p.repos / service
    proc = await asyncio.create_subprocess_exec(
        "git", "-C", str(repo), "-c", "user.name=selfheal", "-c", "user.email=selfheal@localhost",
        "-c", "commit.gpgsign=false", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise errors.PlatformError(f"git {' '.join(args[:2])} in {service}: "
                                   f"{err.decode(errors='replace').strip()[:300]}")
    return out.decode().strip()


async def init_repo(p: LocalPlatform, service: str, version: str) -> None:
    repo = p.repos / service
    repo.mkdir(parents=True, exist_ok=True)
    await git(p, service, "init", "-q", "-b", "main")
    state_mod.write_json(repo / "service.json", {"service": service, "version": version})
    await git(p, service, "add", "service.json")
    await git(p, service, "commit", "-q", "-m", f"{service} {version}")
    await release(p, service, version)


async def ship(p: LocalPlatform, service: str, version: str, path: str, content: str,
               message: str) -> str:
    """A developer's change released as `version`: commit it and tag the release. Returns
    the commit, or "" when the platform keeps no repositories (git missing)."""
    if not (p.repos / service).exists():
        return ""
    sha = await commit(p, service, path, content, message)
    await release(p, service, version)
    return sha


async def release(p: LocalPlatform, service: str, version: str) -> str:
    """Tag the repository's head as release `version` (`v<version>`), as CI does when it
    builds what gets deployed; a deploy from A to B then points at the commits `vA..vB`."""
    await git(p, service, "tag", f"v{version}")
    return await git(p, service, "rev-parse", "HEAD")


async def commit(p: LocalPlatform, service: str, path: str, content: str, message: str) -> str:
    """Commit `content` at `path` in the service's repository (a developer's change)."""
    target = p.repos / service / path
    state_mod.write_atomic(target, content.encode())
    await git(p, service, "add", path)
    await git(p, service, "commit", "-q", "-m", message)
    return await git(p, service, "rev-parse", "HEAD")


# -- config revisions ---------------------------------------------------------------------

def _history_path(p: LocalPlatform, service: str) -> Any:
    return p.state.root / "config" / service / "history.json"


def _current_revision(p: LocalPlatform, service: str) -> str:
    config = state_mod.read_json(p.state.config(service)) or {}
    return str(config.get("revision", "r1"))


def _apply_revision(p: LocalPlatform, service: str, revision: str) -> None:
    config = state_mod.read_json(p.state.config_revision(service, revision))
    if config is None:
        raise errors.PlatformError(f"{service} has no config revision {revision!r}")
    state_mod.write_json(p.state.config(service), config)
    history = state_mod.read_json(_history_path(p, service)) or []
    state_mod.write_json(_history_path(p, service), [*history, revision])


def new_config_revision(p: LocalPlatform, service: str,
                        values: dict[str, object]) -> tuple[str, str]:
    """Write and apply a new revision with `values` changed; (before, after)."""
    history = state_mod.read_json(_history_path(p, service)) or ["r1"]
    before = _current_revision(p, service)
    current = state_mod.read_json(p.state.config(service)) or {}
    after = f"r{len(set(history)) + 1}"
    state_mod.write_json(p.state.config_revision(service, after),
                         {**current, **values, "revision": after})
    _apply_revision(p, service, after)
    return before, after


def _previous_revision(p: LocalPlatform, service: str) -> str | None:
    history = state_mod.read_json(_history_path(p, service)) or []
    current = _current_revision(p, service)
    for rev in reversed(history):
        if rev != current:
            return str(rev)
    return None


# -- snapshots ----------------------------------------------------------------------------

def _save(p: LocalPlatform, action: model.Action, value: dict[str, Any]) -> None:
    snap = action.param("snapshot")
    if not snap:
        raise errors.PlatformError(f"{action.kind.value} needs a snapshot id (for its inverse)")
    state_mod.write_json(p.state.snapshot(snap), {"kind": action.kind.value,
                                                  "service": action.service, **value})


def _load(p: LocalPlatform, action: model.Action) -> dict[str, Any]:
    snap = state_mod.read_json(p.state.snapshot(action.param("restore")))
    if not isinstance(snap, dict) or snap.get("kind") != action.kind.value \
            or snap.get("service") != action.service:
        raise errors.PlatformError(f"no {action.kind.value} snapshot "
                                   f"{action.param('restore')!r} of {action.service}")
    return snap


# -- the actions --------------------------------------------------------------------------

async def apply(p: LocalPlatform, action: model.Action) -> Done:
    handler = _HANDLERS.get(action.kind)
    if handler is None:
        raise errors.PlatformError(f"the local platform cannot {action.kind.value}")
    try:
        return await handler(p, action)
    except OSError as exc:
        raise errors.PlatformError(f"{action.describe()}: {exc}") from exc


async def _config_revert(p: LocalPlatform, a: model.Action) -> Done:
    svc = a.service
    current = _current_revision(p, svc)
    if a.param("restore"):
        target = str(_load(p, a)["revision"])
    else:
        target = a.param("to_revision") or _previous_revision(p, svc) or ""
        if not target or target == current:
            raise errors.PlatformError(f"{svc} has no earlier config revision to return to")
        _save(p, a, {"revision": current})
    _apply_revision(p, svc, target)
    return Done(f"config of {svc} {current} -> {target}", current, target)


async def _post_all(p: LocalPlatform, service: str, path: str,
                    body: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for r in p.replicas(service):
        try:
            resp = await p._http.post(f"http://127.0.0.1:{r.port}{path}", json=body)
            resp.raise_for_status()
        except httpx.HTTPError as exc:
            raise errors.PlatformError(f"{r.replica} {path}: {exc}", retryable=True) from exc
        out.append(dict(resp.json()))
    return out


async def _cache_flush(p: LocalPlatform, a: model.Action) -> Done:
    if a.param("restore"):
        entries = _load(p, a)["entries"]
        await _post_all(p, a.service, "/admin/cache/load", {"entries": entries})
        return Done(f"cache of {a.service} restored ({len(entries)} entries)")
    # Read first, then flush: the snapshot must hold what the flush throws away.
    merged: dict[str, Any] = {}
    for r in p.replicas(a.service):
        try:
            resp = await p._http.get(f"http://127.0.0.1:{r.port}/admin/cache")
            resp.raise_for_status()
        except httpx.HTTPError as exc:
            raise errors.PlatformError(f"{r.replica} /admin/cache: {exc}",
                                       retryable=True) from exc
        merged.update(resp.json())
    _save(p, a, {"entries": merged})
    await _post_all(p, a.service, "/admin/cache/flush", {})
    return Done(f"cache of {a.service} flushed ({len(merged)} entries kept in snapshot)")


async def _cert_renew(p: LocalPlatform, a: model.Action) -> Done:
    svc = a.service
    if not p.services[svc].tls:
        raise errors.PlatformError(f"{svc} serves no certificate")
    old = state_mod.cert_info(p.state.cert(svc))
    before = f"{old[0]:x}" if old else ""
    if a.param("restore"):
        snap = _load(p, a)
        state_mod.write_atomic(p.state.cert(svc), snap["cert"].encode())
        state_mod.write_atomic(p.state.cert_key(svc), snap["key"].encode())
        after = str(snap["serial"])
    else:
        _save(p, a, {"cert": p.state.cert(svc).read_text(encoding="utf-8"),
                     "key": p.state.cert_key(svc).read_text(encoding="utf-8"),
                     "serial": before})
        cert = state_mod.issue_cert(p.state, svc, p.clock(), CERT_VALID_S)
        after = f"{cert.serial_number:x}"
    return Done(f"certificate of {svc} serial {before[:8]} -> {after[:8]}", before[:12],
                after[:12])


async def _credential_rotate(p: LocalPlatform, a: model.Action) -> Done:
    svc = a.service
    name = p.services[svc].credential
    if not name:
        raise errors.PlatformError(f"{svc} consumes no credential")
    old = state_mod.read_json(p.state.secret(name)) or {}
    if a.param("restore"):
        new = _load(p, a)["secret"]
        state_mod.write_json(p.state.secret(name), new)
    else:
        _save(p, a, {"secret": old})
        new = state_mod.issue_secret(p.state, name, p.clock(), SECRET_VALID_S)
    consumers = [s.name for s in p.services.values() if s.credential == name]
    reloaded = 0
    for consumer in consumers:
        reloaded += await p.signal_replicas(consumer, signal.SIGHUP)
    return Done(f"credential {name} v{old.get('version', '?')} -> v{new.get('version', '?')}, "
                f"{reloaded} consumer replica(s) reloaded",
                f"v{old.get('version', '')}", f"v{new.get('version', '')}")


async def _traffic_shift(p: LocalPlatform, a: model.Action) -> Done:
    svc = a.service
    regional = dict(p.services[svc].regional)
    if not regional:
        raise errors.PlatformError(f"{svc} calls no dependency served from several regions")
    current = dict(state_mod.read_json(p.state.regions(svc)) or {})
    if a.param("restore"):
        target = dict(_load(p, a)["regions"])
    else:
        target = {}
        for dep, regions in regional.items():
            now = current.get(dep, regions[0])
            wanted = a.param("to_region") or next(r for r in regions if r != now)
            if wanted not in regions:
                raise errors.PlatformError(f"{dep} has no region {wanted!r}")
            target[dep] = wanted
        _save(p, a, {"regions": current})
    state_mod.write_json(p.state.regions(svc), target)
    moves = ", ".join(f"{d} {current.get(d, '?')} -> {r}" for d, r in sorted(target.items()))
    return Done(f"traffic of {svc}: {moves}", ",".join(sorted(current.values())),
                ",".join(sorted(target.values())))


async def _code_revert(p: LocalPlatform, a: model.Action) -> Done:
    svc = a.service
    if a.param("restore"):
        snap = _load(p, a)
        await git(p, svc, "branch", "-D", snap["branch"])
        (p.repos / f"{svc}.prs" / f"{snap['branch'].replace('/', '-')}.md").unlink(
            missing_ok=True)
        return Done(f"branch {snap['branch']} and its pull-request draft removed")
    # `commit` is one commit or a release range `vA..vB` (what a deploy from A to B shipped);
    # each end is resolved by git itself, so nothing but a real commit reaches `git revert`.
    ends = [await git(p, svc, "rev-parse", "--verify", "--end-of-options", f"{ref}^{{commit}}")
            for ref in str(a.param("commit")).split("..", 1)]
    if len(ends) == 2:
        shas = (await git(p, svc, "rev-list", "--reverse", f"{ends[0]}..{ends[1]}")).split()
        if not shas:
            raise errors.PlatformError(f"{a.param('commit')} in {svc} holds no commit")
    else:
        shas = ends
    sha = shas[-1]
    branch = f"selfheal/revert-{sha[:8]}"
    subjects = [await git(p, svc, "log", "-1", "--format=%s", c) for c in shas]
    subject = subjects[0] if len(shas) == 1 else f"{len(shas)} commits of {a.param('commit')}"
    _save(p, a, {"branch": branch})
    tree = p.repos / f".worktree-{sha[:8]}"
    await git(p, svc, "worktree", "add", "-q", "-b", branch, str(tree.resolve()), "main")
    try:
        for c in reversed(shas):  # newest first, as `git revert A..B` does
            await _revert_in(svc, tree, c)
    finally:
        await git(p, svc, "worktree", "remove", "--force", str(tree.resolve()))
    head = await git(p, svc, "rev-parse", branch)
    why = a.param("reason") or "an incident traced to this commit"
    listed = "".join(f"  - {c[:12]} {s}\n" for c, s in zip(shas, subjects, strict=True))
    draft = (f"# Revert \"{subject}\" in {svc}\n\n"
             f"Drafted by selfheal from incident {a.param('incident') or '(unknown)'}.\n\n"
             f"## Why\n\n{why}\n\n"
             f"## What\n\n- Branch `{branch}` reverts, with {head[:12]}:\n{listed}"
             "- The production remedy (a rollback) is already in place; this "
             "change makes the fix permanent in the code.\n\n"
             "## Checks\n\n- [ ] tests pass\n- [ ] a human reviewed the diff\n")
    state_mod.write_atomic(p.repos / f"{svc}.prs" / f"{branch.replace('/', '-')}.md",
                           draft.encode())
    return Done(f"reverted {sha[:8]} on branch {branch}; pull request drafted", sha[:8],
                head[:8])


async def _revert_in(service: str, tree: Any, sha: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "git", "-C", str(tree.resolve()), "-c", "user.name=selfheal",
        "-c", "user.email=selfheal@localhost", "-c", "commit.gpgsign=false",
        "revert", "--no-edit", sha, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise errors.PlatformError(f"git revert {sha[:8]} in {service}: "
                                   f"{err.decode(errors='replace').strip()[:300]}")
    return out.decode()


async def _healthy(p: LocalPlatform, port: int) -> bool:
    try:
        r = await p._http.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0)
    except httpx.HTTPError:
        return False
    return r.status_code == 200


async def _restart(p: LocalPlatform, a: model.Action) -> Done:
    """A reversible restart: fresh replicas in, the old ones kept aside out of traffic.

    `replica=unhealthy` replaces every replica that fails its health check (1 s timeout)."""
    svc = a.service
    if a.param("restore"):
        pairs = _load(p, a)["replaced"]
        for old, new in pairs:
            await p.readmit_replica(svc, old, new)
        return Done(f"{', '.join(o for o, _ in pairs)} back in service")
    wanted = a.param("replica")
    reps = p.replicas(svc)
    if wanted == "unhealthy":
        checks = await asyncio.gather(*(_healthy(p, r.port) for r in reps))
        victims = [r.replica for r, ok in zip(reps, checks, strict=True) if not ok]
        if not victims:
            raise errors.PlatformError(f"every replica of {svc} passes its health check")
    else:
        victims = [wanted]
    pairs = []
    for old in victims:
        pairs.append((old, await p.replace_replica(svc, old)))
    _save(p, a, {"replaced": pairs})
    return Done("replaced " + ", ".join(f"{o} by {n}" for o, n in pairs)
                + " (the old kept aside, out of traffic)")


_HANDLERS = {
    model.ActionKind.RESTART: _restart,
    model.ActionKind.CONFIG_REVERT: _config_revert,
    model.ActionKind.CACHE_FLUSH: _cache_flush,
    model.ActionKind.CERT_RENEW: _cert_renew,
    model.ActionKind.CREDENTIAL_ROTATE: _credential_rotate,
    model.ActionKind.TRAFFIC_SHIFT: _traffic_shift,
    model.ActionKind.CODE_REVERT: _code_revert,
}
