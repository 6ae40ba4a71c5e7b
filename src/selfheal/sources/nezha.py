"""Adapter from Nezha's raw fault-injection layout into our model values and diagnosis windows.

Nezha (IntelligentDDS/Nezha, FSE 2023) recorded metrics, logs and traces of OnlineBoutique and
TrainTicket while injecting faults; `selfheal bench rca` replays it through `selfheal.diagnose`.
The archives are extracted once into a cache folder; each day is then read lazily, minute file
by minute file. Only data up to `horizon_s` after an injection is ever read for its window, and
metric baselines come from `construct_data/<day>` (the fault-free data published for baselines).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import lzma
import math
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from selfheal import diagnose, errors, model

SYSTEM_NAMES = {"hipster": "OnlineBoutique", "ts": "TrainTicket"}

FAULT_KINDS: Mapping[str, model.FaultKind] = {
    "cpu_contention": model.FaultKind.OVERLOAD,
    "cpu_consumed": model.FaultKind.OVERLOAD,
    "network_delay": model.FaultKind.LATENCY,
    "return": model.FaultKind.ERRORS,
    "exception": model.FaultKind.ERRORS,
}
"""Nezha's five injected fault types at our `FaultKind` granularity (CPU faults are overload)."""

NODE_PREFIX = "Node"
"""Node-level columns are shared by every pod of a node, so they are not a service's signal."""

_LEVEL = re.compile(r"\b(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|SEVERE|FATAL|CRITICAL)\b")
_LEADING_TIME = re.compile(r"^\s*\d{1,2}:\d{2}:\d{2}(\.\d+)?\s+")
_MINUTE_FILE = re.compile(r"^(\d{2})_(\d{2})_(trace|log)\.csv$")


@dataclasses.dataclass(frozen=True)
class Fault:
    """One injected fault: the ground truth of one benchmark case."""

    day: str
    hour: str
    inject_ts: float
    pod: str
    service: str
    kind: str

    @property
    def fault_kind(self) -> model.FaultKind:
        return FAULT_KINDS.get(self.kind, model.FaultKind.UNKNOWN)


def service_of(pod: str) -> str:
    """`ts-basic-service-5dc8d4f9fd-46997` → `ts-basic-service` (drop two hash segments)."""
    parts = pod.rsplit("-", 2)
    return parts[0] if len(parts) == 3 else pod


def ensure_extracted(data_dir: Path, cache_dir: Path) -> Path:
    """Extract every `nezha-*.tar.xz` of `data_dir` into `cache_dir` once; return the tree root."""
    archives = sorted(data_dir.glob("nezha-*.tar.xz"))
    if not archives and not (data_dir / "rca_data").is_dir():
        raise errors.DataUnavailable(f"{data_dir}: no nezha-*.tar.xz archive and no rca_data/")
    if not archives:
        return data_dir
    cache_dir.mkdir(parents=True, exist_ok=True)
    for archive in archives:
        marker = cache_dir / f".{archive.name}.extracted"
        if marker.exists():
            continue
        # into a private folder first (two runs sharing the cache never mix their files): a
        # truncated or corrupt archive, or a disk that fills up, leaves nothing half-extracted
        # in the cache and no marker, only the error naming it
        partial = Path(tempfile.mkdtemp(prefix=f".{archive.name}.", dir=cache_dir))
        try:
            with tarfile.open(archive, "r:xz") as tar:
                tar.extractall(partial, filter="data")
        except (tarfile.TarError, EOFError, lzma.LZMAError, OSError) as exc:
            shutil.rmtree(partial, ignore_errors=True)
            why = str(exc) or type(exc).__name__
            raise errors.DataUnavailable(f"{archive}: cannot extract it ({why})") from exc
        _merge(partial, cache_dir)
        shutil.rmtree(partial, ignore_errors=True)
        marker.write_text("ok\n")
    return cache_dir


def _merge(src: Path, dst: Path) -> None:
    """Move the tree `src` into `dst`, folder by folder (two archives share `rca_data/`)."""
    for child in src.iterdir():
        target = dst / child.name
        if child.is_dir() and target.is_dir():
            _merge(child, target)
        else:
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(child, target)


def days(root: Path) -> tuple[str, ...]:
    return tuple(sorted(p.name for p in (root / "rca_data").iterdir() if p.is_dir()))


def load_faults(root: Path, day: str) -> tuple[Fault, ...]:
    path = root / "rca_data" / day / f"{day}-fault_list.json"
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise errors.DataUnavailable(f"{path}: {exc}") from exc
    out = []
    for hour, items in sorted(raw.items()):
        for item in items:
            pod = str(item["inject_pod"])
            out.append(
                Fault(
                    day=day,
                    hour=hour,
                    inject_ts=float(item["inject_timestamp"]),
                    pod=pod,
                    service=service_of(pod),
                    kind=str(item["inject_type"]),
                )
            )
    return tuple(sorted(out, key=lambda f: f.inject_ts))


@dataclasses.dataclass(frozen=True)
class _Table:
    """One pod's metric file: times (Unix s), column names, values (rows x columns)."""

    pod: str
    times: np.ndarray
    columns: tuple[str, ...]
    values: np.ndarray


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _read_table(path: Path) -> _Table | None:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if len(rows) < 2 or "TimeStamp" not in rows[0]:
        return None
    header = rows[0]
    t_col = header.index("TimeStamp")
    keep = [
        i
        for i, name in enumerate(header)
        if i > t_col and name not in ("PodName", "ServiceName") and not name.startswith(NODE_PREFIX)
    ]
    times = np.array([_float(r[t_col]) for r in rows[1:]])
    values = np.array([[_float(r[i]) if i < len(r) else math.nan for i in keep] for r in rows[1:]])
    pod = path.name.removesuffix("_metric.csv")
    return _Table(pod, times, tuple(header[i] for i in keep), values)


ENTRY_SUCCESS = "EntrySuccessRate(%)"


def _entry_success(path: Path, pods: Sequence[_Table]) -> _Table | None:
    """The entry service's success rate from `front_service.csv`, as a series of its pod.

    The file totals what users see at the entry (its latencies repeat the entry pod's own, so
    only the success rate is kept). It is attributed to the pod whose service is the file's
    `ServiceName`; when no pod matches, or the rate never moves off zero (not recorded), it is
    left out.
    """
    if not path.is_file():
        return None
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if len(rows) < 2 or "SuccessRate(%)" not in rows[0] or "ServiceName" not in rows[0]:
        return None
    header = rows[0]
    name = rows[1][header.index("ServiceName")].strip().lower()
    pod = next((t.pod for t in pods if service_of(t.pod) == name), None)
    if pod is None:
        return None
    t_col, col = header.index("TimeStamp"), header.index("SuccessRate(%)")
    times = np.array([_float(r[t_col]) for r in rows[1:]])
    values = np.array([[_float(r[col]) if col < len(r) else math.nan] for r in rows[1:]])
    if not np.nanmax(np.abs(values), initial=0.0) > 0.0:
        return None
    return _Table(pod, times, (ENTRY_SUCCESS,), values)


def _message(raw: str) -> tuple[str, str]:
    """(level, message) from a container's raw JSON log line (itself maybe structured JSON)."""
    text = raw
    try:
        outer = json.loads(raw)
        if isinstance(outer, dict):
            text = str(outer.get("log", raw))
    except json.JSONDecodeError:
        pass
    text = text.strip()
    if text.startswith("{"):
        try:
            inner = json.loads(text)
            if isinstance(inner, dict):
                level = str(inner.get("severity") or inner.get("level") or "")
                message = str(inner.get("message") or inner.get("msg") or text)
                return level.upper() or _level_of(message), message
        except json.JSONDecodeError:
            pass
    text = _LEADING_TIME.sub("", text)
    return _level_of(text), text


def _level_of(text: str) -> str:
    match = _LEVEL.search(text[:80])
    return match.group(1) if match else "INFO"


class Day:
    """One recorded day of one system, read lazily and cached per minute file."""

    def __init__(self, root: Path, day: str) -> None:
        self.root = root
        self.day = day
        self.rca = root / "rca_data" / day
        self.construct = root / "construct_data" / day
        if not self.rca.is_dir():
            raise errors.DataUnavailable(f"{self.rca}: no such day")
        self.faults = load_faults(root, day)

    @functools.cached_property
    def tables(self) -> tuple[_Table, ...]:
        folder = self.construct / "metric"
        if not folder.is_dir():
            folder = self.rca / "metric"
        out = []
        for path in sorted(folder.glob("*_metric.csv")):
            table = _read_table(path)
            if table is not None:
                out.append(table)
        entry = _entry_success(folder / "front_service.csv", out)
        return tuple(out) + ((entry,) if entry is not None else ())

    @functools.cached_property
    def system(self) -> str:
        pods = [t.pod for t in self.tables]
        return "ts" if any(p.startswith("ts-") for p in pods) else "hipster"

    def metrics(self, lo: float, hi: float) -> dict[tuple[str, str], list[model.Sample]]:
        out: dict[tuple[str, str], list[model.Sample]] = {}
        for table in self.tables:
            service = service_of(table.pod)
            rows = np.nonzero((table.times >= lo) & (table.times <= hi))[0]
            for j, column in enumerate(table.columns):
                series = out.setdefault((service, column), [])
                for i in rows:
                    series.append(
                        model.Sample(
                            t=float(table.times[i]),
                            service=service,
                            metric=column,
                            value=float(table.values[i, j]),
                            replica=table.pod,
                        )
                    )
        return out

    def _minute_files(self, kind: str, folder: Path | None = None) -> list[Path]:
        folder = folder or self.rca / kind
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if _MINUTE_FILE.match(p.name))

    @functools.cached_property
    def first_injection(self) -> float:
        return min((f.inject_ts for f in self.faults), default=math.inf)

    @functools.cached_property
    def construct_spans(self) -> tuple[model.Span, ...]:
        """Fault-free spans: `construct_data`'s, else the recorded minutes before any fault."""
        paths = self._minute_files("trace", self.construct / "trace")
        if paths:
            return tuple(s for p in paths for s in self._spans_of(p))
        spans = [s for p in self._minute_files("trace") for s in self._spans_of(p)]
        return tuple(s for s in spans if s.end < self.first_injection)

    @functools.cached_property
    def construct_logs(self) -> tuple[model.LogRecord, ...]:
        """Fault-free log lines: `construct_data`'s, else the recorded minutes before any fault."""
        paths = self._minute_files("log", self.construct / "log")
        if paths:
            return tuple(r for p in paths for r in self._logs_of(p))
        records = [r for p in self._minute_files("log") for r in self._logs_of(p)]
        return tuple(r for r in records if 0 < r.t < self.first_injection)

    @functools.lru_cache(maxsize=16)  # noqa: B019 - one Day per run, bounded cache
    def _spans_of(self, path: Path) -> tuple[model.Span, ...]:
        out = []
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                try:
                    start = int(row["StartTimeUnixNano"]) / 1e9
                    end = int(row["EndTimeUnixNano"]) / 1e9
                except (KeyError, ValueError):
                    continue
                parent = row.get("ParentID", "")
                out.append(
                    model.Span(
                        trace_id=row["TraceID"],
                        span_id=row["SpanID"],
                        parent_id="" if parent in ("root", "") else parent,
                        service=service_of(row["PodName"]),
                        name=row.get("OperationName", ""),
                        start=start,
                        end=end,
                    )
                )
        return tuple(out)

    @functools.lru_cache(maxsize=16)  # noqa: B019 - one Day per run, bounded cache
    def _logs_of(self, path: Path) -> tuple[model.LogRecord, ...]:
        out = []
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                try:
                    t = int(row["TimeUnixNano"]) / 1e9
                except (KeyError, ValueError):
                    continue
                level, message = _message(row.get("Log", ""))
                out.append(
                    model.LogRecord(
                        t=t,
                        service=service_of(row.get("PodName", "")),
                        level=level,
                        message=message,
                        replica=row.get("PodName", ""),
                    )
                )
        return tuple(out)

    def _overlapping(self, kind: str, lo: float, hi: float) -> Iterator[Path]:
        """Minute files that may hold records in [lo, hi] (named by local HH_MM of the day)."""
        for path in self._minute_files(kind):
            match = _MINUTE_FILE.match(path.name)
            if match is None:
                continue
            minute = int(match.group(1)) * 60 + int(match.group(2))
            lo_m, hi_m = self._minute_of_day(lo), self._minute_of_day(hi)
            if lo_m - 2 <= minute <= hi_m + 2:
                yield path

    def _minute_of_day(self, t: float) -> int:
        return int(t // 60) % (24 * 60)

    def spans(self, lo: float, hi: float) -> list[model.Span] | None:
        paths = list(self._overlapping("trace", lo, hi))
        if not paths:
            return None
        return [s for p in paths for s in self._spans_of(p) if lo <= s.start <= hi]

    def logs(self, lo: float, hi: float) -> list[model.LogRecord] | None:
        paths = list(self._overlapping("log", lo, hi))
        if not paths:
            return None
        return [r for p in paths for r in self._logs_of(p) if lo <= r.t <= hi]

    @functools.cached_property
    def static_topology(self) -> dict[str, set[str]]:
        path = self.rca / "metric" / "dependency.csv"
        out: dict[str, set[str]] = {}
        if path.exists():
            with path.open(newline="") as handle:
                for row in csv.DictReader(handle):
                    source, target = row.get("Source", ""), row.get("Target", "")
                    if source and target and not target[0].isdigit():
                        out.setdefault(source, set()).add(target)
        return out


def topology_of(
    spans: Sequence[model.Span] | None, static: Mapping[str, set[str]]
) -> dict[str, tuple[str, ...]]:
    """Caller → callees from the published dependency list and from span parent links."""
    graph: dict[str, set[str]] = {k: set(v) for k, v in static.items()}
    if spans:
        by_id = {s.span_id: s.service for s in spans}
        for span in spans:
            caller = by_id.get(span.parent_id)
            if caller and caller != span.service:
                graph.setdefault(caller, set()).add(span.service)
    return {k: tuple(sorted(v)) for k, v in sorted(graph.items())}


def window_for(
    day: Day,
    fault: Fault,
    *,
    horizon_s: float = 180.0,
    metric_history_s: float = 600.0,
    recent_s: float = 120.0,
) -> diagnose.Window:
    """The diagnosis window of one fault: fault-free baselines, then `horizon_s` after it.

    Nothing later than `inject_ts + horizon_s` is read. The incident window starts at the
    injection time, standing in for the first anomaly's start that a live detector provides.
    Metric baselines are the `metric_history_s` of `construct_data` rows before the injection;
    trace and log baselines are the day's fault-free recordings plus the `recent_s` recorded
    just before the injection (earlier minutes may still carry the previous fault).
    """
    start = fault.inject_ts
    end = start + horizon_s
    history_lo = start - metric_history_s
    recent_lo = start - recent_s
    base_hi = start - 1e-3
    construct_spans = [s for s in day.construct_spans if s.start < recent_lo]
    construct_logs = [r for r in day.construct_logs if r.t < recent_lo]
    base_lo = min([history_lo] + [s.start for s in construct_spans] + [r.t for r in construct_logs])
    recent_spans = day.spans(recent_lo, end)
    spans = None if recent_spans is None else construct_spans + recent_spans
    recent_logs = day.logs(recent_lo, end)
    logs = None if recent_logs is None else construct_logs + recent_logs
    incident = model.Incident(
        id=model.IncidentId(f"nezha-{fault.day}-{int(fault.inject_ts)}"),
        service="",
        opened_at=start,
        title=f"Nezha {day.system} fault at {int(fault.inject_ts)}",
        anomalies=(),
    )
    return diagnose.Window(
        incident=incident,
        start=start,
        end=end,
        baseline_start=base_lo,
        baseline_end=base_hi,
        metrics=day.metrics(history_lo, end),
        logs=logs,
        changes=None,
        spans=spans,
        topology=topology_of(spans, day.static_topology),
    )
