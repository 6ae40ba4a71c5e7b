"""At a first start the detectors learn the days of history the metric source keeps.

History comes as chunks of columns (`ports.HistoryChunk`), read one chunk ahead in a thread
(`engine.readahead`) while the last is learned; what is learned is what the same points fed a
tick at a time would teach, and a halt (SIGTERM) ends the learning at once, even while a
query is in flight.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from selfheal import config, detect, errors, policy, ports
from selfheal.detect import limitsteps
from selfheal.engine import controller as controller_mod
from selfheal.engine import learn, readahead, serve
from selfheal.store import sql

pytestmark = pytest.mark.timeout(60)
NOW = 1_800_000_000.0
MIB = 1024.0 ** 2
GIB = 1024.0 ** 3


class _Fleet:
    """A metric source's history (`ports.History`), as one chunk of columns or one chunk a
    tick: the same points either way."""

    def __init__(self, chunk: ports.HistoryChunk, by_tick: bool) -> None:
        self.chunk = chunk
        self.by_tick = by_tick

    def chunks(self, start: float, end: float, step_s: float, skip: Any = (),
               on_skip: Any = None) -> Any:
        if not self.by_tick:
            yield self.chunk
            return
        for t, values in self.chunk.ticks():  # each tick's keys in the order the source met them
            yield ports.HistoryChunk(
                keys=tuple(values), t=np.array([t]), values=np.array([list(values.values())]),
                present=np.ones((1, len(values)), np.bool_))

    def history(self, start: float, end: float, step_s: float, skip: Any = (),
                on_skip: Any = None) -> Any:
        for chunk in self.chunks(start, end, step_s, skip, on_skip):
            yield from chunk.ticks()


def _tick_by_tick(chunk: ports.HistoryChunk, cfg: config.Detect, paging: bool = True,
                  limits: limitsteps.Steps | None = None) -> tuple[bytes, str]:
    """What history taught before it was held as columns (119768a's `_learn_history`): each
    tick as a dict to `Detector.update`, and who is under an incident (a service whose
    finding would have opened one, for `HISTORY_INCIDENT_S`) worked out again at every tick;
    with `paging=False`, nobody is; `limits` as they were, each given at its time. The
    detectors' saved state and the "learned" line."""
    det = detect.Detector(controller_mod.detector_settings(cfg))
    replayer = limitsteps.Replayer(limits)
    context = detect.Context(settle_s=cfg.settle_s)
    paged: dict[str, float] = {}
    names: set[tuple[str, str]] = set()
    ticks = 0
    for t, values in chunk.ticks():
        replayer.apply(det, t, lambda metric, now=values: {
            svc: v for (svc, m), v in now.items() if m == metric})
        found = det.update(t, values, context)
        for finding in detect.fuse(found, weights=controller_mod.FUSE_WEIGHTS, limit_of=det.limit):
            if finding.open_incident:
                paged[finding.service] = t + learn.HISTORY_INCIDENT_S
        under = frozenset(s for s, until in paged.items() if until > t and paging)
        if under != context.incidents:
            context = dataclasses.replace(context, incidents=under)
        names.update(values)
        ticks += 1
    replayer.forget(det)
    return det.save(), f"learned {ticks} ticks of history ({len(names)} series"


def test_history_learned_from_columns_is_learned_as_tick_by_tick(tmp_path: Path) -> None:
    """Points missing, points that are NaN, a series that appears late, one that goes quiet
    for longer than `forget_after_s` (dropped part way, so the rows move) and comes back,
    two series that the source met in another order at some ticks (`rank`), and episodes
    that would have opened incidents: learned from one chunk of columns, or from one chunk a
    tick, the detectors end exactly as fed a dict a tick by the loop before columns."""
    n, step = 2400, 60.0
    t = NOW - 2 * 86_400 + step * np.arange(n)
    rng = np.random.default_rng(5)
    keys = (("auth", "request_rate"), ("auth", "error_ratio"), ("cart", "request_rate"),
            ("cart", "error_ratio"), ("pay", "request_rate"))
    values = np.stack([50 + 20 * np.sin(2 * np.pi * t / 86_400) + rng.normal(0, 2, n),
                       np.abs(rng.normal(0.01, 0.002, n)), 30 + rng.normal(0, 1, n),
                       np.abs(rng.normal(0.02, 0.003, n)), 10 + rng.normal(0, 1, n)], axis=1)
    values[1500:1520, 0] += 60  # an episode
    values[1505:1515, 1] = 0.3  # auth's errors with it, and cart's later: incidents then
    values[2000:2030, 3] = 0.4
    values[1560:1570, 0] += 60  # episodes once the incidents are over: learned as routine
    values[2100:2110, 2] += 20
    present = np.ones(values.shape, np.bool_)
    present[rng.random(values.shape) < 0.03] = False  # points missing
    values[rng.random(values.shape) < 0.03] = math.nan  # points that are NaN (no requests)
    present[:700, 2:] = False  # cart and pay appear late, together
    present[1000:1300, 2:4] = False  # cart quiet for 5 hours, more than forget_after_s
    present[[700, 1300], 2:] = True
    values[~present] = math.nan
    rank = np.tile(np.arange(len(keys)), (n, 1))
    rank[700:, 3:] -= 10  # from then on the source met cart's errors and pay first
    chunk = ports.HistoryChunk(keys=keys, t=t, values=values, present=present, rank=rank)

    def learned(by_tick: bool) -> tuple[bytes, list[str]]:
        events: list[str] = []
        cfg = config.Config(workdir=tmp_path / str(by_tick),
                            platform=config.PlatformSettings(services={}),
                            detect=config.Detect(history_s=2 * 86_400, forget_after_s=7200),
                            scrape=config.Scrape(interval_s=step))
        cfg.workdir.mkdir()
        ctl = controller_mod.Controller(
            cfg, serve.ObservedPlatform({}), sql.SqlStore(cfg.database_url()),
            policy.Gate(policy.parse(serve.OBSERVE_POLICY, "test")), {}, lambda: NOW,
            lambda e: events.append(e.message.split(") in ")[0]), feeds=[],
            history=_Fleet(chunk, by_tick))
        ctl.warm_start()
        return ctl.detector.save(), events

    columns, ticks = learned(False), learned(True)
    assert columns[1] == ticks[1]
    assert columns[0] == ticks[0]
    detect_cfg = config.Detect(history_s=2 * 86_400, forget_after_s=7200)
    reference, line = _tick_by_tick(chunk, detect_cfg)
    assert line == f"learned {n} ticks of history (5 series"
    assert any(m.startswith(line) for m in columns[1]), columns[1]
    assert columns[0] == reference
    # (the incidents count: learned as if nobody had been paged, the state differs)
    assert _tick_by_tick(chunk, detect_cfg, paging=False)[0] != reference


class _Halves:
    """History in two chunks, each with the limits as they were over it (`limits(a, b)`)."""

    def __init__(self, chunk: ports.HistoryChunk,
                 limits: Callable[[float, float], limitsteps.Steps]) -> None:
        self.chunk, self.limits = chunk, limits

    def chunks(self, start: float, end: float, step_s: float, skip: Any = (),
               on_skip: Any = None) -> Any:
        c, half = self.chunk, self.chunk.t.size // 2
        for part in (slice(0, half), slice(half, None)):
            t = c.t[part]
            yield ports.HistoryChunk(keys=c.keys, t=t, values=c.values[part],
                                     present=c.present[part],
                                     limits=self.limits(float(t[0]), float(t[-1])))


def test_history_is_learned_with_each_services_limits_as_they_were(tmp_path: Path) -> None:
    """History that comes with each service's limits as they were (Prometheus's limit
    queries) is learned with them, each from its time on: auth's leak towards the 1 GiB
    limit it had then would have paged, and what it teaches differs from history read with
    the metric's limit alone. After history the metric's limit is back: the limits of now
    come with the first tick, which says them."""
    n, step = 2 * 1440, 60.0
    t = NOW - 2 * 86_400 + step * np.arange(n)
    rng = np.random.default_rng(6)
    hours = np.maximum(0.0, (t - t[0] - 86_400) / 3600)
    leak = np.where(hours < 7.5, 600 * MIB * (1 + 0.05 * hours), 600 * MIB)  # stopped at 1 GiB
    values = np.stack([leak + rng.normal(0, MIB, n), 300 * MIB + rng.normal(0, MIB, n)], 1)
    keys = (("auth", "rss_bytes"), ("cart", "rss_bytes"))
    chunk = ports.HistoryChunk(keys=keys, t=t, values=values,
                               present=np.ones(values.shape, np.bool_))
    raised = float(t[0] + 86_400 + 7.5 * 3600)

    def as_they_were(a: float, b: float) -> limitsteps.Steps:
        every = 300.0
        grid = np.arange(np.floor(a / every) * every, b + 1, every)
        return {"rss_bytes": limitsteps.steps_of(
            [[("auth", x, GIB if x < raised else 2 * GIB) for x in grid.tolist()],
             [("cart", x, 0.25) for x in grid.tolist()]])}  # cart's: the wrong unit

    cfg = config.Config(workdir=tmp_path, platform=config.PlatformSettings(services={}),
                        detect=config.Detect(history_s=2 * 86_400),
                        scrape=config.Scrape(interval_s=step))
    ctl = controller_mod.Controller(
        cfg, serve.ObservedPlatform({}), sql.SqlStore(cfg.database_url()),
        policy.Gate(policy.parse(serve.OBSERVE_POLICY, "test")), {}, lambda: NOW,
        lambda e: None, feeds=[], history=_Halves(chunk, as_they_were))
    ctl.warm_start()
    assert ctl.detector.limit(("auth", "rss_bytes")) == 512 * MIB
    with_limits, _ = _tick_by_tick(chunk, cfg.detect, limits=as_they_were(t[0], t[-1]))
    assert ctl.detector.save() == with_limits
    assert _tick_by_tick(chunk, cfg.detect)[0] != with_limits


def test_history_read_ahead_says_and_ends_as_read_in_line() -> None:
    """The next chunk is read in a thread while the last is learned: what the source said
    about a signal it left out comes before the chunk it came with, and the error that ended
    the reading where the reading ended."""
    def read(on_skip: Any) -> Any:
        yield "first"
        on_skip("p99_latency_s", "bad_data")
        yield "second"
        on_skip("rss_bytes", "timeout")
        raise errors.DataUnavailable("Prometheus went away")

    def told(chunks: Any) -> list[str]:
        out: list[str] = []
        try:
            for chunk in chunks(lambda signal, why: out.append(f"{signal}: {why}")):
                out.append(chunk)
        except errors.DataUnavailable as exc:
            out.append(str(exc))
        return out

    in_line = told(read)
    assert in_line == ["first", "p99_latency_s: bad_data", "second", "rss_bytes: timeout",
                       "Prometheus went away"]
    assert told(lambda on_skip: readahead.read_ahead(read, on_skip)) == in_line


def _new_readers(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "history-read-ahead"
            and t not in before]


def test_a_halt_lets_the_history_reader_go() -> None:
    def endless(on_skip: Any) -> Any:
        while True:
            yield "chunk"

    before = set(threading.enumerate())
    chunks = readahead.read_ahead(endless, lambda signal, why: None)
    assert next(chunks) == "chunk"
    readers = _new_readers(before)
    assert len(readers) == 1  # the reader this read_ahead started
    chunks.close()
    readers[0].join(timeout=30)
    assert not readers[0].is_alive()


class _Stalled:
    """A metric source's history whose first query never answers until `answer` is set (a
    Prometheus evaluating a fleet's week): `asked` is set once it is in flight."""

    def __init__(self) -> None:
        self.asked, self.answer = threading.Event(), threading.Event()

    def chunks(self, start: float, end: float, step_s: float, skip: Any = (),
               on_skip: Any = None) -> Any:
        self.asked.set()
        self.answer.wait()
        yield ports.HistoryChunk(keys=(("auth", "request_rate"),), t=np.array([start]),
                                 values=np.array([[1.0]]), present=np.ones((1, 1), np.bool_))

    def history(self, start: float, end: float, step_s: float, skip: Any = (),
                on_skip: Any = None) -> Any:
        for chunk in self.chunks(start, end, step_s, skip, on_skip):
            yield from chunk.ticks()


def test_a_halt_ends_a_first_start_while_its_history_query_is_in_flight(
        tmp_path: Path) -> None:
    # a SIGTERM during a first start: warm_start learns history in the serve's worker thread
    # and the controller's halt() comes from the event loop while the query is in flight
    events: list[str] = []
    source = _Stalled()
    cfg = config.Config(workdir=tmp_path, platform=config.PlatformSettings(services={}),
                        detect=config.Detect(history_s=86_400),
                        scrape=config.Scrape(interval_s=60.0))
    ctl = controller_mod.Controller(
        cfg, serve.ObservedPlatform({}), sql.SqlStore(cfg.database_url()),
        policy.Gate(policy.parse(serve.OBSERVE_POLICY, "test")), {}, lambda: NOW,
        lambda e: events.append(e.message), feeds=[], history=source)
    before = set(threading.enumerate())
    learner = threading.Thread(target=ctl.warm_start)
    learner.start()
    try:
        assert source.asked.wait(timeout=30)
        readers = _new_readers(before)  # the query is in flight in this one
        ctl.halt()
        learner.join(timeout=30)  # bounded for a loaded machine; it returns within ~0.2 s
        returned = not learner.is_alive()
    finally:
        source.answer.set()  # the query answers at last: the reader thread goes
    assert returned, "warm_start waited for the query in flight"
    assert "history stopped after 0 ticks: selfheal is stopping" in events, events
    assert ctl.detector.series == ()  # the answer that came after the halt is not learned
    assert len(readers) == 1
    readers[0].join(timeout=30)
    assert not readers[0].is_alive()


def test_a_halt_ends_the_wait_for_a_chunk_still_being_read() -> None:
    # the query for the next chunk is in flight (it can take a minute): a halt must not wait
    # for it, or a SIGTERM during a first start outlasts the grace period
    in_flight, halting = threading.Event(), threading.Event()

    def slow(on_skip: Any) -> Any:
        yield "first"
        in_flight.wait()  # the answer never comes while the test runs
        yield "second"

    got: list[str] = []
    learner = threading.Thread(target=lambda: got.extend(
        readahead.read_ahead(slow, lambda signal, why: None, stop=halting.is_set)))
    learner.start()
    halting.set()
    learner.join(timeout=30)
    alive = learner.is_alive()
    in_flight.set()  # let the reader go
    assert not alive
    assert got in (["first"], [])  # what was read before the halt, nothing after
