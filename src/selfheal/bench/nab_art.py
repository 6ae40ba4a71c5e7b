"""A second detector family for NAB: adaptive-resonance categories of short windows.

The core (`detect.core`) models a series' level, noise and change points; this family knows
none of that. It learns categories of the series' recent shape (a fuzzy-ART network over
short windows of block means, scaled by the series' range so far) and marks the rows where a
window matches no category and a new one is made. `bench.nab.run` calls `creations` per file
and `confirm` to raise the odds of an onset that such a row accompanies (`bench.nab.ART`);
docs/bench/nab-family-notes.md has the measurements, and the fusions that did not score.

Row i reads rows 0..i only: its window ends at row i, it is scaled by the range of rows
0..i, and the categories it is matched against were learned from earlier windows.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
Flags = npt.NDArray[np.bool_]


@dataclasses.dataclass(frozen=True)
class ArtSettings:
    """The category network and its confirmation rule.

    A window is `blocks` means of `block_rows` rows each, ending at the row, scaled to [0, 1]
    by the series' range so far and complement-coded (fuzzy ART). It resonates with a learned
    category when their fuzzy overlap covers at least `vigilance` of it; of those that
    resonate, the one with the largest overlap for its size (`choice` keeps small ones from
    winning by size alone) learns at `rate`. A window that resonates with none makes a new
    category (at most `categories`; beyond that its nearest one widens to hold it instead):
    that row is a creation.
    """

    blocks: int = 8
    block_rows: int = 2
    vigilance: float = 0.85
    rate: float = 0.1
    choice: float = 1e-3
    categories: int = 400
    gain: float = 3.0
    """An onset with a creation among the last `ticks` rows has its odds multiplied by
    1 + `gain`."""
    ticks: int = 2

    def __post_init__(self) -> None:
        if self.blocks < 1 or self.block_rows < 1:
            raise ValueError(
                f"blocks and block_rows must be >= 1, got {self.blocks}, {self.block_rows}"
            )
        if not 0.0 < self.vigilance <= 1.0:
            raise ValueError(f"vigilance must be in (0, 1], got {self.vigilance}")
        if not 0.0 < self.rate <= 1.0:
            raise ValueError(f"rate must be in (0, 1], got {self.rate}")
        if self.choice <= 0.0:
            raise ValueError(f"choice must be positive, got {self.choice}")
        if self.categories < 1 or self.ticks < 1:
            raise ValueError(
                f"categories and ticks must be >= 1, got {self.categories}, {self.ticks}"
            )
        if self.gain < 0.0:
            raise ValueError(f"gain must be >= 0, got {self.gain}")


def creations(values: F64, settings: ArtSettings) -> Flags:
    """True on each row whose window made a new category (the first window always does).

    Non-finite values, and values beyond 1e100, are read as the last ordinary value before
    them (0 at the start), so that one cannot stretch the range that scales every later
    window.
    """
    x = _filled(values)
    n = len(x)
    made = np.zeros(n, dtype=bool)
    m, k = settings.blocks, settings.block_rows
    if n < m * k:
        return made
    sums = np.r_[0.0, np.cumsum(x)]
    low = np.minimum.accumulate(x)
    high = np.maximum.accumulate(x)
    offsets = k * np.arange(m)[::-1]  # how far each block ends before the row's own end
    weights = np.zeros((settings.categories, 2 * m))
    sizes = np.zeros(settings.categories)  # each category's |w|, kept with it
    used = 0
    for i in range(m * k - 1, n):
        ends = i + 1 - offsets
        means = (sums[ends] - sums[ends - k]) / k
        span = high[i] - low[i]
        a = (means - low[i]) / span if span > 0.0 else np.full(m, 0.5)
        coded = np.concatenate([a, 1.0 - a])
        if used == 0:
            weights[0] = coded
            sizes[0] = coded.sum()
            used = 1
            made[i] = True
            continue
        overlap = np.minimum(coded, weights[:used])
        size = overlap.sum(axis=1)
        fits = size >= settings.vigilance * m  # |coded| is m for a complement-coded window
        if fits.any():
            chosen = size / (settings.choice + sizes[:used])
            j = int(np.argmax(np.where(fits, chosen, -1.0)))
            weights[j] = settings.rate * overlap[j] + (1.0 - settings.rate) * weights[j]
            sizes[j] = weights[j].sum()
            continue
        made[i] = True
        if used < settings.categories:
            weights[used] = coded
            sizes[used] = coded.sum()
            used += 1
        else:
            j = int(np.argmax(size))
            weights[j] = np.minimum(weights[j], coded)
            sizes[j] = weights[j].sum()
    return made


def confirm(onset: F64, made: Flags, settings: ArtSettings) -> F64:
    """The onset with its odds multiplied by 1 + `gain` where a creation is among the last
    `ticks` rows; rows without an onset stay 0 (a creation alone never fires: the family
    alone scores 37-52 on NAB's development half)."""
    near = made.copy()
    for s in range(1, settings.ticks):
        near[s:] |= made[:-s]
    on = np.clip(np.asarray(onset, dtype=np.float64), 0.0, 1.0 - 1e-15)
    with np.errstate(divide="ignore"):
        log_odds = np.log(on) - np.log1p(-on) + np.where(near, math.log1p(settings.gain), 0.0)
    fused = 1.0 / (1.0 + np.exp(-np.clip(log_odds, -700.0, 700.0)))
    return np.where(on > 0.0, np.minimum(fused, 1.0 - 1e-15), 0.0)


def _filled(values: F64) -> F64:
    x = np.asarray(values, dtype=np.float64).copy()
    last = 0.0
    for i, v in enumerate(x.tolist()):
        if math.isfinite(v) and abs(v) <= 1e100:
            last = v
        else:
            x[i] = last
    return x
