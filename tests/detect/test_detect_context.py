"""The expected tag: inside a change's settle window (or maintenance), and not once outlasted."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from selfheal import model
from selfheal.detect import Context, context


def _change(t: float, service: str = "auth") -> model.Change:
    return model.Change(model.ChangeId("c1"), t, service, "deploy", "ci", "deploy", "1", "2")


@given(
    change_t=st.floats(0, 1000),
    start_off=st.floats(-50, 50),
    age=st.floats(0, 60),
    settle=st.floats(1, 30),
    service=st.sampled_from(["auth", "*", "cart"]),
)
def test_expected_exactly_inside_the_settle_window(
    change_t: float, start_off: float, age: float, settle: float, service: str
) -> None:
    ctx = Context(changes=(_change(change_t, service),), settle_s=settle, lead_s=2.0)
    started = change_t + start_off
    t = started + age
    verdict = context.judge(ctx, "auth", started, t)
    applies = service in ("auth", "*")
    began_inside = change_t - 2.0 <= started <= change_t + settle
    assert verdict.expected == (applies and began_inside and t <= change_t + settle)
    if applies and began_inside and not verdict.expected:
        assert "outlasted" in verdict.reason
    if not applies or not began_inside:
        assert verdict.reason == ""


def test_maintenance_window_and_after() -> None:
    ctx = Context(maintenance=((100.0, 200.0, "*"),))
    assert context.judge(ctx, "auth", 150.0, 160.0).expected
    late = context.judge(ctx, "auth", 150.0, 260.0)
    assert not late.expected and "outlasted" in late.reason
    assert context.judge(ctx, "auth", 250.0, 260.0) == context.Judgement(False, "")
