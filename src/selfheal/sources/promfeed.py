"""`PrometheusFeed`: the signals selfheal watches, as instant PromQL queries once a tick.

One query per derived signal (`rss_bytes`, `p99_latency_s`, `error_ratio`, `request_rate`,
`gc_pause_s`, configurable PromQL) gives service-level samples, the same names the embedded
scraper produces, so detection and diagnosis do not care where the numbers came from. At the
first tick and every `limit_refresh_s`, one more query per signal with a limit gives each
service's limit of it (its memory limit), for the detectors' time-to-limit forecast. The feed
does not raise: a blind tick yields no samples and `last_error` says why.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping

import httpx

from selfheal import config as config_mod
from selfheal import errors, model, ports
from selfheal.sources import prometheus

LIMIT_RETRY_S = 30.0
"""How soon limits that could not be read are asked again (at most `limit_refresh_s`)."""


class PrometheusFeed(prometheus.Retrying):
    """Instant PromQL queries once a tick, as service-level samples; implements `ports.Feed`."""

    name = "prometheus"
    kinds = frozenset({model.SignalKind.METRICS})

    def __init__(self, url: str, *, queries: Mapping[str, str] | None = None,
                 service_label: str = "service", rate_window: str = "15s",
                 timeout_s: float = 5.0, retries: int = 0, backoff_s: float = 0.5,
                 limit_queries: Mapping[str, str] | None = None,
                 limit_refresh_s: float = 300.0) -> None:
        super().__init__(url, timeout_s=timeout_s, retries=retries, backoff_s=backoff_s)
        self.queries = dict(config_mod.DEFAULT_PROMQL if queries is None else queries)
        self.limit_queries = dict(config_mod.DEFAULT_LIMIT_PROMQL if limit_queries is None
                                  else limit_queries)
        self.limit_refresh_s = limit_refresh_s
        self.service_label = service_label
        self.rate_window = rate_window
        self.last_error = ""
        """Why the signal queries of the last tick failed ("" when they answered)."""
        self.limits_error = ""
        """Why the limits could not be read, until they are read again ("" when they were)."""
        self.blind = False
        """True when every signal query of the last tick failed: Prometheus is unreachable."""
        self._limits_due = -math.inf  # when the limits are to be read next
        self._limits_at = -math.inf  # when they were asked last
        self._http = httpx.AsyncClient(timeout=timeout_s)

    @classmethod
    def from_config(cls, cfg: config_mod.PrometheusSource) -> PrometheusFeed:
        # A tick is short: at most one retry, the next tick is the real retry.
        return cls(cfg.url, queries=cfg.queries, service_label=cfg.service_label,
                   rate_window=cfg.rate_window, timeout_s=cfg.timeout_s,
                   retries=min(cfg.retries, 1), backoff_s=cfg.backoff_s,
                   limit_queries=cfg.watched_limit_queries,
                   limit_refresh_s=cfg.limit_refresh_s)

    async def instant(self, expr: str, t: float) -> list[prometheus.Series]:
        params = {"query": expr, "time": f"{t:.3f}"}
        what = self.describe("/api/v1/query", params)
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                r = await self._http.get(self.url + "/api/v1/query", params=params)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            retry, data = self.check(r, what)
            if not retry:
                return prometheus.series_of(data, f"query {expr!r}")
            last = data
        raise self.give_up(what, last)

    async def _signal(self, metric: str, expr: str, now: float) -> list[model.Sample]:
        result = await self.instant(prometheus.expand(expr, self.rate_window), now)
        return [model.Sample(t=now, service=s.label(self.service_label), metric=metric,
                             value=s.points[-1][1])
                for s in result if s.label(self.service_label) and s.points]

    async def _limits(self, expr: str, now: float) -> dict[str, float]:
        found = await self.instant(prometheus.expand(expr, self.rate_window), now)
        return prometheus.limits_of(found, self.service_label)

    async def collect(self, now: float) -> ports.Collected:
        """The signals at `now`; and, on the first tick and every `limit_refresh_s`, the
        limits of those signals that have a limit query. Limits that could not be read are
        asked again `LIMIT_RETRY_S` later (the ones read before stay); a clock set back asks
        at once."""
        due = now >= self._limits_due or now < self._limits_at
        limits = self.limit_queries if due else {}
        if limits:
            self._limits_at = now
            self._limits_due = now + self.limit_refresh_s
        got, bounds = await asyncio.gather(
            asyncio.gather(*(self._signal(m, e, now) for m, e in self.queries.items()),
                           return_exceptions=True),
            asyncio.gather(*(self._limits(e, now) for e in limits.values()),
                           return_exceptions=True))
        samples: list[model.Sample] = []
        problems: list[str] = []
        for metric, res in zip(self.queries, got, strict=True):
            if isinstance(res, BaseException):
                problems.append(f"{metric}: {_unavailable(res)}")
            else:
                samples.extend(res)
        self.blind = bool(self.queries) and len(problems) == len(self.queries)
        self.last_error = "; ".join(problems)
        found: dict[str, dict[str, float]] = {}
        failed: list[str] = []
        for metric, by_service in zip(limits, bounds, strict=True):
            if isinstance(by_service, BaseException):
                failed.append(f"{metric} limit: {_unavailable(by_service)}")
            else:
                found[metric] = by_service
        if limits:
            self.limits_error = "; ".join(failed)
            if failed:
                self._limits_due = now + min(LIMIT_RETRY_S, self.limit_refresh_s)
        return ports.Collected(samples=tuple(samples), limits=found)

    async def close(self) -> None:
        await self._http.aclose()


def _unavailable(exc: BaseException) -> errors.DataUnavailable:
    """A query's failure when Prometheus could not answer it; anything else is raised."""
    if isinstance(exc, errors.DataUnavailable):
        return exc
    raise exc
