"""Which firing episodes are news for their series: the report gate of `Detector`.

A z-score of 6 is news on a quiet series and an hourly event on a bursty one. Each series
remembers the (log) peak strengths of its past episodes as a mean and a variance, learned when
an episode ends and decayed per tick (`Settings.report_memory`). A firing episode is news once
its peak so far stands `report_z` standard deviations above that mean; while the memory holds
fewer than `report_min_episodes` episodes (nothing to judge by); or when a trend reaches its
limit within `ttl_horizon_s`. Once reported, an episode stays reported until it ends.

While the memory is that small, every episode is reported and learned, but not one that
already stands above what it holds once that is one episode's weight (two recent episodes; one
alone decays below it at once): an outage reported then must not teach the short memory that
outages are routine. The cost: a routine that moves up for good is learned only once the
memory has decayed below that weight (693 ticks more than at `report_min_episodes`).

Only episodes that nothing remarked on are learned: not news by their strength or trend, not
reported for another reason (an SLO breach, corroboration: `mark`), not excused (an open
incident of the service, a change's settle window, a maintenance window: `context.excused`).
What the series does on its own, unremarked, is its routine; a failure that recurs (a crash
loop under its open incident, a replica that hangs after deploys briefly took it down) is not,
however often it comes back. The memory is per tick, so how long it lasts depends on the scrape
interval (0.999: a half-life of 693 ticks, ~11.5 min at 1 s).

That memory is too short for what a series does once a day (a nightly backup, a cron job): at a
1 s scrape it is forgotten by the next night, and the job would page every night. So each
series also remembers, by hour of the day (`Settings.season_period_s`, `season_bins`), the
strongest episode that began in that hour within the last `report_days` days, of those that
were not excused and that nothing but their own strength remarked on (no `mark`: no SLO
breach, no corroboration; no trend to the limit). An episode that begins in that hour or the
next to it, no stronger than one seen there on an earlier day (within `usual_tolerance` in log
strength), is routine, whatever the short memory says: a job that was news the first night,
and opened no incident, is the series' rhythm by the second. A routine episode keeps its
hour's memory fresh but does not raise it (only a reported one does), so a job that grows a
little every night is reported again once it has outgrown the last reported night. An
hour's strongest that has been seen on one day only is not yet its rhythm: it covers an
episode that comes near it (`report_one_day_band`: its second night) or is still young
(`report_hold_s`: a job ramping up), and below that only the strongest level the hour has
seen on two days, so a one-off (a broken exporter's hour at 100x the level, reported, opening
nothing) does not hide the next day's tripling at that hour. Within a
day (a demo, a first afternoon) the short memory alone judges, and a failure that recurs every
night under its open incident stays news.

Height is not everything: a level shift's strength is capped, so a shift no taller than the
series' routine one-tick spikes was never news, however long it held. Each series also
remembers its longest routine episode (in ticks with a value, learned from every episode
that ended opening nothing, halving in `report_lasting_half_life_s`), and an episode that has
lasted `report_lasting_s` and `report_lasting_factor` times that is news by its length
(`_lasting`). Pure and vectorised like `core.Bank`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from selfheal.detect import settings as settings_mod

F32 = npt.NDArray[np.float32]
B = npt.NDArray[np.bool_]

_STRONG = 1e6
"""Strengths are taken as at most this (log1p: 13.8) when learned."""
LASTING_MIN_TICKS = 5
"""`Settings.report_lasting_s` must span this many ticks for an episode's length to make it
news (over 60 s a tick with the default 300 s, it is judged by its height alone): at 5
minutes a tick a routine episode of a few ticks lasts a quarter of an hour, and four times
that was as often a Twitter burst as anything new (over NAB's 30 files, 37 false alarms
more for 4 windows)."""
_STEPS = 16.0
"""Steps per unit of log strength in the memory by hour (a 1/32 rounding error beside the
0.3 tolerance; 255 steps hold 15.9)."""


class NewsBank:
    """Per series: the current episode's peak and the memory of past episodes' peaks."""

    _FLOATS = ("peak", "m", "v", "n", "dmax")
    """The current episode's (log) peak strength so far; the decayed mean, variance and weight
    of past unremarked episodes' peaks; the log seconds of the longest routine episode
    remembered (`Settings.report_lasting_s`)."""
    _FLAGS = ("told", "remarked", "marked", "excused", "was", "lasting")

    def __init__(self, settings: settings_mod.Settings) -> None:
        self.settings = settings
        # arrays of room for `capacity` series, of which the first `size` are live (the rest
        # stay zero: a series added there starts as a new one would)
        self._n = 0
        self._f: dict[str, F32] = {k: np.zeros(0, np.float32) for k in self._FLOATS}
        # the ticks with a value that the current (or just ended) episode has fired
        self._ticks = np.zeros(0, np.uint16)
        self._b: dict[str, B] = {k: np.zeros(0, np.bool_) for k in self._FLAGS}
        on = settings.report_days > 0 and settings.season_period_s > 0
        self._bins = settings.season_bins if on else 0
        # by hour of the day: the strongest learned episode's log peak, in 1/_STEPS steps
        # (at most log1p(_STRONG) = 13.8, so a byte holds it), and the day it was learned
        # (+1; 0: never)
        self._hour_peak = np.zeros((0, self._bins), np.uint8)
        self._hour_day = np.zeros((0, self._bins), np.uint16)
        # and the strongest level it has seen on two days (at most its strongest; same steps
        # and the same stamp: it is forgotten with the hour)
        self._hour_two = np.zeros((0, self._bins), np.uint8)
        # the hour bin in which each series' current episode began
        self._start_bin = np.zeros(0, np.uint8)
        # the last hour memory learned, as it was before (bin, peak, two, day), and the ticks left
        # in which an incident of the series' service unlearns it (`unlearn`)
        self._undo: dict[str, npt.NDArray[np.unsignedinteger[Any]]] = {
            "bin": np.zeros(0, np.uint8), "peak": np.zeros(0, np.uint8),
            "two": np.zeros(0, np.uint8), "day": np.zeros(0, np.uint16),
            "left": np.zeros(0, np.uint16)}

    @property
    def bins(self) -> int:
        """Hour bins of the memory by hour (0: off)."""
        return self._bins

    @property
    def size(self) -> int:
        """Series held (`step` and `arrays` grow it to theirs)."""
        return self._n

    @property
    def capacity(self) -> int:
        """Series the arrays have room for."""
        return len(self._f["peak"])

    def state(self) -> dict[str, npt.NDArray[np.float64]]:
        """A copy of every per-series array, as float64 (for tests and inspection)."""
        return {k: v[: self._n].astype(np.float64) for k, v in self._flat().items()}

    def _flat(self) -> dict[str, npt.NDArray[np.generic]]:
        """Every array of one value a series, by name."""
        return {**self._f, **self._b, "ticks": self._ticks}

    def arrays(self, n: int) -> dict[str, npt.NDArray[np.generic]]:
        """Every array of state for `n` series (grown to that many; views, not copies): what
        `detect.persist` saves and `load` takes back."""
        self._grow(n)
        every: dict[str, npt.NDArray[np.generic]] = {
            **{f"f.{k}": v for k, v in self._f.items()},
            "ticks": self._ticks,
            **{f"b.{k}": v for k, v in self._b.items()},
            "hour_peak": self._hour_peak, "hour_day": self._hour_day,
            "hour_two": self._hour_two, "start_bin": self._start_bin,
            **{f"undo.{k}": v for k, v in self._undo.items()}}
        return {k: v[:n] for k, v in every.items()}

    def load(self, arrays: dict[str, npt.NDArray[np.generic]]) -> None:
        """Overwrite the state with `arrays` (names, dtypes and shapes as `arrays()` gives
        them, for as many series as they hold; `detect.persist` checks them first)."""
        n = len(arrays["f.peak"])
        mine = self.arrays(n)
        for name, value in arrays.items():
            mine[name][...] = value

    def nbytes_per_series(self) -> float:
        flat = sum(v.itemsize for v in self._flat().values())
        hourly = self._bins * (self._hour_peak.itemsize + self._hour_day.itemsize
                               + self._hour_two.itemsize)
        undo = sum(v.itemsize for v in self._undo.values())
        return float(flat + hourly + self._start_bin.itemsize + undo)

    def _grow(self, n: int) -> None:
        """Hold `n` series: room for an eighth more than that when the arrays must grow, as
        `core.Bank` grows, so that series added one at a time cost O(1) amortised."""
        if n <= self._n:
            return
        self._n = n
        more = n - self.capacity
        if more > 0:
            more = max(more, self.capacity // 8)
            self._f = {k: np.concatenate([v, np.zeros(more, np.float32)])
                       for k, v in self._f.items()}
            self._ticks = np.pad(self._ticks, (0, more))
            self._b = {k: np.concatenate([v, np.zeros(more, np.bool_)])
                       for k, v in self._b.items()}
            pad = ((0, more), (0, 0))
            self._hour_peak = np.pad(self._hour_peak, pad)
            self._hour_day = np.pad(self._hour_day, pad)
            self._hour_two = np.pad(self._hour_two, pad)
            self._start_bin = np.pad(self._start_bin, (0, more))
            self._undo = {k: np.pad(v, (0, more)) for k, v in self._undo.items()}

    def _clock(self, t: float) -> tuple[int, int]:
        """(hour bin, day number) of a time in seconds."""
        s = self.settings
        day, into = divmod(t, s.season_period_s)
        hour = min(int(into / s.season_period_s * self._bins), self._bins - 1)
        return hour, int(day) % 65535

    def _learn_hours(self, rows: npt.NDArray[np.int64], today: int, undo_ticks: int) -> None:
        """Fold the episodes of `rows` that ended (neither marked nor excused) into their
        start hour's memory; `unlearn` can take that back for `undo_ticks` ticks."""
        if rows.size == 0:
            return
        col = self._start_bin[rows].astype(np.int64)
        u = self._undo
        u["bin"][rows] = col
        u["peak"][rows] = self._hour_peak[rows, col]
        u["two"][rows] = self._hour_two[rows, col]
        u["day"][rows] = self._hour_day[rows, col]
        u["left"][rows] = undo_ticks
        old = self._hour_peak[rows, col].astype(np.float64) / _STEPS
        recent = self._recent(self._hour_day[rows, col], today)
        before = self._recent(self._hour_day[rows, col], today, before=True)
        peak = self._f["peak"][rows].astype(np.float64)
        # after a strongest seen on an earlier day, this episode's day is a second one for
        # every level up to the weaker of the two; a new hour (or a forgotten one) has none
        # (raised, like the strongest, only by a reported episode or one that came near the
        # strongest, not by one it covered itself: else it crept up with a growing job)
        two = np.clip(np.rint(np.minimum(peak, old) * _STEPS), 0, 255).astype(np.uint8)
        lifts = before & (self._b["told"][rows]
                          | (peak >= old - self.settings.report_one_day_band))
        self._hour_two[rows, col] = np.where(
            lifts, np.maximum(self._hour_two[rows, col], two),
            np.where(recent, self._hour_two[rows, col], np.uint8(0)))
        # an episode that was not reported (routine) refreshes its hour's memory but does not
        # raise it: else a nightly job growing a little each night would ratchet it up
        grows = self._b["told"][rows] | ~recent
        stored = np.clip(np.rint(
            np.where(grows, np.maximum(np.where(recent, old, 0.0), peak), old) * _STEPS),
            0, 255).astype(np.uint8)
        # an hour whose strongest was seen on an earlier day, and not raised now, stays seen
        # on an earlier day (stamped yesterday, which keeps it fresh as well): stamped today,
        # it covered nothing else today, and a nightly job with a smaller one before it in
        # the same hour was reported every night
        # (stamps are the day + 1, 0 for never: yesterday is `today`, and day 0's wraps to 65535)
        kept = before & (stored <= self._hour_peak[rows, col])
        self._hour_peak[rows, col] = stored
        self._hour_day[rows, col] = np.where(kept, np.uint16(today or 65535),
                                             np.uint16(today + 1))

    def _recent(self, day: npt.NDArray[np.uint16], today: int, before: bool = False
                ) -> npt.NDArray[np.bool_]:
        """Learned within the last `report_days` days (day numbers wrap at 65535); with
        `before`, on an earlier day than today."""
        age = np.mod(today + 1 - day.astype(np.int64), 65535)
        return (day > 0) & (age <= self.settings.report_days) & (age >= (1 if before else 0))

    def _routine_hour(self, rows: npt.NDArray[np.int64], today: int,
                      young: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        """Is the current episode of each of `rows` no stronger than what a recent learned
        episode that began in its start hour or an hour next to it, on an earlier day, covers?
        An hour covers up to its strongest an episode near that (`report_one_day_band`) or
        `young` (`report_hold_s`), and any other up to the strongest level it has seen on two
        days. (What happened an hour ago is the short memory's to judge: this one is about
        what comes back every day.)"""
        s = self.settings
        peak = self._f["peak"][rows].astype(np.float64)
        start = self._start_bin[rows].astype(np.int64)
        usual = np.full(rows.size, -np.inf)
        for shift in (-1, 0, 1):
            col = np.mod(start + shift, self._bins)
            known = self._recent(self._hour_day[rows, col], today, before=True)
            seen = self._hour_peak[rows, col].astype(np.float64) / _STEPS
            near = young | (peak >= seen - s.report_one_day_band)
            cover = np.where(near, seen, self._hour_two[rows, col].astype(np.float64) / _STEPS)
            usual = np.where(known, np.maximum(usual, cover), usual)
        return peak <= usual + s.usual_tolerance

    def end_episodes(self) -> None:
        """Forget the episodes open now, unlearned (`core.Bank.end_episodes`, after a gap in
        the data: nothing is known of how they went on)."""
        for flags in self._b.values():
            flags[:] = False
        self._f["peak"][:] = 0.0

    def pending(self) -> npt.NDArray[np.int64]:
        """The series whose last learned episode an incident can still unlearn."""
        return np.flatnonzero(self._undo["left"][: self._n] > 0)

    def unlearn(self, rows: list[int]) -> None:
        """Take back the last episode these series learned by hour (their service is under
        an incident soon after it ended: it was no routine), if it is still `pending`."""
        u = self._undo
        idx = np.asarray([r for r in rows if u["left"][r] > 0], dtype=np.int64)
        if idx.size == 0:
            return
        col = u["bin"][idx].astype(np.int64)
        self._hour_peak[idx, col] = u["peak"][idx]
        self._hour_two[idx, col] = u["two"][idx]
        self._hour_day[idx, col] = u["day"][idx]
        u["left"][idx] = 0

    def step(self, firing: B, strength: npt.NDArray[np.float64],
             ttl_s: npt.NDArray[np.float64], excused: B | None = None,
             t: float | None = None, dt: float = 1.0,
             age_s: npt.NDArray[np.float64] | None = None, valid: B | None = None,
             spacing: float | None = None) -> B:
        """One tick over all series (arrays of equal length, rows as in `core.Bank`): which
        firing episodes are news (reported). `strength` is `core.Step.strength`, `ttl_s` the
        seconds until a trend's limit (inf when none), `excused` the firing episodes that are
        part of something known (`context.excused`: never learned; also given for the
        episodes that ended at the previous tick, `was_firing`, as they are learned now), `t`
        the time in seconds (without it, the memory by hour of the day is neither used nor
        learned), `dt` the seconds since the last tick (for `report_unlearn_s`), `age_s` how
        long each firing episode has lasted (`core.Step.start`; without it, none is young for
        `report_hold_s`), `valid` which series have a value this tick (without it, all), and
        `spacing` the usual seconds between ticks (without it, `dt`): an episode's duration,
        for `report_lasting_s`, is its ticks with a value times that, so that neither missing
        values nor a late tick make a blip last."""
        s = self.settings
        size = len(firing)
        self._grow(size)
        if s.report_z <= 0:
            return firing.copy()
        # views of the live rows: every array below is written in place
        f = {k: v[:size] for k, v in self._f.items()}
        b = {k: v[:size] for k, v in self._b.items()}
        # an episode that ended is learned when nothing remarked on it: neither news by its
        # strength or its trend, nor reported for another reason (`mark`), nor excused; while
        # the memory is too small to judge, episodes are reported and still learned
        # (an episode that ended at the last tick is excused too when its service is under an
        # incident now: the one its report just opened)
        known = b["excused"] | (False if excused is None else excused)
        ended = b["was"] & ~firing & ~b["remarked"] & ~known
        # and by how long it lasted, what ended opening nothing (news by its strength or its
        # length alone included), as by hour: see `_lasting`
        learned = b["was"] & ~firing & ~b["marked"] & ~known
        per_tick = float(dt if spacing is None else spacing)
        held_s = self._ticks[:size].astype(np.float64) * per_tick
        hourly = self._bins > 0 and t is not None and np.isfinite(t)
        hour = today = 0
        if hourly:
            assert t is not None
            hour, today = self._clock(t)
            left = self._undo["left"][:size]
            np.subtract(left, 1, out=left, where=left > 0)
            # by hour, an episode that was news by its strength alone is learned too: what
            # comes back at the same hour every day, opening no incident, is the series' rhythm
            ticks = int(min(np.ceil(s.report_unlearn_s / max(dt, 1e-9)), 65535.0))
            self._learn_hours(np.flatnonzero(learned), today, ticks)
            self._start_bin[:size][firing & ~b["was"]] = hour
        n = f["n"] * np.float32(s.report_memory) + ended
        w = np.where(ended, 1.0 / np.maximum(n, 1e-12), 0.0)
        d = f["peak"] - f["m"]
        f["m"] += (w * d).astype(np.float32)
        f["v"][...] = np.where(ended, (1.0 - w) * (f["v"] + w * d * d), f["v"]).astype(
            np.float32)
        f["n"][...] = n.astype(np.float32)
        lasting = self._lasting(firing, learned, held_s, valid, dt, per_tick)
        # a strength that is not a finite number (nothing upstream should give one) is
        # reported and never learned: it must not silence or poison the series' memory
        odd = ~np.isfinite(strength)
        ly = np.log1p(np.where(odd, 0.0, np.clip(strength, 0.0, _STRONG)))
        f["peak"][...] = np.where(firing, np.maximum(np.where(b["was"], f["peak"], 0.0), ly),
                             0.0).astype(np.float32)
        judged = f["n"] >= s.report_min_episodes
        # while the memory is too small to judge, every episode is reported and learned (the
        # bootstrap), but not one that already stands above the memory it has, once that holds
        # an episode's weight: an outage reported then must not teach it that outages are
        # routine (below one episode's weight the memory is mostly forgotten and is learned
        # afresh: a series whose routine moved up is not news for ever)
        tall = f["peak"] >= self._threshold(size)
        if hourly:
            # what the series does at this hour every day is routine, however long ago the
            # short memory last saw it (by its height: by its length, `_lasting` remembers)
            rows = np.flatnonzero(firing & ~b["told"])
            usual = np.zeros(len(firing), dtype=np.bool_)
            young = (np.zeros(rows.size, np.bool_) if age_s is None
                     else np.asarray(age_s)[rows] < s.report_hold_s)
            usual[rows] = self._routine_hour(rows, today, young)
            tall &= ~usual
            judged = judged | usual
        strong = (f["n"] >= min(1.0, s.report_min_episodes)) & (tall | lasting)
        other = (ttl_s <= s.ttl_horizon_s) | odd
        # news by how long it lasted alone (`Detector` says so in its explanation)
        b["lasting"][...] = firing & ~tall & (b["lasting"] | (strong & ~b["remarked"]))
        b["remarked"][...] = firing & (b["remarked"] | strong | other)
        b["marked"][...] = firing & (b["marked"] | other)
        b["told"][...] = firing & (b["told"] | b["remarked"] | ~judged)
        b["excused"][...] = firing & (b["excused"] | (False if excused is None else excused))
        b["was"][...] = firing
        return b["told"].copy()

    def _lasting(self, firing: B, learned: B, held_s: npt.NDArray[np.float64],
                 valid: B | None, dt: float, per_tick: float) -> B:
        """Remember the longest routine episode (`learned`: those that ended opening
        nothing, lasting `held_s`), its memory halving every `report_lasting_half_life_s`;
        count each firing episode's ticks with a value; and say which firing episodes are
        news by how long they lasted (`Settings.report_lasting_s`): that long, and
        `report_lasting_factor` times longer than the longest routine episode remembered.
        A maximum, not a mean: a series whose routine episodes are now short, now an hour
        long (a batch job at no fixed hour), takes an hour as its routine until it fades.
        (An episode learned here is not taken back by `unlearn`.)"""
        s = self.settings
        size = len(firing)
        top = self._f["dmax"][:size]
        fade = dt * math.log(2.0) / s.report_lasting_half_life_s
        longest = np.where(learned, np.log(np.maximum(held_s, 1.0)), 0.0)
        top[...] = np.maximum(top - fade, longest).astype(np.float32)
        ticks = self._ticks[:size]
        counted = firing if valid is None else firing & valid
        ticks[...] = np.where(firing, np.where(self._b["was"][:size], ticks, 0)
                              + np.where(counted, 1, 0), 0).clip(0, 65535).astype(np.uint16)
        return firing & self._long_enough(ticks.astype(np.float64) * per_tick, top, per_tick)

    def _long_enough(self, seconds: npt.NDArray[np.float64], top: F32, per_tick: float
                     ) -> npt.NDArray[np.bool_]:
        """Did episodes of these `seconds` last long enough to be news by their length,
        against the longest routine episodes remembered (`top`, log seconds)? Never at a
        tick so coarse that `report_lasting_s` spans fewer than `LASTING_MIN_TICKS`."""
        s = self.settings
        if s.report_lasting_s <= 0 or per_tick * LASTING_MIN_TICKS > s.report_lasting_s:
            return np.zeros(len(seconds), dtype=np.bool_)
        return (seconds >= s.report_lasting_s) & (
            np.log(np.maximum(seconds, 1.0)) > top + math.log(s.report_lasting_factor))

    def lasting(self, row: int) -> float | None:
        """The longest routine episode remembered, in seconds, when `row`'s open episode is
        news by how long it lasted alone, else None."""
        if row >= self._n or not self._b["lasting"][row]:
            return None
        return float(np.exp(float(self._f["dmax"][row])))

    def was_firing(self, n: int) -> B:
        """Which of `n` series were firing at the previous tick (their episodes, if they have
        ended, are learned at this one)."""
        out = np.zeros(n, dtype=np.bool_)
        m = min(n, self.size)
        out[:m] = self._b["was"][:m]
        return out

    def mark(self, rows: list[int]) -> None:
        """These firing episodes were reported although no news by themselves (an SLO breach,
        another signal of their service): they stay reported until they end and are not
        learned as routine."""
        self._b["told"][rows] = True
        self._b["remarked"][rows] = True
        self._b["marked"][rows] = True

    def _threshold(self, size: int) -> npt.NDArray[np.float64]:
        s = self.settings
        sd = np.sqrt(np.maximum(self._f["v"][:size].astype(np.float64), s.report_min_var))
        return self._f["m"][:size] + s.report_z * sd
