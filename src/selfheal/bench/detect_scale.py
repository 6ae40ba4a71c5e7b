"""The detection scale benchmark: many series updated tick by tick on one core.

`selfheal bench detect-scale` calls `run`. The values are generated once (random walks with
noise and occasional spikes) and replayed, so the timing measures the detector, not the random
number generator. For the product (with its report gate) it also times saving the state and
loading it into a `Detector`, what a restart of `selfheal serve` pays (`detect.persist`).
Reports; never asserts.
"""

from __future__ import annotations

import dataclasses
import time
import tracemalloc

import numpy as np

from selfheal.detect import core, news, novelty, persist
from selfheal.detect import detector as detector_mod
from selfheal.detect import settings as settings_mod


@dataclasses.dataclass(frozen=True)
class ScaleResult:
    series: int
    ticks: int
    seconds: float
    updates_per_s: float
    bytes_per_series: float
    firing_fraction: float
    """Mean fraction of series firing per tick (sanity: the data is mostly normal)."""
    saved_bytes_per_series: float = 0.0
    """The saved state's size (`Detector.save`), per series; 0 when not measured."""
    save_s: float = 0.0
    """Seconds to save the state of every series (`Detector.save`'s encoding)."""
    load_s: float = 0.0
    """Seconds for `Detector.load` to take it back (check, register, copy)."""
    detector_bytes_per_series: float = 0.0
    """Memory a loaded `Detector` holds per series (tracemalloc): the arrays, the room for
    more, and the series' names with their index; 0 when not measured."""


SEEN_BYTES = 20.0
"""`Detector`'s own arrays: the time of each series' last value (`Settings.forget_s`), that
value, and how many ticks in a row it has had it (float32: `detector.STILL_TICKS`)."""


def run(
    series: int = 100_000,
    ticks: int = 100,
    settings: settings_mod.Settings | None = None,
    seed: int = 0,
    novel: novelty.NoveltySettings | None = None,
) -> ScaleResult:
    """Update `series` series for `ticks` timed ticks (after a warm-up) and time it.

    With `novel`, the range-novelty channel is stepped too (the NAB configuration); with a
    report gate (`Settings.report_z` > 0, the product), `Detector`'s news gate is: their time
    and state are counted with the core's.
    """
    cfg = settings or settings_mod.Settings()
    rng = np.random.default_rng(seed)
    block = 64
    level = rng.uniform(10.0, 1000.0, series)
    walk = np.cumsum(rng.normal(0.0, 0.01, (block, series)), axis=0) * level
    data = level + walk + rng.normal(0.0, 0.02, (block, series)) * level
    spikes = rng.random((block, series)) < 0.001
    data = np.where(spikes, data * 3.0, data)
    bank = core.Bank(cfg, capacity=series)
    bank.add_many(series, direction=0)
    nov = novelty.NoveltyBank(novel, capacity=series) if novel is not None else None
    if nov is not None:
        nov.add_many(series)
    gate = news.NewsBank(cfg) if cfg.report_z > 0 else None
    warm = max(cfg.warmup_ticks, 10)
    for i in range(warm):
        step = bank.step(float(i), data[i % block])
        if nov is not None:
            nov.step(data[i % block])
        if gate is not None:
            gate.step(step.firing, step.strength, step.ttl_ticks, t=float(i))
    firing = 0.0
    started = time.perf_counter()
    for i in range(ticks):
        step = bank.step(float(warm + i), data[(warm + i) % block])
        if nov is not None:
            nov.step(data[(warm + i) % block])
        if gate is not None:
            gate.step(step.firing, step.strength, step.ttl_ticks, t=float(warm + i))
        firing += float(step.firing.mean())
    seconds = time.perf_counter() - started
    saved = (0.0, 0.0, 0.0, 0.0)
    if gate is not None:
        saved = _save_and_load(cfg, bank, gate, float(warm + ticks))
    return ScaleResult(
        series=series,
        ticks=ticks,
        seconds=seconds,
        updates_per_s=series * ticks / seconds if seconds > 0 else float("inf"),
        bytes_per_series=bank.nbytes_per_series()
        + (nov.nbytes_per_series() if nov is not None else 0.0)
        + (gate.nbytes_per_series() + SEEN_BYTES if gate is not None else 0.0),
        firing_fraction=firing / max(ticks, 1),
        saved_bytes_per_series=saved[0],
        save_s=saved[1],
        load_s=saved[2],
        detector_bytes_per_series=saved[3],
    )


def _save_and_load(cfg: settings_mod.Settings, bank: core.Bank, gate: news.NewsBank,
                   t: float) -> tuple[float, float, float, float]:
    """(bytes per series, seconds to save, seconds to load, bytes per series the loaded
    `Detector` holds) of the banks' state, saved as `Detector.save` does and loaded by
    `Detector.load` under names of 10 metrics a service."""
    keys = [(f"svc-{i // 10}", f"metric_{i % 10}") for i in range(bank.size)]
    started = time.perf_counter()
    seen = np.full(bank.size, t)
    data = persist.encode(keys, t, 1.0, cfg.season_period_s, persist.arrays(bank, gate, seen))
    saved = time.perf_counter() - started
    started = time.perf_counter()
    detector_mod.Detector.load(data, cfg)
    loaded = time.perf_counter() - started
    del keys  # the loaded detector's names are its own (decoded from the state)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        det = detector_mod.Detector.load(data, cfg)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    n = max(len(det.series), 1)
    return len(data) / n, saved, loaded, held / n
