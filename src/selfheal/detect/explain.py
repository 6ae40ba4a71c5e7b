"""Human sentences for anomalies: values in their units, slopes, time to the limit.

Called by `Detector` for the few series that fire; pure string formatting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

_MIB = 1024.0 * 1024.0


def fmt(metric: str, value: float) -> str:
    """A value of `metric` in the unit a human reads (MiB, ms, %)."""
    if not math.isfinite(value):
        return str(value)
    if metric.endswith("_bytes"):
        return _num(value / _MIB, ".1f") + " MiB"
    if metric.endswith("_ratio"):
        return _num(value * 100, ".2f") + "%"
    if metric.endswith("_s") and abs(value) < 10:
        return f"{value * 1000:.1f} ms"
    return f"{value:.4g}"


def _num(value: float, spec: str) -> str:
    """`value` as `spec`, or in four significant digits when it is too big to read so (a
    broken exporter's 1e300 would be a 300-digit number)."""
    return f"{value:{spec}}" if abs(value) < 1e9 else f"{value:.4g}"


def fmt_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def rate(metric: str, per_s: float) -> str:
    """A slope in the unit a human reads: per second, or per minute or hour when per second
    it would read as nothing ("0.0 MiB/s" for a leak of 5% an hour)."""
    text = ""
    for unit, seconds in (("s", 1.0), ("min", 60.0), ("h", 3600.0)):
        value = fmt(metric, per_s * seconds)
        text = f"{value}/{unit}"
        if any(c in "123456789" for c in value.split(" ")[0]):
            return text
    return text


def trend(
    metric: str, slope_per_s: float, baseline: float, observed: float, *,
    limit: float | None, ttl_s: float,
) -> str:
    verb = "rising" if slope_per_s > 0 else "falling"
    text = (
        f"{metric} {verb} {rate(metric, abs(slope_per_s))} against a baseline of "
        f"{fmt(metric, baseline)} (now {fmt(metric, observed)})"
    )
    if limit is not None and math.isfinite(ttl_s):
        text += f"; ~{fmt_duration(ttl_s)} to the {fmt(metric, limit)} limit"
    return text


def growth(metric: str, service: str, first: float, last: float, span_s: float,
           observed: float, *, limit: float | None) -> str:
    """A steady rise of a series with no usable limit, from the mean of its first hour to
    that of its last ("rss_bytes of web rose 31% in 6.0 h, steadily (+5.2%/h), from 1024.0
    MiB to 1342.5 MiB (now 1350.0 MiB); no limit is known for it, so no time to OOM")."""
    level = abs(first) if first else 1.0
    rel = (last - first) / level * 100
    text = (f"{metric} of {service} rose {rel:.0f}% in {fmt_duration(span_s)}, steadily "
            f"({rel / max(span_s / 3600, 1e-9):+.1f}%/h), "
            f"from {fmt(metric, first)} to {fmt(metric, last)} (now {fmt(metric, observed)})")
    what = "OOM" if "rss" in metric or "mem" in metric else "the limit"
    if limit is None or not math.isfinite(limit):
        return text + f"; no limit is known for it, so no time to {what}"
    return (text + f"; it is past the {fmt(metric, limit)} limit, which cannot be its own, "
            f"so no time to {what}")


def _no_scale(metric: str) -> str:
    return (f"is flat between its moves, its noise scale is next to nothing beside them, and "
            f"detect.min_scale sets no floor for {metric}: its moves cannot be ranked, and one "
            f"learned as routine can hide a larger one; set detect.min_scale.{metric} to the "
            f"smallest move worth one standard deviation")


def unranked_note(service: str, metric: str) -> str:
    """What to do about a series whose moves no noise scale measures, said once
    (`Detector.take_unranked`)."""
    return f"{service}/{metric} {_no_scale(metric)}"


def level(metric: str, detector: str, baseline: float, observed: float, z: float,
          *, unranked: bool = False, lasted: tuple[float, float] | None = None) -> str:
    """A spike or level shift in words; for a series whose moves no noise scale measures
    (`unranked`: `Detector.take_unranked`), also what to set so that they can be ranked;
    with `lasted` (seconds so far, the longest routine episode the series remembers), why
    an episode no taller than its routine ones is news: how long it has lasted."""
    verb = "above" if observed >= baseline else "below"
    what = "spike" if detector == "spike" else "level shift"
    text = (
        f"{metric} {what}: {fmt(metric, observed)}, {verb} its baseline of "
        f"{fmt(metric, baseline)} by {_num(abs(z), '.1f')} robust standard deviations"
    )
    if lasted is not None:
        seconds, longest = lasted
        text += (f", for {fmt_duration(seconds)} now: far longer than its routine episodes "
                 f"(the longest lately {fmt_duration(longest)}), though no taller")
    if unranked:
        text += f" (the series {_no_scale(metric)})"
    return text


def limits(metric: str, changed: Mapping[str, tuple[float | None, float | None]],
           refused: Mapping[str, tuple[float, float]], source: str) -> str:
    """What `Detector.set_limits` did, in one line ("rss_bytes limits from prometheus: auth
    2048.0 MiB (was 512.0 MiB), ...; not used, ...: web's 0.5 (0.0 MiB), now 300.0 MiB")."""
    def one(value: float | None) -> str:
        return "none" if value is None else fmt(metric, value)

    def listed(items: list[str]) -> str:
        more = f" and {len(items) - 5} more" if len(items) > 5 else ""
        return ", ".join(items[:5]) + more

    parts = []
    if changed:
        parts.append(listed([f"{svc} {one(new)} (was {one(old)})"
                             for svc, (old, new) in sorted(changed.items())]))
    if refused:
        parts.append("not used, as the value is already past it (check the query's unit): "
                     + listed([f"{svc}'s {lim:.15g} ({one(lim)}), now {one(value)}"
                               for svc, (lim, value) in sorted(refused.items())]))
    return f"{metric} limits from {source}: {'; '.join(parts)}"


def no_limits(metric: str, watched: int, fallback: float | None, source: str) -> str:
    """A limit query that gave none of the services watched (a missing label, most often)."""
    then = f"the {fmt(metric, fallback)} of detect.limits" if fallback is not None else "none"
    return (f"{metric} limits from {source}: the limit query gave none of the {watched} "
            f"service(s) watched, so their limit is {then} (is `service` on its series?)")
