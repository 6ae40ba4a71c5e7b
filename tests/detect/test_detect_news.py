"""Which firing episodes `Detector` reports: the ones that are news for their series.

A bursty series fires on its routine bursts (a z-score of 6 is an hourly event there); once it
remembers a few of them, they are not reported, while a burst far beyond its usual ones is,
and so is a strong failure that keeps coming back. An episode that is no news on its own is
still reported when another signal of its service is, when it breaks the SLO, and before the
series has episodes enough to judge it.
"""

from __future__ import annotations

import numpy as np
import pytest

from selfheal import detect

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
    assert _bursts_reported([t for t in quiet if t >= 400], 400) < len(late)
    assert _bursts_reported([t for t in slo if t >= 400], 400) == len(late)


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
