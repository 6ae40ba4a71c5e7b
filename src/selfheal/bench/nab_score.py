"""NAB's scoring rules, implemented from NAB's README: the probation period, the scaled sigmoid
of a detection's place in its window, false positives weighed by their distance after the
window before them, one threshold for the whole corpus swept over every distinct score, and the
three application profiles. `bench.nab` runs the detector; this scores what it gave, per
corpus, per file (what each file costs) and per half of the files (each half at the threshold
chosen on the other: the held-out check).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from selfheal.bench.nab_data import NabFile

F64 = npt.NDArray[np.float64]


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    a_tp: float
    a_fp: float
    a_fn: float


PROFILES = (
    Profile("standard", 1.0, 0.11, 1.0),
    Profile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    Profile("reward_low_FN_rate", 1.0, 0.11, 2.0),
)

@dataclasses.dataclass(frozen=True)
class ProfileScore:
    profile: str
    threshold: float
    raw: float
    normalized: float
    tp: int
    fp: int
    fn: int


def _sigma(y: F64) -> F64:
    return np.where(y > 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * np.minimum(y, 3.0))) - 1.0)


def _fp_weights(f: NabFile, n: int, p: Profile) -> F64:
    """The (negative) weight of a detection at each row outside windows, from the previous
    window: a detection soon after a window costs little, one before the first costs A_FP."""
    idx = np.arange(n)
    fp_w = np.full(n, -p.a_fp)
    for s, e in f.windows:
        w = e - s + 1
        fp_w = np.where(
            idx > e, p.a_fp * _sigma(np.abs(idx - e) / max(w - 1, 1)).astype(np.float64), fp_w
        )
    return fp_w


def _tp_weights(p: Profile, rows: npt.NDArray[np.int64], s: int, e: int) -> F64:
    """The reward of a window [s, e] whose earliest detection is at each of `rows`."""
    sig1 = float(_sigma(np.array([-1.0]))[0])
    return p.a_tp * _sigma(-(e - rows + 1) / (e - s + 1)) / sig1


def _events(f: NabFile, scores: F64, p: Profile) -> tuple[F64, F64, F64, F64]:
    """(values, deltas) of threshold events for one file, plus the count bookkeeping.

    Lowering the threshold below an event's value adds its delta to the raw score: every row
    outside windows adds its false-positive weight; inside a window, each new running maximum
    of the score makes that row the window's earliest detection.
    """
    n = len(scores)
    prob = f.probation
    in_window = np.full(n, -1)
    for k, (s, e) in enumerate(f.windows):
        in_window[s : e + 1] = k
    idx = np.arange(n)
    fp_w = _fp_weights(f, n, p)
    outside = (in_window < 0) & (idx >= prob)
    vals = [scores[outside]]
    deltas = [fp_w[outside]]
    tp_vals = []
    for s, e in f.windows:
        lo = max(s, prob)
        if lo > e:
            continue
        seg = scores[lo : e + 1]
        run_max = np.maximum.accumulate(seg)
        rec = np.flatnonzero(np.r_[True, run_max[1:] > run_max[:-1]])  # record rows, rising
        rows = lo + rec
        v = _tp_weights(p, rows, s, e)
        # lowering the threshold reaches the highest (latest) record first; each earlier
        # record then replaces the later one as the window's earliest detection
        nxt = np.r_[v[1:], -p.a_fn]
        vals.append(seg[rec])
        deltas.append(v - nxt)
        tp_vals.extend(seg[rec].tolist())
    return (
        np.concatenate(vals),
        np.concatenate(deltas),
        np.array(tp_vals),
        np.array([float(len(f.windows))]),
    )


def score(
    files: Sequence[NabFile], scores: Sequence[F64], p: Profile, threshold: float | None = None
) -> ProfileScore:
    """The NAB score of one profile, at the corpus-wide threshold that maximises it.

    With `threshold`, the score at that threshold instead (one chosen on other files: the
    honest reading of a held-out half).
    """
    parts = [_events(f, s, p) for f, s in zip(files, scores, strict=True)]
    vals = np.concatenate([v for v, _, _, _ in parts])
    deltas = np.concatenate([d for _, d, _, _ in parts])
    n_windows = int(sum(float(c[0]) for _, _, _, c in parts))
    base = -p.a_fn * n_windows
    if threshold is not None:
        raw = base + float(deltas[vals >= threshold].sum())
    else:
        order = np.argsort(-vals, kind="stable")
        v_sorted = vals[order]
        cum = base + np.cumsum(deltas[order])
        # evaluate at each distinct value: the last event of each tie group
        last = np.r_[v_sorted[1:] != v_sorted[:-1], True]
        cand_v = v_sorted[last]
        cand_s = cum[last]
        best_i = int(np.argmax(cand_s)) if cand_s.size else -1
        if best_i < 0 or cand_s[best_i] <= base:
            threshold, raw = math.inf, base
        else:
            threshold, raw = float(cand_v[best_i]), float(cand_s[best_i])
    tp = fp = fn = 0
    for f, s in zip(files, scores, strict=True):
        det = (s >= threshold) & (np.arange(len(s)) >= f.probation)
        covered = np.zeros(len(s), bool)
        for a, b in f.windows:
            covered[a : b + 1] = True
            hit = bool(det[a : b + 1].any())
            tp += hit
            fn += not hit
        fp += int((det & ~covered).sum())
    perfect = p.a_tp * n_windows
    null = -p.a_fn * n_windows
    norm = 100.0 * (raw - null) / (perfect - null) if perfect != null else 0.0
    return ProfileScore(p.name, threshold, raw, norm, tp, fp, fn)


def score_all(files: Sequence[NabFile], scores: Sequence[F64]) -> list[ProfileScore]:
    return [score(files, scores, p) for p in PROFILES]


@dataclasses.dataclass(frozen=True)
class FileScore:
    """One file's share of a profile's raw score, at one corpus-wide threshold."""

    name: str
    windows: int
    tp: int
    fn: int
    fp: int
    raw: float
    """This file's contribution to the corpus raw score (the sum over files is `score().raw`)."""
    fp_cost: float
    """The part of `raw` its false positives cost (<= 0)."""
    onsets: tuple[float | None, ...]
    """Per window, where its earliest detection fell (0 = window start, 1 = end; None = missed)."""
    detections: tuple[int, ...]
    """Rows at or above the threshold after the probation period."""

    @property
    def loss(self) -> float:
        """What this file costs against a perfect detector (A_TP per window, no false alarm)."""
        return self.windows - self.raw


def per_file(
    files: Sequence[NabFile], scores: Sequence[F64], p: Profile, threshold: float
) -> list[FileScore]:
    """Each file's true and false positives, missed windows and raw score at `threshold`.

    The breakdown behind one profile's score: which files lose points, to false alarms or to
    missed or late windows. The rows are the same NAB rules as `score`.
    """
    out = []
    for f, s in zip(files, scores, strict=True):
        n = len(s)
        det = np.flatnonzero((s >= threshold) & (np.arange(n) >= f.probation))
        covered = np.zeros(n, dtype=bool)
        raw = 0.0
        tp = fn = 0
        onsets: list[float | None] = []
        for a, b in f.windows:
            covered[a : b + 1] = True
            hits = det[(det >= a) & (det <= b)]
            if hits.size:
                tp += 1
                raw += float(_tp_weights(p, hits[:1], a, b)[0])
                onsets.append(round((int(hits[0]) - a) / (b - a + 1), 3))
            else:
                fn += 1
                raw -= p.a_fn
                onsets.append(None)
        false = det[~covered[det]]
        fp_cost = float(_fp_weights(f, n, p)[false].sum())
        out.append(
            FileScore(
                f.name,
                len(f.windows),
                tp,
                fn,
                int(false.size),
                raw + fp_cost,
                fp_cost,
                tuple(onsets),
                tuple(int(i) for i in det),
            )
        )
    return out


@dataclasses.dataclass(frozen=True)
class Half:
    name: str
    """`even` or `odd`: the files at even or odd positions of the sorted file list."""
    files: int
    own: dict[str, float]
    """Normalised score per profile at this half's own best threshold."""
    held_out: dict[str, float]
    """Normalised score per profile at the threshold that is best on the *other* half."""


def halves(files: Sequence[NabFile], scores: Sequence[F64]) -> list[Half]:
    """The score split over the two halves of the files (alternate files in sorted order).

    A configuration that only helps one half is fitting those files; `held_out` goes further:
    each half is scored at the threshold chosen on the other half, as if it were unseen.
    """
    parts = []
    for h in (0, 1):
        idx = [i for i in range(len(files)) if i % 2 == h]
        parts.append(([files[i] for i in idx], [scores[i] for i in idx]))
    out = []
    for h, name in ((0, "even"), (1, "odd")):
        fs, ss = parts[h]
        of, os_ = parts[1 - h]
        own, held = {}, {}
        for p in PROFILES:
            if not fs:
                continue
            own[p.name] = round(score(fs, ss, p).normalized, 2)
            thr = score(of, os_, p).threshold if of else None
            held[p.name] = round(score(fs, ss, p, threshold=thr).normalized, 2)
        out.append(Half(name, len(fs), own, held))
    return out
