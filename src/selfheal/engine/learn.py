"""A first start's learning: each series' rhythm from the days of history the metric source
keeps (Prometheus), before selfheal watches anything.

`Controller.warm_start` calls `learn_history` when the detectors have no saved state. History
comes a chunk of columns at a time (`ports.HistoryChunk`, read ahead in a thread:
`readahead`), with each service's limits as they were (`detect.limitsteps`); what would have
opened an incident then is not learned as routine.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import math
import time
from typing import TYPE_CHECKING

import numpy as np

from selfheal import detect, errors
from selfheal.detect import expiry as expiry_mod
from selfheal.detect import limitsteps
from selfheal.engine import readahead

if TYPE_CHECKING:
    from selfheal.engine import controller

HISTORY_MAX_TICKS = 100_800
"""At most this many ticks of history are read at a first start (a week at 6 s a tick, 28
hours at 1 s): ~2 minutes of learning for a small fleet."""

HISTORY_INCIDENT_S = 900.0
"""While learning history (`detect.history_s`), a service whose fused finding would have opened
an incident counts as under one for this long after: its episodes of that time are not learned
as its routine, as they would not be live."""


def learn_history(ctl: controller.Controller, end: float) -> int:
    """At a start with nothing saved, learn each series' rhythm from the days of history
    the metric source keeps (`detect.history_s` before `end`, at most `HISTORY_MAX_TICKS`
    of them, a tick apart: memories counted in ticks do not carry over from another
    spacing, so a `history_step_s` unlike the tick reads nothing), as
    `warm_start` replays, except that nothing handled what fired then: an episode whose
    service's finding would have opened an incident is not learned as routine
    (`HISTORY_INCIDENT_S`). A source that stops answering part way, or a `halt`, leaves
    what was learned until then. Returns the ticks learned."""
    tick = ctl.cfg.scrape.interval_s
    step = ctl.cfg.detect.history_step_s or tick
    span = min(ctl.cfg.detect.history_s, HISTORY_MAX_TICKS * step)
    if ctl.history is None or span <= 0:
        return 0
    if max(step, tick) > 1.25 * min(step, tick):
        # the level's, the noise's and the report gate's memories are counted in ticks:
        # learned a minute apart, they misjudge values a second apart (measured: more
        # reports than no history at all)
        ctl.emit("detect", f"history not read: its points would be {step:g} s apart and "
                 f"selfheal ticks every {tick:g} s (scrape.interval_s); leave "
                 "detect.history_step_s unset to read it at the tick")
        return 0
    clock = time.monotonic()
    changes = sorted(ctl.store.changes_between(end - span - 600, end), key=lambda c: c.t)
    troubled = ctl._troubled(end - span)
    ctl.emit("detect", f"learning each series' rhythm from the last {span / 86_400:g} "
             f"days of history, one point every {step:g} s")
    ticks, first = 0, end
    names: set[tuple[str, str]] = set()
    paged: dict[str, float] = {}
    lapse = math.inf  # when the next of them stops counting as under an incident
    limits = limitsteps.Replayer()  # each service's limits as they were then
    context = detect.Context(maintenance=ctl._maintenance,
                             settle_s=ctl.cfg.detect.settle_s, incidents=troubled)
    try:
        source = ctl.history
        for chunk in readahead.read_ahead(
                lambda on_skip: source.chunks(end - span, end, step, skip=expiry_mod.WHAT,
                                              on_skip=on_skip),
                lambda signal, why: ctl.emit(
                    "detect", f"history of {signal} left out: {why}"),
                stop=ctl._halting.is_set):
            # each column's detector row, found once a chunk; a series is added at its
            # first point, as `Detector.update` adds it
            rows = ctl.detector.rows(chunk.keys)
            limits.extend(chunk.limits)
            fed, halted = 0, False
            for i, t in enumerate(chunk.t.tolist()):
                known = bisect.bisect_right(changes, t, key=lambda c: c.t)
                if len(context.changes) != known:
                    context = dataclasses.replace(context, changes=tuple(changes[:known]))
                if ctl._halting.is_set():
                    halted = True
                    break
                here = chunk.present[i]
                if (rows < 0).any():
                    new = chunk.order(i, np.flatnonzero(here & (rows < 0)))
                    if new.size:
                        rows[new] = ctl.detector.add([chunk.keys[j] for j in new])
                size = ctl.detector.size
                x = np.full(size, np.nan)
                x[rows[here]] = chunk.values[i, here]
                limits.apply(ctl.detector, t, functools.partial(chunk.observed, i))
                found = ctl.detector.update_rows(t, x, context, explained=False)
                if ctl.detector.size < size:  # it dropped idle series: rows moved
                    rows = ctl.detector.rows(chunk.keys)
                # what would have opened an incident then is no routine, as live: its
                # service counts as under an incident for a while (its episodes are not
                # learned)
                for finding in ctl._fuse(found) if found else ():
                    if finding.open_incident:
                        paged[finding.service] = t + HISTORY_INCIDENT_S
                        lapse = t  # (a new one lapses later than any before)
                if t >= lapse:  # who is under one changes only now
                    under = troubled | {s for s, until in paged.items() if until > t}
                    lapse = min((u for u in paged.values() if u > t), default=math.inf)
                    if under != context.incidents:
                        context = dataclasses.replace(context, incidents=under)
                first = min(first, t)
                fed += 1
            ticks += fed
            names.update(chunk.keys[j] for j in np.flatnonzero(chunk.present[:fed].any(0)))
            if halted:
                break
        if ctl._halting.is_set():  # in a chunk, or while waiting for the next one
            ctl.emit("detect", f"history stopped after {ticks} ticks: selfheal is "
                     "stopping")
    except errors.DataUnavailable as exc:
        ctl.emit("detect", f"history stopped after {ticks} ticks: {exc}; the detectors "
                 "keep what they learned and watch from now")
    limits.forget(ctl.detector)  # the limits of now come with the first tick
    if ticks:
        ctl.emit("detect", f"learned {ticks} ticks of history ({len(names)} series, "
                 f"the first {(ctl.clock() - first) / 3600:.1f} h ago) in "
                 f"{time.monotonic() - clock:.1f} s")
    else:
        ctl.emit("detect", "no history to learn from: the first day's rhythm will be "
                 "learned as it comes")
    return ticks
