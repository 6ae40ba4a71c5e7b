"""Plain SVG drawing shared by the pictures selfheal writes (`bench nab --out`, `selfheal detect
--plot`): no plotting dependency, and a long series still drawn one column per pixel."""

from __future__ import annotations

import html

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


def envelope(y: F64, buckets: int) -> tuple[F64, F64, F64]:
    """Min and max of `y` per bucket of columns (so a one-row spike stays visible), and each
    bucket's first row."""
    n = len(y)
    edges = np.linspace(0, n, min(buckets, n) + 1).astype(np.int64)
    lo = np.empty(len(edges) - 1)
    hi = np.empty(len(edges) - 1)
    for k in range(len(edges) - 1):
        seg = y[edges[k] : max(edges[k + 1], edges[k] + 1)]
        seg = seg[np.isfinite(seg)]
        lo[k], hi[k] = (float(seg.min()), float(seg.max())) if seg.size else (np.nan, np.nan)
    return lo, hi, edges[:-1].astype(np.float64)


def path_d(xs: F64, ys: F64) -> str:
    parts = []
    pen_up = True
    for x, y in zip(xs, ys, strict=True):
        if not np.isfinite(y):
            pen_up = True
            continue
        parts.append(f"{'M' if pen_up else 'L'}{x:.1f},{y:.1f}")
        pen_up = False
    return " ".join(parts)


def opening(width: int, height: int, margin: int, title: str) -> list[str]:
    """The first elements of a picture: the root with its size, the title (also shown on
    hover), a white ground."""
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f"<title>{html.escape(title)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>',
        f'<text x="{margin}" y="{margin + 10}">{html.escape(title)}</text>',
    ]
