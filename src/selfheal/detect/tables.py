"""Per-series cells of the detector's (series, bins) tables: the seasonal profiles and the
usual strengths by phase, read and written by flat index (2-D fancy indexing cost 3-4x more at
100,000 series), and a profile read between its bins."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


def cells(table: npt.NDArray[Any], flat: npt.NDArray[np.int64]) -> F64:
    """One cell per series of a (capacity, bins) table, by flat index, as float64."""
    return np.take(table.reshape(-1), flat).astype(np.float64)


def set_cells(table: npt.NDArray[Any], flat: npt.NDArray[np.int64],
              values: npt.NDArray[Any]) -> None:
    """Write one cell per series of a (capacity, bins) table, by flat index, in its dtype."""
    # the tables are allocated C-contiguous, so the flat view writes through
    assert table.flags.c_contiguous
    table.reshape(-1)[flat] = values


def between(table: npt.NDArray[Any], rows: npt.NDArray[np.int64], phase: F64,
            bins: int) -> F64:
    """Each series' profile at `phase` (0-1 of the period), read linearly between the centres
    of the two nearest of its `bins` (the last wraps to the first): a profile learned by hour
    reads as a line through the hours' means, not as a step at each hour's start."""
    pos = phase * bins - 0.5
    below = np.floor(pos)
    frac = pos - below
    lo = np.mod(below.astype(np.int64), bins)
    hi = np.mod(lo + 1, bins)
    return ((1.0 - frac) * cells(table, rows * bins + lo)
            + frac * cells(table, rows * bins + hi))
