"""Prometheus's range answers as NumPy columns, and a stretch of history held on them.

`prometheus.PrometheusSource.chunks` (what `history` reads, a fleet's days at a start) turns
each query_range answer into (labels, times, values) arrays with `columns` and the answers of
one chunk into a `ports.HistoryChunk` with `chunk`: 9 bytes a point where a tuple of floats a
point would cost ~10x more.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from selfheal import errors, model, ports

F64 = npt.NDArray[np.float64]


def value(raw: Any) -> float:
    """A point's value as Prometheus writes it ("1.5", "NaN", "+Inf"); NaN for anything else."""
    try:
        return float(raw)
    except (TypeError, ValueError):
        return math.nan


def columns(data: Any, what: str) -> list[tuple[model.Params, F64, F64]]:
    """A query_range answer as (labels, times, values) arrays per series: what `history`
    reads, a fleet's hours at a time, where a tuple of floats a point would cost ~10x more.
    Refused as `PrometheusSource.range` refuses one (and a time that is not a finite number
    is refused too)."""
    try:
        # nothing but what a range query answers: a matrix (a list of series, each with a list
        # of points); anything else would be learned as no data, silently
        if not (isinstance(data, dict) and data.get("resultType") == "matrix"
                and isinstance(data.get("result"), list)):
            kind = data.get("resultType") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"not a range (matrix) result but {kind!r}")
        if not all(isinstance(item, dict) and isinstance(item.get("values", []), list)
                   for item in data["result"]):
            raise ValueError("a series' values are not a list of points")
        out = [(labels, *_points(item.get("values") or []))
               for item, labels in ((item, _labels(item)) for item in data["result"])]
        for _, times, _ in out:
            if not np.isfinite(times).all():
                raise ValueError("a point's time is not a finite number")
    except (TypeError, ValueError, AttributeError) as exc:  # a proxy's or a broken answer
        raise errors.DataUnavailable(f"Prometheus answered {what} with a malformed result: "
                                     f"{exc}") from exc
    return out


def _labels(item: Any) -> model.Params:
    return tuple(sorted((str(k), str(v)) for k, v in (item.get("metric") or {}).items()))


def _points(values: Any) -> tuple[F64, F64]:
    """The [[t, "v"], ...] of one series as two arrays, read as `PrometheusSource.range`
    reads them (`float(t)`, `value(v)`), without a Python tuple a point."""
    n = len(values)
    if set(map(type, values)) <= {list} and set(map(len, values)) <= {2}:
        times = np.fromiter(map(float, [p[0] for p in values]), np.float64, n)
        raw = [p[1] for p in values]
        try:
            return times, np.fromiter(map(float, raw), np.float64, n)
        except (TypeError, ValueError):  # "NaN" is read; anything float() refuses is NaN
            return times, np.fromiter(map(value, raw), np.float64, n)
    pts = [(float(t), value(v)) for t, v in values]  # raises as `range` does
    return (np.array([t for t, _ in pts], np.float64).reshape(-1),
            np.array([v for _, v in pts], np.float64).reshape(-1))


GRID_TOLERANCE_S = 1e-3
"""How far a point's time may be from its query's step grid (Prometheus answers times in
milliseconds) before `on_grid` refuses the answer."""


def on_grid(got: Sequence[tuple[model.Params, F64, F64]], t0: float, step_s: float, n: int,
            what: str) -> None:
    """Refuse (`errors.DataUnavailable`) a query_range answer with a point off its grid,
    `t0 + k * step_s` for 0 <= k < n. Prometheus answers on it; a proxy's or a broken answer
    may not, and `chunk` holds the times of all its series: distinct times a series would
    make it grow as the points squared (times x series), not as the points."""
    count, first = 0, math.nan
    for _, times, _ in got:
        k = np.rint((times - t0) / step_s)
        off = (k < 0) | (k >= n) | (np.abs(times - (t0 + k * step_s)) > GRID_TOLERANCE_S)
        if off.any():
            count, first = count + int(off.sum()), first if count else float(times[off][0])
    if count:
        raise errors.DataUnavailable(
            f"Prometheus answered {what} with {count} points off the step grid ({n} points "
            f"every {step_s:g} s from {t0:.3f}; the first at {first:.3f}): the answer is "
            "refused")


def chunk(found: Sequence[tuple[tuple[str, str], F64, F64]]) -> ports.HistoryChunk:
    """The series of one chunk (in the order the queries answered them) as columns on the
    times any of them has (their step grid: `on_grid`): a name met twice takes the later
    series' value where both have one (as a dict a tick would), and its place in each tick's
    order from the first series present there (`rank`)."""
    keys: dict[tuple[str, str], int] = {}
    for key, _, _ in found:
        keys.setdefault(key, len(keys))
    grid = np.unique(np.concatenate([times for _, times, _ in found])) if found \
        else np.zeros(0)
    values = np.full((grid.size, len(keys)), np.nan)
    present = np.zeros((grid.size, len(keys)), np.bool_)
    rank = None if len(keys) == len(found) else np.full(present.shape, len(found), np.int64)
    for k, (key, times, given) in enumerate(found):
        col = keys[key]
        at, vals = np.searchsorted(grid, times), given
        if at.size > 1 and not (np.diff(times) > 0).all():
            # a time given twice (or out of order): its last value, as a dict keeps it
            at, last = np.unique(at[::-1], return_index=True)
            vals = given[::-1][last]
        if rank is not None:
            rank[at, col] = np.where(present[at, col], rank[at, col], k)
        values[at, col] = vals
        present[at, col] = True
    return ports.HistoryChunk(keys=tuple(keys), t=grid, values=values, present=present,
                              rank=rank)
