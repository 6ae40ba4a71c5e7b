"""Prometheus as a source: its HTTP API behind a `MetricSource`, the scrape cadence, history.

Used by `selfheal serve` (and `selfheal demo --prometheus`) when a Prometheus server already
scrapes the services. `PrometheusSource` answers `query(service, metric, start, end)` with
`/api/v1/query_range` over an investigation window, plus `series`, `targets`, raw
`instant`/`range` queries and the chunks of history a first start learns from; `cadence`
fits selfheal's tick and rate window to how often Prometheus scrapes. The per-tick feed of
signals is `selfheal.sources.promfeed`.

Every call has a timeout and retries with backoff on transport errors, 5xx and 429; a bad
query (4xx) is not retried. When Prometheus cannot answer, the call raises
`errors.DataUnavailable` naming the query and the upstream error, so investigators report
NO_DATA instead of "all good".
"""

from __future__ import annotations

import collections
import dataclasses
import math
import re
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any, TypedDict

import httpx

from selfheal import config as config_mod
from selfheal import errors, model, ports
from selfheal.detect import limitsteps
from selfheal.sources import prom_columns

F64 = prom_columns.F64

_RETRY_STATUS = frozenset({429, 502, 503, 504, 500})

HISTORY_CHUNK_S = 6 * 3600.0
"""`PrometheusSource.history` asks for this much time at once (one query_range a signal)."""
HISTORY_FIRST_TICKS = 60
"""The first chunk's points a series (it tells how many series there are)."""
HISTORY_CHUNK_POINTS = 1_000_000
"""The points one chunk may hold in all (~9 MB as `ports.HistoryChunk` columns; their JSON
answers take ~100 MB more while they are read)."""
HISTORY_TIMEOUT_S = 60.0
"""How long one of those queries may take."""
LIMIT_READ_AHEAD_S = HISTORY_CHUNK_S
"""A query of a limit over history reads at least this far ahead: a big fleet's chunks of
minutes share one query per limit, not one each (~72 readings a service at the 300 s
refresh)."""


@dataclasses.dataclass
class _LimitsRead:
    """The limit steps one pass over history has read, per metric, and up to when."""

    steps: dict[str, list[limitsteps.Step]] = dataclasses.field(default_factory=dict)
    to: dict[str, float] = dataclasses.field(default_factory=dict)


class ApiResponse(TypedDict, total=False):
    """The envelope of every Prometheus HTTP API answer."""

    status: str
    data: Any
    errorType: str
    error: str
    warnings: list[str]


@dataclasses.dataclass(frozen=True)
class Series:
    """One series of a query result: its labels and its (t, value) points."""

    labels: model.Params
    points: tuple[tuple[float, float], ...]

    def label(self, name: str) -> str:
        return dict(self.labels).get(name, "")


@dataclasses.dataclass(frozen=True)
class TargetHealth:
    """One active scrape target as Prometheus sees it."""

    url: str
    health: str
    labels: model.Params
    last_error: str
    last_scrape: str
    scrape_interval_s: float = math.nan
    """How often Prometheus scrapes it (NaN when it does not say)."""


def expand(expr: str, rate_window: str) -> str:
    """A configured query with its `{window}` placeholder filled in (PromQL's own braces are
    left alone, so no `str.format`)."""
    return expr.replace("{window}", rate_window)


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0,
          "y": 31536000.0}


def limits_of(found: Sequence[Series], service_label: str) -> dict[str, float]:
    """Each service's limit from a limit query's answer: the smallest finite value a series
    labelled with it has (a service's replicas may differ; the first to reach it fails)."""
    out: dict[str, float] = {}
    for s in found:
        svc = s.label(service_label)
        if svc and s.points and math.isfinite(s.points[-1][1]):
            out[svc] = min(out.get(svc, math.inf), s.points[-1][1])
    return out


def duration_s(text: str) -> float:
    """Seconds of a Prometheus duration ("15s", "1m30s", "500ms"); NaN when it is not one."""
    matches = list(re.finditer(r"([0-9]+)(ms|s|m|h|d|w|y)", text))
    if not text or "".join(m.group(0) for m in matches) != text:
        return math.nan
    return sum(int(m.group(1)) * _UNITS[m.group(2)] for m in matches)


RATE_SCRAPES = 4
"""A rate's window spans this many scrapes when selfheal picks it: a rate() needs two samples
inside its window, and four survive a missed scrape (the rule of Grafana's $__rate_interval)."""
DEFAULT_RATE_WINDOW_S = 15.0
"""The shortest rate window selfheal picks (the default of `rate_window`)."""


@dataclasses.dataclass(frozen=True)
class Cadence:
    """How often selfheal asks Prometheus (`tick_s`) and over what window its rates run
    (`rate_window`), fitted to how often Prometheus scrapes; `notes` say what was chosen or
    what is wrong with what the config set."""

    tick_s: float
    rate_window: str
    notes: tuple[str, ...] = ()


MIN_FITTED_TICK_S = 1.0
"""The fastest tick selfheal fits to a scrape interval (a target scraped every 100 ms would
otherwise have it send its queries ten times a second)."""


def cadence(targets: Sequence[TargetHealth], tick_s: float, rate_window: str, *,
            tick_set: bool, window_set: bool, service_label: str = "",
            learned_s: float | None = None) -> Cadence:
    """Fit the tick and the rate window to the scrape interval most of Prometheus's targets
    have (the longer one on a tie), where the config left them unset (`tick_set`,
    `window_set`); where it set them, keep them and say when they cannot work. Only targets
    labelled `service_label` count when there are any (node or blackbox exporters scraped at
    another interval are not the services' series).

    A tick faster than the scrape reads the same value again between two scrapes, which the
    detectors take for steps; a rate window of two scrapes or less holds one sample at times,
    and its rate() is empty then. A Prometheus that does not say how often it scrapes (older
    than 2.33, or without targets of its own) leaves both as they are, or, with `learned_s`
    (the spacing the saved detector state was learned at), ticks at that; and says so.
    """
    labelled = [t for t in targets if service_label and any(
        k == service_label and v for k, v in t.labels)]
    intervals = [t.scrape_interval_s for t in (labelled or targets)
                 if math.isfinite(t.scrape_interval_s) and t.scrape_interval_s > 0]
    if not intervals:
        if learned_s is not None and not tick_set:
            tick_s = _tick(learned_s)
            if not window_set:
                rate_window = _window(tick_s)
            return Cadence(tick_s, rate_window, (
                f"Prometheus does not say how often it scrapes its targets: selfheal asks it "
                f"every {tick_s:g} s, the spacing its saved state was learned at, and rates "
                f"run over [{rate_window}]",))
        unset = [(name, value, want) for name, value, want, given in (
            ("scrape.interval_s", f"{tick_s:g} s", "its scrape interval", tick_set),
            ("sources.prometheus.rate_window", rate_window, f"{RATE_SCRAPES} scrape intervals",
             window_set)) if not given]
        if not unset:
            return Cadence(tick_s, rate_window)
        return Cadence(tick_s, rate_window, (
            "Prometheus does not say how often it scrapes its targets, so selfheal keeps "
            + " and ".join(f"{name} at {value}" for name, value, _ in unset) + ". Set "
            + " and ".join(f"{name} to {want}" for name, _, want in unset) + ".",))
    counts = collections.Counter(intervals)
    scrape_s = max(counts, key=lambda s: (counts[s], s))
    notes: list[str] = []
    if not tick_set:
        tick_s = _tick(scrape_s)
        whose = "services' targets" if labelled else "targets"
        notes.append(f"selfheal asks Prometheus every {tick_s:g} s, as often as it scrapes "
                     f"{_most(counts[scrape_s], len(intervals))} of its {whose} (set "
                     f"scrape.interval_s to change it)")
    if tick_s < min(intervals):
        fastest = min(intervals)
        notes.append(f"Prometheus scrapes {'some of ' if not tick_set else ''}its targets "
                     f"every {fastest:g} s and selfheal asks it every {tick_s:g} s: between "
                     f"two scrapes each tick reads the same value again, which the detectors "
                     f"take for steps. Set scrape.interval_s to {fastest:g}.")
    if not window_set:
        fitted = _window(scrape_s)
        if fitted != rate_window:
            notes.append(f"rates run over [{fitted}], {RATE_SCRAPES} scrapes (set "
                         f"sources.prometheus.rate_window to change it)")
        rate_window = fitted
    slow = sum(1 for s in intervals if duration_s(rate_window) <= 2 * s)
    if slow:
        notes.append(f"{_most(slow, len(intervals))} of Prometheus's targets are scraped no "
                     f"more than twice in [{rate_window}] (sources.prometheus.rate_window): "
                     f"their rate() is empty at times, and the signals built on it are "
                     f"missing then. Set it to {RATE_SCRAPES} scrapes of the slowest "
                     f"({math.ceil(RATE_SCRAPES * max(intervals))}s).")
    return Cadence(tick_s, rate_window, tuple(notes))


def _tick(scrape_s: float) -> float:
    return min(max(scrape_s, MIN_FITTED_TICK_S), config_mod.MAX_TICK_S)


def _window(scrape_s: float) -> str:
    return f"{math.ceil(max(DEFAULT_RATE_WINDOW_S, RATE_SCRAPES * scrape_s))}s"


def _most(n: int, of: int) -> str:
    return "all" if n == of else f"{n} of {of}"


def series_of(data: Any, what: str) -> list[Series]:
    """The series of a query's `data` (a vector or a matrix); `errors.DataUnavailable`
    naming `what` when it is not one."""
    try:
        return _parse_series(data, what)
    except (TypeError, ValueError, AttributeError) as exc:  # a proxy's or a broken answer
        raise errors.DataUnavailable(f"Prometheus answered {what} with a malformed result: "
                                     f"{exc}") from exc


def _parse_series(data: Any, what: str) -> list[Series]:
    if not isinstance(data, dict) or "result" not in data:
        raise errors.DataUnavailable(f"Prometheus answered {what} without a result")
    kind, result = data.get("resultType"), data["result"]
    out = []
    for item in result if isinstance(result, list) else []:
        labels = tuple(sorted((str(k), str(v)) for k, v in (item.get("metric") or {}).items()))
        if kind == "matrix":
            pts = tuple((float(t), prom_columns.value(v)) for t, v in item.get("values") or [])
        elif kind == "vector":
            t, v = item.get("value") or (math.nan, math.nan)
            pts = ((float(t), prom_columns.value(v)),)
        else:
            continue
        out.append(Series(labels=labels, points=pts))
    if kind == "scalar" and isinstance(result, list) and len(result) == 2:
        point = (float(result[0]), prom_columns.value(result[1]))
        out.append(Series(labels=(), points=(point,)))
    return out


class Retrying:
    """Timeout, retries and error mapping shared by the sync and async clients."""

    def __init__(self, url: str, *, timeout_s: float, retries: int, backoff_s: float) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s

    def describe(self, path: str, params: Mapping[str, str]) -> str:
        q = params.get("query") or params.get("match[]") or ""
        return f"GET {self.url}{path}" + (f" query={q!r}" if q else "")

    def check(self, r: httpx.Response, what: str) -> tuple[bool, Any]:
        """(retry?, data); raises DataUnavailable for an answer that will not improve."""
        if r.status_code in _RETRY_STATUS:
            return True, f"HTTP {r.status_code}: {r.text[:200]}"
        try:
            body: ApiResponse = r.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict) or "status" not in body:
            raise errors.DataUnavailable(f"{what}: HTTP {r.status_code}, not a Prometheus "
                                         f"API answer: {r.text[:200]!r}")
        if r.status_code >= 400 or body.get("status") != "success":
            raise errors.DataUnavailable(f"{what}: HTTP {r.status_code} "
                                         f"{body.get('errorType', 'error')}: "
                                         f"{body.get('error', r.text[:200])}")
        return False, body.get("data")

    def give_up(self, what: str, last: str) -> errors.DataUnavailable:
        return errors.DataUnavailable(f"Prometheus unavailable after {self.retries + 1} "
                                      f"attempt(s): {what}: {last}")


class PrometheusSource(Retrying):
    """Blocking client of the HTTP API; implements `ports.MetricSource`.

    Investigations ask for every (service, signal) pair over the same window; one
    `query_range` answers all services of a signal, so results are cached per window.
    """

    def __init__(self, url: str, *, queries: Mapping[str, str] | None = None,
                 service_label: str = "service", rate_window: str = "15s",
                 step_s: float = 5.0, timeout_s: float = 5.0, retries: int = 2,
                 backoff_s: float = 0.5, sleep: Callable[[float], None] = time.sleep,
                 limit_queries: Mapping[str, str] | None = None,
                 limit_refresh_s: float = 300.0) -> None:
        super().__init__(url, timeout_s=timeout_s, retries=retries, backoff_s=backoff_s)
        self.queries = dict(config_mod.DEFAULT_PROMQL if queries is None else queries)
        self.limit_queries = dict(limit_queries or {})
        """Each service's limit of a signal (`PrometheusSource.limit_queries` of the config):
        history comes with the limits as they were (`HistoryChunk.limits`)."""
        self.limit_refresh_s = limit_refresh_s
        self.service_label = service_label
        self.rate_window = rate_window
        self.step_s = step_s
        self._sleep = sleep
        self._http = httpx.Client(timeout=timeout_s)
        self._cache: collections.OrderedDict[tuple[str, float, float, float], list[Series]] = \
            collections.OrderedDict()

    @classmethod
    def from_config(cls, cfg: config_mod.PrometheusSource) -> PrometheusSource:
        return cls(cfg.url, queries=cfg.queries, service_label=cfg.service_label,
                   rate_window=cfg.rate_window, step_s=cfg.step_s, timeout_s=cfg.timeout_s,
                   retries=cfg.retries, backoff_s=cfg.backoff_s,
                   limit_queries=cfg.watched_limit_queries, limit_refresh_s=cfg.limit_refresh_s)

    def close(self) -> None:
        self._http.close()

    def _get(self, path: str, params: Mapping[str, str] | Sequence[tuple[str, str]],
             timeout_s: float | None = None) -> Any:
        plist = list(params.items()) if isinstance(params, Mapping) else list(params)
        what = self.describe(path, dict(plist))
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                r = self._http.get(self.url + path, params=tuple(plist),
                                   timeout=timeout_s or self.timeout_s)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            retry, data = self.check(r, what)
            if not retry:
                return data
            last = data
        raise self.give_up(what, last)

    # -- the raw API -------------------------------------------------------------------------

    def instant(self, expr: str, t: float | None = None) -> list[Series]:
        params = {"query": expr} | ({} if t is None else {"time": f"{t:.3f}"})
        return series_of(self._get("/api/v1/query", params), f"query {expr!r}")

    def range(self, expr: str, start: float, end: float, step_s: float | None = None,
              timeout_s: float | None = None) -> list[Series]:
        return series_of(self._get("/api/v1/query_range",
                                 self._range_params(expr, start, end, step_s), timeout_s),
                       f"query_range {expr!r}")

    def range_columns(self, expr: str, start: float, end: float, step_s: float | None = None,
                      timeout_s: float | None = None) -> list[tuple[model.Params, F64, F64]]:
        """`range`, each series as (labels, times, values) arrays (a fleet's history)."""
        return prom_columns.columns(
            self._get("/api/v1/query_range", self._range_params(expr, start, end, step_s),
                      timeout_s), f"query_range {expr!r}")

    def _range_params(self, expr: str, start: float, end: float, step_s: float | None
                      ) -> dict[str, str]:
        # Prometheus refuses more than 11,000 points per series: widen the step for long
        # windows instead of failing the whole investigation.
        step = max(step_s or self.step_s, (end - start) / 10_000)
        return {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}",
                "step": f"{step:.15g}"}  # every digit: a rounded step misses the end

    def series(self, match: Sequence[str], start: float, end: float) -> list[model.Params]:
        """Label sets of the series matching any selector in `match` in the window."""
        params = [("match[]", m) for m in match] + [("start", f"{start:.3f}"),
                                                    ("end", f"{end:.3f}")]
        data = self._get("/api/v1/series", params)
        try:
            return [tuple(sorted((str(k), str(v)) for k, v in d.items())) for d in data]
        except (TypeError, AttributeError) as exc:
            raise errors.DataUnavailable(f"Prometheus answered /api/v1/series with a "
                                         f"malformed result: {exc}") from exc

    def targets(self) -> list[TargetHealth]:
        data = self._get("/api/v1/targets", {"state": "active"})
        try:
            return [TargetHealth(url=str(t.get("scrapeUrl", "")),
                                 health=str(t.get("health", "")),
                                 labels=tuple(sorted((str(k), str(v)) for k, v in
                                                     (t.get("labels") or {}).items())),
                                 last_error=str(t.get("lastError", "")),
                                 last_scrape=str(t.get("lastScrape", "")),
                                 scrape_interval_s=duration_s(str(t.get("scrapeInterval", ""))))
                    for t in data["activeTargets"]]
        except (TypeError, AttributeError, KeyError) as exc:
            raise errors.DataUnavailable(f"Prometheus answered /api/v1/targets with a "
                                         f"malformed result: {exc}") from exc

    # -- ports.MetricSource ------------------------------------------------------------------

    def query(self, service: str, metric: str, start: float, end: float
              ) -> list[model.Sample]:
        """The service-level series of one derived signal; [] for a signal with no query."""
        expr = self.queries.get(metric)
        if expr is None:
            return []
        key = (metric, start, end, self.step_s)
        if key not in self._cache:
            self._cache[key] = self.range(expand(expr, self.rate_window), start, end)
            while len(self._cache) > 4 * max(len(self.queries), 1):
                self._cache.popitem(last=False)
        return [model.Sample(t=t, service=service, metric=metric, value=v)
                for s in self._cache[key] if s.label(self.service_label) == service
                for t, v in s.points]


    def _limit_steps(self, start: float, end: float, read: _LimitsRead,
                     on_skip: Callable[[str, str], None] | None) -> limitsteps.Steps:
        """Each service's limits from `start` to `end` as they were, one point every
        `limit_refresh_s` (as `serve` reads them; the first at or before `start`), from what
        `read` holds, read further ahead (`LIMIT_READ_AHEAD_S`) when it ends before `end`.
        A limit query that fails is left out from then on, told to `on_skip`."""
        every = self.limit_refresh_s
        first = math.floor(start / every) * every
        out = {}
        for metric, expr in list(self.limit_queries.items()):
            if read.to.get(metric, -math.inf) < end:
                lo = read.to[metric] + every if metric in read.to else first
                hi = lo + math.ceil(max(end - lo, LIMIT_READ_AHEAD_S) / every) * every
                try:
                    found = self.range(expand(expr, self.rate_window), lo, hi, every,
                                       timeout_s=max(self.timeout_s, HISTORY_TIMEOUT_S))
                except errors.DataUnavailable as exc:
                    del self.limit_queries[metric]
                    if on_skip is not None:
                        on_skip(f"{metric} limits", str(exc))
                    continue
                read.steps[metric] = limitsteps.merged([*read.steps.get(metric, []), *(
                    limitsteps.steps_of([(s.label(self.service_label), t, v) for t, v in
                                         s.points] for s in found))])
                read.to[metric] = hi
            # chunks come in time order: what is before this one's first step is done with
            kept = read.steps[metric] = limitsteps.within(read.steps[metric], first, math.inf)
            out[metric] = [step for step in kept if step[0] <= end]
        return out

    # -- ports.History -----------------------------------------------------------------------

    def history(self, start: float, end: float, step_s: float, skip: Collection[str] = (),
                on_skip: Callable[[str, str], None] | None = None
                ) -> Iterator[tuple[float, dict[tuple[str, str], float]]]:
        """`chunks`, tick by tick (`ports.HistoryChunk.ticks`)."""
        for chunk in self.chunks(start, end, step_s, skip, on_skip):
            yield from chunk.ticks()

    def chunks(self, start: float, end: float, step_s: float, skip: Collection[str] = (),
               on_skip: Callable[[str, str], None] | None = None
               ) -> Iterator[ports.HistoryChunk]:
        """Every configured signal of every service, `step_s` apart from `start` (rounded up
        to a multiple of the step) to before `end`, in time order, as columns. Asked for
        `HISTORY_CHUNK_S` at a time (less for a big fleet: `HISTORY_CHUNK_POINTS`), one
        query_range a signal, so a week of a fleet is held one chunk at a time and each answer
        stays under Prometheus's 11,000 points a series.
        A point Prometheus has no value for (a signal or a service missing at that time) is
        not `present` in its chunk. A signal whose query fails (a 422 "too many samples" of
        a histogram over a big fleet, a timeout, an answer off the step grid) is left out
        from there on, `on_skip(signal, why)` says so, and the others go on;
        `errors.DataUnavailable` when every one failed.
        Each query may take `HISTORY_TIMEOUT_S` (6 hours of a fleet, not an investigation's
        minutes)."""
        exprs = {m: expand(e, self.rate_window) for m, e in self.queries.items()
                 if m not in skip}
        per_chunk = max(int(min(HISTORY_CHUNK_S, 10_000 * step_s) // step_s), 1)
        # the first chunk is short; the next ones hold at most `HISTORY_CHUNK_POINTS` for the
        # series the last one had (a fleet of thousands gets chunks of minutes, not hours)
        size = min(per_chunk, HISTORY_FIRST_TICKS)
        t0 = math.ceil(start / step_s) * step_s
        read = _LimitsRead()
        while t0 < end:
            # the grid points t0, t0 + step ... before `end`, at most `size` of them
            n = min(size, math.ceil((end - t0) / step_s))
            found: list[tuple[tuple[str, str], F64, F64]] = []
            for metric, expr in list(exprs.items()):
                try:
                    got = self.range_columns(expr, t0, t0 + (n - 1) * step_s, step_s,
                                             timeout_s=max(self.timeout_s, HISTORY_TIMEOUT_S))
                    prom_columns.on_grid(got, t0, step_s, n, f"query_range {expr!r}")
                except errors.DataUnavailable as exc:
                    del exprs[metric]
                    if not exprs:
                        raise
                    if on_skip is not None:
                        on_skip(metric, str(exc))
                    continue
                for labels, times, values in got:
                    service = dict(labels).get(self.service_label, "")
                    if service and times.size:
                        found.append(((service, metric), times, values))
            chunk = prom_columns.chunk(found)
            if chunk.t.size:
                yield dataclasses.replace(chunk, limits=self._limit_steps(
                    t0, t0 + (n - 1) * step_s, read, on_skip)) if self.limit_queries else chunk
            t0 += n * step_s
            size = max(1, min(per_chunk, HISTORY_CHUNK_POINTS // max(len(chunk.keys), 1)))
