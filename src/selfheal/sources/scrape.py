"""The embedded scraper: pulls every replica's Prometheus `/metrics` and derives the signals.

Called by the engine once a tick. Raw exposition text is parsed with prometheus-client's own
parser; counters and histograms are turned into rates and quantiles over a sliding window, per
replica and merged per service, so detectors and diagnosis see `rss_bytes`, `p99_latency_s`,
`error_ratio`, `request_rate` and `gc_pause_s` whatever exporter produced them. A target that
cannot be scraped yields no sample (missing data is not good news), never a zero; what it does
yield is `up` 0, as Prometheus records for a failed scrape, and the service's `up` is the
fraction of its replicas that answered; its `rss_bytes` is its highest replica's (the one
nearest its memory limit). Expiry dates a replica exports become time-to-expiry
series (`cert_ttl_s`, `credential_ttl_s`; the service's is its soonest replica's).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import httpx
from prometheus_client import parser

from selfheal import model, ports

LOAD_SIGNALS = ("rss_bytes", "p99_latency_s", "error_ratio", "request_rate", "gc_pause_s")
HEALTH_SIGNALS = ("up", "cert_ttl_s", "credential_ttl_s")
SIGNALS = LOAD_SIGNALS + HEALTH_SIGNALS
TTL_OF = {"certificate": "cert_ttl_s", "credential": "credential_ttl_s"}
"""The `kind` label of an exported expiry date -> the time-to-expiry signal it gives."""

_REQUESTS = "shop_requests"
_LATENCY = "shop_request_duration_seconds"
_GC = "python_gc_pause_seconds"
_RSS = "process_resident_memory_bytes"
_NOT_AFTER = "shop_not_after_timestamp_seconds"


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """What one scrape of one replica said, reduced to what the signals need."""

    t: float
    rss: float
    requests: float
    errors: float
    buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count), sorted
    gc_seconds: float
    not_after: tuple[tuple[str, float], ...] = ()
    """(kind, Unix time) of each expiry date the replica exports."""


def parse(text: str, t: float) -> Snapshot:
    """Reduce an exposition text to a `Snapshot`; raises ValueError on malformed text."""
    rss = math.nan
    requests = errors = gc_seconds = 0.0
    buckets: dict[float, float] = collections.defaultdict(float)
    not_after: dict[str, float] = {}
    for family in parser.text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == _RSS:
                rss = s.value
            elif s.name == _REQUESTS + "_total":
                requests += s.value
                if s.labels.get("code", "").startswith("5"):
                    errors += s.value
            elif s.name == _LATENCY + "_bucket":
                buckets[float(s.labels["le"])] += s.value
            elif s.name == _GC + "_sum":
                gc_seconds += s.value
            elif s.name == _NOT_AFTER and s.labels.get("kind") in TTL_OF:
                not_after[s.labels["kind"]] = s.value
    return Snapshot(t=t, rss=rss, requests=requests, errors=errors,
                    buckets=tuple(sorted(buckets.items())), gc_seconds=gc_seconds,
                    not_after=tuple(sorted(not_after.items())))


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """histogram_quantile as Prometheus computes it: linear inside the bucket; NaN if empty."""
    if not buckets or buckets[-1][1] <= 0:
        return math.nan
    total = buckets[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, cum in buckets:
        if cum >= rank:
            if math.isinf(upper):
                return lower  # the highest finite bound, as Prometheus does
            inside = cum - below
            return lower + (upper - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = upper, cum
    return lower


def _delta(new: Snapshot, old: Snapshot | None) -> tuple[float, float, float, dict[float, float]]:
    """Counter increases since `old` (a restarted process counts from zero)."""
    if old is None or new.requests < old.requests:
        return (new.requests, new.errors, new.gc_seconds, dict(new.buckets))
    old_b = dict(old.buckets)
    return (new.requests - old.requests, new.errors - old.errors,
            new.gc_seconds - old.gc_seconds,
            {le: c - old_b.get(le, 0.0) for le, c in new.buckets})


def derive(history: Mapping[str, Sequence[Snapshot]], target_of: Mapping[str, ports.Target],
           t: float, window_s: float) -> list[model.Sample]:
    """Signals per replica and per service from each replica's recent snapshots."""
    out: list[model.Sample] = []
    per_service: dict[str, list[tuple[float, float, float, dict[float, float], float, float]]] = \
        collections.defaultdict(list)
    answered: dict[str, list[float]] = collections.defaultdict(list)
    ttls: dict[tuple[str, str], float] = {}
    for replica, target in target_of.items():
        snaps = history.get(replica) or ()
        last = snaps[-1] if snaps else None
        fresh = last is not None and last.t >= t - 1e-9
        answered[target.service].append(1.0 if fresh else 0.0)
        out.append(model.Sample(t=t, service=target.service, metric="up",
                                value=1.0 if fresh else 0.0, replica=replica,
                                version=target.version))
        if last is None or not fresh:
            continue
        for kind, when in last.not_after:
            metric = TTL_OF[kind]
            out.append(model.Sample(t=t, service=target.service, metric=metric,
                                    value=when - t, replica=replica, version=target.version))
            key = (target.service, metric)
            ttls[key] = min(ttls.get(key, math.inf), when - t)
    out.extend(model.Sample(t=t, service=svc, metric="up", value=sum(ups) / len(ups))
               for svc, ups in answered.items())
    out.extend(model.Sample(t=t, service=svc, metric=metric, value=v)
               for (svc, metric), v in ttls.items())
    for replica, snaps in history.items():
        if not snaps or replica not in target_of or snaps[-1].t < t - 1e-9:
            continue  # no fresh scrape of this replica this tick: no load signals
        target = target_of[replica]
        new = snaps[-1]
        old = next((s for s in snaps if s.t >= t - window_s), None)
        if old is None or old is new:
            # One scrape gives no rate: say only what a single scrape can say.
            out.append(model.Sample(t=t, service=target.service, metric="rss_bytes",
                                    value=new.rss, replica=replica, version=target.version))
            continue
        span = new.t - old.t
        reqs, errs, gc_s, bucket_d = _delta(new, old)
        per_service[target.service].append((reqs, errs, gc_s, bucket_d, span, new.rss))
        values = {
            "rss_bytes": new.rss,
            "p99_latency_s": quantile(0.99, sorted(bucket_d.items())),
            "error_ratio": errs / reqs if reqs else math.nan,
            "request_rate": reqs / span,
            "gc_pause_s": gc_s / span,
        }
        out.extend(model.Sample(t=t, service=target.service, metric=m, value=v, replica=replica,
                                version=target.version) for m, v in values.items())
    for service, rows in per_service.items():
        reqs = sum(r[0] for r in rows)
        errs = sum(r[1] for r in rows)
        merged: dict[float, float] = collections.defaultdict(float)
        for r in rows:
            for le, c in r[3].items():
                merged[le] += c
        span = max(r[4] for r in rows)  # > 0: each row spans two distinct scrapes
        rss = [r[5] for r in rows if not math.isnan(r[5])]
        values = {
            "rss_bytes": max(rss) if rss else math.nan,  # the replica nearest its limit
            "p99_latency_s": quantile(0.99, sorted(merged.items())),
            "error_ratio": errs / reqs if reqs else math.nan,
            "request_rate": reqs / span,
            "gc_pause_s": sum(r[2] for r in rows) / span,
        }
        out.extend(model.Sample(t=t, service=service, metric=m, value=v)
                   for m, v in values.items())
    return out


class Scraper:
    """Keeps a short history of snapshots per replica and turns each tick into samples.

    Implements `ports.Feed` for the controller.
    """

    name = "scrape"
    kinds = frozenset({model.SignalKind.METRICS})

    def __init__(self, targets: Callable[[], Iterable[ports.Target]], *, window_s: float = 10.0,
                 timeout_s: float = 2.0) -> None:
        self.targets = targets
        self.window_s = window_s
        self.history: dict[str, collections.deque[Snapshot]] = {}
        self.failures: dict[str, str] = {}
        self._http = httpx.AsyncClient(timeout=timeout_s)

    async def close(self) -> None:
        await self._http.aclose()

    async def _one(self, target: ports.Target, t: float) -> None:
        try:
            r = await self._http.get(target.url)
            r.raise_for_status()
            snap = parse(r.text, t)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            self.failures[target.replica] = f"{target.url}: {exc}"
            return
        self.failures.pop(target.replica, None)
        hist = self.history.setdefault(target.replica, collections.deque())
        hist.append(snap)
        while hist and hist[0].t < t - 2 * self.window_s:
            hist.popleft()

    async def scrape(self, t: float) -> list[model.Sample]:
        targets = {tg.replica: tg for tg in self.targets()}
        for gone in set(self.history) - set(targets):
            del self.history[gone]
        await asyncio.gather(*(self._one(tg, t) for tg in targets.values()))
        return derive(self.history, targets, t, self.window_s)

    async def collect(self, now: float) -> ports.Collected:
        return ports.Collected(samples=tuple(await self.scrape(now)))
