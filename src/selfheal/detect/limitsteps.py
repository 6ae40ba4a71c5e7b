"""Each service's own limits as they were, replayed into a `Detector` as its ticks pass.

Live, the engine gives the detector each service's limit as it is now (`Detector.set_limits`,
read every few minutes). Over history (the days a first start learns from, or
`selfheal detect --prometheus`), the limit of each moment is the one that was in force then:
a leak the kernel stopped at last week's 1 GiB limit was heading for 1 GiB, though the limit
is 2 GiB today. `steps_of` turns a range query's answer into steps; `Replayer` applies each at
the first tick at or after its time, checked against that tick's values as the engine checks
them.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Callable, Iterable, Mapping, Sequence

from selfheal.detect import explain
from selfheal.detect.detector import Detector

Step = tuple[float, Mapping[str, float]]
Steps = Mapping[str, Sequence[Step]]
"""metric -> each service's own limit of it over time: (t, {service: limit}) in time order,
each in force from t until the next; a service missing from one goes back to the metric's
limit (`Settings.limits`)."""


def steps_of(found: Iterable[Iterable[tuple[str, float, float]]]) -> list[Step]:
    """The limits of one metric over time from a range query's answer, one (service, t, value)
    list a series: at each time, each service's smallest finite value (its replicas may
    differ; the first to reach its limit fails); a time no series has a value at keeps none.
    Consecutive equal sets are kept once."""
    at: dict[float, dict[str, float]] = {}
    for points in found:
        for svc, t, v in points:
            now = at.setdefault(t, {})
            if svc and math.isfinite(v):
                now[svc] = min(now.get(svc, math.inf), v)
    return merged([(t, at[t]) for t in sorted(at)])


def merged(steps: Iterable[Step]) -> list[Step]:
    """`steps` in time order with each set that repeats the one before it left out."""
    out: list[Step] = []
    for t, limits in steps:
        if not out or out[-1][1] != limits:
            out.append((t, limits))
    return out


def within(steps: Sequence[Step], start: float, end: float) -> list[Step]:
    """The steps (in time order) in force from `start` to `end`: the last at or before
    `start`, and those after it up to `end`."""
    k = max(bisect.bisect_right(steps, start, key=lambda step: step[0]) - 1, 0)
    return [step for step in steps[k:] if step[0] <= end]


class Replayer:
    """Applies limit steps to a detector as its ticks pass (`apply` once a tick, in order)."""

    def __init__(self, steps: Steps | None = None, source: str = "prometheus") -> None:
        self.steps: dict[str, list[Step]] = {}
        self._taken: dict[str, int] = {}
        self.source = source
        self.extend(steps or {})

    def extend(self, steps: Steps) -> None:
        """More steps (the next stretch of history), each after those already given."""
        for metric, more in steps.items():
            had = self.steps.get(metric, [])
            after = had[-1][0] if had else -math.inf  # stretches may overlap at their ends
            self.steps[metric] = merged([*had, *(s for s in more if s[0] >= after)])
            self._taken.setdefault(metric, 0)

    def apply(self, det: Detector, t: float,
              observed: Callable[[str], Mapping[str, float]]) -> list[str]:
        """Give `det` the limits in force at `t` that it does not have yet; `observed(metric)`
        is each service's value at `t` (a limit its value is already past is refused).
        What was done, when, one line a metric (`explain.limits`)."""
        notes = []
        for metric, todo in self.steps.items():
            k = bisect.bisect_right(todo, t, key=lambda step: step[0])
            if k <= self._taken[metric]:
                continue
            self._taken[metric] = k
            did = det.set_limits(metric, todo[k - 1][1], observed(metric))
            if did.changed or did.refused:
                notes.append(f"{dt.datetime.fromtimestamp(t, dt.UTC):%Y-%m-%d %H:%M} "
                             + explain.limits(metric, did.changed, did.refused, self.source))
        return notes

    def forget(self, det: Detector) -> None:
        """Give every metric replayed back its own limits (`Settings.limits`): history is over,
        and the limits of now come from the live source."""
        for metric in self.steps:
            det.set_limits(metric, {})
