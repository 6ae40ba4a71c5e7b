"""`Detector`: the engine's per-tick entry point over named (service, metric) series.

It maps names to rows of the vectorised `core.Bank`, feeds one tick of values, and turns the
series that fire into `model.Anomaly` values with a human explanation and the context verdict
(expected during a change's settle window or a maintenance window). Pure: the time is passed in.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from selfheal import errors, model
from selfheal.detect import context as context_mod
from selfheal.detect import core, explain, persist
from selfheal.detect import growth as growth_mod
from selfheal.detect import news as news_mod
from selfheal.detect import settings as settings_mod

SeriesKey = tuple[str, str]

FORGET_EVERY_S = 3600.0
"""How often `update` looks for series idle for `Settings.forget_s` (an O(series) check)."""


IMPLAUSIBLE = 0.02
"""A limit its series is past by more than this fraction of it is no limit of that series: a
process is stopped at its memory limit, it does not live beyond it (`set_limits`,
`_at_limit`)."""


GROWTH_SCORE = 0.75
"""The least score of a steady rise with no usable limit (`growth`): always reported (an
incident opens only with another signal of its service: `fusion.LIMITED_ALONE`)."""

UNRANKED_Z = 1e6
"""A move of more than this many robust standard deviations, on a series flat before it,
says that the series has no noise scale to measure it by (a series at 0 between bursts), not
how strong the move is (`take_unranked`)."""
FLAT = 1e-3
"""A series is flat between its moves when its noise scale is below this fraction of its
long mean absolute residual, moves included (or that is 0: it never moved)."""
STILL_TICKS = 10
"""And it sat still before a move when its value was exactly the same for this many ticks
before it (missing values aside): a queue at 0 between bursts does; a noisy series does not,
although a broken exporter's absurd values, sent twice, leave its long residual far above its
noise scale as a flat series' bursts do."""


@dataclasses.dataclass(frozen=True)
class LimitChange:
    """What `Detector.set_limits` did: services whose limit changed, (old, new); services
    whose limit was not used because their value was already past it, (limit, value)."""

    changed: Mapping[str, tuple[float | None, float | None]]
    refused: Mapping[str, tuple[float, float]]


class Detector:
    """Online anomaly detection over (service, metric) series, one `update` per tick."""

    def __init__(self, settings: settings_mod.Settings | None = None) -> None:
        self.settings = settings or settings_mod.Settings()
        self._bank = core.Bank(self.settings)
        self._index: dict[SeriesKey, int] = {}
        self._keys: list[SeriesKey] = []
        self._last_t: float | None = None
        self._dt: float | None = None  # the usual spacing of ticks (smoothed)
        self._news = news_mod.NewsBank(self.settings)
        # only the series of limit-type metrics: a steady rise with no usable limit
        self._growth = growth_mod.GrowthBank(self.settings)
        # per row: the time of the series' last value (the time it appeared, before one)
        self._seen = np.zeros(0)
        self._forget_at: float | None = None  # when `forget_s` is next applied
        self._dropped: list[SeriesKey] = []  # by it, not yet taken (`take_dropped`)
        # series that fired with a move no noise scale measured (`take_unranked`): not yet
        # taken, and every one ever (each is said once a process)
        self._unranked: list[SeriesKey] = []
        self._unranked_said: set[SeriesKey] = set()
        self._limits: dict[SeriesKey, float] = {}  # a series' own limit (`set_limits`)
        # per row: its last finite value, and how many ticks in a row it has had it
        # (`STILL_TICKS`; kept in memory only: after a restart a series sits still anew)
        self._last_x = np.zeros(0)
        self._still = np.zeros(0, np.float32)

    @property
    def series(self) -> tuple[SeriesKey, ...]:
        return tuple(self._keys)

    @property
    def size(self) -> int:
        """How many series there are (`len(series)`, without the copy)."""
        return len(self._keys)

    @property
    def last_t(self) -> float | None:
        """The time of the last tick (None before the first)."""
        return self._last_t

    @property
    def spacing_s(self) -> float | None:
        """The usual spacing of its ticks, in seconds (None before the second tick)."""
        return self._dt

    def save(self) -> bytes:
        """Everything this detector has learned, as bytes for `Detector.load` (after a restart:
        the profiles of each series' day and week, its routine episodes by hour)."""
        return self.snapshot()()

    def snapshot(self) -> Callable[[], bytes]:
        """A copy of the state now, and the function that encodes it as `save()` does: the
        copy is quick, the encoding can run in another thread while this detector ticks on."""
        keys, last_t, dt = list(self._keys), self._last_t, self._dt
        period = self.settings.season_period_s
        arrays = {k: v.copy() for k, v in self._arrays().items()}
        return lambda: persist.encode(keys, last_t, dt, period, arrays)

    @classmethod
    def load(cls, data: bytes, settings: settings_mod.Settings | None = None) -> Detector:
        """A detector that goes on from `save()`'s state, under `settings` (the current
        config: its directions, floors and limits apply to the restored series). Raises
        `errors.StateUnusable`, using nothing, when the state is damaged or does not fit."""
        det = cls(settings)
        keys, (last_t, last_dt), arrays = persist.decode(data, det.settings.season_period_s)
        det._adopt(keys, arrays)
        det._last_t, det._dt = last_t, last_dt
        # the hourly look for idle series is due at the first tick: when was the last one is
        # not saved, and waiting an hour from each start would never look at all for an
        # agent restarted more often than hourly
        det._forget_at = last_t
        return det

    def _adopt(self, keys: list[SeriesKey], arrays: dict[str, npt.NDArray[Any]]) -> None:
        """Take `keys` with their state `arrays` (checked against a fresh detector's arrays
        for them; `errors.StateUnusable` if they do not fit) in place of what this holds."""
        self._bank = core.Bank(self.settings, capacity=max(1, len(keys)))
        self._news = news_mod.NewsBank(self.settings)
        self._growth = growth_mod.GrowthBank(self.settings)
        self._index, self._keys, self._seen = {}, [], np.zeros(0)
        self._last_x, self._still = np.zeros(0), np.zeros(0, np.float32)
        for key in keys:
            self._row(key)
        # the growth rings are keyed by row, and absent from a state saved before them
        grown = {k.removeprefix("growth."): v for k, v in arrays.items()
                 if k.startswith("growth.")}
        arrays = {k: v for k, v in arrays.items() if not k.startswith("growth.")}
        bins = self._news.bins
        persist.check(arrays, persist.arrays(self._bank, self._news, self._seen),
                      below={"news.start_bin": bins, "news.undo.bin": bins} if bins else None)
        if grown and ("rows" not in grown or grown["rows"].dtype != np.int64
                      or (grown["rows"].size and not 0 <= grown["rows"].min()
                          <= grown["rows"].max() < len(keys))):
            raise errors.StateUnusable("the saved growth state's rows do not fit its series")
        self._growth.load(grown)
        kept = {k: v for k, v in arrays.items() if k not in persist.FROM_CONFIG}
        self._bank.load({k.removeprefix("core."): v for k, v in kept.items()
                         if k.startswith("core.")})
        self._news.load({k.removeprefix("news."): v for k, v in kept.items()
                         if k.startswith("news.")})
        self._seen[: len(keys)] = kept["seen"]

    def _arrays(self) -> dict[str, npt.NDArray[Any]]:
        out = persist.arrays(self._bank, self._news, self._seen)
        out.update({f"growth.{k}": v for k, v in self._growth.arrays().items()})
        return out

    def forget(self, before: float) -> list[SeriesKey]:
        """Drop every series with no value since `before` (and that appeared before it):
        what it learned goes, and it starts afresh if it comes back. Returns the series
        dropped. `update` calls this hourly with `Settings.forget_s`, so that a fleet whose
        services come and go does not grow the detector, or its saved state, without end."""
        n = self._bank.size
        gone = self._seen[:n] < before
        if not gone.any():
            return []
        keep = np.flatnonzero(~gone)
        arrays = {k: v[keep] for k, v in self._arrays().items()
                  if not k.startswith("growth.")}  # copies
        grown = self._growth.arrays()
        kept = np.isin(grown["rows"], keep)
        arrays.update({f"growth.{k}": v[kept] for k, v in grown.items()})
        arrays["growth.rows"] = np.searchsorted(keep, grown["rows"][kept]).astype(np.int64)
        dropped = [self._keys[i] for i in np.flatnonzero(gone)]
        last_x, still = self._last_x[keep], self._still[keep]
        self._adopt([self._keys[i] for i in keep], arrays)
        self._last_x[: len(keep)], self._still[: len(keep)] = last_x, still
        return dropped

    def _row(self, key: SeriesKey) -> int:
        row = self._index.get(key)
        if row is None:
            metric = key[1]
            row = self._bank.add(
                direction=self.settings.direction(metric),
                floor=self.settings.floor(metric),
                limit=self.limit(key),
                rel_floor=self.settings.rel(metric),
            )
            if metric in self.settings.limits and self.settings.direction(metric) >= 0:
                self._growth.track(row, self.settings.z_spike * self.settings.floor(metric))
            # a service's name is shared by its metrics, a metric's by every service: one
            # copy of each (at 100,000 series, ~90 bytes a series); only plain strings, so
            # the key stored is always the key looked up
            if type(key[0]) is str and type(key[1]) is str:
                key = (sys.intern(key[0]), sys.intern(key[1]))
            self._index[key] = row
            self._keys.append(key)
            if row >= len(self._seen):
                more = max(row + 1, self._bank.capacity) - len(self._seen)
                self._seen = np.concatenate([self._seen, np.full(more, np.nan)])
                self._last_x = np.concatenate([self._last_x, np.full(more, np.nan)])
                self._still = np.concatenate([self._still, np.zeros(more, np.float32)])
        return row

    def update(
        self,
        t: float,
        values: Mapping[SeriesKey, float],
        context: context_mod.Context | None = None,
    ) -> list[model.Anomaly]:
        """One tick: (service, metric) -> value (NaN = missing; series may appear later).

        Returns the anomalies firing at t (score at least `Settings.clear`), at most one per
        series, sorted by score (highest first). An episode is reported once it is news for its
        series (`news.NewsBank`: stronger than the series' routine episodes); a metric with a
        hold (`Settings.hold_s`) only once its episode has lasted that long. Either is reported
        at once when it breaks the SLO (or reaches its metric's limit, for the gate), or when
        another signal of its service is reported at the same tick. `started_at` is when the
        episode began; an episode that began inside a change's settle window (or fires in a
        maintenance window) is `expected` with the reason; once it outlasts the window it is
        reported with `expected=False` and the reason says so. Pass the services under an open
        incident in `context.incidents`: their episodes are not learned as routine.
        """
        _check_time(t)  # before `add` registers any new series
        rows = self.add(values)
        x = np.full(self._bank.size, np.nan)
        if rows:
            x[rows] = np.fromiter((float(v) for v in values.values()), float, len(rows))
        return self.update_rows(t, x, context)

    def rows(self, keys: Sequence[SeriesKey]) -> npt.NDArray[np.int64]:
        """The row of each of `keys` in the arrays `update_rows` takes (-1: not a series yet)."""
        get = self._index.get
        return np.fromiter((get(key, -1) for key in keys), np.int64, len(keys))

    def add(self, keys: Iterable[SeriesKey]) -> list[int]:
        """The row of each of `keys`, registering those that are new, in that order."""
        keys = list(keys)
        new = sum(1 for key in keys if key not in self._index)
        if new:
            self._bank.reserve(self._bank.size + new)
        return [self._row(key) for key in keys]

    def update_rows(self, t: float, x: npt.NDArray[np.float64],
                    context: context_mod.Context | None = None, *, explained: bool = True
                    ) -> list[model.Anomaly]:
        """`update` with the tick's values as one array over the rows of `series` (NaN:
        missing; as long as `series`, so new series are `add`ed first): for a caller that
        holds its values as columns (a chunk of history) and so builds no dict a tick.
        With `explained=False` the anomalies' `explanation` is left empty (for a caller that
        only weighs them, as learning history does: the text is most of their cost)."""
        _check_time(t)
        ctx = context or context_mod.Context()
        if x.shape != (self._bank.size,):
            raise ValueError(f"expected {self._bank.size} values, got shape {x.shape}")
        seen = self._seen[: self._bank.size]
        dt = 1.0
        if self._last_t is not None and t > self._last_t:
            dt = t - self._last_t
            if self._dt is not None and dt > self.settings.gap_ticks * self._dt:
                # a gap in the data (selfheal was down): how the open episodes went on is
                # unknown, so they end here unlearned, and the gap counts as one tick
                self._bank.end_episodes()
                self._news.end_episodes()
                # nor is a series idle while nobody watched it (`forget`): its last value
                # moves on by the gap, and the hourly check waits for the first full hour
                seen[:] += dt - self._dt
                self._forget_at = t + FORGET_EVERY_S
                dt = self._dt
            # the usual spacing, smoothed: one tick that came early is no new interval
            self._dt = dt if self._dt is None else 0.9 * self._dt + 0.1 * dt
        self._last_t = t
        seen[np.isfinite(x) | np.isnan(seen)] = t
        # the trend's slopes are per tick of the usual spacing, not of this tick's gap
        spacing = dt if self._dt is None else self._dt
        step = self._bank.step(t, x, dt, spacing)

        shown = step.firing & np.isfinite(x) & (step.score >= self.settings.clear)
        still = self._still[: self._bank.size]
        self._note_unranked(shown, t, x, step, still)
        # then how many ticks in a row each series has had its value, this one included (a
        # missing value is no move; float32 counts exactly to 2**24, far past `STILL_TICKS`)
        last_x = self._last_x[: self._bank.size]
        valid = np.isfinite(x)
        same = x == last_x
        still[same] += 1.0
        still[valid & ~same] = 1.0
        np.copyto(last_x, x, where=valid)
        if ctx.incidents:
            # an episode learned as routine shortly before its service came under an incident
            # (an alert rule slower than the detector) was no routine
            self._news.unlearn([int(i) for i in self._news.pending()
                                if self._keys[i][0] in ctx.incidents])
        news = self._news.step(step.firing, step.strength, step.ttl_ticks * spacing,
                               self._excused(step, t, ctx), t=t, dt=dt,
                               age_s=t - step.start, valid=valid, spacing=spacing)
        ready: list[int] = []
        held: list[int] = []
        for i in (int(i) for i in np.flatnonzero(shown)):
            young = not self._held_long_enough(i, t, float(x[i]), float(step.start[i]))
            routine = not news[i] and not self._breaks_slo(i, float(x[i])) \
                and not self._at_limit(i, float(x[i]))
            (held if young or routine else ready).append(i)
        # an episode of a held metric that is still young, or one no stronger than its series'
        # routine episodes, is reported when another signal of its service corroborates it (a
        # noisy p99 alone is one slow request, or what it does every hour; with a leak it is
        # a symptom)
        corroborated = {self._keys[i][0] for i in ready}
        ready += [i for i in held if self._keys[i][0] in corroborated]
        self._news.mark([i for i in ready if not news[i]])
        found = [self._anomaly(i, t, float(x[i]), spacing=spacing, step=step, ctx=ctx,
                               explained=explained) for i in ready]
        if self._growth.size:
            found += self._rises(t, x, spacing, ctx, {(a.service, a.metric) for a in found},
                                 explained)
        found.sort(key=lambda a: (-a.score, a.service, a.metric))
        self._forget_idle(t)
        return found

    def _rises(self, t: float, x: npt.NDArray[np.float64], spacing: float,
               ctx: context_mod.Context, reported: set[SeriesKey], explained: bool
               ) -> list[model.Anomaly]:
        """The steady rises of limit-type series with no usable limit (`growth`), each
        reported once (an expected one, in a maintenance window say, again at the next
        bucket)."""
        s = self.settings
        rows = self._growth.rows
        after = self._bank.arrays()
        xs = x[rows]
        limit = after["a.limit"][rows]
        usable = np.isfinite(limit) & ~(xs > limit + np.abs(limit) * IMPLAUSIBLE)
        rise = self._growth.step(t, xs, s.growth_bucket_s / max(spacing, 1e-9), usable,
                                 after["a.born"][rows])
        out: list[model.Anomaly] = []
        told: list[int] = []
        for j, i in enumerate(int(i) for i in rise.rows):
            service, metric = self._keys[i]
            if (service, metric) in reported:
                continue  # one anomaly a series a tick: the rise is judged again next bucket
            started = float(rise.start[j])
            r = float(rise.strength[j])
            text = explain.growth(metric, service, float(rise.first[j]), float(rise.last[j]),
                                  float(rise.span_s[j]), float(x[i]),
                                  limit=self.limit((service, metric))) if explained else ""
            verdict = context_mod.judge(ctx, service, started, t)
            if verdict.reason and explained:
                text += f" ({verdict.reason})"
            if not verdict.expected:
                told.append(i)
            out.append(model.Anomaly(
                id=model.AnomalyId(f"{service}/{metric}/{started:.3f}"), service=service,
                metric=metric, detector="growth", started_at=started, detected_at=t,
                # a steady material rise with nothing to forecast it against is reported
                # (`fuse` counts it at memory's weight alone: no incident on its own)
                score=round(max(GROWTH_SCORE, r * r / (1.0 + r * r)), 4),
                baseline=float(rise.first[j]), observed=float(x[i]), explanation=text,
                expected=verdict.expected, expected_reason=verdict.reason))
        self._growth.tell(told)
        return out

    def _forget_idle(self, t: float) -> None:
        """Hourly: drop the series with no value for `Settings.forget_s`."""
        forget_s = self.settings.forget_s
        if forget_s <= 0.0:
            return
        if self._forget_at is None:  # the first tick of a fresh detector
            self._forget_at = t + FORGET_EVERY_S
        elif t >= self._forget_at:
            self._forget_at = t + FORGET_EVERY_S
            self._dropped += self.forget(t - forget_s)

    def take_dropped(self) -> list[SeriesKey]:
        """The series `update` dropped as idle (`Settings.forget_s`) since the last call."""
        dropped, self._dropped = self._dropped, []
        return dropped

    def take_unranked(self) -> list[SeriesKey]:
        """The series that fired since the last call with a move that no noise scale
        measured (`_note_unranked`: a metric with no floor, flat before the move), each
        once: its moves cannot be ranked until `Settings.min_scale` gives it a floor."""
        unranked, self._unranked = self._unranked, []
        return unranked

    def _note_unranked(self, shown: npt.NDArray[np.bool_], t: float,
                       x: npt.NDArray[np.float64], step: core.Step,
                       still: npt.NDArray[np.float32]) -> None:
        """Keep for `take_unranked`, once, each series with no floor for its metric, flat
        before it (`FLAT`) and still just before it (`still`: ticks at its last value,
        `STILL_TICKS`), whose episode began now with a move beyond `UNRANKED_Z` noise
        scales. Reported or not: a series whose scale collapses
        burst by burst is soon no longer reported (its bursts are learned). Judged at an
        episode's first tick only, by what the series did before it: an absurd hour of a
        noisy series fills its long residual by its second tick. Not a series whose scale
        was its relative floor (`Settings.rel`, a share of its level): it has a scale, and
        the move was absurd (a gauge at 3 that a broken exporter sent 1e7)."""
        rows = np.flatnonzero(shown & (step.start == t))  # the episodes that began now: few
        scale = np.maximum(step.base_scale[rows], 1e-12)
        spread = step.spread[rows]
        far = np.abs(x[rows] - step.base[rows]) >= UNRANKED_Z * scale
        flat = ((spread <= 0.0) | (scale <= FLAT * spread)) & (still[rows] >= STILL_TICKS)
        pick = far & flat
        for i, s, base in zip(rows[pick].tolist(), scale[pick].tolist(),
                              step.base[rows][pick].tolist(), strict=True):
            key = self._keys[i]
            if self.settings.floor(key[1]) > 0 or key in self._unranked_said:
                continue
            if self.settings.rel(key[1]) * abs(base) >= s:
                continue
            self._unranked_said.add(key)
            self._unranked.append(key)

    def _excused(self, step: core.Step, t: float, ctx: context_mod.Context
                 ) -> npt.NDArray[np.bool_] | None:
        """The firing episodes that are part of something known (`context.excused`), and the
        episodes that ended at the last tick whose service is under an incident now."""
        if not (ctx.incidents or ctx.changes or ctx.maintenance):
            return None
        out = np.zeros(len(step.firing), dtype=np.bool_)
        for i in (int(i) for i in np.flatnonzero(step.firing)):
            out[i] = context_mod.excused(ctx, self._keys[i][0], float(step.start[i]), t)
        ended = self._news.was_firing(len(step.firing)) & ~step.firing
        for i in (int(i) for i in np.flatnonzero(ended)):
            out[i] = self._keys[i][0] in ctx.incidents
        return out

    def limit(self, key: SeriesKey) -> float | None:
        """The value series `key` must not reach: its own (`set_limits`), else its metric's
        (`Settings.limits`); None when neither is known."""
        own = self._limits.get(key)
        return own if own is not None else self.settings.limit(key[1])

    def set_limits(self, metric: str, by_service: Mapping[str, float],
                   observed: Mapping[str, float] | None = None) -> LimitChange:
        """Each service's own limit of `metric` (its memory limit, as where it runs reports
        it), in place of the metric's limit for that service; a service not in `by_service`
        (or with a limit that is not a finite number, or not above 0 for a metric whose rise
        is bad) goes back to the metric's. Applies to series that come later too. A limit
        that its service's `observed` value (the same moment's) is already past
        (`IMPLAUSIBLE`) is not used: a process is stopped at its memory limit, so the query
        is wrong (its unit, its label). `_at_limit` checks every value so."""
        rising = self.settings.direction(metric) >= 0
        usable = {svc: float(v) for svc, v in by_service.items()
                  if math.isfinite(v) and (v > 0 or not rising)}
        refused = {svc: (v, observed[svc]) for svc, v in usable.items()
                   if observed and svc in observed and self._past(metric, observed[svc], v)}
        new = {svc: v for svc, v in usable.items() if svc not in refused}
        changed: dict[str, tuple[float | None, float | None]] = {}
        for svc in {s for s, m in self._limits if m == metric} | set(new):
            key = (svc, metric)
            before = self.limit(key)
            if svc in new:
                self._limits[key] = new[svc]
            else:
                self._limits.pop(key, None)
            after = self.limit(key)
            if after != before:
                changed[svc] = (before, after)
                row = self._index.get(key)
                if row is not None:
                    self._bank.set_limit(row, after)
        return LimitChange(changed, refused)

    def _at_limit(self, i: int, observed: float) -> bool:
        """Is the value at its limit (memory at the OOM limit)? A value far past it says the
        limit is not this series' (the metric's default, a wrong query): no."""
        metric = self._keys[i][1]
        limit = self.limit(self._keys[i])
        return limit is not None and (observed == limit or self._breaks(metric, observed, limit)) \
            and not self._past(metric, observed, limit)

    def _past(self, metric: str, observed: float, limit: float) -> bool:
        """Is `observed` past `limit` by more than `IMPLAUSIBLE` of it?"""
        slack = abs(limit) * IMPLAUSIBLE
        return self._breaks(metric, observed,
                            limit - slack if self.settings.direction(metric) < 0 else limit + slack)

    def _held_long_enough(self, i: int, t: float, observed: float, started: float) -> bool:
        """Has the episode lasted its metric's hold (or does it break the SLO already)?"""
        metric = self._keys[i][1]
        hold = self.settings.hold(metric)
        return hold <= 0.0 or t - started >= hold or self._breaks_slo(i, observed)

    def _breaks_slo(self, i: int, observed: float) -> bool:
        metric = self._keys[i][1]
        bound = self.settings.slo.get(metric)
        return bound is not None and self._breaks(metric, observed, bound)

    def _breaks(self, metric: str, observed: float, bound: float) -> bool:
        direction = self.settings.direction(metric)
        if direction < 0:
            return observed < bound
        return observed > bound

    def _anomaly(
        self, i: int, t: float, observed: float, *, spacing: float, step: core.Step,
        ctx: context_mod.Context, explained: bool = True,
    ) -> model.Anomaly:
        service, metric = self._keys[i]
        detector = core.DETECTORS[int(step.detector[i])]
        started = float(step.start[i])
        baseline = float(step.base[i])
        if not explained:
            text = ""
        elif detector == "trend":
            limit = self.limit((service, metric))
            ttl_s = float(step.ttl_ticks[i]) * spacing
            text = explain.trend(
                metric, float(step.slope[i]) / spacing, baseline, observed,
                limit=limit, ttl_s=ttl_s if math.isfinite(ttl_s) else math.inf,
            )
        else:
            z = (observed - baseline) / max(float(step.base_scale[i]), 1e-12)
            usual = self._news.lasting(i)
            text = explain.level(metric, detector, baseline, observed, z,
                                 unranked=(service, metric) in self._unranked_said,
                                 lasted=None if usual is None else (t - started, usual))
        verdict = context_mod.judge(ctx, service, started, t)
        bound = self.settings.slo.get(metric)
        if verdict.expected and bound is not None and self._breaks(metric, observed, bound):
            verdict = context_mod.Judgement(
                False,
                f"breaks the SLO bound {explain.fmt(metric, bound)} of {metric}, "
                f"although {verdict.reason}",
            )
        if verdict.reason and explained:
            text += f" ({verdict.reason})"
        return model.Anomaly(
            id=model.AnomalyId(f"{service}/{metric}/{started:.3f}"),
            service=service,
            metric=metric,
            detector=detector,
            started_at=started,
            detected_at=t,
            score=round(float(step.score[i]), 4),
            baseline=baseline,
            observed=observed,
            explanation=text,
            expected=verdict.expected,
            expected_reason=verdict.reason,
        )


def _check_time(t: float) -> None:
    """A tick's time must be a finite number: NaN or inf has no seasonal phase, and would
    be kept as the last tick's time. Raised before anything of the detector changes."""
    if not math.isfinite(t):
        raise ValueError(f"a tick's time must be a finite number of seconds, not {t!r}")
