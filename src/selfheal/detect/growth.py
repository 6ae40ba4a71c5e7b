"""Long-horizon growth: a steady rise of a limit-type signal that has no usable limit.

The trend detector (`core.Bank`) remembers ~20 ticks and forecasts the time to a series'
limit; a series with no limit it can use (a VM process with no cgroup limit, a service far
above the metric's default limit) gets no forecast, and at a coarse tick a slow leak moves it
too little in the trend's horizon to fire (a 1 GiB service leaking 5% an hour at 60 s: never in
24 h). So `Detector` keeps, only for the series of metrics with an entry in `Settings.limits`
(whose rise towards a limit is the danger: memory, a disk's used bytes), a ring of the means
of its last buckets of `growth_bucket_s` (an hour): `growth_buckets` of them, and the same
buckets a seasonal period (a day) before. Each bucket is judged less the same bucket a day
before, so that memory following the day's traffic (up all afternoon, every day) is no rise:
a leak is a rise over yesterday's rhythm. With a weekly profile (`Settings.weekly_profile`,
the product's default) the ring goes back a week, and once it holds the same buckets a week
before, the rise must show against them too: a Monday morning rises over Sunday's every week,
but not over last Monday's. (The core's seasonal offset cannot serve: its level follows a
daily swing within the hour, so the profile holds only the level's lag.) A rise is reported
when, over the last `growth_min_buckets` or more buckets:

- it is material: the last bucket is `growth_rel` of the first one's level above it;
- it is steady: no bucket falls back by more than half the window's average step, each step
  but one in five (none in a window of fewer than six buckets) rises by at least a quarter of
  it, no step holds more than half of the rise, and its later half rose at least half as much
  as its earlier half (a deploy's step up, a cache or a JVM heap warming up and levelling
  off, a sawtooth, a rise that stopped, are not steady rises);
- its slope is significant against the buckets' scatter about a line (t >= `growth_t`);
- the whole window, and the day before it, was watched (a series is judged from its second
  day), and the window lies after the series' last re-baseline (`core.Bank`: a restart's
  fall), so that a rise is judged within one regime.

A rise is said once: the series is quiet until its rise has stalled (its last `REARM_BUCKETS`
buckets rose less than half as fast as the slowest rise the ring can judge). The per-tick work
is two additions per tracked series; the checks run once per bucket; a week of hourly means
is 720 bytes a tracked series. Pure and vectorised like `core.Bank`; no state for any other
series.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt

from selfheal import errors
from selfheal.detect import settings as settings_mod

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

DIP = 0.5
"""A step down of more than this fraction of the window's average step is no steady rise."""
STALL = 0.25
"""A step up of less than this fraction of the average step is a stall (one in five allowed)."""
JUMP = 0.5
"""A step holding more than this fraction of the whole rise is a jump, not a steady rise."""
LEVEL = 0.5
"""A rise whose later half rose less than this fraction of its earlier half is levelling off
(a cache, a JVM heap warming up after a start), not a steady rise."""
FILL = 0.5
"""A bucket with values for less than this fraction of its ticks counts as missing."""
HUGE = 1e300
"""Values at or past this size are left out of the buckets (a bucket's sum stays finite)."""
REARM_BUCKETS = 3
"""Buckets without a new high after which a reported rise is over (the next one is news)."""

_FLOATS = ("sum", "n")
_TINY = 1e-12


@dataclasses.dataclass(frozen=True)
class Rise:
    """The steady rises found at one tick (arrays of equal length, one entry per series)."""

    rows: I64
    """The series' rows in `core.Bank`."""
    first: F64
    """The mean value of the window's first bucket (as measured: what a human sees)."""
    last: F64
    """The mean value of its last (just completed) bucket."""
    span_s: F64
    """Seconds from the first bucket's middle to the last one's."""
    start: F64
    """When the window's first bucket began (the rise's start, as seen)."""
    strength: F64
    """How far past the thresholds (>= 1): the lesser of rise over material and t over
    `growth_t`."""


class GrowthBank:
    """The bucket rings of the tracked series (`track`), stepped once a tick."""

    def __init__(self, settings: settings_mod.Settings) -> None:
        self.settings = settings
        self._rows = np.zeros(0, np.int64)
        self._floor = np.zeros(0)  # the smallest material rise, from the config: not saved
        self._bucket = np.zeros(0, np.int64)  # the bucket each accumulator is for (-1: none)
        self._f: dict[str, F64] = {k: np.zeros(0) for k in _FLOATS}
        self._told = np.zeros(0, np.bool_)
        # the buckets' means, the last column the bucket that ended last: `buckets` of them,
        # and the ones before them back to the same buckets a week (`back`) before; in
        # float32 (7 digits: a 1 GiB mean to ~100 bytes), a week of hours is 720 bytes
        self._ring = np.zeros((0, self.width), np.float32)

    @property
    def on(self) -> bool:
        return self.settings.growth_bucket_s > 0 and self.settings.growth_rel > 0

    @property
    def buckets(self) -> int:
        return self.settings.growth_buckets

    @property
    def lag(self) -> int:
        """Buckets in a seasonal period (0: none): a rise is judged against the same buckets
        a period before, so that memory following the day's traffic is no rise."""
        s = self.settings
        if s.season_period_s <= 0 or s.growth_bucket_s <= 0:
            return 0
        return max(1, round(s.season_period_s / s.growth_bucket_s))

    @property
    def back(self) -> int:
        """Buckets from a window back to the oldest one it is judged against: a week when
        the level has a weekly profile (`Settings.weekly_profile`), else `lag`."""
        return 7 * self.lag if self.settings.weekly_profile else self.lag

    @property
    def width(self) -> int:
        """Buckets each ring holds."""
        return self.buckets + self.back

    @property
    def size(self) -> int:
        """Series tracked."""
        return len(self._rows)

    @property
    def rows(self) -> I64:
        """The tracked series' rows in `core.Bank`, ascending (a view)."""
        return self._rows

    def track(self, row: int, floor: float) -> None:
        """Track series `row` (rows come in ascending order, as `core.Bank` adds them), whose
        rise is material only from `floor` (in its unit) up."""
        if self.size and row <= int(self._rows[-1]):
            raise ValueError(f"rows are tracked in ascending order: {row} after {self._rows[-1]}")
        self._rows = np.append(self._rows, np.int64(row))
        self._floor = np.append(self._floor, max(0.0, floor))
        self._bucket = np.append(self._bucket, np.int64(-1))
        self._f = {k: np.append(v, 0.0) for k, v in self._f.items()}
        self._told = np.append(self._told, False)
        self._ring = np.concatenate([self._ring, np.full((1, self.width), np.nan, np.float32)])

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Every array of state (views): what `Detector` saves and `load` takes back, keyed
        by the series' rows (`rows`), so that a state saved under another config of limits
        still loads."""
        return {"rows": self._rows, "bucket": self._bucket,
                **{f"f.{k}": v for k, v in self._f.items()},
                "told": self._told, "ring": self._ring}

    def load(self, arrays: dict[str, npt.NDArray[Any]]) -> None:
        """Take the state of the series saved in `arrays` (as `arrays()` gives it) that are
        tracked here, by row; a series saved but not tracked, or tracked but not saved (a
        state saved before this module, or under other limits), starts afresh. Raises
        `errors.StateUnusable` when the arrays do not fit together."""
        if not arrays:
            return
        mine = self.arrays()
        if set(arrays) != set(mine):
            raise errors.StateUnusable(f"the saved growth state has arrays {sorted(arrays)}")
        n = len(arrays["rows"])
        for name, value in arrays.items():
            want = (n, *mine[name].shape[1:])
            if value.dtype != mine[name].dtype or value.shape != want:
                if name == "ring" and value.ndim == 2 and value.shape[0] == n:
                    return  # saved with another `growth_buckets`: start afresh
                raise errors.StateUnusable(f"the saved growth state's {name} does not fit")
        pos = np.searchsorted(self._rows, arrays["rows"])
        hit = pos < self.size
        hit[hit] = self._rows[pos[hit]] == arrays["rows"][hit]
        for name, value in arrays.items():
            if name != "rows":
                mine[name][pos[hit]] = value[hit]

    def nbytes_per_tracked(self) -> float:
        """Bytes held per tracked series (none for any other)."""
        arrays: list[npt.NDArray[Any]] = [self._rows, self._floor, self._bucket,
                                          *self._f.values(), self._told]
        return float(sum(a.itemsize for a in arrays) + self.width * self._ring.itemsize)

    def step(self, t: float, x: F64, ticks: float, usable: B, judged_from: F64) -> Rise:
        """One tick: `x` is each tracked series' value (NaN: missing), `ticks` the ticks a
        bucket holds at the usual spacing, `usable` whether the series has a limit its
        time-to-limit forecast can use (no growth report then), and `judged_from` the time
        from which its values are judged (its last re-baseline: a rise is judged within one
        regime). Returns the rises found at `t` (each reported once: `tell`)."""
        s = self.settings
        if not self.on or not self.size:
            return _none()
        b = np.int64(np.floor(t / s.growth_bucket_s))
        roll = (self._bucket >= 0) & (self._bucket < b)
        out = _none()
        if roll.any():
            idx = np.flatnonzero(roll)
            full = self._f["n"][idx] >= FILL * max(ticks, 1.0)
            count = np.maximum(self._f["n"][idx], 1.0)
            gap = np.minimum(b - self._bucket[idx], self.buckets + 1)
            self._shift(self._ring, idx, gap,
                        np.where(full, self._f["sum"][idx] / count, np.nan))
            self._f["sum"][idx] = 0.0
            self._f["n"][idx] = 0.0
            out = self._judge(idx, int(b), usable[idx], judged_from[idx])
        self._bucket[self._bucket < b] = b
        # a value past 1e300 is no measurement (a hostile or broken exporter): summed, a
        # bucket of them would overflow
        valid = np.abs(x) < HUGE
        self._f["sum"] += np.where(valid, x, 0.0)
        self._f["n"] += valid
        return out

    def _shift(self, table: npt.NDArray[np.float32], idx: I64, gap: I64, mean: F64) -> None:
        """Move each of `idx`'s ring in `table` on by its `gap` in buckets (the last column
        is the bucket just ended; the ones skipped are missing) and write the ended bucket's
        `mean`."""
        k = self.width
        for g in np.unique(gap):
            sel = gap == g
            rows = idx[sel]
            if g < k:
                ring = np.concatenate([table[rows, g:],
                                       np.full((rows.size, g), np.nan, table.dtype)], axis=1)
                ring[:, k - g] = mean[sel]
            else:
                ring = np.full((rows.size, k), np.nan, table.dtype)
            table[rows] = ring

    def _judge(self, idx: I64, b: int, usable: B, judged_from: F64) -> Rise:
        """Check the rings of `idx` (their last bucket just ended, before bucket `b`)."""
        s = self.settings
        k = self.buckets
        table = self._ring[idx].astype(np.float64)
        said = table[:, self.back:]
        # each bucket less the same bucket a season before (its rhythm), as measured (said)
        ring = said - table[:, self.back - self.lag:][:, :k] if self.lag else said
        fire, first, last, span, start, strength = self._rises(ring, said, idx, b, judged_from)
        if self.back > self.lag:
            # and less the same bucket a week before, once there is one: a Monday morning
            # rises over Sunday's every week, and no more than last Monday's
            week = table[:, :k]
            known = np.isfinite(week[:, k - s.growth_min_buckets:]).all(axis=1)
            fire &= ~known | self._rises(said - week, said, idx, b, judged_from)[0]
        # a reported rise is over once its last `REARM_BUCKETS` buckets rose less than half
        # as fast as the slowest rise the ring can judge (or a bucket is missing)
        before = ring[:, -1 - REARM_BUCKETS]
        slow = np.maximum(s.growth_rel * np.abs(before), self._floor[idx]) / (k - 1)
        going = ring[:, -1] - before > 0.5 * REARM_BUCKETS * slow
        self._told[idx] &= going
        found = fire & ~self._told[idx] & ~usable
        return Rise(rows=self._rows[idx[found]], first=first[found], last=last[found],
                    span_s=span[found], start=start[found], strength=strength[found])

    def _rises(self, ring: F64, said: F64, idx: I64, b: int, judged_from: F64
               ) -> tuple[B, F64, F64, F64, F64, F64]:
        """Which of `ring` (each bucket less the one it is judged against; `said`: as
        measured) hold a steady rise over any window of `growth_min_buckets` or more, and
        the narrowest such window's first and last means, span, start and strength."""
        s = self.settings
        k = self.buckets
        fire = np.zeros(idx.size, np.bool_)
        first = last = span = start = strength = np.zeros(idx.size)
        for width in range(k, s.growth_min_buckets - 1, -1):
            w = ring[:, k - width:]
            begin = (b - width) * s.growth_bucket_s
            ok = np.isfinite(w).all(axis=1) & (begin >= judged_from)
            w = np.where(ok[:, None], w, 0.0)
            m0, m1 = w[:, 0], w[:, -1]
            rise = m1 - m0
            steps = np.diff(w, axis=1)
            avg = rise / (width - 1)
            half = (width - 1) // 2
            level = np.where(ok, said[:, k - width], 0.0)
            material = np.maximum(s.growth_rel * np.abs(level), self._floor[idx])
            steady = (
                (rise > 0)
                & (steps >= -DIP * avg[:, None]).all(axis=1)
                & ((steps < STALL * avg[:, None]).sum(axis=1) <= (width - 1) // 5)
                & (steps.max(axis=1) <= JUMP * rise)
                & (m1 - w[:, width - 1 - half] >= LEVEL * (w[:, half] - m0))
            )
            # least squares through the buckets' means, and its slope's t against their
            # scatter about the line
            kk = np.arange(width) - (width - 1) / 2.0
            sxx = float(np.sum(kk * kk))
            slope = (w - w.mean(axis=1, keepdims=True)) @ kk / sxx
            resid = w - w.mean(axis=1, keepdims=True) - slope[:, None] * kk
            se = np.sqrt(np.sum(resid * resid, axis=1) / max(width - 2, 1) / sxx)
            tstat = slope / np.maximum(se, _TINY + 1e-9 * np.abs(level))
            r = np.minimum(rise / np.maximum(material, _TINY), tstat / s.growth_t)
            # and the value itself rose as much (not only against the day before)
            grew = said[:, -1] - level >= material
            now = ok & steady & (rise >= material) & grew & (tstat >= s.growth_t)
            # the narrowest window that holds a steady rise says how it goes now
            first = np.where(now, said[:, k - width], first)
            last = np.where(now, said[:, -1], last)
            span = np.where(now, (width - 1) * s.growth_bucket_s, span)
            start = np.where(now, begin, start)
            strength = np.where(now, r, strength)
            fire |= now
        return fire, first, last, span, start, strength

    def tell(self, rows: I64 | list[int]) -> None:
        """These series' rises were reported: quiet until each is over (`REARM_BUCKETS`)."""
        slots = np.searchsorted(self._rows, np.asarray(rows, dtype=np.int64))
        self._told[slots] = True


def _none() -> Rise:
    e = np.zeros(0)
    return Rise(rows=np.zeros(0, np.int64), first=e, last=e, span_s=e, start=e, strength=e)
