"""The executor: the one door to production (design invariant 1).

Every platform mutation in selfheal goes through `Executor.run`, which accepts only a `Permit`
minted by the policy gate, checks it, writes the intent to the ledger before the call
(write-ahead), makes the call, and writes the result after it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from selfheal import errors, model, ports
from selfheal.policy import gate as policy_gate


@runtime_checkable
class Remedies(Protocol):
    """A platform that also carries out the state-level catalogue actions (config revert,
    cache flush, certificate renewal, credential rotation, traffic shift, code revert)."""

    async def remedy(self, action: model.Action, *, who: str, why: str,
                     request_id: str = "") -> model.Change: ...


STATE_ACTIONS = frozenset({
    model.ActionKind.CONFIG_REVERT, model.ActionKind.CACHE_FLUSH, model.ActionKind.CERT_RENEW,
    model.ActionKind.CREDENTIAL_ROTATE, model.ActionKind.TRAFFIC_SHIFT,
    model.ActionKind.CODE_REVERT,
})


class Executor:
    def __init__(self, platform: ports.Platform, store: ports.Store,
                 verifier: policy_gate.Verifier, clock: Callable[[], float],
                 agent: str = "selfheal", failpoint: str = "") -> None:
        self._platform = platform
        self._store = store
        self._verifier = verifier
        self._clock = clock
        self.agent = agent
        # For crash tests only: "after-intent:<phase>" or "after-call:<phase>" SIGKILLs this
        # process at that point, as a power cut would.
        self.failpoint = failpoint

    async def run(self, permit: model.Permit, incident_id: str, *, phase: str,
                  canary_replicas: int = 0,
                  execution_id: model.ExecutionId | None = None) -> model.Execution:
        """Carry out the permit's action (or its canary phase); returns what happened.

        `execution_id` resumes an execution whose intent a killed selfheal wrote: the platform
        applies a request id at most once, so the call is completed, never repeated.
        """
        action = permit.action
        now = self._clock()
        self._verifier.check(permit, action, now)
        exec_id = execution_id or model.ExecutionId(uuid.uuid4().hex[:12])
        self._store.append_ledger(now, incident_id, "execution.intent", {
            "execution": exec_id, "permit": permit.id, "plan": permit.plan_id,
            "policy_hash": permit.policy_hash, "action": action, "phase": phase,
            "canary_replicas": canary_replicas, "resumed": execution_id is not None})
        self._fail(f"after-intent:{phase}")
        started = self._clock()
        try:
            change = await self._call(action, phase, canary_replicas, exec_id)
            self._fail(f"after-call:{phase}")
        except errors.PlatformError as exc:
            result = model.Execution(id=exec_id, permit_id=permit.id, action=action,
                                     started_at=started, finished_at=self._clock(),
                                     status=model.ExecutionStatus.FAILED, detail=str(exc),
                                     phase=phase)
        else:
            result = model.Execution(id=exec_id, permit_id=permit.id, action=action,
                                     started_at=started, finished_at=self._clock(),
                                     status=model.ExecutionStatus.SUCCEEDED, detail=change.what,
                                     phase=phase)
        self._store.append_ledger(self._clock(), incident_id, "execution.result",
                                  {"execution": result, "phase": phase})
        return result

    def _fail(self, point: str) -> None:
        if self.failpoint == point:
            os.kill(os.getpid(), signal.SIGKILL)

    async def _call(self, action: model.Action, phase: str, canary: int,
                    request_id: str) -> model.Change:
        who = f"{self.agent} (permit)"
        svc = action.service
        # Shielded: a cancelled incident task must not leave a half-done platform call.
        if action.kind in (model.ActionKind.ROLLBACK, model.ActionKind.DEPLOY):
            version = action.param("to_version")
            if canary:
                return await asyncio.shield(self._platform.replace_replicas(
                    svc, version, canary, who=who, why=phase, request_id=request_id))
            return await asyncio.shield(self._platform.deploy(
                svc, version, who=who, why=phase, kind=action.kind.value,
                request_id=request_id))
        if action.kind == model.ActionKind.SCALE:
            return await asyncio.shield(self._platform.scale(
                svc, int(action.param("to_replicas")), who=who, why=phase,
                request_id=request_id))
        reversible = bool(action.param("snapshot") or action.param("restore"))
        if action.kind == model.ActionKind.RESTART and reversible \
                and isinstance(self._platform, Remedies):
            return await asyncio.shield(self._platform.remedy(
                action, who=who, why=phase, request_id=request_id))
        if action.kind == model.ActionKind.RESTART:
            return await asyncio.shield(self._platform.restart_replica(
                svc, action.param("replica"), who=who, why=phase, request_id=request_id))
        if action.kind in STATE_ACTIONS and isinstance(self._platform, Remedies):
            return await asyncio.shield(self._platform.remedy(
                action, who=who, why=phase, request_id=request_id))
        raise errors.PlatformError(f"the {self._platform.name} platform cannot {action.kind}")
