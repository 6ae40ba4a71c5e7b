"""Hypothesis strategies shared by the detectors' property tests: the values a broken or
hostile exporter sends, and two series that share a past and then differ."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

values = st.one_of(
    st.floats(min_value=-1e9, max_value=1e9, allow_nan=False),
    # a broken or hostile exporter's magnitudes (squares past 1e154 overflow)
    st.floats(min_value=1e140, max_value=1.7e308).flatmap(lambda v: st.sampled_from([v, -v])),
    st.just(math.nan),
    st.just(math.inf),
    st.just(-math.inf),
    st.just(0.0),
)


def futures() -> dict[str, Any]:
    """`@given` arguments: a shared `head`, then two different tails `tail_a` and `tail_b`
    (a detector that reads no future scores the head the same in both)."""
    return {"head": st.lists(values, min_size=1, max_size=60),
            "tail_a": st.lists(values, min_size=1, max_size=20),
            "tail_b": st.lists(values, min_size=1, max_size=20)}
