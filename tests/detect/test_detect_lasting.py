"""An episode that lasts far longer than its series' routine ones is news, however tall.

A level shift's strength is capped (the CUSUM at `cusum_cap`), so on a series whose routine is
one-tick spikes of 8-12 robust standard deviations (GC pauses, a cache refresh) a shift of
that height was never news by its strength, however long it held. The report gate now also
remembers the longest of the series' routine episodes (`Settings.report_lasting_s`): a shift
that has held 5 minutes, and four times longer than that, is reported. A long episode like
one the series had in the last days (a nightly job, a batch job at no fixed time) stays
routine. Ticks without a value do not count: a spike followed by a scrape gap does not last.
"""

from __future__ import annotations

import numpy as np
import pytest

from selfheal import detect

MIDNIGHT = 1_699_920_000.0  # 2023-11-14 00:00 UTC
MINUTE = 60.0
KEY = ("api", "latency_ms")


def _spiky(seed: int, days: int) -> np.ndarray:
    """N(100, 5) a minute, with a one-tick spike of 8-12 standard deviations every ~2 hours."""
    rng = np.random.default_rng(seed)
    n = days * 1440
    x = 100.0 + rng.normal(0.0, 5.0, n)
    spikes = np.arange(60, n, 120) + rng.integers(-10, 10, size=len(range(60, n, 120)))
    x[spikes] += 5.0 * rng.uniform(8.0, 12.0, size=len(spikes))
    return x


def _reports(x: np.ndarray, settings: detect.Settings) -> dict[int, str]:
    """Tick -> explanation of each anomaly episode's first report."""
    det = detect.Detector(settings)
    seen: set[str] = set()
    out: dict[int, str] = {}
    for i, v in enumerate(x.tolist()):
        for a in det.update(MIDNIGHT + i * MINUTE, {KEY: v}):
            if a.id not in seen:
                seen.add(a.id)
                out[i] = a.explanation
    return out


@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", [0, 1])
def test_a_lasting_shift_as_tall_as_the_routine_spikes_is_reported_once_it_outlasts_them(
        seed: int) -> None:
    x = _spiky(seed, 2)
    start = int(1.5 * 1440)  # noon of the second day, for two hours
    x[start : start + 120] += 5.0 * 8.0
    on = _reports(x, detect.Settings())
    off = _reports(x, detect.Settings(report_lasting_s=0.0))
    during = [i for i in on if start <= i < start + 120]
    # by its height alone it is routine: never reported
    assert not [i for i in off if start <= i < start + 120]
    # by how long it lasted it is news: once it has held 5 minutes (`report_lasting_s`) and
    # far longer than the spikes' episodes of a few minutes, within the first half hour
    assert len(during) == 1 and 5 <= during[0] - start <= 30, during
    text = on[during[0]]
    assert "far longer than its routine episodes" in text and "no taller" in text, text
    # the routine spikes page no more than before (the return to the old level, a shift
    # down from a baseline that had moved up, may be reported as well: it lasts too, as an
    # 8-sd shift's return on a series without spikes was already reported)
    outside = range(start, start + 240)
    assert {i: t for i, t in on.items() if i not in outside} == {
        i: t for i, t in off.items() if i not in outside}


@pytest.mark.timeout(120)
def test_a_nightly_job_that_lasts_is_news_on_its_first_night_only() -> None:
    # a one-tick blip of 12 standard deviations every 20 minutes, and a nightly job at 03:05
    # a little lower (10) that runs 45 minutes: its length is remembered (a week's half-life)
    rng = np.random.default_rng(5)
    days = 4
    x = 100.0 + rng.normal(0.0, 2.0, days * 1440)
    minute = np.arange(days * 1440) % 1440
    job = (minute >= 185) & (minute < 230)
    x[(minute % 20 == 10) & ~job] += 24.0
    x[job] += 20.0
    on = _reports(x, detect.Settings())
    off = _reports(x, detect.Settings(report_lasting_s=0.0))
    after_first_hour = sorted(i for i in on if i >= 60)
    # news by its length on the first night, once it has lasted 4 times the blips' episodes
    assert len(after_first_hour) == 1 and 185 + 5 <= after_first_hour[0] <= 185 + 30, (
        after_first_hour)
    assert "far longer than its routine episodes" in on[after_first_hour[0]]
    # by height alone it is never reported
    assert not [i for i in off if i >= 60]


def test_the_lasting_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="report_lasting_s"):
        detect.Settings(report_lasting_s=-1.0)
    with pytest.raises(ValueError, match="report_lasting_factor"):
        detect.Settings(report_lasting_factor=0.5)
    with pytest.raises(ValueError, match="report_lasting_half_life_s"):
        detect.Settings(report_lasting_half_life_s=0.0)


def _fed(x: np.ndarray, settings: detect.Settings, absent: bool) -> list[int]:
    """The ticks where anything is reported, a NaN value sent as NaN or left out."""
    det = detect.Detector(settings)
    out = []
    for i, v in enumerate(x.tolist()):
        if det.update(MIDNIGHT + i * MINUTE, {} if absent and np.isnan(v) else {KEY: v}):
            out.append(i)
    return out


@pytest.mark.timeout(120)
@pytest.mark.parametrize("absent", [False, True])
def test_a_spike_followed_by_a_scrape_gap_does_not_last(absent: bool) -> None:
    # a pod restarts right after a GC pause: its spike, then 20 minutes without a value (the
    # episode stays open through them), then values at the baseline again
    x = _spiky(2, 2)
    gaps = range(1700, 2501, 200)
    for start in gaps:
        x[start] += 5.0 * 10.0
        x[start + 1 : start + 21] = np.nan
    on = _fed(x, detect.Settings(), absent)
    assert on == _fed(x, detect.Settings(report_lasting_s=0.0), absent)
    # counting the gap's ticks, the first values after it were reported as lasting
    assert not [i for i in on if any(s + 21 <= i <= s + 30 for s in gaps)]


@pytest.mark.timeout(120)
def test_long_episodes_at_no_fixed_hour_are_news_once_then_routine_while_remembered() -> None:
    # among one-tick spikes, a batch job of ~40 minutes at a random hour every ~4 hours: the
    # first is news by its length, the next ones are like it (the longest remembered)
    rng = np.random.default_rng(8)
    x = _spiky(3, 3)
    starts = np.cumsum(rng.integers(200, 280, size=12)) + 1440
    starts = starts[starts < 3 * 1440 - 60]
    for s in starts:
        x[s : s + 40] += 5.0 * 8.0
    on = _reports(x, detect.Settings())
    off = _reports(x, detect.Settings(report_lasting_s=0.0))
    jobs_on = [s for s in starts if any(s <= i < s + 40 for i in on)]
    jobs_off = [s for s in starts if any(s <= i < s + 40 for i in off)]
    assert len(starts) >= 8
    assert jobs_off == []
    assert jobs_on and jobs_on[0] == starts[0] and len(jobs_on) <= 2, (jobs_on, list(starts))


@pytest.mark.timeout(180)
def test_a_long_episode_every_three_days_at_no_fixed_hour_is_news_the_first_time_only() -> None:
    # a compaction of ~35 minutes every 3 days at a random hour, as tall as the routine
    # spikes: the longest routine episode fades with the ~36 spikes and 3 days between two
    # runs, but not below a quarter of the run's length
    rng = np.random.default_rng(4)
    x = _spiky(5, 10)
    starts = [d * 1440 + int(rng.integers(60, 1300)) for d in (1, 4, 7)]
    for s in starts:
        x[s : s + 35] += 5.0 * 8.0
    on = _reports(x, detect.Settings())
    off = _reports(x, detect.Settings(report_lasting_s=0.0))
    runs_on = [s for s in starts if any(s <= i < s + 35 for i in on)]
    assert not [s for s in starts if any(s <= i < s + 35 for i in off)]
    assert runs_on == starts[:1], (runs_on, starts)
