"""The NAB corpus as files on disk: a NAB-layout folder read into `NabFile` values.

`bench.nab` (the scoring) and `selfheal bench nab` (cli/bench_detect.py) read the corpus
through `load` and `missing`. Every row is checked: a malformed file (a bad header, no rows, a
value that is not a number, a timestamp that is not `YYYY-MM-DD HH:MM:SS`, timestamps going
backwards) or label file is refused whole with `errors.DataUnavailable` naming the file and
line, so nothing is ever scored from a corpus that is partly unreadable.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from selfheal import errors

F64 = npt.NDArray[np.float64]

# NAB's own form, with the label files' fractional seconds; nothing numpy would also accept
# ("today", "NaT", "", a time-zone offset) gets through
_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,6})?")


@dataclasses.dataclass(frozen=True)
class NabFile:
    name: str
    """`<category>/<file>.csv`."""
    stamps: tuple[str, ...]
    t: F64
    """Seconds since the epoch, one per row."""
    values: F64
    windows: tuple[tuple[int, int], ...]
    """Row ranges [start, end], inclusive."""

    @property
    def probation(self) -> int:
        return min(math.floor(0.15 * len(self.values)), 750)


def _seconds(stamps: Sequence[str]) -> F64:
    """Seconds since the epoch of well-formed stamps (raises ValueError on a bad date)."""
    arr = np.array([s.strip().replace(" ", "T") for s in stamps], dtype="datetime64[us]")
    return arr.astype(np.int64).astype(np.float64) / 1e6


def _text(seconds: float) -> str:
    """A time in seconds since the epoch, as a NAB timestamp."""
    return str(np.datetime64(round(seconds * 1e6), "us").astype("datetime64[s]")).replace("T", " ")


def _stamps(texts: Sequence[str], where: str, first_line: int = 0) -> F64:
    """Seconds of NAB timestamps; the first bad one is named with `where` (and its line when
    `first_line` numbers the first text)."""

    def bad(k: int) -> errors.DataUnavailable:
        at = f"{where}, line {first_line + k}" if first_line else where
        return errors.DataUnavailable(f"{at}: {texts[k]!r} is not a timestamp")

    for k, text in enumerate(texts):
        if not _STAMP.fullmatch(text.strip()):
            raise bad(k)
    try:
        return _seconds(texts)  # all at once; one by one only to name a bad date
    except ValueError:
        for k, text in enumerate(texts):
            try:
                _seconds([text])
            except ValueError as exc:
                raise bad(k) from exc
        raise errors.DataUnavailable(f"{where}: unreadable timestamps") from None


def _read_series(path: Path, name: str) -> tuple[tuple[str, ...], F64, F64]:
    """The stamps, seconds and values of one data file, every row checked."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise errors.DataUnavailable(f"{name}: cannot read it: {exc}") from exc
    if not rows or [c.strip() for c in rows[0][:2]] != ["timestamp", "value"]:
        raise errors.DataUnavailable(f"{name}: the header must be 'timestamp,value'")
    if len(rows) < 2:
        # nothing to score, and a corpus of nothing has no threshold to choose
        raise errors.DataUnavailable(f"{name}: no rows under the header")
    values = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) < 2:
            raise errors.DataUnavailable(f"{name}, line {line}: expected timestamp,value")
        try:
            values.append(float(row[1]) if row[1].strip() else math.nan)
        except ValueError as exc:
            raise errors.DataUnavailable(
                f"{name}, line {line}: {row[1]!r} is not a number") from exc
    stamps = tuple(row[0] for row in rows[1:])
    t = _stamps(stamps, name, first_line=2)
    back = np.flatnonzero(np.diff(t) < 0)
    if back.size:
        raise errors.DataUnavailable(f"{name}, line {int(back[0]) + 3}: timestamps go backwards")
    return stamps, t, np.array(values, dtype=np.float64)


def _read_windows(path: Path) -> dict[str, list[tuple[float, float]]]:
    """`labels/combined_windows.json`: file name -> [(start, end), ...] in seconds."""
    where = f"{path.parent.name}/{path.name}"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise errors.DataUnavailable(f"{where}: not readable JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise errors.DataUnavailable(f"{where}: expected an object of file -> windows")
    out: dict[str, list[tuple[float, float]]] = {}
    for name, spans in raw.items():
        if not isinstance(spans, list) or not all(
            isinstance(w, list) and len(w) == 2 and all(isinstance(x, str) for x in w)
            for w in spans
        ):
            raise errors.DataUnavailable(f"{where}: {name}: expected [[start, end], ...]")
        ends = _stamps([x for w in spans for x in w], f"{where}: {name}")
        out[str(name)] = [(float(ends[2 * k]), float(ends[2 * k + 1])) for k in range(len(spans))]
        for k, (lo, hi) in enumerate(out[str(name)]):
            if lo > hi:  # it would hold no row: the window would vanish from the score
                raise errors.DataUnavailable(
                    f"{where}: {name}: window {k + 1} ends before it starts {spans[k]}")
        found = out[str(name)]
        for a, b in itertools.pairwise(sorted(range(len(found)), key=found.__getitem__)):
            if found[b][0] <= found[a][1]:  # NAB scores each window apart from the others
                raise errors.DataUnavailable(
                    f"{where}: {name}: window {b + 1} {spans[b]} overlaps window {a + 1}")
        found.sort()
    return out


def load(data_dir: Path) -> list[NabFile]:
    """Every `data/<category>/<file>.csv` with its windows from `labels/combined_windows.json`.

    Raises `errors.DataUnavailable` naming the file and line for anything malformed.
    """
    root = Path(data_dir)
    labels_path = root / "labels" / "combined_windows.json"
    if not (root / "data").is_dir():
        raise errors.DataUnavailable(f"{root}: no data/ folder in NAB layout")
    windows = _read_windows(labels_path) if labels_path.is_file() else {}
    files = []
    for path in sorted((root / "data").glob("*/*.csv")):
        name = f"{path.parent.name}/{path.name}"
        stamps, t, values = _read_series(path, name)
        spans = []
        for lo, hi in windows.get(name, []):
            idx = np.flatnonzero((t >= lo) & (t <= hi))
            if not idx.size:  # a label for rows this file does not have: a wrong file or date
                raise errors.DataUnavailable(
                    f"labels/combined_windows.json: {name}: window [{_text(lo)}, {_text(hi)}]"
                    f" holds no row of the file ({stamps[0]} .. {stamps[-1]})")
            spans.append((int(idx[0]), int(idx[-1])))
        files.append(NabFile(name, stamps, t, values, tuple(spans)))
    if not files:
        raise errors.DataUnavailable(f"{root}: no CSV files under data/")
    return files


def missing(data_dir: Path) -> list[str]:
    """Labelled files whose data is absent (their windows cannot be scored here)."""
    root = Path(data_dir)
    labels_path = root / "labels" / "combined_windows.json"
    if not labels_path.is_file():
        return []
    return sorted(n for n in _read_windows(labels_path) if not (root / "data" / n).is_file())
