"""The trend detector: an exponentially weighted linear regression per series, vectorised.

Its slope must be both significant (t-statistic) and material (it moves the series a lot over
a horizon, or reaches the series' limit soon: the time-to-limit forecast). `Bank.step` calls
`fit` once a tick, after the CUSUM (whose crossings restart the regression) and before fusing.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt

from selfheal.detect import settings as settings_mod

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
I8 = npt.NDArray[np.int8]

_TINY = 1e-12


@dataclasses.dataclass(frozen=True)
class Fit:
    """One tick of the regression: its new sums (stored by the caller, after a re-baseline
    may have zeroed some) and what the trend says."""

    sums: tuple[F64, F64, F64, F64, F64, F64]
    """s0, s1, s2, sy, sky, syy: weighted counts, ages, squared ages, values, age x value,
    squared values."""
    slope: F64
    ttl: F64
    """Ticks until the limit at this slope (inf when not heading toward one)."""
    toward: B
    r_trend: F64
    material: F64
    """The move that counts as a lot (also the transient score's unit)."""
    after_cut: B
    """The first value after a change point."""


def fit(s: settings_mod.Settings, a: dict[str, F64], xv: F64, xd: F64, valid: B, d: I8,
        scale: F64, gp: F64, gn: F64, tick_s: F64) -> Fit:
    """Advance the regression of every series by the value `xd` (the value `xv` less the
    seasonal offset) and score its slope; `gp` and `gn` are this tick's CUSUMs, `a` the
    core's state arrays (the cut's fields are updated in place)."""
    # --- trend: exponentially weighted regression of y on age (0 = now), restarted at
    # each change point so that a jump does not pass for a slope (nor hide one)
    lam = s.trend_lambda
    h = s.cusum_h
    cut = valid & (np.maximum(gp, gn) >= h) & (np.maximum(a["gp"], a["gn"]) < h)
    # the value right after a change point says what it was: back where it came from (a
    # transient spike, confirmed) or moving on; the move from the jump is scored as such
    after_cut = valid & (a["cut_age"] == 1.0)
    if cut.any():
        a["origin"][cut] = xd[cut]
        a["cut_x"][cut] = xv[cut]
        for k in ("s0", "s1", "s2", "sy", "sky", "syy"):
            a[k][cut] = 0.0
    a["cut_age"][:] = np.where(cut, 0.0, a["cut_age"] + valid)
    y = xd - a["origin"]
    s0, s1, s2, sy, sky, syy = (a[k] for k in ("s0", "s1", "s2", "sy", "sky", "syy"))
    n1 = lam * (s1 + s0)
    n2 = lam * (s2 + 2.0 * s1 + s0)
    nky = lam * (sky + sy)
    # ages count ticks: a missing value ages the points without adding one, so a flaky
    # series' slope is per tick like the others' (not per value: twice as steep at half)
    yv = np.where(valid, y, 0.0)
    s0, s1, s2, sky = lam * s0 + valid, n1, n2, nky
    sy, syy = lam * sy + yv, lam * syy + yv * yv
    w = np.maximum(s0, _TINY)
    mk = s1 / w
    my = sy / w
    vk = np.maximum(s2 / w - mk * mk, 0.0)
    cov = sky / w - mk * my
    vy = np.maximum(syy / w - my * my, 0.0)
    # a line through a handful of points (just after a change point) proves nothing
    ok = (vk > 1e-9) & (s0 >= s.trend_min_n)
    vk_safe = np.where(ok, vk, 1.0)
    slope = np.where(ok, -cov / vk_safe, 0.0)
    resid = np.maximum(vy - np.where(ok, cov * cov / vk_safe, 0.0), 0.0)
    # the residual floor keeps a perfectly straight line from an infinite t
    resid = np.maximum(
        resid,
        (s.trend_resid_floor * scale) ** 2
        + (1e-3 * a["floor"]) ** 2
        + (1e-6 * np.abs(my)) ** 2,
    )
    se = np.sqrt(resid / (vk_safe * w))
    tstat = np.where(ok, slope / np.maximum(se, _TINY), 0.0)
    sb = np.where(d > 0, slope, np.where(d < 0, -slope, np.abs(slope)))
    tb = np.where(d > 0, tstat, np.where(d < 0, -tstat, np.abs(tstat)))
    material = np.maximum(s.trend_rel * np.abs(a["mu"]), s.z_spike * scale)
    horizon = (s.trend_horizon_ticks if s.trend_horizon_s is None
               else s.trend_horizon_s / tick_s)
    r_mag = sb * horizon / material
    toward = (d > 0) & (slope > 0) & (a["limit"] > xv)
    with np.errstate(divide="ignore", invalid="ignore"):
        ttl = np.where(toward, (a["limit"] - xv) / np.where(toward, slope, 1.0), np.inf)
    r_ttl = np.where(toward, s.ttl_horizon_s / np.maximum(ttl * tick_s, _TINY), 0.0)
    # only a line heading away from the baseline is news: one climbing back after a dip
    # is a recovery (its fitted value now is nearer the baseline than its mean is)
    base_y = a["mu"] - a["origin"]
    away = np.abs(my + slope * mk - base_y) >= np.abs(my - base_y)
    r_trend = np.where(
        (sb > 0) & away, np.minimum(tb / s.trend_t, np.maximum(r_mag, r_ttl)), 0.0
    )
    r_trend = np.maximum(r_trend, 0.0)
    return Fit(sums=(s0, s1, s2, sy, sky, syy), slope=slope, ttl=ttl, toward=toward,
               r_trend=r_trend, material=material, after_cut=after_cut)
