"""The `local` platform: services as real OS processes on loopback, behind one router.

Each service has a version history and N replicas, each a process on its own port. A deploy
starts the new version's replicas, waits until they are healthy, routes traffic to them, drains
and stops the old ones, and records a `Change` (who, what, when). Rollback is a deploy to an
earlier version; restart and scale act on replicas. The other catalogue actions (config revert,
cache flush, certificate renewal, credential rotation, traffic shift, code revert) go through
`remedy` and act on the services' state folder, their admin endpoints and their git
repositories (`selfheal.platforms.local.remedies`). Only the executor calls the mutating
methods, with a permit in hand.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from selfheal import errors, model, ports
from selfheal.platforms.local import procs, remedies
from selfheal.platforms.local import state as state_mod

DRAIN_S = 0.5
READY_TIMEOUT_S = 60.0  # a first start on a busy 2-core machine compiles bytecode


@dataclasses.dataclass(frozen=True)
class ServiceDef:
    """How to run one service: its versions and its command template.

    The command may use `{version}`, `{replica}`, `{router}` and `{ready_file}`; the process
    must bind a loopback port, write it to the ready file and serve `/healthz` and `/metrics`.
    """

    name: str
    versions: tuple[str, ...]
    initial_version: str
    replicas: int
    command: tuple[str, ...]
    credential: str = ""
    """The secret-store credential this service consumes (reloaded on SIGHUP)."""
    tls: bool = False
    """Serves TLS with a certificate of the platform's local CA."""
    regional: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """Regional dependencies it calls: (dependency, its regions); the first is the default."""


def shop_command() -> tuple[str, ...]:
    return (sys.executable, "-m", "selfheal.shop.service", "--service", "{service}",
            "--version", "{version}", "--replica", "{replica}", "--router", "{router}",
            "--ready-file", "{ready_file}", "--state", "{state}")


@dataclasses.dataclass
class _Replica:
    service: str
    replica: str
    version: str
    port: int
    proc: procs.Proc


class LocalPlatform:
    """Implements `ports.Platform` with real processes."""

    name = "local"
    shared_host = True  # every replica runs on this machine: a change disturbs them all

    def __init__(self, workdir: Path, services: Sequence[ServiceDef],
                 clock: Callable[[], float], *, detached: bool = False) -> None:
        """`detached`: the services outlive selfheal (as they would on a real platform) and a
        restarted selfheal adopts them from the state file instead of starting afresh."""
        self.detached = detached
        self.adopted = False  # True when start() took over a platform a killed run left
        # Absolute: children run with the workdir as their cwd and get paths inside it.
        self.workdir = workdir.resolve()
        self.rundir = self.workdir / "run"
        self.services = {s.name: s for s in services}
        self.clock = clock
        self.table = procs.ProcessTable(self.rundir / "pids.json")
        self.router_port = 0
        self._replicas: dict[str, list[_Replica]] = {s.name: [] for s in services}
        self._history: dict[str, list[str]] = {s.name: [] for s in services}
        self._changes: list[model.Change] = []
        self._applied: dict[str, model.Change] = {}  # request id -> its change (idempotency)
        self._seq = itertools.count(1)
        self._lock = asyncio.Lock()
        self._http = httpx.AsyncClient(timeout=2.0)
        # Replicas replaced by a reversible restart: out of traffic, still running, so the
        # restart's inverse can put them back (stopped with the platform).
        self.quarantine: dict[str, _Replica] = {}
        self.state = state_mod.Layout(workdir / "state")
        self.repos = workdir / "repos"

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.rundir / "platform.json"

    async def start(self) -> None:
        """Adopt a detached platform left running, or reap leftovers and start afresh."""
        self.rundir.mkdir(parents=True, exist_ok=True)
        if self.detached and self._adopt():
            self.adopted = True
            return
        self.table.reap_stale()
        self.state_file.unlink(missing_ok=True)
        await remedies.prepare(self)
        ready = self.rundir / "router.port"
        ready.unlink(missing_ok=True)
        self._write_routes()
        router = await self.table.spawn(
            "router",
            [sys.executable, "-m", "selfheal.platforms.local.router",
             "--routes", str(self.rundir / "routes.json"), "--ready-file", str(ready)],
            self.rundir / "logs" / "router.log", self.workdir, detached=self.detached,
        )
        self.router_port = await self._await_port(ready, "router", router)
        await asyncio.gather(*(self._bring_up(s) for s in self.services.values()))
        self._save()

    def _save(self) -> None:
        """Persist what a restarted selfheal needs to adopt this platform (atomic write)."""
        if not self.detached:
            return
        router = self.table.procs.get("router")
        state = {
            "router": {"port": self.router_port, "pid": router.pid if router else 0,
                       "ticks": router.ticks if router else 0},
            "seq": next(self._seq),
            "history": self._history,
            "replicas": {svc: [{"replica": r.replica, "version": r.version, "port": r.port,
                                "pid": r.proc.pid, "ticks": r.proc.ticks} for r in reps]
                         for svc, reps in self._replicas.items()},
            "changes": [model.to_jsonable(c) for c in self._changes],
            "applied": {k: c.id for k, c in self._applied.items()},
            # Replicas a reversible restart kept aside: the inverse needs them back.
            "quarantine": [{"service": r.service, "replica": r.replica, "version": r.version,
                            "port": r.port, "pid": r.proc.pid, "ticks": r.proc.ticks}
                           for r in self.quarantine.values()],
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state), encoding="utf-8")
        os.replace(tmp, self.state_file)

    def _adopt(self) -> bool:
        """Re-attach to every recorded process; False (and nothing adopted) unless all live."""
        try:
            state = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        logs = self.rundir / "logs"
        rt = state["router"]
        if procs.start_ticks(rt["pid"]) != rt["ticks"] or any(
                procs.start_ticks(r["pid"]) != r["ticks"]
                for reps in state["replicas"].values() for r in reps):
            return False
        router = self.table.adopt("router", rt["pid"], rt["ticks"], logs / "router.log")
        assert router is not None
        self.router_port = rt["port"]
        for svc, reps in state["replicas"].items():
            adopted = []
            for r in reps:
                proc = self.table.adopt(r["replica"], r["pid"], r["ticks"],
                                        logs / f"{r['replica']}.log")
                assert proc is not None
                adopted.append(_Replica(svc, r["replica"], r["version"], r["port"], proc))
            self._replicas[svc] = adopted
        for r in state.get("quarantine", []):
            # One that died meanwhile is simply gone: its inverse will say it cannot return.
            if procs.start_ticks(r["pid"]) == r["ticks"]:
                proc = self.table.adopt(r["replica"], r["pid"], r["ticks"],
                                        logs / f"{r['replica']}.log")
                if proc is not None:
                    self.quarantine[r["replica"]] = _Replica(r["service"], r["replica"],
                                                             r["version"], r["port"], proc)
        self._history = {k: list(v) for k, v in state["history"].items()}
        self._changes = [model.Change(**{**c, "id": model.ChangeId(c["id"])})
                         for c in state["changes"]]
        by_id = {c.id: c for c in self._changes}
        self._applied = {k: by_id[v] for k, v in state["applied"].items() if v in by_id}
        self._seq = itertools.count(int(state["seq"]))
        return True

    async def detach(self) -> None:
        """Leave the platform running for a later selfheal to adopt (detached mode only)."""
        self._save()
        self.table.procs.clear()
        await self._http.aclose()

    async def _bring_up(self, svc: ServiceDef) -> None:
        new = await asyncio.gather(
            *(self._start_replica(svc, svc.initial_version) for _ in range(svc.replicas))
        )
        self._replicas[svc.name] = list(new)
        self._history[svc.name].append(svc.initial_version)
        self._write_routes()

    async def stop(self) -> None:
        await self.table.stop_all()
        await self._http.aclose()

    @property
    def router_url(self) -> str:
        return f"http://127.0.0.1:{self.router_port}"

    # -- reads -----------------------------------------------------------------------------

    def targets(self) -> list[ports.Target]:
        return [
            ports.Target(r.service, r.replica, r.version, f"http://127.0.0.1:{r.port}/metrics")
            for reps in self._replicas.values() for r in reps
        ]

    def replicas(self, service: str) -> list[ports.Replica]:
        return [ports.Replica(r.service, r.replica, r.version, r.proc.pid, r.port)
                for r in self._replicas.get(service, [])]

    def version(self, service: str) -> str:
        return self._history[service][-1]

    def previous_version(self, service: str) -> str | None:
        hist = self._history[service]
        current = hist[-1]
        for v in reversed(hist[:-1]):
            if v != current:
                return v
        return None

    def known_versions(self, service: str) -> list[str]:
        return list(self.services[service].versions)

    def changes(self) -> list[model.Change]:
        return list(self._changes)

    def pids(self) -> list[int]:
        return [p.pid for p in self.table.procs.values()]

    # -- mutations (the executor's door) ---------------------------------------------------

    async def deploy(self, service: str, version: str, *, who: str, why: str,
                     kind: str = "deploy", request_id: str = "") -> model.Change:
        """Rolling replacement of every replica by `version`."""
        svc = self._service(service)
        if version not in svc.versions:
            raise errors.PlatformError(f"{service} has no version {version!r}")
        async with self._lock:
            if request_id in self._applied:  # a retried request: done once, reported again
                return self._applied[request_id]
            before = self.version(service)
            count = len(self._replicas[service]) or svc.replicas
            await self._replace(svc, version, count)
            self._history[service].append(version)
            return self._record(request_id, service, kind, who,
                                f"{kind} {service} {before} -> {version}: {why}", before,
                                version)

    async def replace_replicas(self, service: str, version: str, count: int, *, who: str,
                               why: str, request_id: str = "") -> model.Change:
        """Replace `count` replicas by `version` (a canary); the version history is unchanged."""
        svc = self._service(service)
        if version not in svc.versions:
            raise errors.PlatformError(f"{service} has no version {version!r}")
        async with self._lock:
            if request_id in self._applied:  # a retried request: done once, reported again
                return self._applied[request_id]
            before = self.version(service)
            await self._replace(svc, version, count)
            return self._record(request_id, service, "canary", who,
                                f"canary {service}: {count} replica(s) -> {version}: {why}",
                                before, version)

    async def restart_replica(self, service: str, replica: str, *, who: str,
                              why: str, request_id: str = "") -> model.Change:
        svc = self._service(service)
        async with self._lock:
            if request_id in self._applied:  # a retried request: done once, reported again
                return self._applied[request_id]
            old = next((r for r in self._replicas[service] if r.replica == replica), None)
            if old is None:
                raise errors.PlatformError(f"{service} has no replica {replica!r}")
            new = await self._start_replica(svc, old.version)
            self._replicas[service] = [new if r is old else r for r in self._replicas[service]]
            self._write_routes()
            await asyncio.sleep(DRAIN_S)
            await self.table.stop(old.replica)
            return self._record(request_id, service, "restart", who, f"restart {replica}: {why}",
                                old.version, old.version)

    async def scale(self, service: str, replicas: int, *, who: str, why: str,
                    request_id: str = "") -> model.Change:
        svc = self._service(service)
        if not 1 <= replicas <= 16:
            raise errors.PlatformError(f"cannot scale {service} to {replicas} replicas (1..16)")
        async with self._lock:
            if request_id in self._applied:  # a retried request: done once, reported again
                return self._applied[request_id]
            current = self._replicas[service]
            before = len(current)
            version = self.version(service)
            if replicas > before:
                new = await asyncio.gather(
                    *(self._start_replica(svc, version) for _ in range(replicas - before)))
                self._replicas[service] = current + list(new)
                self._write_routes()
            elif replicas < before:
                gone = current[replicas:]
                self._replicas[service] = current[:replicas]
                self._write_routes()
                await asyncio.sleep(DRAIN_S)
                await asyncio.gather(*(self.table.stop(r.replica) for r in gone))
            return self._record(request_id, service, "scale", who,
                                f"scale {service} {before} -> {replicas}: {why}", version, version)

    async def remedy(self, action: model.Action, *, who: str, why: str,
                     request_id: str = "") -> model.Change:
        """Carry out a state-level catalogue action (see `remedies`); at most once per id."""
        self._service(action.service)
        async with self._lock:
            if request_id in self._applied:  # a retried request: done once, reported again
                return self._applied[request_id]
            done = await remedies.apply(self, action)
            version = self.version(action.service)
            return self._record(request_id, action.service, action.kind.value, who,
                                f"{done.what}: {why}", done.before or version,
                                done.after or version)

    async def change_config(self, service: str, values: dict[str, object], *, who: str,
                            why: str) -> model.Change:
        """An operator's config change: a new revision of the service's config file."""
        self._service(service)
        async with self._lock:
            before, after = remedies.new_config_revision(self, service, values)
            return self._record("", service, "config", who,
                                f"config {service} {before} -> {after}: {why}", before, after)

    async def replace_replica(self, service: str, replica: str) -> str:
        """Swap `replica` for a fresh one of the same version; the old one is quarantined."""
        svc = self._service(service)
        old = next((r for r in self._replicas[service] if r.replica == replica), None)
        if old is None:
            raise errors.PlatformError(f"{service} has no replica {replica!r}")
        new = await self._start_replica(svc, old.version)
        self._replicas[service] = [new if r is old else r for r in self._replicas[service]]
        self.quarantine[old.replica] = old
        self._write_routes()
        return new.replica

    async def readmit_replica(self, service: str, old: str, new: str) -> None:
        """Undo `replace_replica`: the quarantined `old` serves again, `new` is stopped."""
        back = self.quarantine.pop(old, None)
        if back is None or not back.proc.running():
            raise errors.PlatformError(f"{old} is no longer kept aside; it cannot come back")
        self._replicas[service] = [back if r.replica == new else r
                                   for r in self._replicas[service]]
        if back not in self._replicas[service]:
            self._replicas[service].append(back)
        self._write_routes()
        await asyncio.sleep(DRAIN_S)
        await self.table.stop(new)

    def failovers(self, service: str) -> list[tuple[str, str]]:
        """Callers routed to `service` as one region of a regional dependency, each with the
        first other region it could use instead (`ports.Failover`)."""
        out = []
        for caller in self.services.values():
            routed = dict(state_mod.read_json(self.state.regions(caller.name)) or {})
            for dep, regions in caller.regional:
                now = routed.get(dep, regions[0])
                others = [r for r in regions if r != now]
                if f"{dep}-{now}" == service and others:
                    out.append((caller.name, others[0]))
        return out

    async def signal_replicas(self, service: str, sig: int) -> int:
        """Send `sig` to every replica of `service` (a reload); returns how many got it."""
        sent = 0
        for r in self._replicas.get(service, []):
            if r.proc.running():
                os.kill(r.proc.pid, sig)
                sent += 1
        return sent

    # -- internals -------------------------------------------------------------------------

    def _service(self, name: str) -> ServiceDef:
        svc = self.services.get(name)
        if svc is None:
            raise errors.PlatformError(f"unknown service {name!r}")
        return svc

    async def _replace(self, svc: ServiceDef, version: str, count: int) -> None:
        current = self._replicas[svc.name]
        # Replace replicas of other versions first, oldest first.
        order = sorted(current, key=lambda r: r.version == version)
        victims = order[:count]
        new = await asyncio.gather(*(self._start_replica(svc, version) for _ in victims))
        keep = [r for r in current if r not in victims]
        self._replicas[svc.name] = list(new) + keep
        self._write_routes()
        await asyncio.sleep(DRAIN_S)
        await asyncio.gather(*(self.table.stop(r.replica) for r in victims))

    async def _start_replica(self, svc: ServiceDef, version: str) -> _Replica:
        replica = f"{svc.name}-{next(self._seq)}"
        ready = self.rundir / f"{replica}.port"
        ready.unlink(missing_ok=True)
        values = {"service": svc.name, "version": version, "replica": replica,
                  "router": self.router_url, "ready_file": str(ready),
                  "state": str(self.state.root.resolve())}
        argv = [part.format(**values) for part in svc.command]
        proc = await self.table.spawn(replica, argv, self.rundir / "logs" / f"{replica}.log",
                                      self.workdir, detached=self.detached)
        try:
            port = await self._await_port(ready, replica, proc)
            await self._await_healthy(port, replica)
        except errors.PlatformError:
            await self.table.stop(replica)
            raise
        return _Replica(svc.name, replica, version, port, proc)

    async def _await_port(self, ready: Path, name: str, proc: procs.Proc | None = None) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT_S
        while loop.time() < deadline:
            if ready.exists():
                return int(ready.read_text(encoding="utf-8"))
            if proc is not None and not proc.running():
                raise errors.PlatformError(
                    f"{name} exited with {proc.returncode} before it was ready "
                    f"(see {proc.log_path})")
            await asyncio.sleep(0.05)
        raise errors.PlatformError(f"{name} did not become ready in {READY_TIMEOUT_S:.0f} s",
                                   retryable=True)

    async def _await_healthy(self, port: int, name: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT_S
        while loop.time() < deadline:
            try:
                r = await self._http.get(f"http://127.0.0.1:{port}/healthz")
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
        raise errors.PlatformError(f"{name} never reported healthy", retryable=True)

    def _write_routes(self) -> None:
        table = {name: [r.port for r in reps] for name, reps in self._replicas.items()}
        path = self.rundir / "routes.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(table), encoding="utf-8")
        os.replace(tmp, path)

    def _record(self, request_id: str, service: str, kind: str, who: str, what: str,
                before: str, after: str) -> model.Change:
        change = model.Change(
            id=model.ChangeId(uuid.uuid4().hex[:12]), t=self.clock(), service=service,
            kind=kind, who=who, what=what, from_version=before, to_version=after)
        self._changes.append(change)
        if request_id:
            self._applied[request_id] = change
        self._save()
        return change
