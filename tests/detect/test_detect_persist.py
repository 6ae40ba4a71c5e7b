"""What a detector learned survives `save` and `load`: the loaded one goes on exactly as the one
that never stopped; a damaged state, or one that does not fit the config, is refused with the
reason and nothing of it is used; the config's per-series constants apply to restored series."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import zipfile

import numpy as np
import older
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfheal import config, detect, errors
from selfheal.detect import core, persist
from selfheal.detect import settings as settings_mod
from selfheal.engine import controller

pytestmark = pytest.mark.timeout(120)

T0 = 1.7e9
# the product's seasonal layout on a short period, so generated series reach every path (the
# profiles entering the baseline, the memory by hour of the day learning and judging)
SHORT_DAY = dataclasses.replace(
    detect.Settings(), season_period_s=60.0, warmup_ticks=3, report_min_episodes=1)
KEYS = [("api", "latency_p99"), ("api", "error_ratio"), ("db", "memory")]

def _anomalies(det: detect.Detector, t: float, row: dict[tuple[str, str], float]
               ) -> list[tuple[str, str, str, float, bool]]:
    return [(a.id, a.detector, a.explanation, a.score, a.expected)
            for a in det.update(t, row)]


def _bursty(seed: int, n: int, odd: list[tuple[int, float]]
            ) -> list[dict[tuple[str, str], float]]:
    """Noisy series with routine bursts (which the report gate learns, by hour too), and odd
    values (missing, huge, zero) at the rows `odd` names."""
    rng = np.random.default_rng(seed)
    x = 100.0 + rng.normal(0.0, 1.0, (n, len(KEYS)))
    for k in range(5, n, 9):
        x[k : k + 2, k % len(KEYS)] += 25.0
    for row, value in odd:
        x[row % n, row % len(KEYS)] = value
    return [{key: float(x[i, j]) for j, key in enumerate(KEYS)} for i in range(n)]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1000), n=st.integers(2, 400),
       odd=st.lists(st.tuples(st.integers(0, 399),
                              st.sampled_from([math.nan, math.inf, 0.0, 1e12, -1e12])),
                    max_size=6),
       cut=st.floats(min_value=0.0, max_value=1.0), step=st.sampled_from([1.0, 7.0]))
def test_a_loaded_detector_goes_on_exactly_as_the_one_that_never_stopped(
        seed: int, n: int, odd: list[tuple[int, float]], cut: float, step: float) -> None:
    rows = _bursty(seed, n, odd)
    at = max(1, int(cut * (n - 1)))
    kept = detect.Detector(SHORT_DAY)
    for i, row in enumerate(rows[:at]):
        kept.update(T0 + i * step, row)
    loaded = detect.Detector.load(kept.save(), SHORT_DAY)
    assert loaded.series == kept.series and loaded.last_t == kept.last_t
    for i, row in enumerate(rows[at:], start=at):
        assert _anomalies(loaded, T0 + i * step, row) == _anomalies(kept, T0 + i * step, row)
    assert loaded.save() == kept.save()


def _daily(days: int, seed: int = 0) -> np.ndarray:
    """A day of 24 one-minute 'hours' (SHORT_DAY), a swing of +-50 around 100, noise 2."""
    rng = np.random.default_rng(seed)
    i = np.arange(days * 60)
    return 100.0 + 50.0 * np.sin(2 * np.pi * i / 60.0) + rng.normal(0.0, 2.0, len(i))


def test_the_learned_rhythm_is_what_is_saved() -> None:
    # two detectors given the same state bytes report the same; a fresh one (the rhythm
    # lost) reports the daily swing as anomalies
    x = _daily(12)
    key = ("shop", "request_rate")
    learned = detect.Detector(SHORT_DAY)
    for i in range(10 * 60):
        learned.update(T0 + i, {key: float(x[i])})
    loaded = detect.Detector.load(learned.save(), SHORT_DAY)
    fresh = detect.Detector(SHORT_DAY)
    fresh.update(T0 + 10 * 60 - 1, {key: float(x[10 * 60 - 1])})
    fired = {"loaded": 0, "fresh": 0}
    for i in range(10 * 60, 12 * 60):
        fired["loaded"] += bool(loaded.update(T0 + i, {key: float(x[i])}))
        fired["fresh"] += bool(fresh.update(T0 + i, {key: float(x[i])}))
    assert fired["loaded"] == 0
    assert fired["fresh"] > 10


def _saved() -> bytes:
    det = detect.Detector()
    for i in range(50):
        det.update(T0 + 60 * i, {("api", "latency_p99"): 100.0 + (i % 5)})
    return det.save()


@pytest.mark.parametrize("damage", ["truncated", "flipped", "empty", "not_npz", "pickled"])
def test_a_damaged_state_is_refused_with_the_reason(damage: str) -> None:
    data = _saved()
    broken = {
        "truncated": data[: len(data) // 2],
        "flipped": data[:200] + bytes([data[200] ^ 0xFF]) + data[201:],
        "empty": b"",
        "not_npz": b"PK\x03\x04 this is no state",
        "pickled": _npz(header=np.array([{"format": 1}], dtype=object)),
    }[damage]
    with pytest.raises(errors.StateUnusable, match="saved detector state"):
        detect.Detector.load(broken)


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def test_a_state_of_another_format_or_seasonality_is_refused() -> None:
    data = _saved()
    for season in ("daily", "off"):
        with pytest.raises(errors.StateUnusable, match="season"):
            detect.Detector.load(data, detect.Settings(**settings_mod.season_overrides(season)))
    keys, (last_t, last_dt), arrays = persist.decode(data, detect.Settings().season_period_s)
    newer = _npz(header=np.frombuffer(
        b'{"format": 99, "last_t": 1, "season_period_s": 86400.0, "keys": []}', np.uint8))
    with pytest.raises(errors.StateUnusable, match="format 99"):
        detect.Detector.load(newer)
    # an array of the state missing: nothing is half-loaded
    arrays.pop("news.hour_peak")
    with pytest.raises(errors.StateUnusable, match=r"news\.hour_peak"):
        detect.Detector.load(persist.encode(keys, last_t, last_dt, 86400.0, arrays))
    twice = persist.encode([*keys, *keys], last_t, last_dt, 86400.0, {})
    with pytest.raises(errors.StateUnusable, match="twice"):
        detect.Detector.load(twice)


def test_the_configs_directions_and_limits_apply_to_restored_series() -> None:
    # learned while both ways were anomalous; restored under a config where only a rise of
    # this metric is bad: the drop is no longer reported
    both = detect.Settings(directions={"queue_depth": 0})
    up_only = detect.Settings(directions={"queue_depth": 1})
    key = ("api", "queue_depth")
    rng = np.random.default_rng(1)
    det = detect.Detector(both)
    for i in range(300):
        det.update(T0 + i, {key: float(100.0 + rng.normal(0.0, 1.0))})
    data = det.save()
    same = detect.Detector.load(data, both)
    changed = detect.Detector.load(data, up_only)
    drop = {key: 20.0}
    assert same.update(T0 + 300, drop)
    assert not changed.update(T0 + 300, drop)


def _hostile(det: detect.Detector, kind: str) -> bytes:
    """A saved state made to break a careless reader."""
    header = {"format": persist.FORMAT, "last_t": det.last_t, "last_dt": 60.0,
              "season_period_s": det.settings.season_period_s,
              "keys": [list(k) for k in det.series]}
    if kind == "deep json":
        return _npz(header=np.frombuffer(b"[" * 100_000, np.uint8))
    if kind == "huge shape":  # an .npy header declaring 4e12 rows, over 32 bytes of data
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.zeros(4))
        npy = buf.getvalue().replace(b"(4,)", b"(4000000000000,)")
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as zf:
            zf.writestr("header.npy", _npy(np.frombuffer(json.dumps(header).encode(), np.uint8)))
            zf.writestr("core.a.n.npy", npy)
        return out.getvalue()
    _, _, arrays = persist.decode(det.save(), det.settings.season_period_s)
    if kind == "hour out of range":  # 24 hour bins; an episode ending into bin 200
        arrays["news.start_bin"][:] = 200
        arrays["news.b.was"][:] = True
        return persist.encode(det.series, det.last_t, 60.0, det.settings.season_period_s,
                              arrays)
    if kind == "zip bomb":  # one series, and an array inflating to 200 MB of zeros
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as zf:
            zf.writestr("header.npy", _npy(np.frombuffer(json.dumps(header).encode(), np.uint8)))
            zf.writestr("core.a.n.npy", _npy(np.zeros(25_000_000)),
                        compress_type=zipfile.ZIP_DEFLATED)
        return out.getvalue()
    if kind == "deflated header":  # the header must say how many series before inflating
        buf = io.BytesIO()
        np.savez_compressed(buf, header=np.frombuffer(json.dumps(header).encode(), np.uint8),
                            **arrays)  # type: ignore[arg-type]
        return buf.getvalue()
    assert kind == "corrupt deflate"
    data = bytearray(persist.encode(det.series, det.last_t, 60.0, det.settings.season_period_s,
                                    arrays))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = max(zf.infolist(), key=lambda i: i.compress_size)
    data[info.header_offset + 30 + len(info.filename) + 20 + info.compress_size // 2] ^= 0xFF
    return bytes(data)


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr)
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["deep json", "huge shape", "hour out of range",
                                  "corrupt deflate", "zip bomb", "deflated header"])
def test_a_hostile_state_is_refused_before_it_can_hurt(kind: str) -> None:
    det = detect.Detector()
    for i in range(50):
        det.update(T0 + 60 * i, {("api", "latency_p99"): 100.0 + (i % 5)})
    with pytest.raises(errors.StateUnusable, match="saved detector state"):
        detect.Detector.load(_hostile(det, kind))


def _fed_odd_data(settings: detect.Settings) -> detect.Detector:
    """A detector under `settings` fed what a live one sees: missing values, NaN, inf, a
    series that comes late, one that stops, one never ticked, a leak past its limit, bursts
    (so episodes are open), an incident, and a gap."""
    rng = np.random.default_rng(3)
    det = detect.Detector(settings)
    t = T0
    for i in range(600):
        t += 3600.0 if i == 400 else 15.0
        row = {("api", "latency_p99"): float(0.2 + rng.normal(0.0, 0.01)) + (i % 97 < 3),
               ("api", "error_ratio"): math.nan if i % 7 == 0 else float(rng.random() / 100),
               ("db", "rss_bytes"): 2e8 + 1e6 * max(0, i - 300) if i % 11 else math.inf}
        if i >= 200:
            row[("web", "request_rate")] = float(50.0 + rng.normal(0.0, 1.0))
        if i < 250:
            row[("batch", "up")] = 1.0
        det.update(t, row, detect.Context(incidents=frozenset({"api"}) if i % 100 > 80
                                          else frozenset()))
    det.add([("idle", "latency_p99")])  # added, not yet ticked: no last value (NaN)
    return det


@pytest.mark.parametrize("product", [True, False])
def test_a_state_with_missing_and_odd_values_still_loads(product: bool) -> None:
    settings = controller.detector_settings(config.Detect()) if product else SHORT_DAY
    det = _fed_odd_data(settings)
    arrays = det._arrays()
    # the non-finite values a live detector does hold are all there
    assert np.isnan(arrays["core.a.start"]).any() and np.isnan(arrays["seen"]).any()
    assert np.isposinf(arrays["core.a.cut_age"]).any()
    assert np.isposinf(arrays["core.a.limit"]).any()
    data = det.save()
    assert detect.Detector.load(data, settings).save() == data


@pytest.mark.parametrize(("name", "value"), [
    ("core.a.mu", math.nan), ("core.a.dev", math.inf), ("core.a.s0", -math.inf),
    ("core.season", math.nan), ("core.week_p", math.inf), ("news.f.m", math.nan),
    ("core.a.start", math.inf), ("core.a.cut_age", math.nan), ("seen", math.inf)])
def test_a_state_with_a_value_no_detector_holds_is_refused_naming_it(
        name: str, value: float) -> None:
    det = _fed_odd_data(SHORT_DAY)
    keys, (last_t, last_dt), arrays = persist.decode(det.save(), SHORT_DAY.season_period_s)
    arrays[name].flat[-1] = value
    blob = persist.encode(keys, last_t, last_dt, SHORT_DAY.season_period_s, arrays)
    with pytest.raises(errors.StateUnusable, match=rf"damaged: its {name} holds"):
        detect.Detector.load(blob, SHORT_DAY)


@pytest.mark.timeout(300)
def test_every_single_bit_flip_is_refused_or_changes_nothing() -> None:
    # the zip's CRCs catch a change to any array; a flip in the zip's own fields or in the
    # .npy headers is refused as damage, never an exception of another kind
    det = detect.Detector()
    for i in range(50):
        det.update(T0 + 60 * i, {("api", "latency_p99"): 100.0 + (i % 5)})
    data = det.save()
    outcomes = {"refused": 0, "same": 0}
    for pos in range(len(data)):
        broken = bytearray(data)
        broken[pos] ^= 0x01 if pos % 2 else 0x80
        try:
            loaded = detect.Detector.load(bytes(broken))
        except errors.StateUnusable:
            outcomes["refused"] += 1
            continue
        assert loaded.save() == data, f"a flip at byte {pos} loaded another state"
        outcomes["same"] += 1
    assert outcomes["refused"] > len(data) // 2


def test_an_outage_after_a_gap_is_not_taken_for_the_routine_episode_open_before_it() -> None:
    # a nightly batch (+60 at 02:00-02:30) is the series' routine; selfheal stops at 02:05,
    # inside the batch, and starts again at 10:00 into an outage (+50): the open episode of
    # the batch ended with the gap, so the outage is a new episode, judged as such, and
    # reported at once, as by the detector that never stopped (and by the one that was not
    # saved but saw the same gap)
    rng = np.random.default_rng(1)
    day = 24 * 60
    n = 3 * day + 11 * 60
    minute = np.arange(n) % day
    x = 100.0 + rng.normal(0.0, 2.0, n)
    x[(minute >= 120) & (minute < 150)] += 60.0
    stop, start = 3 * day + 125, 3 * day + 600
    x[start:] += 50.0
    key = ("shop", "latency_ms")
    midnight = T0 - T0 % 86_400
    kept, never = detect.Detector(), detect.Detector()
    for i in range(start):
        if i <= stop:
            kept.update(midnight + 60 * i, {key: float(x[i])})
        never.update(midnight + 60 * i, {key: float(x[i])})
    restored = detect.Detector.load(kept.save())
    first: dict[str, int] = {}
    for i in range(start, n):
        t = midnight + 60 * i
        for name, det in (("kept", kept), ("restored", restored), ("never", never)):
            if det.update(t, {key: float(x[i])}):
                first.setdefault(name, i)
    assert first == {"kept": start, "restored": start, "never": start}


def test_an_early_tick_is_no_gap_and_an_episode_goes_on_across_it() -> None:
    # a minute's scrape, one tick half a second after another (a retried scrape): the next
    # minute is not ten times the usual spacing, so the outage stays one episode
    rng = np.random.default_rng(2)
    det = detect.Detector()
    key = ("api", "error_ratio")
    t = T0
    for _ in range(200):
        t += 60.0
        det.update(t, {key: float(abs(rng.normal(0.001, 0.0005)))})
    started = set()
    for k in range(12):
        t += 0.5 if k == 5 else 60.0
        started |= {a.started_at for a in det.update(t, {key: 0.5})}
    assert len(started) == 1


FORGET = dataclasses.replace(SHORT_DAY, forget_s=1800.0)


def _fleet(rng: np.random.Generator, i: int, keys: list[tuple[str, str]]
           ) -> dict[tuple[str, str], float]:
    burst = 25.0 if i % 37 < 2 else 0.0
    return {k: float(100.0 + burst * (j == i % len(keys)) + rng.normal(0.0, 1.0))
            for j, k in enumerate(keys)}


def test_a_series_idle_for_forget_s_is_dropped_and_the_rest_go_on_as_without_it() -> None:
    # "gone" reports for 2 hours and stops; an hour past `forget_s` of silence it is dropped,
    # and the detector then reports and saves exactly what one that never had it does
    rng = np.random.default_rng(3)
    stay = [("api", "latency_p99"), ("db", "memory")]
    gone = ("batch", "rows_per_s")
    rows = [_fleet(rng, i, stay) for i in range(6 * 60)]
    had = detect.Detector(FORGET)
    never = detect.Detector(FORGET)
    for i, row in enumerate(rows):
        t = T0 + 60.0 * i
        extra = {gone: 50.0 + (i % 3)} if i < 120 else {gone: math.nan} if i < 150 else {}
        got = _anomalies(had, t, {**row, **extra})
        want = _anomalies(never, t, row)
        if i >= 120 + 90:  # silent 1800 s, then at most an hour to the hourly check
            assert gone not in had.series
            assert got == want
    assert had.series == never.series == tuple(stay)
    assert had.save() == never.save()


def test_an_agent_restarted_every_half_hour_still_drops_an_idle_series() -> None:
    # saved and loaded every 30 minutes (a crash loop, a busy deploy day), with no gap: the
    # hourly look for idle series must not restart its hour at each load, or it never comes
    rng = np.random.default_rng(6)
    stay = [("api", "latency_p99")]
    gone = ("batch", "rows_per_s")
    det = detect.Detector(FORGET)
    for i in range(5 * 60):
        if i and i % 30 == 0:
            det = detect.Detector.load(det.save(), FORGET)
        extra = {gone: 50.0 + (i % 3)} if i < 60 else {}
        det.update(T0 + 60.0 * i, {**_fleet(rng, i, stay), **extra})
        if i == 89:
            assert gone in det.series
        if i == 90:  # silent 31 minutes, and the first tick after this load looks
            assert gone not in det.series
    assert det.series == tuple(stay)


def test_a_dropped_series_that_comes_back_starts_afresh_and_a_rare_one_is_kept() -> None:
    rng = np.random.default_rng(4)
    back, rare, steady = ("batch", "rows_per_s"), ("cron", "duration_s"), ("api", "rps")
    det = detect.Detector(FORGET)
    fresh = detect.Detector(FORGET)
    for i in range(5 * 60):
        row = {steady: float(100.0 + rng.normal())}
        if i < 60 or i >= 4 * 60:
            row[back] = float(10.0 + 40.0 * (i >= 4 * 60) + rng.normal())
        if i % 25 == 0:  # one value every 25 minutes: never idle for 30
            row[rare] = float(5.0 + rng.normal())
        det.update(T0 + 60.0 * i, row)
        if i >= 4 * 60:
            fresh.update(T0 + 60.0 * i, {back: row[back]})
        if i == 4 * 60 - 1:
            assert back not in det.series
            assert rare in det.series and steady in det.series
    # back again: learned only since its return, not its old level of 10
    mine, theirs = det._arrays(), fresh._arrays()  # the state itself is what is compared
    row, their_row = det.series.index(back), fresh.series.index(back)
    for name, arr in theirs.items():
        if name.startswith("growth."):  # kept only for limit-type series: none here
            assert arr.size == mine[name].size == 0, name
            continue
        np.testing.assert_array_equal(mine[name][row], arr[their_row], err_msg=name)


def test_forget_s_zero_keeps_every_series_and_the_state_survives_the_drop() -> None:
    keep_all = dataclasses.replace(FORGET, forget_s=0.0)
    det = detect.Detector(keep_all)
    for i in range(4 * 60):
        det.update(T0 + 60.0 * i, {("a", "m"): 1.0 + i % 2,
                                   **({("b", "m"): 2.0} if i < 10 else {})})
    assert det.series == (("a", "m"), ("b", "m"))
    # what a drop leaves is a state that saves and loads like any other
    dropped = det.forget(T0 + 60.0 * 100)
    assert dropped == [("b", "m")] and det.series == (("a", "m"),)
    assert detect.Detector.load(det.save(), keep_all).save() == det.save()


def test_a_state_saved_before_forget_s_is_read_with_its_last_tick_as_last_seen() -> None:
    det = detect.Detector(FORGET)
    for i in range(30):
        det.update(T0 + 60.0 * i, {("a", "m"): 1.0 + i % 2, ("b", "m"): 3.0 + i % 3})
    keys, (last_t, last_dt), arrays = persist.decode(det.save(), FORGET.season_period_s)
    arrays.pop("seen")
    old = json.loads(bytes(np.load(io.BytesIO(det.save()))["header"]))
    old["format"] = 1
    blob = persist.encode(keys, last_t, last_dt, FORGET.season_period_s, arrays)
    with zipfile.ZipFile(io.BytesIO(blob)) as zin:
        members = {n: zin.read(n) for n in zin.namelist()}
    members["header.npy"] = _npy(np.frombuffer(json.dumps(old).encode(), np.uint8))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    restored = detect.Detector.load(out.getvalue(), FORGET)
    assert restored.series == det.series
    assert restored.forget(last_t) == []
    assert restored.forget(last_t + 1.0) == [("a", "m"), ("b", "m")]


def test_the_room_held_for_new_series_stays_an_eighth_of_the_state(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # 1,000 series at the first tick take room for exactly 1,000; then one new series a tick
    # grows it by an eighth at a time (a few copies of the state, not one a tick), and the
    # room never exceeds an eighth
    det = detect.Detector(SHORT_DAY)
    first = {(f"svc-{i}", "rps"): 1.0 for i in range(1000)}
    det.update(T0, first)
    assert det._bank.capacity == 1000  # the arrays themselves are what is measured
    grown: list[int] = []
    real = core.Bank._grow

    def counted(bank: core.Bank, cap: int) -> None:
        grown.append(cap)
        real(bank, cap)

    monkeypatch.setattr(core.Bank, "_grow", counted)
    for i in range(300):
        det.update(T0 + 1.0 + i, {**first, (f"new-{i}", "rps"): 1.0})
        assert det._bank.size == 1001 + i
        assert det._bank.capacity <= det._bank.size * 9 // 8 + 1
    assert 1 <= len(grown) <= 3, grown  # 1000 -> 1125 -> 1265 -> 1423


def test_a_key_that_is_not_a_plain_string_keeps_its_one_row() -> None:
    det = detect.Detector(SHORT_DAY)
    for i in range(5):
        det.update(T0 + i, {(7, "up"): 1.0, ("api", "rps"): 2.0})  # type: ignore[dict-item]
    assert det.series == ((7, "up"), ("api", "rps"))


def _watched(det: detect.Detector, start: float, ticks: int,
             row: dict[tuple[str, str], float]) -> None:
    for i in range(ticks):
        det.update(start + 60.0 * i, row)


def test_time_nobody_watched_is_no_idleness_after_a_restart_or_a_gap() -> None:
    # 15 days down, then a first hour in which only `up` has come back (a scraper's first
    # snapshot has no rates yet): the other series are idle for an hour, not for 15 days,
    # and keep what they learned
    two_weeks = dataclasses.replace(SHORT_DAY, forget_s=14 * 86_400.0)
    keys = [("api", "up"), ("api", "latency_p99"), ("db", "memory")]
    det = detect.Detector(two_weeks)
    rng = np.random.default_rng(5)
    for i in range(200):
        det.update(T0 + 60.0 * i, {k: float(100.0 + rng.normal()) for k in keys})
    later = T0 + 60.0 * 200 + 15 * 86_400.0
    for restored in (detect.Detector.load(det.save(), two_weeks), det):
        learned = {k: v.copy() for k, v in restored._arrays().items()}
        _watched(restored, later, 150, {("api", "up"): 1.0})
        assert restored.series == tuple(keys)
        assert restored.take_dropped() == []
        row = restored.series.index(("db", "memory"))
        np.testing.assert_array_equal(restored._arrays()["core.season"][row],
                                      learned["core.season"][row])
    # watched silence still counts: 14 more days of `up` alone and they are dropped
    start = later + 60.0 * 150
    for i in range(14 * 288 + 24):
        det.update(start + 300.0 * i, {("api", "up"): 1.0})
    assert det.series == (("api", "up"),)
    assert det.take_dropped() == [("api", "latency_p99"), ("db", "memory")]
    assert det.take_dropped() == []


def test_a_state_saved_uncompressed_by_the_last_version_still_loads() -> None:
    # the last version wrote `np.savez` (nothing deflated); this one deflates the arrays
    det = detect.Detector()
    rng = np.random.default_rng(4)
    for i in range(200):
        det.update(T0 + 60 * i, {("api", "latency_p99"): float(100.0 + rng.normal(0.0, 1.0)),
                                 ("db", "error_ratio"): float(abs(rng.normal(0.0, 0.01)))})
    data = det.save()
    keys, (last_t, last_dt), arrays = persist.decode(data, det.settings.season_period_s)
    header = {"format": persist.FORMAT, "last_t": last_t, "last_dt": last_dt,
              "season_period_s": det.settings.season_period_s,
              "keys": [list(k) for k in keys]}
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False,
             header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)
    old = buf.getvalue()
    assert len(data) < len(old)
    assert detect.Detector.load(old).save() == data


def test_a_zip_bomb_is_refused_before_it_is_inflated() -> None:
    # refused on what its zip declares, not after 200 MB were allocated and found not to fit
    det = detect.Detector()
    for i in range(50):
        det.update(T0 + 60 * i, {("api", "latency_p99"): 100.0 + (i % 5)})
    with pytest.raises(errors.StateUnusable, match="bytes for each of its 1 series"):
        detect.Detector.load(_hostile(det, "zip bomb"))


def test_a_state_of_format_4_loads_with_an_hour_long_routine_and_nothing_else_changed() -> None:
    # format 4 had no memory of how long episodes last: a series is taken as one whose
    # longest routine episode lasted an hour (it fades as any), and every other array loads
    # as it was saved
    det = detect.Detector()
    for i in range(3 * 1440):
        det.update(T0 + 60.0 * i, {("db", "disk_io"): 100.0 + (i % 7)
                                   + (500.0 if i % 1440 in range(185, 230) else 0.0)})
    new = ("news.f.dmax", "news.ticks", "news.b.lasting")
    arrays, blob = older.as_format(det, 4, *new)
    got = persist.decode(detect.Detector.load(blob).save(), det.settings.season_period_s)[2]
    np.testing.assert_array_equal(got["news.f.dmax"], np.float32(persist.LONGEST_BEFORE))
    for name in ("news.ticks", "news.b.lasting"):
        assert not got[name].any(), name
    for name, value in arrays.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)
    # the state saved now has learned the job's length: its third night's, faded by a
    # week's half-life for the ~20 hours since it ended
    now = persist.decode(det.save(), det.settings.season_period_s)[2]
    job = math.log(45 * 60.0) - 20 / 24 / 7 * math.log(2.0)
    assert abs(now["news.f.dmax"][0] - job) < 0.25, now["news.f.dmax"][0]


def test_a_state_of_format_3_loads_with_each_hours_two_day_level_as_its_strongest() -> None:
    # format 3 had no `news.hour_two`: an hour's strongest covered all below it, as if seen on
    # two days, and it still does after the upgrade; nothing else of the state changes
    det = detect.Detector()
    for i in range(3 * 1440):
        det.update(T0 + 60.0 * i, {("db", "disk_io"): 100.0 + (i % 7)
                                   + (500.0 if i % 1440 in range(185, 190) else 0.0)})
    arrays, blob = older.as_format(det, 3, "news.hour_two", "news.undo.two")
    assert arrays["news.hour_peak"].any()
    got = persist.decode(detect.Detector.load(blob).save(), det.settings.season_period_s)[2]
    np.testing.assert_array_equal(got["news.hour_two"], arrays["news.hour_peak"])
    np.testing.assert_array_equal(got["news.undo.two"], arrays["news.undo.peak"])
    for name, value in arrays.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)
