"""The logs investigator: templates mined with drain3, baseline against the incident window.

For each service, one drain3 miner learns the templates of the baseline logs first, then of the
incident window. A template that never appeared in the baseline is new; one whose rate grew by
`log_shift_ratio` has shifted; a service that logged steadily and went quiet is suspicious too.
Error and warning templates weigh more, and the words of a template suggest the fault kind
(`gc`/`heap` a memory problem, `timeout` latency, `exception` errors...). A template that
vanished while the service kept logging marks a code path no longer taken (early return,
exception), the signal Nezha reads as a broken template pair.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Sequence

from drain3 import TemplateMiner
from drain3.masking import MaskingInstruction
from drain3.template_miner_config import TemplateMinerConfig

from selfheal import model
from selfheal.diagnose import base, reconcile
from selfheal.diagnose import window as window_mod

NAME = "logs"

ERROR_LEVELS = frozenset(
    {"ERROR", "ERR", "CRITICAL", "FATAL", "SEVERE", "PANIC", "WARNING", "WARN"}
)
ERROR_WORDS = re.compile(
    r"\b(error|errors|exception|fail(ed|ure)?|panic|refused|timeout|timed out|unavailable)\b",
    re.IGNORECASE,
)

# (pattern, fault) in order: the first match names the fault a template suggests.
FAULT_WORDS: tuple[tuple[re.Pattern[str], model.FaultKind], ...] = (
    (re.compile(r"\b(gc|heap|oom|out of memory|memory)\b", re.I), model.FaultKind.MEMORY_LEAK),
    (re.compile(r"\b(panic|segfault|killed|crash\w*)\b", re.I), model.FaultKind.CRASH),
    (re.compile(r"\b(certificate|x509|tls)\b", re.I), model.FaultKind.CERTIFICATE),
    (
        re.compile(r"\b(credential|unauthori[sz]ed|forbidden|token)\b", re.I),
        model.FaultKind.CREDENTIAL,
    ),
    (
        re.compile(r"\bcache\b.*\b(corrupt\w*|poison\w*|stale|invalid)\b|"
                   r"\b(corrupt\w*|poison\w*|stale|invalid)\b.*\bcache\b", re.I),
        model.FaultKind.CACHE,
    ),
    (
        re.compile(r"\b(pool exhausted|queue (is )?full|too many requests|saturat\w*|"
                   r"overload\w*)\b", re.I),
        model.FaultKind.OVERLOAD,
    ),
    (re.compile(r"\b(timeout|timed out|deadline|slow)\b", re.I), model.FaultKind.LATENCY),
    (re.compile(r"\b(config\w*)\b", re.I), model.FaultKind.CONFIG),
    (ERROR_WORDS, model.FaultKind.ERRORS),
)

_MASKS = (
    MaskingInstruction(r"[0-9a-fA-F]{8}-[0-9a-fA-F-]{27,}", "UUID"),
    MaskingInstruction(r"\b[0-9a-fA-F]{16,}\b", "HEX"),
    MaskingInstruction(r"\d+(\.\d+)?", "NUM"),
)


@dataclasses.dataclass(frozen=True)
class Finding:
    """One template that matters in one service's incident window."""

    template: str
    baseline: int
    incident: int
    new: bool
    error: bool
    strength: float
    fault: model.FaultKind
    what: str
    named: tuple[str, ...] = ()
    """Other services an error template names (where the failure was seen)."""


def _miner(settings: window_mod.Settings) -> TemplateMiner:
    config = TemplateMinerConfig()
    config.drain_sim_th = settings.drain_sim_th
    config.drain_depth = settings.drain_depth
    config.masking_instructions = list(_MASKS)
    config.profiling_enabled = False
    return TemplateMiner(persistence_handler=None, config=config)


def fault_of(text: str) -> model.FaultKind:
    for pattern, fault in FAULT_WORDS:
        if pattern.search(text):
            return fault
    return model.FaultKind.UNKNOWN


_SYMPTOMS = reconcile.GENERIC | {model.FaultKind.ERRORS}
"""What every failing service logs (errors, timeouts): says that something fails, not what."""


def naming(listed: Sequence[Finding]) -> Finding:
    """The finding that names the fault of one evidence of a service's listed findings
    (strongest first).

    The strongest finding, unless it is a bare symptom (errors, a timeout) and another listed
    error line, written at least half as often, names a fault of its own: "HTTP 500" on every
    request with "cache entry corrupt" on every other one is the cache. A warning now and then
    beside the flood ("config value deprecated", "retrying with a fresh token") is not.
    """
    top = listed[0]
    if top.fault not in _SYMPTOMS:
        return top
    for f in listed[1:]:
        if f.fault not in _SYMPTOMS and f.error and 2 * f.incident >= top.incident:
            return f
    return top


def _name_pattern(service: str) -> re.Pattern[str]:
    """A service's name as a whole word (`ts-food-service`, not inside `ts-food-service-x`)."""
    return re.compile(rf"(?<![\w-]){re.escape(service)}(?![\w-])")


def covered_seconds(times: Sequence[float], lo: float, hi: float, bucket: float = 60.0) -> float:
    """How long the log source was actually recording in [lo, hi]: buckets with any line.

    A baseline may be made of disjoint stretches (fault-free data from earlier, and the minutes
    just before the incident); rates are per recorded second, not per second of the range.
    """
    buckets = {int(t // bucket) for t in times if lo <= t <= hi}
    return max(min(len(buckets) * bucket, hi - lo), 1.0)


def service_findings(
    records: Sequence[model.LogRecord],
    window: window_mod.Window,
    settings: window_mod.Settings,
    spans: tuple[float, float] | None = None,
    others: Sequence[str] = (),
) -> tuple[list[Finding], int, int]:
    """Findings for one service's records, with its baseline and incident line counts.

    `spans` are the recorded seconds of the baseline and of the incident window (default: the
    length of each range). `others` are the other services of the system: an error template
    that names one ("No instances available for ts-config-service", "call to cart failed") is
    this service's view of a failure there, and says so in `named` (the topology investigator
    explains it away when the named service is anomalous itself); the named service's name
    does not choose the fault kind (a service called "config" is not a config change).
    """
    named_patterns = [(other, _name_pattern(other)) for other in others]
    miner = _miner(settings)
    counts: dict[str, Counter[int]] = {"base": Counter(), "now": Counter()}
    errors: Counter[int] = Counter()
    for record in sorted(records, key=lambda r: r.t):
        if window_mod.in_range(record.t, window.baseline_start, window.baseline_end):
            part = "base"
        elif window_mod.in_range(record.t, window.start, window.end):
            part = "now"
        else:
            continue
        result = miner.add_log_message(record.message)
        cluster = int(result["cluster_id"])
        counts[part][cluster] += 1
        if record.level.upper() in ERROR_LEVELS:
            errors[cluster] += 1
    n_base, n_now = sum(counts["base"].values()), sum(counts["now"].values())
    base_span, now_span = spans or (
        max(window.baseline_end - window.baseline_start, 1.0),
        max(window.end - window.start, 1.0),
    )
    templates = {c.cluster_id: c.get_template() for c in miner.drain.clusters}
    findings: list[Finding] = []
    for cluster, template in templates.items():
        b, n = counts["base"][cluster], counts["now"][cluster]
        is_error = errors[cluster] > 0 or bool(ERROR_WORDS.search(template))
        named = [other for other, pattern in named_patterns if pattern.search(template)]
        text = template
        for other, pattern in named_patterns:
            text = pattern.sub(" ", text) if other in named else text
        fault = fault_of(text)
        if fault is model.FaultKind.UNKNOWN and is_error:
            fault = model.FaultKind.ERRORS
        if n >= settings.log_min_count and b == 0 and n_base > 0:
            strength = settings.log_new_error_strength if is_error else settings.log_new_strength
            # A handful of new lines is weaker news than a template the service now writes on
            # every request: half the weight at `log_new_half_count` lines.
            strength *= n / (n + settings.log_new_half_count)
            what = f"new template x{n}"
            seen_at = tuple(named) if is_error else ()
            if seen_at:
                what += f" (names {', '.join(seen_at)})"
            findings.append(
                Finding(template, b, n, True, is_error, strength, fault, what, seen_at)
            )
            continue
        if n_base == 0:
            continue  # nothing to compare with: the service logged nothing in the baseline
        rate_base = b / base_span
        rate_now = n / now_span
        expected = rate_base * now_span
        still_busy = n_now * settings.log_shift_ratio >= n_base / base_span * now_span
        if n == 0 and expected >= settings.log_vanish_expected and still_busy and not is_error:
            # A code path that used to log and no longer does while the service keeps
            # logging: an early return or an exception skips it. An error template that
            # vanished is the service failing less, not a fault.
            findings.append(
                Finding(
                    template,
                    b,
                    n,
                    False,
                    is_error,
                    settings.log_vanish_strength,
                    model.FaultKind.ERRORS,
                    f"vanished: 0 lines where ~{expected:.0f} were expected ({b} in baseline)",
                )
            )
            continue
        if n >= settings.log_min_count and rate_now >= settings.log_shift_ratio * max(
            rate_base, 1.0 / base_span
        ):
            strength = settings.log_shift_strength * (1.5 if is_error else 1.0)
            findings.append(
                Finding(
                    template,
                    b,
                    n,
                    False,
                    is_error,
                    min(strength, 1.0),
                    fault,
                    f"rate x{rate_now / max(rate_base, 1.0 / base_span):.1f} ({b} -> {n})",
                    tuple(named) if is_error else (),
                )
            )
    expected_now = n_base / base_span * now_span
    if n_base >= 10 and expected_now >= 10 and n_now * settings.log_shift_ratio < expected_now:
        findings.append(
            Finding(
                "<all>",
                n_base,
                n_now,
                False,
                False,
                settings.log_shift_strength,
                model.FaultKind.HUNG,
                f"went quiet: {n_now} lines where ~{expected_now:.0f} were expected",
            )
        )
    findings.sort(key=lambda f: -f.strength)
    return findings, n_base, n_now


class LogsInvestigator:
    """New, error and shifted drain3 templates per service against its baseline."""

    name = NAME
    kind = model.SignalKind.LOGS

    def investigate(
        self,
        window: window_mod.Window,
        prior: Sequence[model.Evidence],
        settings: window_mod.Settings,
    ) -> tuple[model.Evidence, ...]:
        query = (
            f"per service: drain3 templates (sim {settings.drain_sim_th}, depth "
            f"{settings.drain_depth}) of baseline [{window.baseline_start:.0f}, "
            f"{window.baseline_end:.0f}] vs incident [{window.start:.0f}, {window.end:.0f}]: "
            f"new templates, error templates, rate shifts x{settings.log_shift_ratio}"
        )
        if window.logs is None:
            return (base.no_data(NAME, self.kind, query, "no log data: source unavailable"),)
        by_service: dict[str, list[model.LogRecord]] = {}
        for record in window.logs:
            by_service.setdefault(record.service, []).append(record)
        if not by_service:
            return (base.no_data(NAME, self.kind, query, "no log data: no records in window"),)
        times = [r.t for r in window.logs]
        spans = (
            covered_seconds(times, window.baseline_start, window.baseline_end),
            covered_seconds(times, window.start, window.end),
        )
        out: list[model.Evidence] = []
        quiet: list[str] = []
        services = window.services()
        for service, records in sorted(by_service.items()):
            others = [other for other in services if other != service]
            findings, n_base, n_now = service_findings(
                records, window, settings, spans, others
            )
            if not findings:
                quiet.append(service)
                continue
            top = findings[0]
            # the evidence is the naming line's: its fault, its strength (the flood of symptoms
            # beside it is no stronger proof of that fault), and the services either line names
            cause = naming(findings[:3])
            named = tuple(dict.fromkeys(cause.named + top.named))
            listed = "; ".join(f"{f.what}: {f.template!r}" for f in findings[:3])
            more = f" (+{len(findings) - 3} more)" if len(findings) > 3 else ""
            evidence = model.Evidence(
                investigator=NAME,
                kind=self.kind,
                status=model.EvidenceStatus.OK,
                query=query,
                observation=(
                    f"{service}: {n_base} baseline / {n_now} incident lines; {listed}{more}"
                ),
                service=service,
                fault=cause.fault,
                strength=cause.strength,
            )
            # a template that names other services says so (topology weighs it)
            out.append(base.Names(**vars(evidence), named=named) if named else evidence)
        if not out:
            out.append(
                model.Evidence(
                    investigator=NAME,
                    kind=self.kind,
                    status=model.EvidenceStatus.OK,
                    query=query,
                    observation=f"no new or shifted templates in {', '.join(quiet)}",
                )
            )
        return tuple(out)
