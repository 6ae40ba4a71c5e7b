"""The changes investigator (suspects, not proof; unknown source is NO_DATA) and theory parsing."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from selfheal import diagnose, model
from selfheal.diagnose import changes as changes_mod
from selfheal.diagnose import human

pytestmark = pytest.mark.timeout(30)

Make = Callable[..., diagnose.Window]
INVESTIGATOR = changes_mod.ChangesInvestigator()
SETTINGS = diagnose.DEFAULT_SETTINGS


def _change(t: float, kind: str = "deploy", service: str = "auth") -> model.Change:
    return model.Change(model.ChangeId(f"c-{t}"), t, service, kind, "ci-bot", "release")


def test_recent_deploy_is_a_stronger_suspect_than_an_old_one(make_demo: Make) -> None:
    window = make_demo(0)
    recent = _change(window.start - 10)
    old = _change(window.start - 1200, service="cart")
    found = INVESTIGATOR.investigate(
        dataclasses.replace(window, changes=(old, recent)), (), SETTINGS
    )
    by_service = {e.service: e for e in found}
    assert by_service["auth"].strength > by_service["cart"].strength > 0.0
    assert by_service["auth"].fault is model.FaultKind.BAD_DEPLOY
    assert "by ci-bot" in by_service["auth"].observation


def test_config_change_points_at_config(make_demo: Make) -> None:
    window = make_demo(0)
    found = INVESTIGATOR.investigate(
        dataclasses.replace(window, changes=(_change(window.start, kind="config"),)), (), SETTINGS
    )
    assert found[0].fault is model.FaultKind.CONFIG


def test_changes_outside_the_lookback_are_ignored(make_demo: Make) -> None:
    window = make_demo(0)
    ancient = _change(window.start - SETTINGS.change_lookback_s - 60)
    found = INVESTIGATOR.investigate(dataclasses.replace(window, changes=(ancient,)), (), SETTINGS)
    assert [e.service for e in found] == [""]
    assert found[0].status is model.EvidenceStatus.OK


def test_no_change_source_is_no_data_not_good_news(make_demo: Make) -> None:
    window = dataclasses.replace(make_demo(0), changes=None)
    found = INVESTIGATOR.investigate(window, (), SETTINGS)
    assert [e.status for e in found] == [model.EvidenceStatus.NO_DATA]
    assert "unavailable" in found[0].observation


def test_without_the_deploy_the_fault_is_the_mechanism(make_demo: Make) -> None:
    window = dataclasses.replace(make_demo(0), changes=())
    result = diagnose.diagnose(window, now=window.end)
    top = result.top
    assert top is not None and top.service == "auth"
    assert top.fault is not model.FaultKind.BAD_DEPLOY
    assert top.action_family is not model.ActionKind.ROLLBACK


def test_a_theory_about_the_database_finds_the_db_service() -> None:
    services = ("frontend", "orders-db", "ts-auth-service")
    assert human.named_services("look at the database", services) == ["orders-db"]
    assert human.named_services("auth is slow since noon", services) == ["ts-auth-service"]
    assert human.split_theory("alice: look at the database") == ("alice", "look at the database")
    assert human.split_theory("look at it: now") == ("a human", "look at it: now")
