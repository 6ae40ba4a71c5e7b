"""The one configuration object of the detection engine, with the product defaults.

`Settings` is built once (from the config file or the CLI) and passed down to `Detector` and
to the vectorised core; nothing here reads the environment. Windows are counted in ticks so the
same configuration works at 1 s (the demo) and at 5 min (NAB) per tick.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from typing import Any

MIB = 1024.0 * 1024.0

DEFAULT_DIRECTIONS: Mapping[str, int] = types.MappingProxyType(
    {
        "rss_bytes": +1,
        "p99_latency_s": +1,
        "error_ratio": +1,
        "gc_pause_s": +1,
        "request_rate": 0,
    }
)
"""metric -> +1 (only rises are bad), -1 (only falls are bad), 0 (both)."""

DEFAULT_LIMITS: Mapping[str, float] = types.MappingProxyType({"rss_bytes": 512.0 * MIB})
"""metric -> the hard limit a trend is forecast against (memory limit, disk size...)."""

DEFAULT_MIN_SCALE: Mapping[str, float] = types.MappingProxyType(
    {
        "rss_bytes": 1.0 * MIB,
        "p99_latency_s": 0.005,
        "error_ratio": 0.02,
        "gc_pause_s": 0.005,
        "request_rate": 1.0,
    }
)
"""metric -> the smallest deviation worth a z-score of one (noise floor of a flat series)."""

DEFAULT_REL_MIN_SCALE: Mapping[str, float] = types.MappingProxyType({"p99_latency_s": 0.5})
"""metric -> the smallest deviation worth a z-score of one, as a fraction of the level.

A p99 read from a histogram over a short window (10 s of ~100 requests) is the one or two
slowest requests, interpolated inside a bucket whose bounds are 1.5-2.5x apart: one slow
request moves it by half its level or more, and the move lasts as long as the window. Its noise
grows with its level, so its floor is relative (the absolute floor governs at low levels).
"""

DEFAULT_HOLD_S: Mapping[str, float] = types.MappingProxyType({"p99_latency_s": 30.0})
"""metric -> seconds an episode must last before it is reported on its own.

For the same reason as its relative floor: a p99 over a 10 s window (the default scrape) holds
one slow request for the whole window, and on a busy host a few such requests in a row keep it
up 3-10x its level for 10-17 s without anything being broken (measured on a real 10-minute demo
baseline), as high as a real regression. Alone, it must outlast three windows; an SLO breach,
or another signal of the same service firing with it, reports it at once.
"""


SEASONS = ("weekly", "daily", "off")
"""The seasonality a product detector can learn (`season_overrides`)."""


def season_overrides(season: str) -> dict[str, Any]:
    """The `Settings` fields for one of `SEASONS`: ``weekly`` (the default: a daily profile
    of the level, plus what the hour of the week adds), ``daily`` (the daily profile alone:
    530 bytes of core state a series instead of 866) or ``off`` (no profile: 290 bytes)."""
    if season == "weekly":
        return {}
    if season == "daily":
        return {"weekly_profile": False}
    if season == "off":
        return {"season_period_s": 0.0, "season_shrink": 0.0, "weekly_profile": False}
    raise ValueError(f"unknown seasonality {season!r}: one of {', '.join(SEASONS)}")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every knob of detection; the defaults are the product defaults (used by the demo)."""

    warmup_ticks: int = 10
    """Valid points a series needs before it may fire (the demo has ~20 ticks of baseline)."""
    directions: Mapping[str, int] = dataclasses.field(default_factory=lambda: DEFAULT_DIRECTIONS)
    limits: Mapping[str, float] = dataclasses.field(default_factory=lambda: DEFAULT_LIMITS)
    min_scale: Mapping[str, float] = dataclasses.field(default_factory=lambda: DEFAULT_MIN_SCALE)
    rel_min_scale: Mapping[str, float] = dataclasses.field(
        default_factory=lambda: DEFAULT_REL_MIN_SCALE
    )
    """metric -> noise floor as a fraction of the level (at least `rel_floor`)."""
    hold_s: Mapping[str, float] = dataclasses.field(default_factory=lambda: DEFAULT_HOLD_S)
    """metric -> how long an episode must last before `Detector` reports it (SLO breaches are
    reported at once)."""
    slo: Mapping[str, float] = dataclasses.field(default_factory=dict)
    """metric -> SLO bound (a ceiling for +1/0 metrics, a floor for -1 ones). An anomaly
    beyond it is never `expected`, even inside a settle or maintenance window."""
    default_direction: int = 0
    rel_floor: float = 0.01
    """Deviations smaller than this fraction of the level never count as anomalous."""

    # Robust baseline (level + mean absolute deviation, Huber-clipped updates).
    alpha_level: float = 0.02
    alpha_benign: float = 0.3
    alpha_long: float = 0.002
    long_floor: float = 0.0
    """The scale is at least this fraction of the long-memory mean absolute deviation."""
    huber_c: float = 3.0
    outlier_learn: float = 0.1
    """Fraction of the learning rate at which points beyond huber_c teach the scale."""
    quick_fall: float = 0.1
    """Once a short memory of the residual (`alpha_quick`) is below this fraction of the
    noise scale, the scale learns at `alpha_quick` too: after an hour at 100x its level (a
    broken exporter) a series' scale comes back within minutes, not hours (0 = off)."""
    alpha_quick: float = 0.2
    """Learning rate of that short memory of the residual (and of the scale's quick fall)."""
    cold_unclipped: bool = True
    """While the level is a plain mean of a series' first values (its first 1/alpha_level
    ticks), the level and the noise scale learn them unclipped. Off, the scale starts at the
    noise floor and the Huber clip keeps it there for hours: a new series of N(50, 5) was
    reported 71-74 times in its first 2 hours at 60 s (sd 20: 231-311 times over 6 hours)."""
    profile_rise_s: float = 5000.0
    """Seconds in which the scale that clips what the seasonal profiles learn may rise by a
    factor e (it falls with the noise scale at once): an hour at 100x the level inflates the
    noise scale, and must not teach the profiles of its hours (2 days into a series at 15 s,
    a tripling an hour at 1e4 left behind was unseen for 100 minutes, 10 with this). 0 = the
    noise scale's own clip (the NAB configuration: 78.35 standard with 0, 76.72 with 0.003
    a tick)."""
    z_spike: float = 6.0
    """z-score at which a single point scores 0.5 (fires)."""

    # Change points: two-sided CUSUM on the robust z-score.
    cusum_k: float = 1.5
    cusum_h: float = 10.0
    cusum_relax: float = 0.8
    """Per tick factor on a CUSUM while the value stays within the allowance (cusum_k)."""
    cusum_cap: float = 2.0
    """The CUSUM is capped at cusum_cap * cusum_h (bounded memory of a long episode)."""

    # Slow trends: exponentially weighted linear regression.
    trend_lambda: float = 0.95
    transient_gain: float = 0.0
    """Strength of the move right after a change point, per `material` unit (0 = off)."""
    trend_min_n: float = 5.0
    """Weighted points the regression needs (after a restart) before its slope counts."""
    trend_resid_floor: float = 0.05
    """Residual noise assumed at least this fraction of the noise scale."""
    trend_t: float = 8.0
    """t-statistic of the slope at which a trend may fire."""
    trend_horizon_ticks: int = 600
    """The horizon a trend's move is measured over, in ticks (when `trend_horizon_s` is
    None)."""
    trend_horizon_s: float | None = 600.0
    """The same horizon in seconds, whatever the tick: 600 ticks at the demo's 1 s tick. In
    ticks, it grew with the tick (10 hours at a 60 s tick), and there the slope of a daily
    swing, before the profile has earned its weight, moved the level by `trend_rel` over it:
    on a clean daily swing at a 60 s tick, 430 reported minutes in 36 days against 42 with
    600 s (docs/bench/product-season-read-notes.md)."""
    trend_rel: float = 0.25
    """A trend fires when it moves the series by this fraction of its level over the horizon."""
    ttl_horizon_s: float = 3600.0
    """A trend that reaches its limit sooner than this fires, however small it looks."""

    # Long-horizon growth of a limit-type signal with no usable limit (`growth`).
    growth_bucket_s: float = 3600.0
    """`growth`: the series of a metric in `limits` whose limit is unknown (or one it is
    already past) keep the mean of each bucket of this many seconds (0: no growth check)."""
    growth_buckets: int = 12
    """How many buckets each keeps: the longest rise judged at once (12 h)."""
    growth_min_buckets: int = 5
    """The fewest buckets a steady rise must span to be reported (5 h)."""
    growth_rel: float = 0.1
    """A steady rise is material once its last bucket is this fraction of its first one's
    level above it (0: no growth check)."""
    growth_t: float = 5.0
    """t-statistic of the buckets' slope (against their scatter about a line) it needs."""

    # Seasonality: a profile of the level by phase of a period in seconds (0 = off). The
    # product learns the day and the week (`SEASONS`), weighed by what they predict, from the
    # second day a series is watched.
    season_period_s: float = 86400.0
    season_bins: int = 24
    season_between_ticks: float = 25.0
    """Where a profile's bin holds at least this many ticks (an hour's bin at a tick of 144 s
    or less, so a 2-minute tick's jitter does not flip the read), the profiles are read
    linearly between the centres of their bins; below, as steps (each bin learns the mean of
    its phase either way). Read as steps, a profile jumps at each bin's start, and at a fine
    tick the level follows the value faster than a bin lasts, so the jump shows as a level
    shift: on a clean daily swing, 77 reported minutes over 24 days at a 15 s tick, all in the
    first 7 minutes of an hour, and 0 read between. At NAB's 5 minutes (12 ticks a bin) the
    steps cost nothing on a swing, and reading between lost 5 of the product's 34 windows
    (square daily waves): steps there. inf: always steps; 0: always between
    (docs/bench/product-season-read-notes.md)."""
    usual_tolerance: float = 0.3
    """Log-strength above the usual of the phase that still counts as usual (0.3: 35%)."""
    weekly: bool = False
    """Also remember the usual strength by phase of the week (7 periods)."""
    weekly_profile: bool = True
    """Also learn a profile of the level by phase of the week (7 periods): what the daily
    profile leaves at each hour of the week (Saturday nights, Monday mornings). It enters the
    baseline as far as it has predicted better than the daily profile alone, in units of the
    flat level's error, weighed by `season_shrink` (so it needs `season_shrink` > 0)."""
    season_warmup_periods: float = 1.0
    """The profiles enter the baseline once the series has been watched this many periods
    (and after a re-baseline, again), and earn their weight (`season_shrink`) only from
    predictions made after that (0: from the first value)."""
    alpha_season: float = 0.5
    """Per period: how much of a phase bin's profile one period (a day) renews."""
    season_shrink: float = 10.0
    """Weigh the seasonal offset by how much better than the flat level it has predicted:
    full weight at a 1/season_shrink relative gain (0 = always full weight)."""
    alpha_shrink: float = 0.005
    """Learning rate of the two prediction errors (flat and seasonal) behind season_shrink."""
    season_strength_decay: float = 0.95
    """Per period: decay of the usual (log) strength remembered for each phase bin."""

    # Surprise: strengths calibrated against the series' own history (log scale).
    alpha_surprise: float = 0.005
    surprise_min_n: int = 10
    surprise_min_var: float = 1e-4
    record_decay: float = 0.0
    """Scale the surprise by the (log) strength over the largest one in recent memory, which
    decays by this factor a tick (0 = off)."""
    record_power: float = 1.0
    """Exponent of that ratio (capped at 1)."""
    onset_decay: float = 0.9995
    """Per tick decay of the recent peak surprise an onset must beat."""

    # Firing with hysteresis, and re-baselining after a benign move.
    # Which firing episodes `Detector` reports: the ones that are news for their series.
    report_z: float = 3.0
    """A firing episode is reported once its peak (log) strength exceeds the mean of the
    series' past unremarked episodes' peaks by this many of their standard deviations: a
    z-score of 6 is news on a quiet series and an hourly event on a bursty one (0 reports
    every episode). Reported at once regardless: while the series has fewer than
    `report_min_episodes` past episodes in memory, when it breaks its SLO or reaches its limit,
    and when a trend reaches its limit within `ttl_horizon_s` (`news.NewsBank`)."""
    report_min_episodes: float = 2.0
    """Past episodes (decayed by `report_memory`) needed before their peaks judge a new one."""
    report_lasting_s: float = 300.0
    """A firing episode that has lasted this many seconds (its ticks with a value, times the
    usual spacing) is news, however tall, when it has also lasted `report_lasting_factor`
    times longer than the longest routine episode the series remembers. A level shift's
    strength is capped (`cusum_cap`), so on a series whose routine is one-tick spikes of
    8-12 robust standard deviations (GC pauses, a cache refresh) a shift of that height that
    held for two hours was never news by its height. A nightly job is news by its length on
    its first night and then routine (its length is remembered for days). The core's baseline
    takes in a shift within ~100-150 ticks, so this reports shifts at ticks of ~5-60 s: at 1 s
    the episode has ended before 300 s, and at a tick over a fifth of this it is off
    (`news.LASTING_MIN_TICKS`). 0: by height alone (before 2026-12-05)."""
    report_lasting_factor: float = 4.0
    """How many times longer than the longest routine episode remembered an episode must
    last to be news by its length (`report_lasting_s`)."""
    report_lasting_half_life_s: float = 7 * 86_400.0
    """The longest routine episode remembered (one that ended opening nothing: no incident,
    SLO breach or corroboration; reported by its height or length alone included) fades,
    halving in this many seconds, unless a longer one comes: a compaction of 35 minutes at
    no fixed hour every 3 days stays routine after its first (with a day, the bar was back
    at its own length two days later, and 11 of 12 repeats were reported). The cost: a
    series that had one long episode (a nightly job's first night, or a shift reported that
    opened no incident) takes an episode elsewhere as news only once it lasts four times
    that, faded."""
    report_days: float = 8.0
    """How many days the strongest episode that began in an hour of the day (neither marked
    nor excused: `news`) keeps that hour's episodes up to its strength routine on the days
    after (a nightly job; 8: a weekly one too); 0 turns the memory by hour off (it needs
    `season_period_s` > 0)."""
    report_one_day_band: float = 2.0
    """An hour's strongest episode (`report_days`) that has been seen on one day only covers,
    on a later day, an episode that comes within this much of it (log strength; 2.0: ~7.4
    times) or is still younger than `report_hold_s`, not one that stays far weaker: a one-off
    (an hour at 100x the level, reported, opening nothing) must not hide the next day's
    tripling at that hour, while a nightly job's second night is still routine. Below it,
    the hour covers the strongest level it has seen on two days. Strengths are compressed,
    most for a metric with a relative noise floor (p99 latency): there an hour at 10x the
    level peaks ~0.3 above a tripling (within the band: still routine), one at 100x ~2.4
    above; for a disk's I/O the 10x hour is 1.3-1.5 above. A band of 1.0 added two false
    alarms over NAB's 30 files (the day after an anomalous day, its echo in the daily
    profile; a Twitter burst), 2.0 none. inf: one day covers all below it (the memory before
    2026-12-04)."""
    report_hold_s: float = 120.0
    """How long an episode weaker than its hour's one-day strongest is still taken as that
    one coming back (a job that ramps up) before it is judged as on any other hour
    (`report_one_day_band`): what the one-off hid is reported this much late, no longer
    never, if it lasts longer than this (one that ends sooner is still routine there)."""
    report_unlearn_s: float = 900.0
    """An episode learned by hour (`report_days`) is unlearned when its service is under an
    incident within this many seconds after it ended (an alert whose rule fires later than
    the detector's episode, or an incident opened by hand): what opened an incident is no
    routine."""
    report_memory: float = 0.999
    """Per tick decay of the weight of past episodes' peaks (0.999: a half-life of 693 ticks)."""
    report_min_var: float = 0.01
    """Floor of the variance of past episodes' (log) peaks."""
    fire: float = 0.5
    clear: float = 0.3
    clear_ticks: int = 3
    rebaseline_ticks: int = 3
    forget_s: float = 14 * 86_400.0
    """`Detector`: a series with no value for this many seconds is dropped, with what it
    learned (checked hourly): a fleet whose services come and go would otherwise grow the
    detector and its saved state without end. 14 days: a weekly job's series stays. 0:
    never."""
    gap_ticks: float = 10.0
    """`Detector`: a tick more than this many usual tick spacings after the one before follows a gap
    in the data (selfheal was down): the episodes open before it end there, unlearned (what
    fires after the gap is judged as a new episode), and the gap counts as one tick."""

    def __post_init__(self) -> None:
        if self.weekly_profile and (self.season_period_s <= 0 or self.season_shrink <= 0):
            # it would learn 168 bins a series and never use them
            raise ValueError("weekly_profile needs the daily profile (season_period_s > 0) "
                             "and season_shrink > 0 to weigh it")
        if not 1.0 < self.gap_ticks < float("inf"):
            raise ValueError("gap_ticks must be a finite number of ticks above 1")
        if not 0.0 <= self.forget_s < float("inf"):
            raise ValueError("forget_s must be a finite number of seconds >= 0")
        if not 0.0 <= self.report_one_day_band <= float("inf"):  # NaN fails too
            raise ValueError("report_one_day_band must be a log strength >= 0, or inf")
        if not 0.0 <= self.report_lasting_s < float("inf"):
            raise ValueError("report_lasting_s must be a finite number of seconds >= 0")
        if not 1.0 <= self.report_lasting_factor < float("inf"):
            raise ValueError("report_lasting_factor must be a finite number >= 1")
        if not 0.0 < self.report_lasting_half_life_s < float("inf"):
            raise ValueError("report_lasting_half_life_s must be a finite number of seconds > 0")
        if not 0.0 <= self.report_hold_s < float("inf"):
            raise ValueError("report_hold_s must be a finite number of seconds >= 0")
        if not 0.0 <= self.report_unlearn_s < float("inf"):
            raise ValueError("report_unlearn_s must be a finite number of seconds >= 0")
        if not 0.0 <= self.report_days < 65535.0:
            raise ValueError("report_days must be a number of days from 0 to 65534")
        if not 0.0 <= self.season_between_ticks <= float("inf"):  # NaN fails too
            raise ValueError("season_between_ticks must be a number of ticks >= 0, or inf")
        if self.trend_horizon_s is not None and not 0.0 < self.trend_horizon_s < float("inf"):
            raise ValueError("trend_horizon_s must be a finite number of seconds > 0, or None")
        if not 0.0 <= self.season_warmup_periods < float("inf"):
            raise ValueError("season_warmup_periods must be a finite number >= 0")
        if not 0.0 <= self.growth_bucket_s < float("inf"):
            raise ValueError("growth_bucket_s must be a finite number of seconds >= 0")
        if not 3 <= self.growth_min_buckets <= self.growth_buckets <= 1000:
            raise ValueError("growth_min_buckets must be at least 3 and at most "
                             "growth_buckets (at most 1000)")
        if not 0.0 <= self.growth_rel < float("inf"):
            raise ValueError("growth_rel must be a finite fraction >= 0")
        if not 0.0 < self.growth_t < float("inf"):
            raise ValueError("growth_t must be a finite number > 0")
        if not 0.0 <= self.quick_fall < 1.0:
            raise ValueError("quick_fall must be a fraction of the noise scale from 0 to 1")
        if not 0.0 < self.alpha_quick <= 1.0:
            raise ValueError("alpha_quick must be a learning rate above 0, at most 1")
        if not 0.0 <= self.profile_rise_s < float("inf"):
            raise ValueError("profile_rise_s must be a finite number of seconds >= 0")

    def direction(self, metric: str) -> int:
        return int(self.directions.get(metric, self.default_direction))

    def limit(self, metric: str) -> float | None:
        value = self.limits.get(metric)
        return None if value is None else float(value)

    def floor(self, metric: str) -> float:
        return float(self.min_scale.get(metric, 0.0))

    def hold(self, metric: str) -> float:
        return float(self.hold_s.get(metric, 0.0))

    def rel(self, metric: str) -> float:
        return max(self.rel_floor, float(self.rel_min_scale.get(metric, 0.0)))
