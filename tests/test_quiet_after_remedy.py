"""After a remedy, the controller keeps quiet what the remedy disturbs (`Workflow.quiet_around`).

`correlate.around` says which services a remedy disturbs; these tests check that the workflow
feeds it the incident's own record: the callers that joined the incident as its symptoms
(`detail["related"]`) make their other callees quiet after an action, and only then.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from selfheal import config, model, policy
from selfheal.engine import controller as controller_mod
from selfheal.engine import serve
from selfheal.store import sql

pytestmark = pytest.mark.timeout(60)
NOW = 1_800_000_000.0
# frontend fans out to four services; admin calls auth too
SERVICES = {"frontend": ["auth", "catalog", "cart", "checkout"], "admin": ["auth"],
            "auth": [], "catalog": ["inventory"], "cart": [], "checkout": ["cart"],
            "inventory": []}


def _controller(workdir: Path) -> tuple[controller_mod.Controller, sql.SqlStore]:
    cfg = config.Config(workdir=workdir, platform=config.PlatformSettings(services=SERVICES))
    store = sql.SqlStore(cfg.database_url())
    ctl = controller_mod.Controller(
        cfg, serve.ObservedPlatform(SERVICES), store,
        policy.Gate(policy.parse(serve.OBSERVE_POLICY, "test")),
        {svc: tuple(callees) for svc, callees in SERVICES.items()}, lambda: NOW,
        lambda e: None, feeds=[])
    return ctl, store


def _case(related: list[str]) -> controller_mod.Case:
    inc = model.Incident(id=model.IncidentId("inc-1"), service="cart", opened_at=NOW,
                         title="cart hung", anomalies=())
    return controller_mod.Case(incident=inc, detail={"related": related}, timeline=[])


@pytest.mark.parametrize(("related", "acted", "quiet"), [
    # frontend stalled on the hung cart: its release reaches its other callees
    (["frontend"], True, {"cart", "frontend", "checkout", "auth", "catalog"}),
    # no action, no rebound: the service and its direct neighbours only
    (["frontend"], False, {"cart", "frontend", "checkout"}),
    # frontend was not a symptom of this incident: its other callees are not disturbed
    ([], True, {"cart", "frontend", "checkout"}),
])
def test_a_remedy_quiets_the_siblings_of_the_callers_its_incident_stalled(
        tmp_path: Path, related: list[str], acted: bool, quiet: set[str]) -> None:
    ctl, store = _controller(tmp_path)
    try:
        ctl.workflow.quiet_around(_case(related), "cart", NOW + 30.0, acted=acted)
        assert {s for s, until in ctl.quiet_until.items() if until == NOW + 30.0} == quiet
    finally:
        store.close()


def test_a_quiet_already_longer_is_not_shortened(tmp_path: Path) -> None:
    ctl, store = _controller(tmp_path)
    try:
        ctl.quiet_until["auth"] = NOW + 100.0
        ctl.workflow.quiet_around(_case(["frontend"]), "cart", NOW + 30.0)
        assert ctl.quiet_until["auth"] == NOW + 100.0
        assert ctl.quiet_until["catalog"] == NOW + 30.0
    finally:
        store.close()
