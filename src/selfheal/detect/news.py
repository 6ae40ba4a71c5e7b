"""Which firing episodes are news for their series: the report gate of `Detector`.

A z-score of 6 is news on a quiet series and an hourly event on a bursty one. Each series
remembers the (log) peak strengths of its past episodes as a mean and a variance, learned when
an episode ends and decayed per tick (`Settings.report_memory`). A firing episode is news once
its peak so far stands `report_z` standard deviations above that mean; while the memory holds
fewer than `report_min_episodes` episodes (nothing to judge by); or when a trend reaches its
limit within `ttl_horizon_s`. Once reported, an episode stays reported until it ends.

Only episodes that nothing remarked on are learned: not news by their strength or trend, not
reported for another reason (an SLO breach, corroboration: `mark`), not excused (an open
incident of the service, a change's settle window, a maintenance window: `context.excused`).
What the series does on its own, unremarked, is its routine; a failure that recurs (a crash
loop under its open incident, a replica that hangs after deploys briefly took it down) is not,
however often it comes back. The memory is per tick, so how long it lasts depends on the scrape
interval (0.999: a half-life of 693 ticks, ~11.5 min at 1 s). Pure and vectorised like
`core.Bank`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from selfheal.detect import settings as settings_mod

F32 = npt.NDArray[np.float32]
B = npt.NDArray[np.bool_]

_STRONG = 1e6
"""Strengths are taken as at most this (log1p: 13.8) when learned."""


class NewsBank:
    """Per series: the current episode's peak and the memory of past episodes' peaks."""

    _FLOATS = ("peak", "m", "v", "n")
    _FLAGS = ("told", "remarked", "excused", "was")

    def __init__(self, settings: settings_mod.Settings) -> None:
        self.settings = settings
        self._f: dict[str, F32] = {k: np.zeros(0, np.float32) for k in self._FLOATS}
        self._b: dict[str, B] = {k: np.zeros(0, np.bool_) for k in self._FLAGS}

    @property
    def size(self) -> int:
        return len(self._f["peak"])

    def state(self) -> dict[str, npt.NDArray[np.float64]]:
        """A copy of every per-series array, as float64 (for tests and inspection)."""
        return {k: v.astype(np.float64) for k, v in (*self._f.items(), *self._b.items())}

    def nbytes_per_series(self) -> float:
        return float(sum(v.itemsize for v in (*self._f.values(), *self._b.values())))

    def _grow(self, n: int) -> None:
        more = n - self.size
        if more > 0:
            self._f = {k: np.concatenate([v, np.zeros(more, np.float32)])
                       for k, v in self._f.items()}
            self._b = {k: np.concatenate([v, np.zeros(more, np.bool_)])
                       for k, v in self._b.items()}

    def step(self, firing: B, strength: npt.NDArray[np.float64],
             ttl_s: npt.NDArray[np.float64], excused: B | None = None) -> B:
        """One tick over all series (arrays of equal length, rows as in `core.Bank`): which
        firing episodes are news (reported). `strength` is `core.Step.strength`, `ttl_s` the
        seconds until a trend's limit (inf when none), `excused` the firing episodes that are
        part of something known (`context.excused`: never learned)."""
        s = self.settings
        self._grow(len(firing))
        if s.report_z <= 0:
            return firing.copy()
        f, b = self._f, self._b
        # an episode that ended is learned when nothing remarked on it: neither news by its
        # strength or its trend, nor reported for another reason (`mark`), nor excused; while
        # the memory is too small to judge, episodes are reported and still learned
        ended = b["was"] & ~firing & ~b["remarked"] & ~b["excused"]
        n = f["n"] * np.float32(s.report_memory) + ended
        w = np.where(ended, 1.0 / np.maximum(n, 1e-12), 0.0)
        d = f["peak"] - f["m"]
        f["m"] += (w * d).astype(np.float32)
        f["v"] = np.where(ended, (1.0 - w) * (f["v"] + w * d * d), f["v"]).astype(np.float32)
        f["n"] = n.astype(np.float32)
        # a strength that is not a finite number (nothing upstream should give one) is
        # reported and never learned: it must not silence or poison the series' memory
        odd = ~np.isfinite(strength)
        ly = np.log1p(np.where(odd, 0.0, np.clip(strength, 0.0, _STRONG)))
        f["peak"] = np.where(firing, np.maximum(np.where(b["was"], f["peak"], 0.0), ly),
                             0.0).astype(np.float32)
        judged = f["n"] >= s.report_min_episodes
        remark = (judged & (f["peak"] >= self._threshold())) | (ttl_s <= s.ttl_horizon_s) | odd
        b["remarked"] = firing & (b["remarked"] | remark)
        b["told"] = firing & (b["told"] | b["remarked"] | ~judged)
        b["excused"] = firing & (b["excused"] | (False if excused is None else excused))
        b["was"] = firing.copy()
        return b["told"].copy()

    def mark(self, rows: list[int]) -> None:
        """These firing episodes were reported although no news by themselves (an SLO breach,
        another signal of their service): they stay reported until they end and are not
        learned as routine."""
        self._b["told"][rows] = True
        self._b["remarked"][rows] = True

    def _threshold(self) -> npt.NDArray[np.float64]:
        s = self.settings
        sd = np.sqrt(np.maximum(self._f["v"].astype(np.float64), s.report_min_var))
        return self._f["m"] + s.report_z * sd
