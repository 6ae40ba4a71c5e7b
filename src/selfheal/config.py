"""The settings object: one value built from the config file and the command line.

The config file is untrusted input, so it is validated here with pydantic (`extra="forbid"`) and
every problem becomes a `ConfigError` naming the file and the field. Nothing reads the
environment at import time; the faces build a `Config` and pass it down.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

import pydantic
import yaml

from selfheal import errors


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


MAX_TICK_S = 300.0
"""The slowest tick (`scrape.interval_s`)."""


class Scrape(_Strict):
    interval_s: float = pydantic.Field(default=1.0, gt=0, le=MAX_TICK_S)
    """Seconds between two ticks. With `sources.prometheus` and unset: Prometheus's scrape
    interval (`selfheal serve` asks it at start)."""
    window_s: float = pydantic.Field(default=10.0, gt=0, le=3600)
    timeout_s: float = pydantic.Field(default=2.0, gt=0, le=60)


class Storage(_Strict):
    url: str | None = None  # default: SQLite at <workdir>/selfheal.db


class Maintenance(_Strict):
    service: str = "*"
    start: float  # Unix seconds
    end: float


class Detect(_Strict):
    settle_s: float = pydantic.Field(default=15.0, ge=0, le=86_400)
    cert_renew_before_s: float = pydantic.Field(default=30 * 86_400.0, gt=0)
    """A certificate this close to expiry opens an incident (renewal is due)."""
    credential_renew_before_s: float = pydantic.Field(default=6 * 3600.0, gt=0)
    """A credential this close to expiry opens an incident (rotation is due)."""
    down_hold_s: float = pydantic.Field(default=3.0, ge=0, le=3600)
    """How long a replica must fail its scrape before `up` counts as an anomaly."""
    report_z: float = pydantic.Field(default=3.0, ge=0, le=100)
    """A firing series is reported once its peak strength stands this many standard
    deviations above the peaks of its past unremarked episodes, or when another signal of its
    service is reported, it breaks its SLO, or it (or its trend, within the hour) reaches its
    limit (0: report every episode)."""
    report_lasting_s: float = pydantic.Field(default=300.0, ge=0, le=86_400)
    """A firing series is also reported once its episode has lasted this long (its ticks
    with a value) and four times longer than the longest routine episode it remembers (that
    memory halves in a week), however tall: a level shift no taller than the series' routine
    spikes (GC pauses) is news when it stays. A nightly job is news by its length on its
    first night and routine after. Off at a tick over a fifth of this (60 s). 0: by strength
    alone."""
    season: Literal["weekly", "daily", "off"] = "weekly"
    """What each series' baseline learns of its rhythm: `weekly` a profile of the level by
    hour of the day plus what the hour of the week adds (Saturday nights), `daily` the first
    alone, `off` neither. The profiles enter the baseline from the series' second day, as far
    as they have predicted it better than a flat level (the weekly part: better than the
    daily profile alone): a series without a rhythm keeps a flat baseline."""
    save_state_s: float = pydantic.Field(default=300.0, ge=0, le=86_400)
    """How often what the detectors learned (each series' daily and weekly profile, its
    routine episodes by hour) is saved to the store, and read back at the next start, so a
    restart keeps each series' rhythm; it is saved at shutdown too. 0: never saved (a restart
    rebuilds the detectors from Prometheus's history, `history_s`, or without Prometheus from
    the last 10 minutes of samples)."""
    forget_after_s: float = pydantic.Field(default=14 * 86_400.0, ge=0, le=366 * 86_400.0)
    """A series with no value for this long is dropped from the detectors and their saved
    state, with what they learned of it (it starts afresh if it comes back), so a fleet whose
    services come and go does not grow them without end. 0: never dropped."""
    history_s: float = pydantic.Field(default=7 * 86_400.0, ge=0, le=35 * 86_400.0)
    """At a start with no saved state (the first, or after `season` changed), the detectors
    learn this much of Prometheus's history (`sources.prometheus`) before watching, so the
    first day does not report the daily rhythm as anomalous. 7 days: each hour of the week
    once. 0: not read (the detectors learn from what they watch)."""
    history_step_s: float | None = pydantic.Field(default=None, ge=0.1, le=3600)
    """The spacing of the history read at a first start; by default the tick
    (`scrape.interval_s`). A spacing unlike the tick reads nothing: the level's, the noise's
    and the report gate's memories are counted in ticks, and learned at one spacing they
    misjudge values at another. At most 100,800 ticks are read (a week at 6 s, 28 hours at
    1 s)."""
    min_scale: dict[str, float] = pydantic.Field(default_factory=dict)
    """metric -> the smallest deviation worth one standard deviation (the noise floor of a
    flat series), over the defaults (error_ratio 0.02, p99_latency_s 0.005 s, request_rate 1,
    rss_bytes 1 MiB, gc_pause_s 0.005). The defaults suit rates over ~10 s windows, where one
    failed request in 200 moves the error ratio by half a point; series averaged over minutes
    are far smoother, and a lower floor lets a jump page at its first sample."""
    limits: dict[str, float] = pydantic.Field(default_factory=dict)
    """metric -> the hard limit of every service's series of that metric (a memory limit, a
    disk's size), over the default (rss_bytes 512 MiB): a trend that would reach it within
    `limit_warning_s` is reported, however slow it looks, and the report says in how many
    minutes. Set it to your services' memory limit (or let Prometheus give each service's:
    `sources.prometheus.limit_queries`): a slow leak far from a limit it will not reach soon
    is reported only once it moves its series by 25% in 10 minutes."""
    limit_warning_s: float = pydantic.Field(default=3600.0, ge=60, le=7 * 86_400)
    """A steady trend is reported once it would reach its limit within this time."""
    growth_rel: float = pydantic.Field(default=0.1, ge=0, le=10)
    """A series of a metric in `limits` whose limit is unknown, or one it is already past
    (so no time to the limit can be forecast), is reported once when it rises steadily, over
    at least 5 hours and against the same hours of the day before, by this fraction of its
    level (0.1: 10%; 0: never). Measured at a 60 s tick, a 1 GiB service leaking 5% an hour
    with no limit is reported 5 hours in."""
    slo: dict[str, float] = pydantic.Field(default_factory=dict)
    """metric -> SLO bound of every service's series of that metric (a ceiling; a floor for a
    metric where only a fall is bad, like `up`): an anomaly beyond it is reported at once,
    never held, gated or `expected`."""

    @pydantic.field_validator("season", mode="before")
    @classmethod
    def _yaml_off(cls, v: object) -> object:
        # YAML 1.1 reads a bare `off` as false
        return "off" if v is False else v

    @pydantic.field_validator("slo")
    @classmethod
    def _finite_bounds(cls, v: dict[str, float]) -> dict[str, float]:
        for metric, bound in v.items():
            if not math.isfinite(bound):
                raise ValueError(f"the SLO bound of {metric} must be a finite number")
        return v

    @pydantic.field_validator("limits", "min_scale")
    @classmethod
    def _positive(cls, v: dict[str, float], info: pydantic.ValidationInfo) -> dict[str, float]:
        what = {"limits": "limit", "min_scale": "noise floor"}[info.field_name or ""]
        for metric, value in v.items():
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"the {what} of {metric} must be a positive number")
        return v


class Investigate(_Strict):
    patience_s: float = pydantic.Field(default=20.0, ge=0, le=3600)
    """How long after an incident opens an unsure diagnosis keeps looking before a human
    gets it (0: hand it over at once)."""
    retry_s: float = pydantic.Field(default=3.0, gt=0, le=600)
    """How often it looks again meanwhile."""


class Verify(_Strict):
    canary_observe_s: float = pydantic.Field(default=8.0, gt=0, le=3600)
    observe_s: float = pydantic.Field(default=10.0, gt=0, le=3600)
    extra_looks: int = pydantic.Field(default=1, ge=0, le=5)
    """Failed verifications get this many more `observe_s` windows before the undo."""
    latency_factor: float = pydantic.Field(default=1.5, ge=1.0)
    latency_slack_s: float = pydantic.Field(default=0.010, ge=0)
    slope_slack_bytes_s: float = pydantic.Field(default=400_000.0, ge=0)


class Demo(_Strict):
    baseline_s: float = pydantic.Field(default=25.0, ge=5, le=600)
    rps: float = pydantic.Field(default=20.0, gt=0, le=200)
    replicas: int = pydantic.Field(default=2, ge=2, le=8)
    timeout_s: float = pydantic.Field(default=170.0, ge=30, le=3600)


DEFAULT_PROMQL: dict[str, str] = {
    "rss_bytes": 'max by (service) (process_resident_memory_bytes{service!=""})',
    "p99_latency_s": "histogram_quantile(0.99, sum by (le, service) "
                     "(rate(shop_request_duration_seconds_bucket[{window}])))",
    "error_ratio": '(sum by (service) (rate(shop_requests_total{code=~"5.."}[{window}])) '
                   "or sum by (service) (rate(shop_requests_total[{window}])) * 0) "
                   "/ sum by (service) (rate(shop_requests_total[{window}]))",
    "request_rate": "sum by (service) (rate(shop_requests_total[{window}]))",
    "gc_pause_s": "sum by (service) (rate(python_gc_pause_seconds_sum[{window}]))",
    "up": "avg by (service) (up{service!=\"\"})",
    "cert_ttl_s": "min by (service) (shop_not_after_timestamp_seconds{kind=\"certificate\"})"
                  " - time()",
    "credential_ttl_s": "min by (service) (shop_not_after_timestamp_seconds"
                        "{kind=\"credential\"}) - time()",
}
"""One PromQL query per derived signal; `{window}` is replaced by `rate_window`. Each query
must return one series per service, labelled by `service_label`."""

DEFAULT_LIMIT_PROMQL: dict[str, str] = {
    "rss_bytes": "min by (service) ((container_spec_memory_limit_bytes{container!=\"\", "
                 "container!=\"POD\"} > 0) * on (namespace, pod, container) group_left (service) "
                 "(0 * process_resident_memory_bytes{service!=\"\"} + 1))",
}
"""One PromQL query per signal whose value must stay below a per-service limit: the memory
limit cAdvisor reports for the container whose memory `rss_bytes` reads (matched on its
namespace, pod and container labels, which also give it its service; a sidecar's limit is not
the app's, and 0, no limit, is left out). A service the query does not return keeps
`detect.limits`."""


_RATE_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class PrometheusSource(_Strict):
    url: str = pydantic.Field(pattern=r"^https?://")
    queries: dict[str, str] = pydantic.Field(default_factory=lambda: dict(DEFAULT_PROMQL))
    service_label: str = "service"
    rate_window: str = pydantic.Field(default="15s", pattern=r"^[0-9]+(ms|s|m|h)$")
    """The range of rate() in the queries. Unset: 4 scrapes of Prometheus's usual scrape
    interval, at least 15s (`selfheal serve` asks it at start)."""
    step_s: float = pydantic.Field(default=5.0, gt=0, le=3600)
    timeout_s: float = pydantic.Field(default=5.0, gt=0, le=120)
    retries: int = pydantic.Field(default=2, ge=0, le=10)
    backoff_s: float = pydantic.Field(default=0.5, ge=0, le=60)
    limit_queries: dict[str, Annotated[str, pydantic.StringConstraints(min_length=1)]] = \
        pydantic.Field(default_factory=lambda: dict(DEFAULT_LIMIT_PROMQL))
    """Signal -> a PromQL query giving each service's limit of it (its memory limit), read at
    start and every `limit_refresh_s`; over `detect.limits` for the services it returns."""
    limit_refresh_s: float = pydantic.Field(default=300.0, ge=1, le=86400)

    @property
    def watched_limit_queries(self) -> dict[str, str]:
        """The limit queries of the signals `queries` reads (a default one of a signal left
        out of `queries` is not asked)."""
        return {m: q for m, q in self.limit_queries.items() if m in self.queries}

    @pydantic.model_validator(mode="after")
    def _limits_of_signals(self) -> PrometheusSource:
        if "limit_queries" in self.model_fields_set:
            unknown = sorted(set(self.limit_queries) - set(self.queries))
            if unknown:
                raise ValueError(f"limit_queries names {', '.join(unknown)}, not a signal of "
                                 f"queries ({', '.join(sorted(self.queries))})")
        return self

    @property
    def rate_window_s(self) -> float:
        """`rate_window` in seconds."""
        unit = next(u for u in ("ms", "s", "m", "h") if self.rate_window.endswith(u))
        return int(self.rate_window[: -len(unit)]) * _RATE_UNITS[unit]


class AlertmanagerSource(_Strict):
    enabled: bool = False
    service_label: str = "service"
    """The alert label that names the affected service (falls back to `job`)."""


class OtlpSource(_Strict):
    enabled: bool = False


class Sources(_Strict):
    prometheus: PrometheusSource | None = None
    alertmanager: AlertmanagerSource = pydantic.Field(default_factory=AlertmanagerSource)
    otlp: OtlpSource = pydantic.Field(default_factory=OtlpSource)


class Serve(_Strict):
    host: str = "127.0.0.1"
    port: int = pydantic.Field(default=8765, ge=0, le=65535)
    body_limit_bytes: int = pydantic.Field(default=4 * 1024 * 1024, gt=0, le=1024 ** 3)


class PlatformSettings(_Strict):
    kind: Literal["none"] = "none"
    """`none`: observe only; selfheal diagnoses and reports but has nothing to act on."""
    services: dict[str, list[str]] = pydantic.Field(default_factory=dict)
    """The services to watch and whom each calls (the topology diagnosis reasons over)."""


class Diagnose(_Strict):
    """Overrides of `selfheal.diagnose.Settings` (unset: its default), the same for every
    incident; `selfheal.diagnose.settings_from` turns this section into the one Settings value.
    """

    metric_z_threshold: float | None = pydantic.Field(default=None, gt=0, le=100)
    metric_starved_self: float | None = pydantic.Field(default=None, ge=0, le=1)
    metric_fault_share: float | None = pydantic.Field(default=None, gt=0, le=1)
    log_shift_ratio: float | None = pydantic.Field(default=None, gt=1, le=1000)
    log_named_service_discount: float | None = pydantic.Field(default=None, ge=0, le=1)
    trace_ratio_threshold: float | None = pydantic.Field(default=None, gt=1, le=1000)
    behaviour_p_value: float | None = pydantic.Field(default=None, gt=0, lt=1)
    trace_relative_drop_z: float | None = pydantic.Field(default=None, gt=0, le=100)
    health_down_samples: int | None = pydantic.Field(default=None, ge=1, le=600)
    health_change_margin_s: float | None = pydantic.Field(default=None, ge=0, le=86_400)
    support_strength: float | None = pydantic.Field(default=None, gt=0, le=1)
    contradiction_strength: float | None = pydantic.Field(default=None, gt=0, le=1)
    min_independent_kinds: int | None = pydantic.Field(default=None, ge=1, le=5)
    min_probability: float | None = pydantic.Field(default=None, ge=0, le=1)
    temperature: float | None = pydantic.Field(default=None, gt=0, le=10)
    null_score: float | None = pydantic.Field(default=None, ge=0, le=10)


class Reasoner(_Strict):
    """An OpenAI-compatible model that proposes hypotheses and plans (off unless enabled).

    The API key is read once at start-up from `api_key_file` or the environment variable named
    by `api_key_env` (never from this file, never logged); a local server needs neither.
    """

    enabled: bool = False
    kind: Literal["openai"] = "openai"
    base_url: str = pydantic.Field(default="http://127.0.0.1:8080/v1", pattern=r"^https?://")
    model: str = pydantic.Field(default="", max_length=200)
    api_key_file: Path | None = None
    api_key_env: str | None = pydantic.Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timeout_s: float = pydantic.Field(default=30.0, gt=0, le=600)
    max_tokens_per_incident: int = pydantic.Field(default=4000, ge=256, le=1_000_000)
    max_answer_tokens: int = pydantic.Field(default=768, ge=64, le=100_000)
    temperature: float = pydantic.Field(default=0.0, ge=0.0, le=2.0)

    @pydantic.model_validator(mode="after")
    def _needs_model(self) -> Reasoner:
        if self.enabled and not self.model:
            raise ValueError("an enabled reasoner needs `model`")
        return self


class Config(_Strict):
    workdir: Path = Path(".selfheal")
    policy: Path | None = None  # default: the built-in policy
    scrape: Scrape = pydantic.Field(default_factory=Scrape)
    storage: Storage = pydantic.Field(default_factory=Storage)
    detect: Detect = pydantic.Field(default_factory=Detect)
    maintenance: list[Maintenance] = pydantic.Field(default_factory=list)
    investigate: Investigate = pydantic.Field(default_factory=Investigate)
    verify: Verify = pydantic.Field(default_factory=Verify)
    demo: Demo = pydantic.Field(default_factory=Demo)
    sources: Sources = pydantic.Field(default_factory=Sources)
    serve: Serve = pydantic.Field(default_factory=Serve)
    platform: PlatformSettings = pydantic.Field(default_factory=PlatformSettings)
    reasoner: Reasoner = pydantic.Field(default_factory=Reasoner)
    diagnose: Diagnose = pydantic.Field(default_factory=Diagnose)

    def signal_window_s(self) -> float:
        """How far back one sample of a rate or a p99 looks: the embedded scraper's sliding
        window, or Prometheus's rate window when it is longer. A change shows fully in the
        signals only this long after it."""
        prom = self.sources.prometheus
        return max(self.scrape.window_s, prom.rate_window_s if prom is not None else 0.0)

    def database_url(self) -> str:
        return self.storage.url or f"sqlite:///{self.workdir / 'selfheal.db'}"


def parse(text: str, source: str) -> Config:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "YAML"
        raise errors.ConfigError(source, where, "not valid YAML: "
                                 f"{getattr(exc, 'problem', None) or exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise errors.ConfigError(source, "", "the config must be a YAML mapping")
    try:
        return Config.model_validate(raw)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise errors.ConfigError(source, field, first["msg"]) from exc


def load(path: Path | None) -> Config:
    """The config from `path`, or the defaults when no file is given."""
    if path is None:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise errors.ConfigError(str(path), "", f"cannot read the config file: "
                                 f"{exc.strerror or exc}") from exc
    return parse(text, str(path))
