"""The action catalogue: every action selfheal may propose, typed, with its inverse and risk.

Read by the planner (what can fix what), the policy gate (risk, blast radius, whether the
action may ever be autonomous) and the executor (how to undo). An action type that is not here
cannot be proposed, permitted or executed (design invariants 1 and 2).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

from selfheal import model

SERVICE_NAME = re.compile(r"[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?")
GIT_REVS = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,99}(\.\.[A-Za-z0-9_][A-Za-z0-9_./-]{0,99})?")
"""A commit (sha, tag, branch) or a range `A..B`; never an option (`-x`) or a path trick."""
"""A service name as DNS and Kubernetes allow it: no wildcard, no spaces, no shell."""


@dataclasses.dataclass(frozen=True)
class ActionType:
    kind: model.ActionKind
    description: str
    required: tuple[str, ...]  # parameter names
    risk: model.RiskClass
    blast_radius: str  # what it touches: "service", "replica", "fleet", "repository"
    inverse: Callable[[model.Action], model.Action | None]
    one_of: tuple[str, ...] = ()
    """At least one of these parameters must be given (a forward action or its restore)."""

    def has_clean_inverse(self, action: model.Action) -> bool:
        return self.inverse(action) is not None


def _version_swap(kind: model.ActionKind) -> Callable[[model.Action], model.Action | None]:
    def inverse(a: model.Action) -> model.Action | None:
        frm, to = a.param("from_version"), a.param("to_version")
        if not frm or not to:
            return None
        return model.Action(kind, a.service, model.params(from_version=to, to_version=frm))
    return inverse


def _scale_inverse(a: model.Action) -> model.Action | None:
    frm, to = a.param("from_replicas"), a.param("to_replicas")
    if not frm or not to:
        return None
    return model.Action(model.ActionKind.SCALE, a.service,
                        model.params(from_replicas=to, to_replicas=frm))


def _restart_inverse(a: model.Action) -> model.Action | None:
    # A plain restart cannot be taken back (the old process and its state are gone), so by
    # design invariant 2 it needs a human's approval. A restart with a `snapshot` keeps the old
    # process aside, out of traffic, and its inverse puts it back.
    if not a.param("snapshot"):
        return None
    return model.Action(a.kind, a.service, model.params(restore=a.param("snapshot")))


def _restore(a: model.Action) -> model.Action | None:
    """The inverse of a state-level action: put back exactly what its snapshot saved.

    The forward action names a `snapshot` id the platform saves the replaced state under
    before it changes anything; the restore names it back. A restore has no inverse of its own.
    """
    snap = a.param("snapshot")
    if not snap:
        return None
    return model.Action(a.kind, a.service, model.params(restore=snap))


SNAPSHOT = ("snapshot", "restore")

CATALOGUE: dict[model.ActionKind, ActionType] = {
    t.kind: t for t in (
        ActionType(model.ActionKind.ROLLBACK, "deploy the previous good version again",
                   ("from_version", "to_version"), model.RiskClass.LOW, "service",
                   _version_swap(model.ActionKind.DEPLOY)),
        ActionType(model.ActionKind.DEPLOY, "deploy a given version (roll forward)",
                   ("from_version", "to_version"), model.RiskClass.MEDIUM, "service",
                   _version_swap(model.ActionKind.ROLLBACK)),
        ActionType(model.ActionKind.SCALE, "change the number of replicas",
                   ("from_replicas", "to_replicas"), model.RiskClass.LOW, "service",
                   _scale_inverse),
        ActionType(model.ActionKind.RESTART, "replace one replica (or every replica failing "
                   "its health check: replica=unhealthy) by a fresh process",
                   ("replica",), model.RiskClass.LOW, "replica", _restart_inverse),
        ActionType(model.ActionKind.CONFIG_REVERT,
                   "return the service's config to the revision before the current one",
                   (), model.RiskClass.LOW, "service", _restore, SNAPSHOT),
        ActionType(model.ActionKind.CACHE_FLUSH,
                   "empty the service's cache (its entries are kept aside for the inverse)",
                   (), model.RiskClass.LOW, "service", _restore, SNAPSHOT),
        ActionType(model.ActionKind.CERT_RENEW,
                   "issue a new certificate from the CA and install it", (),
                   model.RiskClass.LOW, "service", _restore, SNAPSHOT),
        ActionType(model.ActionKind.CREDENTIAL_ROTATE,
                   "issue a new credential in the secret store and reload its consumers", (),
                   model.RiskClass.MEDIUM, "service", _restore, SNAPSHOT),
        ActionType(model.ActionKind.TRAFFIC_SHIFT,
                   "send the service's calls to a regional dependency to another region", (),
                   model.RiskClass.MEDIUM, "service", _restore, SNAPSHOT),
        ActionType(model.ActionKind.CODE_REVERT,
                   "git revert the offending commit on a branch and draft a pull request",
                   ("commit",), model.RiskClass.LOW, "repository", _restore, SNAPSHOT),
    )
}


def lookup(kind: model.ActionKind) -> ActionType | None:
    return CATALOGUE.get(kind)


def inverse(action: model.Action) -> model.Action | None:
    t = CATALOGUE.get(action.kind)
    return t.inverse(action) if t else None


def validate(action: model.Action) -> str | None:
    """Why `action` is not a well-formed catalogue action, or None when it is."""
    if not isinstance(action.kind, model.ActionKind):
        return f"{str(action.kind)[:60]!r} is not an action type of the catalogue"
    t = CATALOGUE.get(action.kind)
    if t is None:
        return f"{action.kind} is not in the action catalogue"
    if not SERVICE_NAME.fullmatch(action.service):
        return f"{action.service[:60]!r} is not a valid service name"
    if action.param("restore") and (t.one_of or t.kind == model.ActionKind.RESTART):
        return None  # an inverse needs only the snapshot it restores
    missing = [p for p in t.required if not action.param(p)]
    if missing:
        return f"{action.kind} is missing parameters: {', '.join(missing)}"
    if t.one_of and not any(action.param(p) for p in t.one_of):
        return f"{action.kind} needs one of: {', '.join(t.one_of)}"
    commit = action.param("commit")
    if commit and not GIT_REVS.fullmatch(str(commit)):
        return f"{str(commit)[:60]!r} is not a commit or a range of two revisions"
    return None
