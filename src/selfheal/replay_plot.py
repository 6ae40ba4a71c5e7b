"""The picture of `selfheal detect --plot`: one SVG per series that had an episode reported,
on one HTML page, so a person sees at a glance what would have paged and what was excused.

Each picture is the series (its min-max band per pixel column, so a one-sample spike stays
visible), the reported episodes as shaded spans (red: its service's finding would open an
incident; orange: reported, no incident; grey: expected, inside a change's settle window or a
maintenance window) and the changes to its service as dashed blue lines.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from selfheal import model, replay, svg

WIDTH = 960
TOP = 140
MARGIN = 8
HEIGHT = 2 * MARGIN + 18 + TOP + 14
MAX_PLOTS = 60
"""Series drawn at most (those with the most pages first); the rest are named."""


def when(t: float) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _colour(e: replay.Episode) -> str:
    return "#bbbbbb" if e.expected else "#e04040" if e.opens_incident else "#f0a030"


def series_svg(key: tuple[str, str], times: np.ndarray, values: np.ndarray,
               episodes: Sequence[replay.Episode], changes: Sequence[model.Change]) -> str:
    n = max(len(values), 1)
    plot_w = WIDTH - 2 * MARGIN
    top0 = MARGIN + 18

    def col(i: float) -> float:
        return MARGIN + plot_w * i / n

    def at(t: float) -> float:
        return float(np.searchsorted(times, t, side="left"))

    finite = values[np.isfinite(values)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    span = vmax - vmin or 1.0

    def row_y(v: np.ndarray) -> np.ndarray:
        return top0 + TOP - (v - vmin) / span * TOP

    lo, hi, first = svg.envelope(values, plot_w)
    xs = np.array([col(i) for i in first])
    band_x, band_y = np.r_[xs, xs[::-1]], np.r_[row_y(hi), row_y(lo)[::-1]]
    pages = sum(e.opens_incident and not e.expected for e in episodes)
    title = (f"{key[0]} / {key[1]}: {len(episodes)} episode(s) reported, {pages} would open "
             f"an incident; {vmin:.4g} to {vmax:.4g}")
    out = [
        *svg.opening(WIDTH, HEIGHT, MARGIN, title),
    ]
    for e in episodes:
        a, b = col(at(e.first.started_at)), col(at(e.last_t) + 1)
        tip = (f"{when(e.first.started_at)}: {e.first.explanation}"
               + (f" ({e.reason})" if e.reason and e.reason not in e.first.explanation else ""))
        out.append(
            f'<rect class="episode" x="{a:.1f}" y="{top0}" width="{max(b - a, 1.5):.1f}" '
            f'height="{TOP}" fill="{_colour(e)}" fill-opacity="0.45">'
            f"<title>{html.escape(tip)}</title></rect>")
    for c in changes:
        x = col(at(c.t))
        out.append(
            f'<line class="change" x1="{x:.1f}" x2="{x:.1f}" y1="{top0}" y2="{top0 + TOP}" '
            f'stroke="#3050d0" stroke-dasharray="4 3"><title>{html.escape(when(c.t))} '
            f"{html.escape(c.kind)} {html.escape(c.to_version or c.what)}</title></line>")
    out.append(f'<path class="series" d="{svg.path_d(band_x, band_y)} Z" fill="#3060a0" '
               'stroke="#3060a0" stroke-width="0.8"/>')
    out.append(f'<text x="{MARGIN}" y="{HEIGHT - 4}" fill="#666">{when(float(times[0]))}'
               f'</text><text x="{WIDTH - MARGIN}" y="{HEIGHT - 4}" fill="#666" '
               f'text-anchor="end">{when(float(times[-1]))}</text>')
    out.append("</svg>")
    return "\n".join(out)


def write(path: Path, samples: replay.Samples, result: replay.Result,
          changes: Sequence[model.Change]) -> int:
    """Write the page to `path` (through a temporary file, so a failed write leaves no half
    page); returns the number of series drawn."""
    times = np.array([t for t, _ in samples.ticks])
    by_series: dict[tuple[str, str], list[replay.Episode]] = {}
    for e in result.episodes:
        by_series.setdefault((e.first.service, e.first.metric), []).append(e)
    ranked = sorted(by_series, key=lambda k: (-sum(e.opens_incident for e in by_series[k]),
                                              -len(by_series[k]), k))
    drawn = ranked[:MAX_PLOTS]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<title>selfheal detect</title>",
        "<style>body{font-family:sans-serif;margin:1em}svg{display:block;margin:4px 0 16px}"
        ".k{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px}</style>",
        "</head><body>",
        f"<h1>What selfheal would have reported: {result.series} series, {result.ticks} "
        f"ticks</h1>",
        f"<p>{when(result.first_t)} to {when(result.last_t)} UTC: {len(result.episodes)} "
        f"episodes reported, {result.incidents} incident(s) opened.",
        "<span class='k' style='background:#e04040'></span>would open an incident"
        "<span class='k' style='background:#f0a030'></span>reported, no incident"
        "<span class='k' style='background:#bbbbbb'></span>expected (a change or "
        "maintenance window)<span class='k' style='border-top:2px dashed #3050d0'></span>"
        "a change. Hover a span for the explanation.</p>",
    ]
    for key in drawn:
        values = np.array([tick.get(key, np.nan) for _, tick in samples.ticks])
        mine = [c for c in changes if c.service in (key[0], "*")]
        parts.append(series_svg(key, times, values, by_series[key], mine))
    if len(ranked) > len(drawn):
        rest = ", ".join(f"{s}/{m}" for s, m in ranked[len(drawn):])
        parts.append(f"<p>Not drawn ({len(ranked) - len(drawn)}): {html.escape(rest)}</p>")
    if not ranked:
        parts.append("<p>Nothing was reported.</p>")
    parts.append("</body></html>")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(parts) + "\n", encoding="utf-8")
    tmp.replace(path)
    return len(drawn)
