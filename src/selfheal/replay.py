"""What the detector would have reported on your own history: `selfheal detect FILE` (or
`--prometheus URL`).

An SRE deciding whether to trust selfheal's pages wants to see them on the series they know,
offline, before it watches anything live. `read_samples` reads exported series (a long CSV:
`timestamp,service,metric,value`) and `from_history` the days a Prometheus keeps,
`read_changes` the deploys and config changes of the same
time (`timestamp,service,kind[,what,to_version]`), and `run` steps the product `Detector` over
them tick by tick, with the changes and the config's maintenance windows as context, and fuses
each tick's anomalies per service as the engine does before it opens an incident.

Every row is checked before anything runs: a file with a bad header, a timestamp that is not
Unix seconds or ISO 8601, a value that is not a number, or a series given twice at one time is
refused whole with `errors.DataUnavailable` naming the file and line. An empty or `NaN` value
is a missing sample (the detector is told so).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import functools
import itertools
import math
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path

from selfheal import errors, model, ports
from selfheal.detect import Context, Detector, Settings, explain, fusion, limitsteps

SAMPLE_COLUMNS = ("timestamp", "service", "metric", "value")
CHANGE_COLUMNS = ("timestamp", "service", "kind")
MAX_FIELD = 1024
"""A name or value longer than this is no exported metric (a hostile or broken file)."""


@dataclasses.dataclass(frozen=True)
class Samples:
    """Exported series, grouped by time: one tick per distinct timestamp, in order."""

    ticks: tuple[tuple[float, dict[tuple[str, str], float]], ...]
    series: tuple[tuple[str, str], ...]
    rows: int
    limits: limitsteps.Steps = dataclasses.field(default_factory=dict)
    """Each service's own limits as they were, when the source knows them (Prometheus)."""
    aligned_s: float = 0.0
    """The grid the timestamps were put on (`align`), 0 when they were kept as given."""
    merged: int = 0
    """Samples that fell on a grid point their series already had (the later one is kept)."""

    @property
    def spacing_s(self) -> float:
        """The median time between ticks (0 with a single tick)."""
        times = sorted(t for t, _ in self.ticks)
        gaps = sorted(b - a for a, b in itertools.pairwise(times))
        return gaps[len(gaps) // 2] if gaps else 0.0


COARSE_S = 60.0
"""Samples further apart than this are averaged over longer windows than the default noise
floors suit (`settings.DEFAULT_MIN_SCALE`: rates over ~10 s)."""


@dataclasses.dataclass(frozen=True)
class Episode:
    """One episode the detector reported on a series: as it was first reported, how long it
    was reported, and whether its service's fused finding (the engine's rule, `fusion.fuse`)
    would have opened an incident while it lasted."""

    first: model.Anomaly
    last_t: float
    peak_score: float
    reports: int
    """Ticks at which it was reported."""
    expected: bool
    """Expected at its last report (a change's settle window, a maintenance window)."""
    reason: str
    opens_incident: bool


@dataclasses.dataclass(frozen=True)
class Result:
    episodes: tuple[Episode, ...]
    """In the order they were first reported."""
    series: int
    ticks: int
    first_t: float
    last_t: float
    incidents: int
    """Times a service's finding would open an incident where it had none at the tick
    before: the pages."""
    notes: tuple[str, ...] = ()
    """What was done with the `limits` given (`explain.limits`), when: those taken, changed
    and refused; and each series whose moves no noise scale measured (`explain.unranked_note`,
    once a series)."""


RECENT_CHANGES_S = 600.0
"""Changes of the last this-many seconds are the context of a tick, as in the engine."""


def _stamp(text: str) -> float:
    """Seconds since the epoch of Unix seconds or ISO 8601 (UTC when no offset is given)."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        try:
            when = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text[:40]!r} is not a timestamp (Unix seconds or ISO 8601)") \
                from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        value = when.timestamp()
    if not math.isfinite(value) or not 0.0 <= value < 1e11:
        raise ValueError(f"{text[:40]!r} is not a timestamp (Unix seconds or ISO 8601)")
    return value


def _value(text: str) -> float:
    text = text.strip()
    if text == "" or text.lower() == "nan":
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]!r} is not a finite number")
    return value


def _rows(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, row) of a CSV whose header names `required` (in any order, more allowed)."""
    try:
        # utf-8-sig: a spreadsheet's export starts with a byte-order mark
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise errors.DataUnavailable(f"{path}: the file is empty")
            names = [h.strip().lower() for h in header]
            missing = [c for c in required if c not in names]
            if missing:
                raise errors.DataUnavailable(
                    f"{path}, line 1: the header must name {', '.join(required)} "
                    f"(missing {', '.join(missing)}; found {', '.join(names) or 'nothing'})")
            for row in reader:
                if not row or all(not cell.strip() for cell in row):
                    continue
                line = reader.line_num
                if len(row) != len(names):
                    raise errors.DataUnavailable(
                        f"{path}, line {line}: {len(row)} fields where the header has "
                        f"{len(names)}")
                if any(len(cell) > MAX_FIELD for cell in row):
                    raise errors.DataUnavailable(
                        f"{path}, line {line}: a field longer than {MAX_FIELD} characters")
                yield line, dict(zip(names, row, strict=True))
    except UnicodeDecodeError as exc:
        raise errors.DataUnavailable(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except csv.Error as exc:
        raise errors.DataUnavailable(f"{path}: not a CSV file ({exc})") from exc
    except OSError as exc:
        raise errors.DataUnavailable(f"{path}: cannot be read ({exc.strerror or exc})") from exc


def _at(path: Path, line: int, parse: Callable[[str], float], text: str) -> float:
    try:
        return parse(text)
    except ValueError as exc:
        raise errors.DataUnavailable(f"{path}, line {line}: {exc}") from None


def _checked(path: Path, line: int, row: dict[str, str], what: str) -> tuple[float, str, str]:
    """The row's time, service and `what` (the metric, the kind of change), all given."""
    t = _at(path, line, _stamp, row["timestamp"])
    service, name = row["service"].strip(), row[what].strip()
    if not service or not name:
        raise errors.DataUnavailable(
            f"{path}, line {line}: the service and the {what} must be named")
    return t, service, name


def read_samples(path: Path) -> Samples:
    """The series of a long CSV (`timestamp,service,metric,value`), every row checked."""
    at: dict[float, dict[tuple[str, str], float]] = {}
    first_line: dict[tuple[float, tuple[str, str]], int] = {}
    rows = 0
    for line, row in _rows(path, SAMPLE_COLUMNS):
        t, service, metric = _checked(path, line, row, "metric")
        value = _at(path, line, _value, row["value"])
        key = (service, metric)
        seen = first_line.setdefault((t, key), line)
        if seen != line:
            raise errors.DataUnavailable(
                f"{path}, line {line}: {service}/{metric} at {row['timestamp'].strip()} "
                f"was already given on line {seen}")
        at.setdefault(t, {})[key] = value
        rows += 1
    if not rows:
        raise errors.DataUnavailable(f"{path}: no samples (only a header)")
    series = sorted({k for tick in at.values() for k in tick})
    return align(Samples(ticks=tuple(sorted(at.items())), series=tuple(series), rows=rows))


def align(samples: Samples) -> Samples:
    """`samples` on one grid when their series were sampled at different moments.

    The detector takes one tick per distinct timestamp, and its ticks' spacing for every
    series' (a trend's slope per tick becomes a rate and a time to the limit with it): two
    exporters scraped 5 s apart every 10 s made 5 s ticks, at which each series was seen every
    other tick, so its trends read twice as steep as they are. When there are markedly more
    timestamps than the most samples of one series, each sample is put on the grid of the
    series' usual spacing (Unix-time multiples of it, as a Prometheus range query steps): on
    the point nearest to it less its series' own moment in the step (a circular mean, so a
    series scraped at :59.9 and :00.1 is one series at :00), so that jitter and a moment half
    a step off move no sample by a tick; of two samples of one series on one point, the later
    is kept (`merged`)."""
    times: dict[tuple[str, str], list[float]] = {}
    for t, values in samples.ticks:
        for key in values:
            times.setdefault(key, []).append(t)
    most = max(len(ts) for ts in times.values())
    if len(samples.ticks) <= 1.1 * most:
        return samples
    usual = sorted(gaps[len(gaps) // 2] for ts in times.values() if len(ts) > 1
                   for gaps in [sorted(b - a for a, b in itertools.pairwise(ts))])
    step = usual[len(usual) // 2] if usual else 0.0
    if step <= 0.0:
        return samples
    moment = {}
    for key, ts in times.items():
        turns = [2.0 * math.pi * math.fmod(t, step) / step for t in ts]
        mean = math.atan2(sum(map(math.sin, turns)), sum(map(math.cos, turns)))
        moment[key] = mean / (2.0 * math.pi) * step
    at: dict[float, dict[tuple[str, str], float]] = {}
    merged = 0
    for t, values in samples.ticks:
        for key, value in values.items():
            tick = at.setdefault(round((t - moment[key]) / step) * step, {})
            merged += key in tick
            tick[key] = value
    return dataclasses.replace(samples, ticks=tuple(sorted(at.items())), aligned_s=step,
                               merged=merged)


def from_history(source: ports.History, start: float, end: float, step_s: float,
                 skip: Collection[str] = (),
                 on_skip: Callable[[str, str], None] | None = None) -> Samples:
    """The series a metric source keeps (Prometheus), `step_s` apart from `start` to `end`:
    what `selfheal serve` would have watched, read as the history it learns at a first start
    (a signal the source refuses is left out, told to `on_skip`), with each service's own
    limits as they were when the source reads them (`HistoryChunk.limits`).
    `errors.DataUnavailable` when the source cannot answer or has nothing."""
    ticks: list[tuple[float, dict[tuple[str, str], float]]] = []
    limits = limitsteps.Replayer()
    for chunk in source.chunks(start, end, step_s, skip=skip, on_skip=on_skip):
        ticks.extend(chunk.ticks())
        limits.extend(chunk.limits)
    rows = sum(len(values) for _, values in ticks)
    if not rows:
        raise errors.DataUnavailable(
            f"no samples between {dt.datetime.fromtimestamp(start, dt.UTC):%Y-%m-%d %H:%M} "
            f"and {dt.datetime.fromtimestamp(end, dt.UTC):%Y-%m-%d %H:%M} UTC")
    series = sorted({k for _, values in ticks for k in values})
    return Samples(ticks=tuple(ticks), series=tuple(series), rows=rows, limits=limits.steps)


def read_changes(path: Path) -> tuple[model.Change, ...]:
    """The changes of a CSV (`timestamp,service,kind[,what,to_version]`), every row checked."""
    out = []
    for line, row in _rows(path, CHANGE_COLUMNS):
        t, service, kind = _checked(path, line, row, "kind")
        out.append(model.Change(
            id=model.ChangeId(f"replay-{line}"), t=t, service=service, kind=kind,
            who=row.get("who", "").strip(), what=row.get("what", "").strip(),
            to_version=row.get("to_version", "").strip()))
    return tuple(sorted(out, key=lambda c: c.t))


def _observed(values: Mapping[tuple[str, str], float], metric: str) -> dict[str, float]:
    """Each service's finite value of `metric` in one tick's `values`."""
    return {svc: v for (svc, m), v in values.items() if m == metric and math.isfinite(v)}


def run(
    samples: Samples,
    settings: Settings,
    changes: Sequence[model.Change] = (),
    maintenance: Sequence[tuple[float, float, str]] = (),
    settle_s: float = 15.0,
    progress: Callable[[int, int], None] | None = None,
    limits: limitsteps.Steps | None = None,
) -> Result:
    """Step a fresh product `Detector` over `samples`, tick by tick, with the changes of the
    last `RECENT_CHANGES_S` as context, and fuse each tick's anomalies per service. `limits`:
    each service's own limits as they were (`limitsteps.Replayer`; by default the ones the
    samples came with)."""
    det = Detector(settings)
    notes = []
    replayer = limitsteps.Replayer(samples.limits if limits is None else limits)
    episodes: dict[str, Episode] = {}
    open_before: set[str] = set()
    incidents = 0
    lo = hi = 0
    total = len(samples.ticks)
    for n, (t, values) in enumerate(samples.ticks, start=1):
        while hi < len(changes) and changes[hi].t <= t:
            hi += 1
        while lo < hi and changes[lo].t < t - RECENT_CHANGES_S:
            lo += 1
        ctx = Context(changes=tuple(changes[lo:hi]), maintenance=tuple(maintenance),
                      settle_s=settle_s)
        notes += replayer.apply(det, t, functools.partial(_observed, values))
        found = det.update(t, values, ctx)
        notes += [explain.unranked_note(svc, metric) for svc, metric in det.take_unranked()]
        findings = {f.service: f for f in fusion.fuse(found, limit_of=det.limit)}
        opening = {s for s, f in findings.items() if f.open_incident}
        incidents += len(opening - open_before)
        open_before = opening
        for a in found:
            was = episodes.get(a.id)
            opens = findings[a.service].open_incident
            episodes[a.id] = Episode(
                first=a, last_t=t, peak_score=a.score, reports=1, expected=a.expected,
                reason=a.expected_reason, opens_incident=opens,
            ) if was is None else dataclasses.replace(
                was, last_t=t, peak_score=max(was.peak_score, a.score), reports=was.reports + 1,
                expected=a.expected, reason=a.expected_reason,
                opens_incident=was.opens_incident or opens)
        if progress is not None and (n % 500 == 0 or n == total):
            progress(n, total)
    return Result(
        episodes=tuple(episodes.values()), series=len(samples.series), ticks=total,
        first_t=samples.ticks[0][0], last_t=samples.ticks[-1][0], incidents=incidents,
        notes=tuple(notes))
