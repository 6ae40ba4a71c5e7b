"""Pictures of a NAB run: one SVG per file and an index page ranked by what each file costs.

`selfheal bench nab --out DIR` writes them under `DIR/plots/`. Each picture shows the series with
the labelled windows (green) and the probation period (grey), the detector's score below it with
the corpus-wide threshold, and every detection at that threshold: the first one of each window
(green) and each false positive (red). It is where one sees *why* a file loses points, which a
table of numbers does not show. Plain SVG and HTML written here: no plotting dependency.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from selfheal import svg
from selfheal.bench import nab, nab_score

F64 = npt.NDArray[np.float64]

WIDTH = 960
TOP = 150
GAP = 14
BOTTOM = 60
MARGIN = 8
HEIGHT = 2 * MARGIN + TOP + GAP + BOTTOM + 18


def file_svg(f: nab.NabFile, scores: F64, fs: nab_score.FileScore, threshold: float) -> str:
    """One file's picture: series, windows, probation, score, threshold and detections."""
    n = max(len(f.values), 1)
    plot_w = WIDTH - 2 * MARGIN

    def col(i: float) -> float:
        return MARGIN + plot_w * i / n

    vals = np.asarray(f.values, dtype=np.float64)
    finite = vals[np.isfinite(vals)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    span = vmax - vmin or 1.0
    top0 = MARGIN + 18

    def row_y(v: F64) -> F64:
        return top0 + TOP - (v - vmin) / span * TOP

    bot0 = top0 + TOP + GAP

    def score_y(v: F64) -> F64:
        return bot0 + BOTTOM - np.clip(v, 0.0, 1.0) * BOTTOM

    lo, hi, first = svg.envelope(vals, plot_w)
    xs = np.array([col(i) for i in first])
    # the envelope as one closed band: max forward, min backward
    band_x = np.r_[xs, xs[::-1]]
    band_y = np.r_[row_y(hi), row_y(lo)[::-1]]
    _, s_hi, s_first = svg.envelope(np.asarray(scores, dtype=np.float64), plot_w)
    s_xs = np.array([col(i) for i in s_first])
    title = (
        f"{f.name}: raw {fs.raw:+.2f} ({fs.tp} of {fs.windows} windows, {fs.fp} false "
        f"positives) at threshold {threshold:.4f}"
    )
    out = [
        *svg.opening(WIDTH, HEIGHT, MARGIN, title),
        f'<rect class="probation" x="{col(0):.1f}" y="{top0}" '
        f'width="{col(f.probation) - col(0):.1f}" height="{TOP + GAP + BOTTOM}" fill="#eeeeee"/>',
    ]
    for a, b in f.windows:
        out.append(
            f'<rect class="window" x="{col(a):.1f}" y="{top0}" '
            f'width="{max(col(b + 1) - col(a), 1.0):.1f}" height="{TOP + GAP + BOTTOM}" '
            'fill="#d8f0d8"/>'
        )
    out.append(
        f'<path class="series" d="{svg.path_d(band_x, band_y)} Z" fill="#3060a0" '
        'stroke="#3060a0" stroke-width="0.8"/>'
    )
    out.append(
        f'<path class="score" d="{svg.path_d(s_xs, score_y(s_hi))}" fill="none" '
        'stroke="#806020" stroke-width="0.8"/>'
    )
    ty = float(score_y(np.array([threshold]))[0])
    out.append(
        f'<line class="threshold" x1="{MARGIN}" x2="{WIDTH - MARGIN}" y1="{ty:.1f}" '
        f'y2="{ty:.1f}" stroke="#806020" stroke-dasharray="4 3"/>'
    )
    covered = np.zeros(len(f.values), dtype=bool)
    for a, b in f.windows:
        covered[a : b + 1] = True
    firsts = {
        next(int(i) for i in fs.detections if a <= i <= b)
        for (a, b), onset in zip(f.windows, fs.onsets, strict=True)
        if onset is not None
    }
    for i in fs.detections:
        kind = "tp" if i in firsts else "fp" if not covered[i] else None
        if kind is None:
            continue  # a later detection inside a window: NAB counts only the first
        color = "#20a020" if kind == "tp" else "#d02020"
        out.append(
            f'<line class="{kind}" x1="{col(i + 0.5):.1f}" x2="{col(i + 0.5):.1f}" '
            f'y1="{top0}" y2="{bot0 + BOTTOM}" stroke="{color}" stroke-width="1.2"/>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write(
    out_dir: Path,
    files: Sequence[nab.NabFile],
    scores: Sequence[F64],
    profile: nab_score.ProfileScore,
    breakdown: Sequence[nab_score.FileScore],
) -> Path:
    """Write `<out>/plots/<category>/<file>.svg` for every file and `<out>/plots/index.html`,
    the files ranked by what they cost (worst first). Returns the index page's path."""
    root = Path(out_dir) / "plots"
    rows = []
    for f, s, fs in zip(files, scores, breakdown, strict=True):
        rel = Path(f.name).with_suffix(".svg")
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(file_svg(f, s, fs, profile.threshold))
        rows.append((fs, rel))
    rows.sort(key=lambda r: -r[0].loss)
    lines = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>NAB {html.escape(profile.profile)}: {profile.normalized:.2f}</title>",
        "<style>body{font-family:sans-serif;margin:1em}td,th{padding:2px 8px;text-align:right}"
        "td:first-child{text-align:left}img{display:block;margin:4px 0 16px}</style>",
        "</head><body>",
        f"<h1>NAB, profile {html.escape(profile.profile)}: {profile.normalized:.2f}</h1>",
        f"<p>Threshold {profile.threshold:.4f}: {profile.tp} windows found, {profile.fn} missed, "
        f"{profile.fp} false-positive rows. Files ranked by what they cost against a perfect "
        "detector (one point per window).</p>",
        "<table><tr><th>file</th><th>windows</th><th>found</th><th>false positives</th>"
        "<th>false-positive cost</th><th>raw</th><th>loss</th></tr>",
    ]
    for fs, _ in rows:
        lines.append(
            f"<tr><td><a href='#{html.escape(fs.name)}'>{html.escape(fs.name)}</a></td>"
            f"<td>{fs.windows}</td><td>{fs.tp}</td><td>{fs.fp}</td><td>{fs.fp_cost:.2f}</td>"
            f"<td>{fs.raw:+.2f}</td><td>{fs.loss:.2f}</td></tr>"
        )
    lines.append("</table>")
    for fs, rel in rows:
        lines.append(
            f"<h3 id='{html.escape(fs.name)}'>{html.escape(fs.name)}</h3>"
            f"<img src='{html.escape(rel.as_posix())}' alt='{html.escape(fs.name)}'>"
        )
    lines.append("</body></html>")
    index = root / "index.html"
    index.write_text("\n".join(lines) + "\n")
    return index
