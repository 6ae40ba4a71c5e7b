"""A series' own limit (`Detector.set_limits`): a service's memory limit, as where it runs
reports it, in place of the metric's one limit for every service.

The leak is the case the trend horizon in seconds made slow to find at a coarse tick: a 1 GiB
service, above the default 512 MiB limit, leaking 5% an hour at a 60 s tick. Without a limit
ahead of it the detector has no time-to-limit forecast, so nothing says it will run out.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping

import numpy as np

from selfheal import config, detect
from selfheal.detect import explain, fusion
from selfheal.engine import controller

MIB = 1024.0 * 1024.0
T0 = 1_800_000_000.0
TICK_S = 60.0
KEY = ("auth", "rss_bytes")


def _leak(own_limit: float | None, *, restart: bool = False, warning_s: float = 3600.0
          ) -> tuple[float | None, float, str]:
    """A day of a flat 1 GiB (noise 2 MiB), then 5%/h more for a day; the minutes from the
    leak's start to its first report (None: never), the value then, and its explanation.
    With `restart`, the detector is saved and loaded as the leak starts, and only then told
    the limit (limits are not saved: the source gives them again)."""
    settings = controller.detector_settings(config.Detect(limit_warning_s=warning_s))
    det = detect.Detector(settings)
    if own_limit is not None and not restart:
        det.set_limits("rss_bytes", {"auth": own_limit})
    rng = np.random.default_rng(1)
    for i in range(int(2 * 86_400 / TICK_S)):
        t = T0 + i * TICK_S
        if restart and t == T0 + 86_400:
            det = detect.Detector.load(det.save(), settings)
            assert det.limit(KEY) == settings.limit("rss_bytes")
            if own_limit is not None:
                det.set_limits("rss_bytes", {"auth": own_limit})
        leak_h = max(0.0, (t - T0 - 86_400) / 3600)
        value = 1024 * MIB * (1 + 0.05 * leak_h) + rng.normal(0, 2 * MIB)
        found = [a for a in det.update(t, {KEY: value}) if a.metric == "rss_bytes"]
        if found and leak_h > 0:
            return leak_h * 60, value, found[0].explanation
    return None, math.nan, ""


def test_a_leak_is_found_before_the_services_own_limit() -> None:
    # control: with only the metric's limit (512 MiB, behind this service) no time-to-limit
    # forecast finds it; the growth check does, hours in, and says there is no time to give
    minutes, _, text = _leak(None)
    assert minutes is not None and minutes >= 4 * 60
    assert "past the 512.0 MiB limit, which cannot be its own, so no time to OOM" in text
    minutes, value, text = _leak(2048 * MIB)
    assert minutes is not None
    assert value < 2048 * MIB, "reported before the service reached its limit"
    assert "to the 2048.0 MiB limit" in text


def test_the_warning_comes_as_long_before_the_limit_as_the_config_asks() -> None:
    hour, value_hour, _ = _leak(2048 * MIB)
    six, value_six, text = _leak(2048 * MIB, warning_s=6 * 3600.0)
    assert hour is not None and six is not None
    # 51 MiB an hour: six hours before the limit is ~300 MiB below it, one hour ~50 MiB
    assert 2048 * MIB - value_six > 4 * (2048 * MIB - value_hour)
    assert "h to the 2048.0 MiB limit" in text


def test_limits_apply_to_later_series_and_go_back_to_the_metrics() -> None:
    det = detect.Detector(controller.detector_settings(config.Detect()))
    default = det.settings.limit("rss_bytes")
    assert default is not None
    did = det.set_limits("rss_bytes", {"auth": 2048 * MIB, "cart": math.nan, "web": 0.0})
    assert did.changed == {"auth": (default, 2048 * MIB)}, "NaN and 0 (cAdvisor's none): none"
    det.update(T0, {KEY: 100 * MIB, ("cart", "rss_bytes"): 100 * MIB})
    assert det.limit(KEY) == 2048 * MIB
    assert det.limit(("cart", "rss_bytes")) == default
    assert det.limit(("auth", "p99_latency_s")) is None, "a limit is the metric's only"
    # the same limits again change nothing; a service left out goes back to the metric's
    assert det.set_limits("rss_bytes", {"auth": 2048 * MIB}).changed == {}
    assert det.set_limits("rss_bytes", {}).changed == {"auth": (2048 * MIB, default)}
    assert det.limit(KEY) == default


def test_an_existing_series_forecasts_against_its_limit_as_it_changes() -> None:
    """The forecast reads the limit of the series' row: set on a series that exists, and
    back to the metric's when the source stops giving it (a 300 MiB service rising 1%
    a minute: 512 MiB, the metric's, is 70 minutes away; its own 1 GiB, 4 hours)."""
    det = detect.Detector(controller.detector_settings(config.Detect()))
    det.set_limits("rss_bytes", {"auth": 1024 * MIB})
    rng = np.random.default_rng(3)
    texts = []
    for i in range(600):
        t = T0 + i * TICK_S
        if i == 300:
            det.set_limits("rss_bytes", {})  # the pod restarted without a limit
        rise = max(0, i - 240) * 0.01
        found = det.update(t, {KEY: 300 * MIB * (1 + rise) + rng.normal(0, MIB)})
        texts += [(i, a.explanation) for a in found if a.detector == "trend"]
    assert texts, "the rise is reported"
    assert all("1024.0 MiB" not in text for i, text in texts if i >= 300)
    assert any("to the 512.0 MiB limit" in text for i, text in texts if i >= 300), texts


def test_a_limit_its_service_is_already_past_is_not_used() -> None:
    """A limit query in the wrong unit (CPU cores for memory) or matching the wrong container
    would report every memory episode at once as 'at its limit'; such a limit is refused and
    named. A process is stopped at its memory limit: 2% past it is the most believed."""
    det = detect.Detector(controller.detector_settings(config.Detect()))
    default = det.settings.limit("rss_bytes")
    did = det.set_limits("rss_bytes", {"auth": 0.5, "cart": 512 * MIB, "web": 290 * MIB},
                         observed={"auth": 300 * MIB, "cart": 300 * MIB, "web": 300 * MIB})
    assert did.refused == {"auth": (0.5, 300 * MIB), "web": (290 * MIB, 300 * MIB)}
    assert did.changed == {}, "cart's equals the metric's limit; the others are refused"
    assert det.limit(KEY) == default
    assert det.set_limits("rss_bytes", {"auth": 295 * MIB},
                          observed={"auth": 300 * MIB}).refused == {}
    assert det.limit(KEY) == 295 * MIB
    text = explain.limits("rss_bytes", {}, did.refused, "prometheus")
    assert text == ("rss_bytes limits from prometheus: not used, as the value is already "
                    "past it (check the query's unit): auth's 0.5 (0.0 MiB), now 300.0 MiB, "
                    "web's 304087040 (290.0 MiB), now 300.0 MiB")


def _bumps(own: float | None) -> int:
    """Reported episodes over days 2-3 of a 1100 MiB service whose memory rises 60 MiB for
    five minutes every hour (a cache refill), at a 15 s tick, with its own limit `own`."""
    det = detect.Detector(controller.detector_settings(config.Detect()))
    if own is not None:
        det.set_limits("rss_bytes", {"auth": own})  # no value to check it against
    rng = np.random.default_rng(3)
    episodes = set()
    for i in range(3 * 5760):
        t = T0 + i * 15.0
        bump = 60 * MIB if t % 3600 < 300 else 0.0
        found = det.update(t, {KEY: 1100 * MIB + bump + rng.normal(0, 2 * MIB)})
        episodes |= {a.started_at for a in found if i >= 5760}
    return len(episodes)


def test_a_value_far_past_its_limit_is_not_at_it() -> None:
    """A 1100 MiB service under the metric's 512 MiB limit (not its own), or under a wrong
    own limit read with no value beside it: its routine hourly bumps are not reported as
    'at its limit' (before, each one was: 48 in two days)."""
    assert _bumps(None) == 0
    assert _bumps(0.5) == 0
    assert _bumps(2048 * MIB) == 0


def test_a_restored_series_takes_the_limit_given_after_the_restart() -> None:
    # without it only the growth check sees the leak, hours in, with no time to give
    minutes, _, text = _leak(None, restart=True)
    assert minutes is not None and minutes >= 4 * 60 and "no time to OOM" in text
    minutes, value, text = _leak(2048 * MIB, restart=True)
    assert minutes is not None and value < 2048 * MIB
    assert "to the 2048.0 MiB limit" in text


def _replica_leak(merge: Callable[[float, float], float]) -> tuple[float | None, float]:
    """Two replicas of auth at 1 GiB (2 GiB limit each) for a day; then one leaks 5%/h and is
    stopped at its limit. The service's `rss_bytes` is `merge` of the two, as the source
    builds it. The minutes from the leak's start to its first report (None: not before the
    leaking replica's stop) and the leaking replica's value then."""
    settings = controller.detector_settings(config.Detect())
    det = detect.Detector(settings)
    det.set_limits("rss_bytes", {"auth": 2048 * MIB})
    rng = np.random.default_rng(2)
    for i in range(int(2 * 86_400 / TICK_S)):
        t = T0 + i * TICK_S
        leak_h = max(0.0, (t - T0 - 86_400) / 3600)
        leaking = 1024 * MIB * (1 + 0.05 * leak_h) + rng.normal(0, 2 * MIB)
        if leaking >= 2048 * MIB:
            return None, leaking
        steady = 1024 * MIB + rng.normal(0, 2 * MIB)
        found = [a for a in det.update(t, {KEY: merge(leaking, steady)})
                 if a.metric == "rss_bytes"]
        if found and leak_h > 0:
            return leak_h * 60, leaking
    return None, math.nan


def test_one_replica_leaking_alone_is_forecast_at_its_own_slope() -> None:
    """The service's memory is its highest replica's (the default queries): one replica's leak
    is forecast against its limit at its own slope. Averaged with a steady replica it would
    climb at half the slope and be stopped before the forecast (the control)."""
    assert _replica_leak(lambda a, b: (a + b) / 2)[0] is None
    minutes, value = _replica_leak(max)
    assert minutes is not None and value < 2048 * MIB
    assert config.DEFAULT_PROMQL["rss_bytes"].startswith("max by (service)")


def _nightly_incidents(limited_alone: Mapping[str, float], limit_mib: float,
                       nights: int = 4) -> list[int]:
    """A nightly batch raises auth's memory from 400 MiB by 90 MiB for 45 minutes at 02:00,
    every night; the incidents its fused findings open, per night. A service under an
    incident for 15 minutes after a finding opens one (as history learning counts it): its
    episodes of that time are not learned as routine."""
    det = detect.Detector(controller.detector_settings(config.Detect()))
    det.set_limits("rss_bytes", {"auth": limit_mib * MIB})
    ctx = detect.Context()
    rng = np.random.default_rng(4)
    day0 = T0 - T0 % 86_400
    paged_until, opened = 0.0, [0] * nights
    for i in range(int(nights * 86_400 / TICK_S)):
        t = day0 + i * TICK_S
        into = t % 86_400 - 2 * 3600
        batch = 90 * MIB * min(1.0, into / 1800) if 0 <= into < 2700 else 0.0
        found = det.update(t, {KEY: 400 * MIB + batch + rng.normal(0, MIB)}, ctx)
        for f in detect.fuse(found, weights=controller.FUSE_WEIGHTS, limit_of=det.limit,
                             limited_alone=limited_alone) if found else ():
            if f.open_incident:
                opened[i * int(TICK_S) // 86_400] += t >= paged_until
                paged_until = t + 900.0
        under = frozenset({"auth"}) if t < paged_until else frozenset()
        if under != ctx.incidents:
            ctx = dataclasses.replace(ctx, incidents=under)
    return opened


def test_a_nightly_memory_batch_far_below_its_limit_pages_no_night() -> None:
    """Memory hurts only near its limit: a nightly batch 24% below a 2 GiB limit is
    reported the first night and opens no incident, so it is learned as routine. Counted
    at full weight on its own (the rule before), it opened an incident every night, and so
    was never learned. Near the 512 MiB default it still pages every night."""
    assert _nightly_incidents(fusion.LIMITED_ALONE, 2048) == [0, 0, 0, 0]
    assert _nightly_incidents({}, 2048) == [1, 1, 1, 1]
    assert _nightly_incidents(fusion.LIMITED_ALONE, 512) == [1, 1, 1, 1]
