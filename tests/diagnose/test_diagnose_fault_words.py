"""The words of a log template name the fault, so the planner need not read evidence text."""

from __future__ import annotations

import pytest

from selfheal import model
from selfheal.diagnose import logs, reconcile


@pytest.mark.parametrize(("text", "fault"), [
    ("cache entry /items is corrupt: cannot decode <*>", model.FaultKind.CACHE),
    ("serving a stale cache entry for <*>", model.FaultKind.CACHE),
    ("connection pool exhausted: a request waited <*> ms", model.FaultKind.OVERLOAD),
    ("worker queue is full, dropping request", model.FaultKind.OVERLOAD),
    ("call to cart/cart failed: timed out", model.FaultKind.LATENCY),
    ("cache hit ratio <*>", model.FaultKind.UNKNOWN),  # a cache mentioned is not a cache fault
])
def test_template_words_name_the_fault(text: str, fault: model.FaultKind) -> None:
    assert logs.fault_of(text) is fault


def test_cache_and_overload_faults_carry_their_remedy() -> None:
    assert reconcile.ACTION_FAMILY[model.FaultKind.CACHE] is model.ActionKind.CACHE_FLUSH
    assert reconcile.ACTION_FAMILY[model.FaultKind.OVERLOAD] is model.ActionKind.SCALE
