"""Range novelty: how far the recent mean of a series goes beyond everything in its memory.

The NAB bench (the lead integrates it) boosts the core's `onset` with this channel; it is kept
apart from `core.Bank` so that the product detector does not pay for it unless asked.

The idea is the one behind the two best published NAB detectors (contextOSE, ARTime): both
normalise each series by the range it has shown, so that a value outside the learned range is
the most novel thing there is. Here the range is learned online and for several short windows:
for each window length w, the mean of the last w values is compared with the envelope of every
past w-mean (a record high and a record low that relax slowly towards the level). The novelty
is how far the current w-mean lies beyond that envelope, in units of how far the envelope stood
from the level; 0 inside it. A burst as tall and as long as one seen before scores 0; one that
is taller, or stays high for longer than any before, scores.

A true pattern memory (windows normalised by the series' robust level and scale, matched
against a bounded set of learned shapes, ART-like; and counts of discretised contexts,
contextOSE-like) was measured too and scored 40-58 alone on the NAB development half, with no
fusion that raised both held-out halves: only the range novelty is kept.

`NoveltyBank.step` scores row i from rows 0..i only and keeps bounded state per series (144
bytes with the default three windows); `boost` is the fusion rule with an onset score.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt

from selfheal.detect import core

F64 = npt.NDArray[np.float64]

_TINY = 1e-12
_DEV_TO_SIGMA = 1.2533  # mean absolute deviation -> standard deviation for Gaussian noise
_CAP = 1e6  # novelty beyond a million envelope-heights carries no more information


@dataclasses.dataclass(frozen=True)
class NoveltySettings:
    """Knobs of the range-novelty channel (defaults: the configuration measured on NAB)."""

    windows: tuple[int, ...] = (2, 4, 8)
    """Lengths (ticks) of the recent means compared with their own past envelopes."""
    record_decay: float = 0.9999
    """Per tick, the envelope relaxes by this factor towards the level (half-life ~6900 ticks,
    24 days at 5 minutes a tick); 1 keeps the records forever. 0.9998-1 measured the same."""
    alpha_level: float = 0.01
    """Learning rate of the level and of the mean absolute deviation (0.005-0.02: the same)."""
    huber_c: float = 3.0
    """Residuals beyond this many deviations are clipped before they teach the level."""
    warmup_ticks: int = 100
    """No novelty before this many values: the envelope of the first values is no memory."""
    hold_ticks: int = 2
    """The novelty reported is the largest of the last `hold_ticks` rows, so that an onset
    scored on the tick after a jump still sees the jump's novelty (1 measured 2 points lower)."""
    boost_power: float = 2.0
    """`boost`: the onset's odds are multiplied by (1 + novelty) ** boost_power (1.5-3: the
    same within 0.1 point on NAB)."""

    def __post_init__(self) -> None:
        if not self.windows or min(self.windows) < 1:
            raise ValueError(f"windows must be positive lengths, got {self.windows}")
        if not 0.0 < self.record_decay <= 1.0:
            raise ValueError(f"record_decay must be in (0, 1], got {self.record_decay}")
        if self.hold_ticks < 1:
            raise ValueError(f"hold_ticks must be at least 1, got {self.hold_ticks}")


class NoveltyBank:
    """Bounded online range-novelty state of many series, updated tick by tick with NumPy."""

    def __init__(self, settings: NoveltySettings | None = None, capacity: int = 16) -> None:
        self.settings = settings or NoveltySettings()
        self.size = 0
        self._cap = max(1, capacity)
        s = self.settings
        self._buf = np.zeros((self._cap, max(s.windows)))
        self._n = np.zeros(self._cap)
        self._mu = np.zeros(self._cap)
        self._dev = np.zeros(self._cap)
        self._hi = np.full((self._cap, len(s.windows)), np.nan)
        self._lo = np.full((self._cap, len(s.windows)), np.nan)
        self._held = np.zeros((self._cap, s.hold_ticks - 1))

    def add_many(self, count: int) -> npt.NDArray[np.int64]:
        """Register `count` more series; returns their indices."""
        need = self.size + count
        if need > self._cap:
            cap = max(need, 2 * self._cap)
            grow = ((0, cap - self._cap), (0, 0))
            self._buf = np.pad(self._buf, grow)
            self._hi = np.pad(self._hi, grow, constant_values=np.nan)
            self._lo = np.pad(self._lo, grow, constant_values=np.nan)
            self._held = np.pad(self._held, grow)
            for name in ("_n", "_mu", "_dev"):
                setattr(self, name, np.pad(getattr(self, name), (0, cap - self._cap)))
            self._cap = cap
        idx = np.arange(self.size, need)
        self.size = need
        return idx

    def nbytes_per_series(self) -> float:
        """Bytes of state held per series (all arrays, at current capacity)."""
        arrays = (self._buf, self._n, self._mu, self._dev, self._hi, self._lo, self._held)
        return sum(a.nbytes for a in arrays) / self._cap

    def step(self, x: npt.ArrayLike) -> F64:
        """Score `x` (one value per series; NaN or inf = missing), then learn from it.

        Returns the novelty of each series, >= 0 (0 during warm-up and for missing values):
        the largest over the windows, held over the last `hold_ticks` rows. A missing value
        changes no state.
        """
        s = self.settings
        n_ = self.size
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (n_,):
            raise ValueError(f"expected {n_} values, got shape {x.shape}")
        valid = np.isfinite(x)
        x = np.where(valid, np.clip(x, -core.HUGE, core.HUGE), np.nan)  # as the core does
        n = self._n[:n_]
        mu = self._mu[:n_]
        dev = self._dev[:n_]
        buf = self._buf[:n_]
        hi = self._hi[:n_]
        lo = self._lo[:n_]

        first = valid & (n == 0)
        mu[first] = x[first]
        xv = np.where(valid, x, mu)
        # shift each valid series' window by one, in place (a masked gather and scatter of
        # the whole buffer cost a third of the step at 100,000 series)
        keep = valid[:, None]
        np.copyto(buf[:, :-1], buf[:, 1:], where=keep)
        buf[:, -1] = np.where(valid, xv, buf[:, -1])
        seen = n + valid
        scale = np.maximum(np.maximum(_DEV_TO_SIGMA * dev, 1e-9 * np.abs(mu)), _TINY)
        width = buf.shape[1]

        # the recent means, newest value first: one column added at a time (a strided mean
        # per window cost eight times as much at 100,000 series)
        means: dict[int, F64] = {}
        acc = np.zeros(n_)
        for j in range(1, width + 1):
            acc = acc + buf[:, width - j]
            if j in s.windows:
                means[j] = acc / j
        nov = np.zeros(n_)
        for k, w in enumerate(s.windows):
            m = means[w]
            known = np.isfinite(hi[:, k])
            live = valid & (seen >= max(w, s.warmup_ticks)) & known
            hk = np.where(known, hi[:, k], m)
            lk = np.where(known, lo[:, k], m)
            # beyond the envelope, in units of the envelope's height above (depth below) the
            # level: a burst twice as tall as the tallest before scores 1
            up = (m - hk) / np.maximum(hk - mu, scale)
            down = (lk - m) / np.maximum(mu - lk, scale)
            beyond = np.clip(np.maximum(up, down), 0.0, _CAP)
            nov = np.maximum(nov, np.where(live, beyond, 0.0))
            learn = valid & (seen >= w)
            relaxed_hi = np.where(known, mu + (hk - mu) * s.record_decay, m)
            relaxed_lo = np.where(known, mu - (mu - lk) * s.record_decay, m)
            hi[:, k] = np.where(learn, np.maximum(relaxed_hi, m), hi[:, k])
            lo[:, k] = np.where(learn, np.minimum(relaxed_lo, m), lo[:, k])

        out = nov
        if s.hold_ticks > 1:
            held = self._held[:n_]
            out = np.where(valid, np.maximum(nov, held.max(axis=1)), 0.0)
            np.copyto(held[:, :-1], held[:, 1:], where=valid[:, None])
            held[:, -1] = np.where(valid, nov, held[:, -1])

        # learn the level and scale from the value (after scoring it)
        alpha = np.maximum(1.0 / np.maximum(seen, 1.0), s.alpha_level)
        resid = xv - mu
        lim = s.huber_c * np.where(seen > 2, scale, np.inf)
        mu[:] = np.where(valid, mu + alpha * np.clip(resid, -lim, lim), mu)
        dev[:] = np.where(valid, dev + alpha * (np.minimum(np.abs(resid), lim) - dev), dev)
        n[:] = seen
        return out


def run(values: npt.ArrayLike, settings: NoveltySettings | None = None) -> F64:
    """The novelty of every row of a (ticks, series) array, each row from the rows before it."""
    rows = np.asarray(values, dtype=np.float64)
    if rows.ndim != 2:
        raise ValueError(f"expected a (ticks, series) array, got shape {rows.shape}")
    bank = NoveltyBank(settings, capacity=rows.shape[1])
    bank.add_many(rows.shape[1])
    out = np.zeros(rows.shape)
    for i in range(rows.shape[0]):
        out[i] = bank.step(rows[i])
    return out


def boost(onset: npt.ArrayLike, novelty: npt.ArrayLike, power: float = 2.0) -> F64:
    """The fusion rule: an onset's odds multiplied by (1 + novelty) ** power.

    A row with no onset stays 0 (novelty alone never fires: it scored 40-58 alone on NAB and
    only added false positives); novelty 0 leaves the onset unchanged; the result is in [0, 1)
    and rises with both inputs.
    """
    on = np.clip(np.asarray(onset, dtype=np.float64), 0.0, 1.0)
    nov = np.maximum(np.nan_to_num(np.asarray(novelty, dtype=np.float64)), 0.0)
    with np.errstate(divide="ignore", over="ignore"):
        log_odds = np.log(on) - np.log1p(-np.minimum(on, 1.0 - 1e-15))
        z = log_odds + power * np.log1p(nov)
        fused = np.where(z >= 0.0, 1.0 / (1.0 + np.exp(-z)), np.exp(z) / (1.0 + np.exp(z)))
    return np.where(on > 0.0, np.minimum(fused, 1.0 - 1e-15), 0.0)
