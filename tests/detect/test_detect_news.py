"""Which firing episodes `Detector` reports: the ones that are news for their series.

A bursty series fires on its routine bursts (a z-score of 6 is an hourly event there); once it
remembers a few of them, they are not reported, while a burst far beyond its usual ones is,
and so is a strong failure that keeps coming back. An episode that is no news on its own is
still reported when another signal of its service is, when it breaks the SLO, and before the
series has episodes enough to judge it. Episodes of a change's settle window or of an open
incident are never learned as routine.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from selfheal import detect, model
from selfheal.detect import news, persist

BURST_EVERY = 40


def _bursty(n: int, seed: int = 3) -> np.ndarray:
    """Noise around 100 with a routine burst (+25 for two ticks) every BURST_EVERY ticks."""
    rng = np.random.default_rng(seed)
    x = 100.0 + rng.normal(0.0, 1.0, n)
    for k in range(BURST_EVERY, n, BURST_EVERY):
        x[k : k + 2] += 25.0
    return x


def _reports(settings: detect.Settings, series: dict[tuple[str, str], np.ndarray]
             ) -> dict[tuple[str, str], list[int]]:
    """The ticks where each series' anomaly episodes are first reported."""
    det = detect.Detector(settings)
    n = len(next(iter(series.values())))
    seen: set[str] = set()
    out: dict[tuple[str, str], list[int]] = {key: [] for key in series}
    for i in range(n):
        for a in det.update(float(i), {key: float(x[i]) for key, x in series.items()}):
            if a.id not in seen:
                seen.add(a.id)
                out[(a.service, a.metric)].append(i)
    return out


def _bursts_reported(ticks: list[int], after: int) -> int:
    return sum(1 for k in range(after, 10_000, BURST_EVERY) if any(k <= t < k + 4 for t in ticks))


@pytest.mark.timeout(60)
def test_routine_bursts_stop_being_reported_and_an_unusual_one_is() -> None:
    n = 1200
    x = _bursty(n)
    big = 1000
    x[big : big + 2] += 400.0  # 16 times the routine burst
    key = ("api", "queue_depth")
    every = _reports(detect.Settings(report_z=0.0), {key: x})[key]
    news = _reports(detect.Settings(), {key: x})[key]
    late = 400  # the series has had nine bursts by then
    routine_every = _bursts_reported([t for t in every if t >= late and not big <= t < big + 4],
                                     late)
    routine_news = _bursts_reported([t for t in news if t >= late and not big <= t < big + 4],
                                    late)
    assert routine_every >= 15  # without the gate: (nearly) every routine burst is an alarm
    assert routine_news <= routine_every // 5
    assert any(big <= t < big + 4 for t in news)  # the unusual burst is reported
    # the first bursts, before there are episodes to judge them by, are reported all the same
    assert any(BURST_EVERY <= t < BURST_EVERY + 4 for t in news)


@pytest.mark.timeout(60)
def test_no_news_episode_is_reported_when_its_service_has_another_signal_reported() -> None:
    n = 900
    bursty = _bursty(n)
    rng = np.random.default_rng(5)
    steady = 50.0 + rng.normal(0.0, 0.5, n)
    # at one routine burst, the service's other, steady signal jumps too
    k = 800
    assert k % BURST_EVERY == 0
    steady[k:] += 30.0
    keys = (("api", "queue_depth"), ("api", "error_count"))
    alone = _reports(detect.Settings(), {keys[0]: bursty})[keys[0]]
    both = _reports(detect.Settings(), {keys[0]: bursty, keys[1]: steady})
    assert not any(k <= t < k + 4 for t in alone)  # a routine burst: no news on its own
    assert any(k <= t < k + 4 for t in both[keys[1]])
    assert any(k <= t < k + 4 for t in both[keys[0]])  # corroborated: reported with it
    # with the gate off, a held episode is still reported when corroborated
    off = _reports(detect.Settings(report_z=0.0, hold_s={"queue_depth": 100.0}),
                   {keys[0]: bursty, keys[1]: steady})
    assert any(k <= t < k + 4 for t in off[keys[0]])


@pytest.mark.timeout(60)
def test_a_routine_burst_that_breaks_the_slo_is_reported() -> None:
    n = 900
    x = _bursty(n)
    key = ("api", "queue_depth")
    quiet = _reports(detect.Settings(), {key: x})[key]
    slo = _reports(detect.Settings(slo={"queue_depth": 110.0}), {key: x})[key]
    late = list(range(400, n, BURST_EVERY))
    assert _bursts_reported([t for t in quiet if t >= 400], 400) <= len(late) // 5
    assert _bursts_reported([t for t in slo if t >= 400], 400) == len(late)


@pytest.mark.timeout(60)
def test_an_episode_reported_for_its_slo_stays_reported_until_it_ends() -> None:
    # a routine burst's first tick breaks the SLO, its second does not: the episode goes on
    # firing below the bound, and it must not drop out of the reports while it does
    rng = np.random.default_rng(3)
    x = 100.0 + rng.normal(0.0, 1.0, 900)
    for k in range(BURST_EVERY, 900, BURST_EVERY):
        x[k] += 25.0
        x[k + 1 : k + 5] += 12.0
    key = ("api", "queue_depth")
    det = detect.Detector(detect.Settings(slo={"queue_depth": 115.0}))
    seen: dict[int, set[str]] = {}
    for i in range(900):
        seen[i] = {a.id for a in det.update(float(i), {key: float(x[i])})}
    late = range(400, 900 - BURST_EVERY, BURST_EVERY)
    assert all(seen[k] for k in late)  # each burst breaks the SLO: reported
    # ... and its episode is still reported on the two ticks after, 12 deviations up
    assert all(seen[k] <= seen[k + 1] and seen[k] <= seen[k + 2] for k in late)


def _change(t: float) -> model.Change:
    return model.Change(id=f"d{t:.0f}", t=t, service="api", kind="deploy", who="ci",
                        what="deploy api", from_version="1", to_version="2")


@pytest.mark.timeout(60)
def test_a_hang_is_reported_although_every_deploy_briefly_looked_the_same() -> None:
    # every deploy restarts one of two replicas: `up` is 0.5 for 8 s inside the settle
    # window; then one replica hangs with no change near it: the same 0.5, and it is news
    settings = detect.Settings(directions={"up": -1}, min_scale={"up": 0.05})
    rng = np.random.default_rng(2)
    n, hang = 3000, 2700
    up = 1.0 - np.abs(rng.normal(0.0, 0.002, n))
    deploys = list(range(100, hang, 300))
    for k in deploys:
        up[k + 1 : k + 9] = 0.5
    up[hang:] = 0.5
    det = detect.Detector(settings)
    reported = []
    for i in range(n):
        changes = tuple(_change(float(k)) for k in deploys if k <= i)
        for a in det.update(float(i), {("api", "up"): float(up[i])},
                            detect.Context(changes=changes)):
            if not a.expected:
                reported.append(i)
    assert any(hang <= t < hang + 30 for t in reported)
    assert not any(t < hang for t in reported)  # the deploys' blips were expected


@pytest.mark.timeout(60)
def test_a_crash_loop_stays_news_while_its_incident_is_open() -> None:
    # a fresh series flaps to 100% errors again and again; once the first flap is reported,
    # its service has an open incident, and no flap of it teaches the series it is routine
    rng = np.random.default_rng(4)
    n, every = 900, 30
    x = 0.002 + np.abs(rng.normal(0.0, 0.001, n))
    flaps = list(range(100, n - every, every))
    for k in flaps:
        x[k : k + 5] = 1.0
    det = detect.Detector(detect.Settings())
    incidents: frozenset[str] = frozenset()
    reported = set()
    for i in range(n):
        found = det.update(float(i), {("api", "error_ratio"): float(x[i])},
                           detect.Context(incidents=incidents))
        if found:
            reported.add(i)
            incidents = frozenset({"api"})  # the engine opened an incident for it
    assert all(any(k <= t < k + 5 for t in reported) for k in flaps)


@pytest.mark.timeout(60)
def test_a_strong_failure_that_keeps_coming_back_stays_news() -> None:
    n = 1600
    x = _bursty(n)
    first = 800
    again = list(range(first, n - BURST_EVERY, BURST_EVERY))
    for k in again:  # from tick 800 on, every burst is a crash: 16 times the routine one
        x[k : k + 2] += 400.0
    key = ("api", "queue_depth")
    ticks = _reports(detect.Settings(), {key: x})[key]
    reported = sum(1 for k in again if any(k <= t < k + 4 for t in ticks))
    assert reported == len(again)


def test_a_routine_strength_is_news_when_its_trend_reaches_the_limit_within_the_horizon() -> None:
    settings = detect.Settings()
    gate = news.NewsBank(settings)
    never = np.array([np.inf])

    def episode(ttl_s: np.ndarray) -> bool:
        """One episode of strength 2 for three ticks, then a quiet tick: was it reported?"""
        told = False
        for _ in range(3):
            told |= bool(gate.step(np.array([True]), np.array([2.0]), ttl_s)[0])
        gate.step(np.array([False]), np.array([0.0]), never)
        return told

    first = [episode(never) for _ in range(10)]
    assert first[0] and not first[-1]  # reported while nothing to judge by, then routine
    assert episode(np.array([settings.ttl_horizon_s / 2]))  # the limit within the horizon
    assert not episode(never)


def test_a_strength_that_is_not_a_number_does_not_poison_the_memory() -> None:
    gate = news.NewsBank(detect.Settings())
    for odd in (np.nan, np.inf, -np.inf):
        _episode(gate, odd)  # learned while there is nothing to judge by
    for _ in range(10):
        _episode(gate, 2.0)
    assert all(np.all(np.isfinite(v)) for v in gate.state().values())
    assert not _episode(gate, 2.0)  # the routine is still routine
    assert _episode(gate, 200.0)  # and a far stronger episode still news


MIDNIGHT = 1_699_920_000.0  # 2023-11-14 00:00 UTC
MINUTE = 60.0


def _nightly(days: int, settings: detect.Settings, extra: tuple[int, int] | None = None,
             open_incident: bool = False, blips: bool = False, minutes: int = 5,
             opens_after: int = 0, growth: float = 1.0) -> dict[int, set[int]]:
    """A disk whose backup job spikes it at 03:05 for ~5 minutes every night, scraped once a
    minute; `extra` = (day, minute of the day) adds a 5-minute spike there. Returns day ->
    the hours at which the detector reported. With `open_incident`, each reported spike
    opens an incident (`opens_after` minutes later) that stays open until the next morning;
    with `blips`, a small routine blip every 20 minutes gives the short memory episodes to
    judge by (so the backup is news by its strength, not for want of a memory); `growth`
    multiplies the backup's spike each night."""
    rng = np.random.default_rng(11)
    det = detect.Detector(settings)
    reported: dict[int, set[int]] = {}
    incidents: frozenset[str] = frozenset()
    opening = -1
    for i in range(days * 1440):
        day, minute = divmod(i, 1440)
        x = 100.0 + rng.normal(0.0, 2.0)
        # the backup, a minute or two longer some nights
        if 185 <= minute < 185 + minutes + (day % 3 if minutes > 1 else 0):
            x += 60.0 * growth**day
        if extra is not None and day == extra[0] and extra[1] <= minute < extra[1] + 5:
            x += 60.0
        if blips and minute % 20 == 10:
            x += 20.0
        if minute == 6 * 60:
            incidents = frozenset()  # resolved in the morning
        ctx = detect.Context(incidents=incidents)
        if det.update(MIDNIGHT + i * MINUTE, {("db", "disk_io"): x}, ctx):
            reported.setdefault(day, set()).add(minute // 60)
            if open_incident and opening < i:
                opening = i + opens_after
        if i == opening:
            incidents = frozenset({"db"})
    return reported


@pytest.mark.timeout(120)
def test_a_nightly_job_is_routine_from_the_second_night() -> None:
    # the per-tick memory (a half-life of 693 ticks: ~11.5 hours at a 1-minute scrape) has
    # forgotten last night's spike by tonight: without the memory by hour, every night pages
    without = _nightly(6, detect.Settings(report_days=0))
    assert without == {day: {3} for day in range(6)}
    # with it, the first night is reported (nothing to judge by) and the others are routine
    assert _nightly(6, detect.Settings()) == {0: {3}}


@pytest.mark.timeout(120)
def test_a_nightly_job_that_is_news_by_its_strength_is_routine_from_the_second_night() -> None:
    # among routine blips the backup is news by its strength the first night; once it has
    # come back at that hour opening no incident, it is the series' rhythm
    # (the first blips, at midnight, are reported while there is nothing to judge them by)
    without = _nightly(5, detect.Settings(report_days=0), blips=True)
    assert without == {0: {0, 3}, **{d: {3} for d in range(1, 5)}}
    assert _nightly(5, detect.Settings(), blips=True) == {0: {0, 3}}


@pytest.mark.timeout(120)
def test_a_spike_at_another_hour_is_still_news() -> None:
    got = _nightly(6, detect.Settings(), extra=(4, 15 * 60))
    assert got == {0: {3}, 4: {15}}


@pytest.mark.timeout(120)
def test_a_nightly_failure_under_its_incident_is_never_learned_as_routine() -> None:
    # the same spike, but each night it opens an incident: excused episodes are not learned,
    # so it is reported every night however regular it is
    assert _nightly(6, detect.Settings(), open_incident=True) == {d: {3} for d in range(6)}
    # also when its incident opens as the episode ends (a one-minute spike, the incident two
    # minutes after its report: the episode is learned at the tick after it ended, and its
    # service is under the incident by then)
    assert _nightly(6, detect.Settings(), open_incident=True, minutes=1, opens_after=2) == {
        d: {3} for d in range(6)}


@pytest.mark.timeout(120)
def test_an_incident_that_opens_soon_after_the_episode_ended_unlearns_it() -> None:
    # the incident opens 10 or 20 minutes after the report (an alert rule slower than the
    # detector), when the 5-7 minute episode has ended and been learned by hour: within
    # `report_unlearn_s` (15 minutes) of its end that is taken back, so every night is news
    every_night = {d: {3} for d in range(6)}
    for after in (10, 20):
        assert _nightly(6, detect.Settings(), open_incident=True, opens_after=after) \
            == every_night
        # without the unlearning the first night taught the hour that it is routine
        assert _nightly(6, detect.Settings(report_unlearn_s=0), open_incident=True,
                        opens_after=after) == {0: {3}}
    # an incident 40 minutes later is about something else: the episode stays learned
    assert _nightly(6, detect.Settings(), open_incident=True, opens_after=40) == {0: {3}}


@pytest.mark.timeout(120)
def test_a_nightly_job_that_grows_every_night_is_reported_again_as_it_grows() -> None:
    # 10% more each night: each night is within the tolerance of the night before, but a
    # night that was routine does not raise the memory of its hour, so the job is reported
    # again once it has outgrown the last reported night by more than the tolerance (by the
    # fifth night it is 46% bigger). A memory that ratcheted up with every routine night
    # never reported it again.
    got = _nightly(6, detect.Settings(), growth=1.1)
    assert got == {0: {3}, 4: {3}}


@pytest.mark.timeout(60)
def test_within_a_day_the_memory_by_hour_changes_nothing() -> None:
    # a demo's hour: bursts, then crashes 16 times as strong; what a series did an hour ago
    # is the short memory's to judge, so the reports are those without the memory by hour
    x = _bursty(3000)
    x[2000:3000:BURST_EVERY] += 400.0
    key = ("api", "queue_depth")
    with_hours = _reports(detect.Settings(), {key: x})[key]
    assert with_hours == _reports(detect.Settings(report_days=0), {key: x})[key]
    assert any(t >= 2000 for t in with_hours)


@pytest.mark.timeout(60)
def test_the_room_held_for_series_to_come_changes_no_verdict_and_no_saved_byte() -> None:
    """The report gate grows its arrays an eighth at a time, as `core.Bank` does (series that
    come one at a time cost O(1) each): a gate with that room reports, learns and saves
    exactly what one sized to its series does, and saves only its series' rows."""
    settings = detect.Settings()
    rng = np.random.default_rng(11)
    grown = news.NewsBank(settings)
    roomy = False
    for tick in range(600):
        n = min(1 + tick // 3, 150)
        exact = news.NewsBank(settings)  # a copy with no room beyond its n series
        exact.load({k: v.copy() for k, v in grown.arrays(n).items()})
        assert exact.capacity == n
        firing = rng.random(n) < 0.3
        strength = rng.gamma(2.0, 2.0, n)
        ttl = np.where(rng.random(n) < 0.05, 10.0, np.inf)
        excused = rng.random(n) < 0.1
        t = 1_800_000_000.0 + 1_337.0 * tick  # every hour of the day, on many days
        for bank in (grown, exact):
            bank.unlearn([int(i) for i in bank.pending() if i % 7 == tick % 7])
        told = grown.step(firing, strength, ttl, excused, t=t, dt=60.0)
        assert np.array_equal(told, exact.step(firing, strength, ttl, excused, t=t, dt=60.0))
        marked = [int(i) for i in np.flatnonzero(firing & ~told) if i % 3 == 0]
        grown.mark(marked)
        exact.mark(marked)
        assert np.array_equal(grown.was_firing(n + 2), exact.was_firing(n + 2))
        roomy |= grown.capacity > grown.size
        mine, theirs = grown.arrays(n), exact.arrays(n)
        assert all(len(v) == n and np.array_equal(v, theirs[k]) for k, v in mine.items())
    assert roomy
    assert grown.state().keys() == exact.state().keys()
    assert all(len(v) == n for v in grown.state().values())


@pytest.mark.timeout(60)
def test_a_detector_whose_series_came_one_at_a_time_saves_only_their_rows() -> None:
    det = detect.Detector(detect.Settings())
    rng = np.random.default_rng(2)
    for tick in range(300):
        det.update(60.0 * tick, {(f"s{i}", "rss_bytes"): float(rng.normal(100, 5))
                                 for i in range(1 + tick // 10)})
    saved = det.save()
    assert detect.Detector.load(saved, detect.Settings()).save() == saved
    keys, _, arrays = persist.decode(saved, detect.Settings().season_period_s)
    assert len(keys) == 30 and all(len(v) == 30 for v in arrays.values())


@pytest.mark.timeout(60)
def test_update_rows_finds_what_update_does_and_unexplained_only_leaves_out_the_text() -> None:
    series = {("api", "queue_depth"): _bursty(600), ("api", "error_ratio"): _bursty(600, 4),
              ("db", "queue_depth"): _bursty(600, 5)}
    by_dict, by_rows = detect.Detector(detect.Settings()), detect.Detector(detect.Settings())
    told = 0
    for i in range(600):
        values = {key: float(x[i]) for key, x in series.items() if (i + len(key[1])) % 9}
        want = by_dict.update(float(i), values)
        rows = by_rows.add(values)
        x = np.full(by_rows.size, np.nan)
        x[rows] = list(values.values())
        got = by_rows.update_rows(float(i), x, explained=False)
        assert got == [dataclasses.replace(a, explanation="") for a in want]
        told += len(got)
    assert told and by_rows.save() == by_dict.save()


def _days(days: int, events: list[tuple[int | None, int, int, float, int]],
          settings: detect.Settings | None = None) -> dict[int, list[int]]:
    """N(100, 2) once a minute for `days` days, with each (day or None for every day, start
    minute, minutes, height, ramp minutes) of `events` added (rising linearly to its height
    over its ramp). Returns day -> minutes of the day at which an episode was reported."""
    rng = np.random.default_rng(11)
    det = detect.Detector(settings or detect.Settings())
    seen: set[str] = set()
    out: dict[int, list[int]] = {}
    for day in range(days):
        for minute in range(1440):
            x = 100.0 + rng.normal(0.0, 2.0) + sum(
                h * min(1.0, (minute - m0 + 1) / (ramp + 1))
                for d, m0, n, h, ramp in events
                if (d is None or d == day) and m0 <= minute < m0 + n)
            for a in det.update(MIDNIGHT + (day * 1440 + minute) * MINUTE, {("db", "disk_io"): x}):
                if a.id not in seen:
                    seen.add(a.id)
                    out.setdefault(day, []).append(minute)
    return out


@pytest.mark.timeout(120)
def test_two_nightly_jobs_in_the_same_hour_are_routine_from_the_third_night() -> None:
    # log rotation at 03:02, a backup at 03:20. The small one, routine, used to stamp the
    # hour's memory "learned today", and the backup that followed it was reported every night.
    # The rotation's second night is reported once more (at 2 minutes, `report_hold_s`): it
    # is far weaker than the hour's strongest, seen on one day only, and the hour has not yet
    # seen it on two days; from the third night both are routine
    jobs: list[tuple[int | None, int, int, float, int]] = [
        (None, 182, 3, 25.0, 0), (None, 200, 5, 1000.0, 0)]
    assert _days(5, jobs) == {0: [182, 200], 1: [182 + 2]}


@pytest.mark.timeout(120)
def test_a_one_off_hour_does_not_hide_the_next_days_anomaly_at_that_hour() -> None:
    # a broken exporter: an hour at 100x the level on day 1 at 14:00, reported, opening no
    # incident; on day 2 the series triples at 14:15 for half an hour
    events: list[tuple[int | None, int, int, float, int]] = [
        (1, 840, 60, 9900.0, 0), (2, 855, 30, 200.0, 0)]
    got = _days(3, events)
    assert got.get(1) == [840]
    # the tripling is reported once it has outlasted `report_hold_s` (2 minutes) far weaker
    # than the one-off: the one-off was seen on one day only
    assert got.get(2) and 855 + 2 <= got[2][0] <= 855 + 4, got
    # with a one-day strongest covering all below it (the memory before), it was routine
    old = _days(3, events, detect.Settings(report_one_day_band=float("inf")))
    assert 2 not in old and old.get(1) == [840]


@pytest.mark.timeout(120)
def test_a_nightly_job_that_ramps_up_is_routine_from_the_second_night() -> None:
    # a backup seen through rate(): it climbs to 500x the noise over 9 minutes. Its second
    # night, far weaker than the first night's peak while it climbs, is young, then near it
    job: list[tuple[int | None, int, int, float, int]] = [(None, 185, 14, 1000.0, 9)]
    assert _days(4, job) == {0: [185]}
    # judged as soon as it starts (no hold), it was reported on the second night as well
    assert _days(4, job, detect.Settings(report_hold_s=0.0)) == {0: [185], 1: [185]}


@pytest.mark.timeout(180)
def test_a_weekly_job_stays_routine_among_daily_small_ones() -> None:
    # a full backup on day 0 and day 7, an incremental one on every other day at that time,
    # 25 times weaker: the first incremental night is news once it outlasts the hold (far
    # weaker than a strongest seen once), the full backup's second week is routine (near it),
    # and nothing else is reported
    jobs: list[tuple[int | None, int, int, float, int]] = [
        (0, 185, 10, 1000.0, 0), (7, 185, 10, 1000.0, 0)]
    jobs += [(d, 185, 10, 40.0, 0) for d in range(1, 10) if d != 7]
    assert _days(10, jobs) == {0: [185], 1: [185 + 2]}
    # before, a strongest seen once covered everything below it
    assert _days(10, jobs, detect.Settings(report_one_day_band=float("inf"))) == {0: [185]}


@pytest.mark.timeout(120)
def test_an_incident_soon_after_a_second_night_takes_back_its_two_day_level() -> None:
    # a job on two nights: the second one's end teaches its hour a two-day level; an incident
    # of the service 5 minutes later unlearns that night, and the level goes back with it
    rng = np.random.default_rng(11)
    det = detect.Detector()
    hours: list[np.ndarray] = []
    for i in range(2 * 1440 + 200):
        day, minute = divmod(i, 1440)
        x = 100.0 + rng.normal(0.0, 2.0) + (500.0 if 185 <= minute < 190 else 0.0)
        incident = frozenset({"db"}) if day == 1 and minute >= 200 else frozenset()
        det.update(MIDNIGHT + i * MINUTE, {("db", "disk_io"): x},
                   detect.Context(incidents=incident))
        if day == 1 and minute in (199, 201):
            hours.append(det._news.arrays(1)["hour_two"][0].copy())
    assert hours[0][3] > 0  # learned at the end of the second night
    assert not hours[1].any()  # and taken back with it


def test_an_outage_reported_while_the_memory_is_young_is_not_learned_as_routine() -> None:
    gate = news.NewsBank(detect.Settings())
    _episode(gate, 2.0)
    _episode(gate, 2.0)  # two routine episodes, decayed to just under `report_min_episodes`
    assert _episode(gate, 200.0)  # reported: too little memory to judge by (the bootstrap)
    for _ in range(3):
        _episode(gate, 2.0)  # the routine, learned
    assert not _episode(gate, 2.0)  # and now judged
    assert _episode(gate, 200.0)  # the outage again: still news, not taught routine by the first


@pytest.mark.timeout(60)
def test_a_series_flat_at_zero_between_bursts_is_told_to_set_a_floor_and_is_judged_with_it(
        ) -> None:
    # a dead-letter queue: 0, and a burst of 20 every BURST_EVERY ticks. With no floor for
    # its metric its noise scale is 0 and its bursts cannot be ranked: the report says so and
    # names the setting (who is named when: test_detect_unranked.py); with that floor the
    # routine bursts are learned and one 20 times larger is reported
    n, big = 1600, 1400
    x = np.zeros(n)
    for k in range(BURST_EVERY, n, BURST_EVERY):
        x[k : k + 2] = 20.0
    x[big : big + 2] = 400.0
    key = ("api", "dead_letters")
    det = detect.Detector()
    first = next(a for i in range(n) for a in det.update(float(i), {key: float(x[i])}))
    assert "set detect.min_scale.dead_letters" in first.explanation
    told = _reports(detect.Settings(min_scale={"dead_letters": 1.0}), {key: x})[key]
    assert any(big <= t < big + 4 for t in told)
    assert _bursts_reported([t for t in told if not big <= t < big + 4],
                            big - 10 * BURST_EVERY) == 0


def _episode(gate: news.NewsBank, strength: float) -> bool:
    """One episode of three ticks at `strength` on a single series, then a quiet tick (no
    trend, no time): was it reported?"""
    never = np.array([np.inf])
    told = False
    for _ in range(3):
        told |= bool(gate.step(np.array([True]), np.array([strength]), never)[0])
    gate.step(np.array([False]), np.array([0.0]), never)
    return told
