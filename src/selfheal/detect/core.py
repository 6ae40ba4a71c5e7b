"""The vectorised online core: one NumPy update advances every series by one tick.

`Bank` holds the bounded state of N series in flat arrays (36 floats per series, plus the
seasonal profiles: 866 bytes per series by default, with a daily profile of the level and a
weekly one whose 168 bins are kept in half precision in units of the series' noise scale; 530
with the daily profile alone, 290 with none; 1,202 with the optional weekly strength memory)
and `Bank.step` scores the new value of each series against its past only, then folds it into
the state. Three detectors share that state:

- ``spike``: a robust z-score against a Huber-clipped level and mean absolute deviation (plus a
  seasonal profile by phase of a period, when one is configured); outliers teach the deviation
  slowly, and once a short memory of the residual is far below it (after an hour at 100x the
  level, say) it falls quickly (`Settings.quick_fall`), and what the profiles learn is clipped
  by a scale that rises slowly (`Settings.profile_rise_s`), so such an hour does not teach them;
- ``level_shift``: a two-sided CUSUM on the same z-score (change points);
- ``trend``: an exponentially weighted linear regression whose slope must be both significant
  (t-statistic) and material (moves the series a lot over a horizon, or reaches its limit soon:
  the time-to-limit forecast); `detect.trend`.

Each maps to a strength r (1 = at threshold) and a score r^2/(1+r^2) in [0, 1); the fused score
is the largest, and its detector explains it. Episodes (firing with hysteresis) are tracked here
too, so the NAB bench, the scale bench and `Detector` all run this one engine.

Two more outputs serve unattended scoring across very different series (NAB): ``surprise``
calibrates the strength against the series' own history of strengths (log scale, minus what is
usual at this phase of the day or week when seasonality is on; optionally scaled down when the
strength is below the largest one in recent memory, `Settings.record_decay`), and ``onset``
keeps a surprise only where it beats every recent one, so an episode scores once, on its first
row. With `Settings.season_shrink`, the seasonal profile enters the baseline only as far as it
has predicted the series better than the level alone; with `Settings.weekly_profile`, a profile
by phase of the week adds what the daily one leaves, as far as it predicts better still. The
profiles enter only once a series has been watched `Settings.season_warmup_periods` (a day, in
the product), and the trend is fitted to the value less the seasonal offset they apply, so a
daily ramp the profile explains is no trend.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt

from selfheal.detect import settings as settings_mod
from selfheal.detect import tables
from selfheal.detect import trend as trend_mod

F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]
B = npt.NDArray[np.bool_]

SPIKE = 0
LEVEL_SHIFT = 1
TREND = 2
DETECTORS = ("spike", "level_shift", "trend")

HUGE = 1e30
"""Values are taken as at most this large (a hostile or broken exporter's 1e300)."""
_TINY = 1e-12
_DEV_TO_SIGMA = 1.2533  # mean absolute deviation -> standard deviation for Gaussian noise
_F16_MAX = 65000.0  # inside half precision's largest finite value (65504)
_U16_MAX = 65535.0

# Names of the float64 state arrays, one value per series each.
_FIELDS = (
    "n", "mu", "dev", "origin", "gp", "gn",
    "s0", "s1", "s2", "sy", "sky", "syy",
    "benign", "quiet", "start", "base", "bscale", "floor", "rfloor", "limit",
    "lm", "lv", "ln", "peak", "dlong", "last_t", "cut_x", "cut_age",
    "e0", "e1", "lpk", "e2", "wunit", "born", "dquick", "sslow",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Step:
    """What one tick found, one entry per series (arrays of length N)."""

    score: F64
    """Fused score in [0, 1); 0 during warm-up and for missing values."""
    strength: F64
    """The strongest component's strength before squashing (1 = at its threshold)."""
    surprise: F64
    """The strength against the series' own history of strengths, in [0, 1)."""
    onset: F64
    """`surprise` where it beats every recent surprise (decaying), else 0: episode onsets."""
    detector: I8
    """Index into `DETECTORS` of the component that gave the score."""
    expected: F64
    """The baseline the value was compared with (level plus seasonal offset)."""
    scale: F64
    z: F64
    slope: F64
    """Regression slope per tick."""
    ttl_ticks: F64
    """Ticks until the limit at the current slope (inf when none or moving away)."""
    firing: B
    start: F64
    """When the current episode began (NaN when not firing)."""
    base: F64
    """The baseline level when the current episode began."""
    base_scale: F64
    """The noise scale when the current episode began."""
    spread: F64
    """The long-memory mean absolute residual (outliers included) before this tick's value:
    on a series flat between bursts it is all bursts, far above the noise scale."""


class Bank:
    """Bounded online state of many series, updated tick by tick with NumPy."""

    def __init__(self, settings: settings_mod.Settings, capacity: int = 16) -> None:
        self.settings = settings
        self.size = 0
        self._cap = max(1, capacity)
        self._a: dict[str, F64] = {f: np.zeros(self._cap) for f in _FIELDS}
        self.direction: I8 = np.zeros(self._cap, dtype=np.int8)
        self.firing: B = np.zeros(self._cap, dtype=np.bool_)
        bins = settings.season_bins if settings.season_period_s > 0 else 0
        self._season = np.zeros((self._cap, bins), dtype=np.float32)
        # visits per phase bin: only the first ~1/a_visit matter (the learning rate falls as
        # 1/count to its floor), so a saturating 16-bit count is exact where it counts
        self._season_n = np.zeros((self._cap, bins), dtype=np.uint16)
        self._season_s = np.zeros((self._cap, bins), dtype=np.float32)
        wbins = 7 * bins if settings.weekly else 0
        self._week_s = np.zeros((self._cap, wbins), dtype=np.float16)
        pbins = 7 * bins if settings.weekly_profile else 0
        # half precision in units of the series' own noise scale (`wunit`): 168 bins a series
        self._week_p = np.zeros((self._cap, pbins), dtype=np.float16)

    # ------------------------------------------------------------------ series management
    def add(
        self, direction: int = 0, floor: float = 0.0, limit: float | None = None,
        rel_floor: float | None = None,
    ) -> int:
        """Register one more series; returns its index."""
        return int(self.add_many(1, direction, floor, limit, rel_floor)[0])

    def add_many(
        self, count: int, direction: int = 0, floor: float = 0.0, limit: float | None = None,
        rel_floor: float | None = None,
    ) -> npt.NDArray[np.int64]:
        """Register `count` series sharing a direction, noise floors and limit.

        `floor` is the absolute noise floor, `rel_floor` the one relative to the level (by
        default `Settings.rel_floor`).
        """
        need = self.size + count
        if need > self._cap:
            # an eighth more: one new series at a time still grows in O(1) amortised, and the
            # room held for series to come stays small beside the state (1 KiB a series)
            self._grow(max(need, self._cap + self._cap // 8))
        idx = np.arange(self.size, need)
        self.direction[idx] = np.int8(np.sign(direction))
        self._a["floor"][idx] = max(0.0, floor)
        rel = self.settings.rel_floor if rel_floor is None else rel_floor
        self._a["rfloor"][idx] = max(0.0, rel)
        self._a["limit"][idx] = np.inf if limit is None else limit
        self._a["start"][idx] = np.nan
        self._a["cut_age"][idx] = np.inf
        self.size = need
        return idx

    def set_limit(self, row: int, limit: float | None) -> None:
        """The value series `row` must not reach (its time-to-limit forecast); None: none."""
        self._a["limit"][row] = np.inf if limit is None else limit

    @property
    def capacity(self) -> int:
        """Series the arrays hold room for (`size` of them registered)."""
        return self._cap

    def reserve(self, count: int) -> None:
        """Make room for `count` series in all (one growth for many series to come, with an
        eighth more, as `add_many` grows)."""
        if count > self._cap:
            self._grow(max(count, self._cap + self._cap // 8))

    def _grow(self, cap: int) -> None:
        for name, arr in self._a.items():
            new = np.zeros(cap)
            new[: self._cap] = arr
            self._a[name] = new
        self.direction = np.concatenate([self.direction, np.zeros(cap - self._cap, np.int8)])
        self.firing = np.concatenate([self.firing, np.zeros(cap - self._cap, np.bool_)])
        pad = ((0, cap - self._cap), (0, 0))
        self._season = np.pad(self._season, pad)
        self._season_n = np.pad(self._season_n, pad)
        self._season_s = np.pad(self._season_s, pad)
        self._week_s = np.pad(self._week_s, pad)
        self._week_p = np.pad(self._week_p, pad)
        self._cap = cap

    def _store_week(self, wflat: npt.NDArray[np.int64], value: F64, scale: F64) -> None:
        """Write one weekly-profile bin per series, in half precision in units of the series'
        noise scale. A series whose scale has moved 4x from its unit (or has none yet) has its
        whole profile re-expressed in the new scale first, so the stored numbers stay a few
        units to a few hundred, where half precision keeps three significant digits."""
        unit = self._a["wunit"][: self.size]
        move = (unit <= 0.0) | (scale > 4.0 * unit) | (scale < 0.25 * unit)
        if move.any():
            idx = np.flatnonzero(move)
            ratio = np.where(unit[idx] > 0.0, unit[idx] / np.maximum(scale[idx], _TINY), 0.0)
            kept = self._week_p[idx].astype(np.float64) * ratio[:, None]
            self._week_p[idx] = np.clip(kept, -_F16_MAX, _F16_MAX).astype(np.float16)
            unit[idx] = scale[idx]
        stored = value / np.maximum(unit, _TINY)
        half = np.clip(stored, -_F16_MAX, _F16_MAX).astype(np.float16)
        tables.set_cells(self._week_p, wflat, half)

    def nbytes_per_series(self) -> float:
        """Bytes of state held per series (all arrays, at current capacity)."""
        total = sum(a.nbytes for a in self._a.values())
        total += self.direction.nbytes + self.firing.nbytes
        total += self._season.nbytes + self._season_n.nbytes + self._season_s.nbytes
        total += self._week_s.nbytes + self._week_p.nbytes
        return total / self._cap

    def state(self) -> dict[str, F64]:
        """A copy of the per-series state arrays (for inspection)."""
        return {k: v[: self.size].copy() for k, v in self._a.items()}

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Every array of state, rows of the registered series only (views, not copies):
        what `detect.persist` saves and `load` takes back."""
        every: dict[str, npt.NDArray[Any]] = {f"a.{k}": v for k, v in self._a.items()}
        every.update(direction=self.direction, firing=self.firing, season=self._season,
                     season_n=self._season_n, season_s=self._season_s, week_s=self._week_s,
                     week_p=self._week_p)
        return {k: v[: self.size] for k, v in every.items()}

    def end_episodes(self) -> None:
        """End every open episode now (after a gap in the data: what fires next is new)."""
        self.firing[: self.size] = False
        self._a["start"][: self.size] = np.nan
        self._a["quiet"][: self.size] = 0.0

    def load(self, arrays: dict[str, npt.NDArray[Any]]) -> None:
        """Overwrite the state of the registered series with `arrays` (names, dtypes and
        shapes as `arrays()` gives them; `detect.persist` checks them first). Arrays left out
        keep their values (the per-series constants of the current config, say)."""
        mine = self.arrays()
        for name, value in arrays.items():
            mine[name][...] = value

    # ------------------------------------------------------------------ the tick
    def step(
        self, t: float | npt.ArrayLike, x: npt.ArrayLike, dt: float | None = None,
        spacing: float | None = None,
    ) -> Step:
        """Score `x` (one value per series, NaN = missing) at time `t`, then learn from it.

        `t` is one time for all series or one per series (seconds; it places the value in its
        seasonal phase and dates episodes). `dt` is the seconds since the last tick (by
        default, each series' time since its previous value): it scales the seasonal learning
        rates to the ticks a phase bin holds. `spacing` is the usual seconds per tick (by
        default `dt`): it turns the trend's slopes per tick into a move over `trend_horizon_s`
        and a time to the limit, so that one late tick does not weaken its trend nor one
        early tick strengthen it. The score of a value depends on past values only: the state
        is updated after scoring.
        """
        s = self.settings
        n_ = self.size
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (n_,):
            raise ValueError(f"expected {n_} values, got shape {x.shape}")
        # nothing measured is beyond +-1e30; past it the float32 seasonal profile overflows, and
        # past 1e150 the squares below do
        x = np.where(np.isfinite(x), np.clip(x, -HUGE, HUGE), np.nan)
        tt = np.broadcast_to(np.asarray(t, dtype=np.float64), (n_,))
        if not np.isfinite(tt).all():  # no seasonal phase; refused before any change
            raise ValueError("a tick's time must be a finite number of seconds")
        a = {k: v[:n_] for k, v in self._a.items()}
        d = self.direction[:n_]
        firing = self.firing[:n_]

        valid = np.isfinite(x)
        if dt is None:
            gap = np.where(a["n"] > 0, tt - a["last_t"], 1.0)
            step_s = np.where(np.isfinite(gap) & (gap > 0), gap, 1.0)
        else:
            step_s = np.full(n_, max(float(dt), _TINY))
        # the regression's ticks are the usual spacing apart, whatever this tick's gap
        tick_s = step_s if spacing is None else np.full(n_, max(float(spacing), _TINY))
        a["last_t"][:] = np.where(valid, tt, a["last_t"])
        first = valid & (a["n"] == 0)
        if first.any():
            a["mu"][first] = x[first]
            a["origin"][first] = x[first]
            a["dev"][first] = 0.0
            a["born"][first] = tt[first]
        xv = np.where(valid, x, a["mu"])

        # --- seasonal offset by phase of the period
        rows = np.arange(n_)
        seasonal = self._season.shape[1] > 0
        # ticks falling in one phase bin per period: the seasonal rates are per period
        visits = np.maximum(s.season_period_s / max(s.season_bins, 1) / step_s, 1.0)
        if seasonal:
            phase = np.mod(tt, s.season_period_s) / s.season_period_s
            sbin = np.minimum((phase * s.season_bins).astype(np.int64), s.season_bins - 1)
            # the same phase bin of the week (7 periods), for the weekly memories
            wphase = np.mod(tt, 7.0 * s.season_period_s) / (7.0 * s.season_period_s)
            wbin = np.minimum((wphase * 7 * s.season_bins).astype(np.int64),
                              7 * s.season_bins - 1)
            # each series' cell of its phase bin, as an index into the flattened tables (2-D
            # fancy indexing cost 3-4x more at 100,000 series)
            sflat = rows * s.season_bins + sbin
            wflat = rows * (7 * s.season_bins) + wbin
            so = day_cell = tables.cells(self._season, sflat)
            between = visits >= s.season_between_ticks
            if between.any():
                so = np.where(between, tables.between(self._season, rows, phase, s.season_bins), so)
        else:
            sflat = wflat = np.zeros(n_, dtype=np.int64)
            so = day_cell = np.zeros(n_)
            between = np.zeros(n_, dtype=np.bool_)
        shrink = seasonal and s.season_shrink > 0
        full_so = so
        if shrink:
            # the seasonal offset counts as far as it has predicted better than the level alone
            # (a series with no daily pattern learns its bins from noise)
            gain = 1.0 - a["e1"] / np.maximum(a["e0"], _TINY)
            so = so * np.clip(s.season_shrink * gain, 0.0, 1.0)
        weekly = self._week_p.shape[1] > 0
        if weekly:
            # the week's residual from the daily profile (Saturday nights, Monday mornings),
            # weighed like the daily profile but by its gain over the daily profile, in units
            # of the flat level's error: a week of noise earns no weight
            wo_cell = wo_full = tables.cells(self._week_p, wflat) * a["wunit"]
            if between.any():
                wo_full = np.where(between, tables.between(self._week_p, rows, wphase,
                                                     7 * s.season_bins) * a["wunit"], wo_cell)
            wgain = (a["e1"] - a["e2"]) / np.maximum(a["e0"], _TINY)
            so = so + wo_full * np.clip(s.season_shrink * wgain, 0.0, 1.0)
        # a profile counts only once the series has been watched for `season_warmup_periods`
        # (a profile of one afternoon is no daily pattern): before that the baseline is the
        # level alone, and the profile's errors below are the level's, so it earns its weight
        # from predictions made after that
        aged = np.ones(n_, dtype=np.bool_)
        if seasonal and s.season_warmup_periods > 0:
            aged = tt - a["born"] >= s.season_warmup_periods * s.season_period_s
            so = np.where(aged, so, 0.0)
        expected = a["mu"] + so

        # --- robust z-score
        # the long-memory deviation (outliers included) keeps the scale of a mostly flat
        # series with bursts (zeros, then a burst) from collapsing to nothing
        scale = np.maximum.reduce(
            [_DEV_TO_SIGMA * a["dev"], a["floor"], a["rfloor"] * np.abs(expected),
             s.long_floor * a["dlong"], np.full(n_, _TINY)]
        )  # fmt: skip
        r = xv - expected
        z = r / scale
        zb = np.where(d > 0, z, np.where(d < 0, -z, np.abs(z)))
        r_spike = np.maximum(zb, 0.0) / s.z_spike

        # --- CUSUM (change points)
        # capped, relaxed while the value stays within the allowance and quartered when it
        # crosses back, so an episode ends soon after the series returns to its baseline
        cap = s.cusum_cap * s.cusum_h
        gp = np.minimum(np.maximum(0.0, a["gp"] + z - s.cusum_k), cap)
        gn = np.minimum(np.maximum(0.0, a["gn"] - z - s.cusum_k), cap)
        gp = np.where(z < s.cusum_k, gp * s.cusum_relax, gp)
        gn = np.where(-z < s.cusum_k, gn * s.cusum_relax, gn)
        gp = np.where(valid, np.where(z < 0, 0.25 * gp, gp), a["gp"])
        gn = np.where(valid, np.where(z > 0, 0.25 * gn, gn), a["gn"])
        cp = np.where(d > 0, gp, np.where(d < 0, gn, np.maximum(gp, gn)))
        r_cp = cp / s.cusum_h

        # the value less the seasonal offset: a daily ramp the profile explains is no trend
        xd = xv - so
        # --- trend (`detect.trend`), restarted at each change point
        fitted = trend_mod.fit(s, a, xv, xd, valid, d, scale, gp, gn, tick_s)
        s0, s1, s2, sy, sky, syy = fitted.sums
        slope, ttl, toward, r_trend = fitted.slope, fitted.ttl, fitted.toward, fitted.r_trend
        material, after_cut = fitted.material, fitted.after_cut
        if s.transient_gain > 0:
            move = xv - a["cut_x"]
            back = np.where(d > 0, -move, np.where(d < 0, move, np.abs(move)))
            r_trans = np.where(after_cut, s.transient_gain * np.maximum(back, 0.0) / material, 0.0)
            r_spike = np.maximum(r_spike, r_trans)

        # --- fuse: the strongest component explains the score
        rs = np.stack([r_spike, r_cp, r_trend])
        # a material, significant trend explains a runaway better than its z-score does
        comp = np.where(r_trend >= 1.0, TREND, np.argmax(rs, axis=0)).astype(np.int8)
        rmax = np.max(rs, axis=0)
        score = rmax * rmax / (1.0 + rmax * rmax)
        live = valid & (a["n"] >= s.warmup_ticks)
        score = np.where(live, score, 0.0)

        # --- surprise: the strength against this series' own history of strengths (a noisy
        # series routinely reaches strengths that would be news on a quiet one), and its
        # onset: a surprise larger than any recent one (the first row of an episode)
        ly = np.log1p(np.where(live, rmax, 0.0))
        if seasonal:
            # what is usual at this phase (a daily batch job's spike) is no surprise
            usual = tables.cells(self._season_s, sflat)
            tables.set_cells(self._season_s, sflat, np.where(
                live, np.maximum(ly, usual * s.season_strength_decay ** (1.0 / visits)), usual
            ))
            if self._week_s.shape[1] > 0:
                # the same by phase of the week (a weekly report, Monday's traffic)
                wusual = tables.cells(self._week_s, wflat)
                tables.set_cells(self._week_s, wflat, np.where(
                    live,
                    np.maximum(ly, wusual * s.season_strength_decay ** (1.0 / visits)),
                    wusual,
                ).astype(np.float16))
                usual = np.maximum(usual, wusual)
            # (what one afternoon saw is not yet what is usual at this hour)
            usual = np.where(aged, usual, 0.0)
            # within a tolerance: today's batch spike may be a little taller than last week's
            ly = np.maximum(ly - usual - np.where(usual > 0, s.usual_tolerance, 0.0), 0.0)
        lsd = np.sqrt(np.maximum(a["lv"], s.surprise_min_var))
        zl = np.where(a["ln"] >= s.surprise_min_n, (ly - a["lm"]) / lsd, 0.0)
        zl = np.where(live, np.maximum(zl, 0.0), 0.0)
        if s.record_decay > 0:
            # a strength as large as the largest in recent memory is full news, one half as
            # large half of it: the memory decays by record_decay a tick
            rel = np.where(a["lpk"] > 0, ly / np.maximum(a["lpk"], _TINY), 1.0)
            zl = zl * np.minimum(rel, 1.0) ** s.record_power
            a["lpk"][:] = np.where(valid, np.maximum(a["lpk"] * s.record_decay, ly), a["lpk"])
        surprise = zl / (1.0 + zl)
        onset = np.where(surprise > a["peak"], surprise, 0.0)
        a["peak"][:] = np.where(valid, np.maximum(a["peak"] * s.onset_decay, surprise), a["peak"])
        ln = a["ln"] + live
        al = np.maximum(1.0 / np.maximum(ln, 1.0), s.alpha_surprise)
        dl = ly - a["lm"]
        a["lm"][:] = np.where(live, a["lm"] + al * dl, a["lm"])
        a["lv"][:] = np.where(live, (1.0 - al) * (a["lv"] + al * dl * dl), a["lv"])
        a["ln"][:] = ln

        # --- episodes with hysteresis
        fire_now = score >= s.fire
        begin = fire_now & ~firing
        a["start"][begin] = tt[begin]
        a["base"][begin] = expected[begin]
        a["bscale"][begin] = scale[begin]
        quiet = np.where(firing & valid & (score < s.clear), a["quiet"] + 1.0, 0.0)
        quiet = np.where(firing & ~valid, a["quiet"], quiet)
        end = firing & (quiet >= s.clear_ticks)
        new_firing = (firing | begin) & ~end
        a["start"][end] = np.nan
        a["quiet"][:] = np.where(new_firing, quiet, 0.0)
        firing[:] = new_firing

        # --- learn from the value (after scoring it)
        nn = a["n"] + valid
        alpha = np.maximum(1.0 / np.maximum(nn, 1.0), s.alpha_level)
        lim = s.huber_c * scale
        if s.cold_unclipped:
            # while the level is still a plain mean of the first values, so is the deviation:
            # a scale that starts at the noise floor would clip every lesson to nothing and
            # take hours to grow, reporting the series' plain noise all the while
            lim = np.where(a["n"] * s.alpha_level < 1.0, np.inf, lim)
        benign = (d != 0) & (d * r < 0)
        rc = np.where(benign, r, np.clip(r, -lim, lim))
        ab = np.where(benign, np.maximum(alpha, s.alpha_benign), alpha)
        mu = np.where(valid, a["mu"] + ab * rc, a["mu"])
        # outliers teach the scale only slowly, so a runaway does not pass for noise
        a_dev = np.where(np.abs(r) > lim, s.outlier_learn * alpha, alpha)
        if s.quick_fall > 0:
            rq = np.minimum(np.abs(r), lim)
            dq = np.where(valid, a["dquick"] + s.alpha_quick * (rq - a["dquick"]), a["dquick"])
            a["dquick"][:] = dq
            a_dev = np.where(valid & (dq < s.quick_fall * a["dev"]),
                             np.maximum(a_dev, s.alpha_quick), a_dev)
        dev = np.where(valid, a["dev"] + a_dev * (np.minimum(np.abs(r), lim) - a["dev"]), a["dev"])
        a_long = np.maximum(1.0 / np.maximum(nn, 1.0), s.alpha_long)
        dlong = np.where(valid, a["dlong"] + a_long * (np.abs(r) - a["dlong"]), a["dlong"])
        if shrink or weekly:
            # errors of the level alone and of the level plus the full profile
            e0 = np.minimum(np.abs(xv - a["mu"]), lim)
            e1 = np.where(aged, np.minimum(np.abs(xv - a["mu"] - full_so), lim), e0)
            a["e0"][:] = np.where(valid, a["e0"] + s.alpha_shrink * (e0 - a["e0"]), a["e0"])
            a["e1"][:] = np.where(valid, a["e1"] + s.alpha_shrink * (e1 - a["e1"]), a["e1"])
            if weekly:
                # and of the level plus both profiles
                e2 = np.where(
                    aged, np.minimum(np.abs(xv - a["mu"] - full_so - wo_full), lim), e1)
                a["e2"][:] = np.where(valid, a["e2"] + s.alpha_shrink * (e2 - a["e2"]), a["e2"])
        if seasonal:
            # each bin learns the mean of its phase (however the profile is read)
            col = day_cell
            cnt = tables.cells(self._season_n, sflat)
            lim_s = lim
            if s.profile_rise_s > 0:
                # what a profile learns is clipped by a scale that rises slowly (it falls with
                # the noise scale): an hour at 100x the level inflates the noise scale, and
                # must not teach the profile of its hours. A series with no slow scale yet
                # (young, or saved with the clip off: 0) takes the noise scale
                prev = a["sslow"]
                young = (a["n"] * s.alpha_level < 1.0) | ~(prev > 0.0)
                # e^50 is no clip at all; e^710 (a 41-day gap at 5000 s) overflows
                rise = np.exp(np.minimum(tick_s / s.profile_rise_s, 50.0))
                sref = np.where(young, scale, np.minimum(scale, prev * rise))
                a["sslow"][:] = np.where(valid, sref, prev)
                lim_s = s.huber_c * sref
            resid_s = np.clip(xv - mu - col, -lim_s, lim_s)
            a_visit = 1.0 - (1.0 - s.alpha_season) ** (1.0 / visits)
            a_s = np.maximum(1.0 / (cnt + 1.0), a_visit)
            tables.set_cells(self._season, sflat, np.where(valid, col + a_s * resid_s, col))
            tables.set_cells(self._season_n, sflat,
                       np.minimum(cnt + valid, _U16_MAX).astype(np.uint16))
            if weekly:
                # what the daily profile (as just updated) leaves at this phase of the week
                day = np.where(valid, col + a_s * resid_s, col)
                resid_w = np.clip(xv - mu - day - wo_cell, -lim_s, lim_s)
                learnt = np.where(valid, wo_cell + a_visit * resid_w, wo_cell)
                self._store_week(wflat, learnt, np.where(valid, scale, a["wunit"]))

        # --- re-baseline after a sustained benign move (a fall of a +1 metric, say)
        far = benign & (np.abs(z) > s.huber_c) & valid
        run = np.where(far, a["benign"] + 1.0, np.where(valid, 0.0, a["benign"]))
        reset = run >= s.rebaseline_ticks
        if reset.any():
            nn = np.where(reset, 1.0, nn)
            mu = np.where(reset, xv, mu)
            dev = np.where(reset, 0.0, dev)
            a["dquick"][reset] = 0.0
            dlong = np.where(reset, 0.0, dlong)
            a["origin"][reset] = xv[reset]
            for arr in (s1, s2, sky):
                arr[reset] = 0.0
            s0 = np.where(reset, 1.0, s0)
            sy = np.where(reset, 0.0, sy)
            syy = np.where(reset, 0.0, syy)
            gp = np.where(reset, 0.0, gp)
            gn = np.where(reset, 0.0, gn)
            run = np.where(reset, 0.0, run)
            if seasonal:
                # a new baseline: its profile starts over, and counts after a period again
                a["born"][reset] = tt[reset]
                self._season[:n_][reset] = 0.0
                self._season_n[:n_][reset] = 0.0
                self._season_s[:n_][reset] = 0.0
                self._week_s[:n_][reset] = 0.0
                self._week_p[:n_][reset] = 0.0

        a["n"][:] = nn
        a["mu"][:] = mu
        a["dev"][:] = dev
        spread = a["dlong"].copy()
        a["dlong"][:] = dlong
        a["gp"][:] = gp
        a["gn"][:] = gn
        a["benign"][:] = run
        a["s0"][:], a["s1"][:], a["s2"][:] = s0, s1, s2
        a["sy"][:], a["sky"][:], a["syy"][:] = sy, sky, syy

        return Step(
            score=score,
            strength=np.where(live, rmax, 0.0),
            surprise=surprise,
            onset=onset,
            detector=comp,
            expected=expected,
            scale=scale,
            z=z,
            slope=slope,
            ttl_ticks=np.where(toward, ttl, np.inf),
            firing=new_firing.copy(),
            start=np.where(new_firing, a["start"], np.nan),
            base=a["base"].copy(),
            base_scale=a["bscale"].copy(),
            spread=spread,
        )
