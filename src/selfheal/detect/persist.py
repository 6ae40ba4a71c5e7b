"""What the detectors learned, as bytes: so that a restart keeps each series' rhythm.

The product detector learns, per series, a profile of the level by hour of the day and of the
week, and which episodes are routine at which hour (`news`). Rebuilt from the last ten minutes
of stored samples after a restart, all of that would be lost for a day or a week. The
controller saves `Detector.save()` to the store every `detect.save_state_s` and at shutdown,
and `Detector.load` reads it back at start; this module is the format and its checks.

The format is NumPy's .npz (arrays only, deflated, and read without pickles), whose zip CRCs
catch a damaged blob, plus a JSON header: the format version, the time of the last tick, the series'
names and the seasonal period. A state that does not fit the current config (another
seasonality, another version of the detector's arrays) raises `errors.StateUnusable` saying
why, and nothing of it is used: the caller starts from the samples instead. The per-series
constants that the config sets (direction, noise floors, limit) are never taken from the file,
so a config change to them applies to the restored series at once.
"""

from __future__ import annotations

import io
import json
import math
import struct
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from selfheal import errors
from selfheal.detect import core
from selfheal.detect import news as news_mod

FORMAT = 5
"""Bumped whenever the arrays change meaning; an older state is then not used, unless
`decode` can still read it."""
READS = frozenset({1, 2, 3, 4, FORMAT})
"""Formats `decode` reads: 1 had no `seen` (each series' last value), taken as its last tick;
1 and 2 had no `core.a.dquick` (the short memory of the residual), taken as the noise scale's
deviation, so that its quick fall waits until the residuals show it is due, nor `core.a.sslow`
(the slow scale that clips what the profiles learn), taken as no clip beyond the noise
scale's own until it has risen from there. 1-3 had no `news.hour_two` (the strongest level
each hour has seen on two days), taken as its strongest, as they used it, and likewise for the
last learned hour's undo. 1-4 had no memory of how long episodes last (`news.f.dmax`,
`news.ticks`, the flag `news.b.lasting`), taken as a routine episode of an hour just seen
(`LONGEST_BEFORE`, fading as any): for days after the upgrade an episode must last hours to
be news by its length, not minutes."""

LONGEST_BEFORE = math.log(3_600.0)
"""The longest routine episode (log seconds) a state saved before format 5 is given."""

FROM_CONFIG = frozenset({"core.direction", "core.a.floor", "core.a.rfloor", "core.a.limit"})
"""Per-series arrays that the current config sets, never the saved state."""

NOT_FINITE = {"core.a.start": "nan", "core.a.cut_age": "inf", "seen": "nan"}
"""The float arrays in which a live detector holds one non-finite value, and which: NaN for
no episode open (`start`) and for a series added but never ticked (`seen`), +inf before the
regression's first cut (`cut_age`). Every other float array is always finite (the core clips
values to `core.HUGE`), and `check` refuses a state with anything else: a NaN level or noise
scale makes a series score NaN and never report again."""

_HEADER = "header"

PER_SERIES_BYTES = 16 * 1024
"""More than any configuration's state holds for one series (~1 KB with the weekly profile):
what `decode` may inflate for each series a saved state names."""

Arrays = dict[str, npt.NDArray[Any]]


def arrays(bank: core.Bank, news: news_mod.NewsBank, seen: npt.NDArray[np.float64]
           ) -> Arrays:
    """The arrays of a detector's state under the names `encode` saves (views, not copies):
    the core's, the report gate's, and the time of each series' last value."""
    out: Arrays = {f"core.{k}": v for k, v in bank.arrays().items()}
    out.update({f"news.{k}": v for k, v in news.arrays(bank.size).items()})
    out["seen"] = seen[: bank.size]
    return out


def encode(keys: Sequence[tuple[str, str]], last_t: float | None, last_dt: float | None,
           period_s: float, arrays: Mapping[str, npt.NDArray[Any]]) -> bytes:
    """The detector's state as bytes: `keys` name the rows of every array; `last_t` is the
    time of the last tick, `last_dt` the usual spacing of ticks."""
    header = {"format": FORMAT, "last_t": last_t, "last_dt": last_dt,
              "season_period_s": period_s, "keys": [list(k) for k in keys]}
    raw = json.dumps(header).encode()
    buf = io.BytesIO()
    # an .npz as `np.savez` writes it, except that the arrays are deflated (~2x smaller; this
    # runs in a thread, on a copy) while the header stays stored, so that `decode` knows how
    # many series the state is for before it inflates anything
    with zipfile.ZipFile(buf, "w") as zf:
        for name, value in {_HEADER: np.frombuffer(raw, dtype=np.uint8), **arrays}.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED if name == _HEADER else zipfile.ZIP_DEFLATED
            zf.writestr(info, member.getvalue(), compresslevel=1)
    return buf.getvalue()


def spacing(data: bytes) -> float | None:
    """The usual spacing of ticks a saved state was learned at, read from its header alone
    (nothing is inflated); None when the blob does not say, or is not a state."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            info = zf.getinfo(_HEADER + ".npy")
            if info.compress_type != zipfile.ZIP_STORED or info.file_size > 1 << 26:
                return None
            raw = np.lib.format.read_array(io.BytesIO(zf.read(info)), allow_pickle=False)
        header = json.loads(bytes(raw)) if raw.dtype == np.uint8 else None
    except (OSError, ValueError, EOFError, KeyError, RuntimeError, struct.error, zlib.error,
            zipfile.BadZipFile):
        return None
    value = header.get("last_dt") if isinstance(header, dict) else None
    if isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
        return float(value)
    return None


def decode(data: bytes, period_s: float
           ) -> tuple[list[tuple[str, str]], tuple[float | None, float | None], Arrays]:
    """(keys, (time of the last tick, usual spacing of ticks), arrays) of a saved state,
    after checking its header; `errors.StateUnusable` when it is damaged or was saved for
    another seasonal period. The blob is read as untrusted: whatever it holds, this returns
    or raises `StateUnusable`, and never inflates more than `PER_SERIES_BYTES` for each series
    its header names."""
    try:
        arrays = _read(data)
        raw = arrays.pop(_HEADER, None)
        header = json.loads(bytes(raw)) if raw is not None and raw.dtype == np.uint8 else None
    # a damaged zip can look encrypted or of an unknown version (RuntimeError), a hostile
    # header nest too deep for json (RecursionError, a RuntimeError too)
    except (OSError, ValueError, EOFError, KeyError, RuntimeError, struct.error, zlib.error,
            zipfile.BadZipFile) as exc:
        raise errors.StateUnusable(f"the saved detector state is damaged ({exc})") from exc
    if not isinstance(header, dict):
        raise errors.StateUnusable("the saved detector state has no readable header")
    version = header.get("format")
    if type(version) is not int or version not in READS:
        raise errors.StateUnusable(
            f"the saved detector state is format {version!r}; this version of selfheal "
            f"reads formats {', '.join(map(str, sorted(READS)))}")
    if header.get("season_period_s") != period_s:
        raise errors.StateUnusable(
            f"the saved detector state learned a seasonal period of "
            f"{header.get('season_period_s')!r} s; the config now asks for {period_s:g} s")
    keys = _keys(header.get("keys"))
    last_t = _time(header, "last_t")
    if version == 1 and "seen" not in arrays:
        arrays["seen"] = np.full(len(keys), last_t if last_t is not None else np.nan)
    dev = arrays.get("core.a.dev")
    if version < 3 and "core.a.dquick" not in arrays and dev is not None:
        arrays["core.a.dquick"] = dev.copy()
    if version < 3 and "core.a.sslow" not in arrays and dev is not None:
        arrays["core.a.sslow"] = np.full_like(dev, core.HUGE)
    # copies of arrays the blob holds: nothing larger than what was already read
    for two, peak in (("news.hour_two", "news.hour_peak"), ("news.undo.two", "news.undo.peak")):
        if version < 4 and two not in arrays and peak in arrays:
            arrays[two] = arrays[peak].copy()
    if version < 5:
        _no_durations(arrays)
    return keys, (last_t, _time(header, "last_dt")), arrays


def _no_durations(arrays: Arrays) -> None:
    """Give a state saved before format 5 the duration memory it did not have."""
    top = arrays.get("news.f.peak")
    if top is None:
        return  # `check` names what is missing
    n = len(top)
    fill: Arrays = {"news.f.dmax": np.full(n, LONGEST_BEFORE, np.float32),
                    "news.ticks": np.zeros(n, np.uint16),
                    "news.b.lasting": np.zeros(n, np.bool_)}
    for name, value in fill.items():
        arrays.setdefault(name, value)


def _read(data: bytes) -> Arrays:
    """Every array of the .npz, each checked first to declare no more data than it holds,
    and all of them together no more than `PER_SERIES_BYTES` for each series the stored
    (never deflated) header names: a damaged or hostile blob cannot make `decode` inflate
    more than a real state of that many series holds."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        header = next((i for i in infos if i.filename == _HEADER + ".npy"), None)
        if header is None or header.compress_type != zipfile.ZIP_STORED:
            raise ValueError("the header is missing or deflated")
        with zf.open(header) as fp:
            names = json.loads(bytes(np.lib.format.read_array(fp, allow_pickle=False)))
        series = len(names.get("keys") or ()) if isinstance(names, dict) else 0
        if sum(i.file_size for i in infos) > PER_SERIES_BYTES * series + 1024 * 1024:
            raise ValueError(f"its arrays declare more than {PER_SERIES_BYTES} bytes for "
                             f"each of its {series} series")
        for info in infos:
            with zf.open(info) as fp:
                version = np.lib.format.read_magic(fp)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
                else:
                    raise ValueError(f"{info.filename} is .npy version {version}")
            if dtype.hasobject or math.prod(shape) * dtype.itemsize > info.file_size:
                raise ValueError(f"{info.filename} declares more data than it holds")
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def _time(header: dict[str, Any], key: str) -> float | None:
    value = header.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise errors.StateUnusable(f"the saved detector state has a bad {key} {value!r}")
    return float(value)


def check(arrays: Mapping[str, npt.NDArray[Any]], expected: Mapping[str, npt.NDArray[Any]],
          below: Mapping[str, int] | None = None) -> None:
    """The saved arrays have exactly the names, dtypes and shapes of `expected` (a fresh
    detector's arrays for the same series under the current config), their floats are finite
    but where `NOT_FINITE` says, and the index arrays named in `below` hold only indexes
    under their bound."""
    missing = sorted(set(expected) - set(arrays))
    extra = sorted(set(arrays) - set(expected))
    if missing or extra:
        raise errors.StateUnusable(
            "the saved detector state does not fit this version or config of the detector "
            f"(missing {missing or 'nothing'}, unknown {extra or 'nothing'})")
    for name, want in expected.items():
        got = arrays[name]
        if got.dtype != want.dtype or got.shape != want.shape:
            raise errors.StateUnusable(
                f"the saved detector state does not fit the current config: its {name} is "
                f"{got.dtype}{list(got.shape)}, this config needs {want.dtype}"
                f"{list(want.shape)} (was `detect.season` changed?)")
    for name, got in arrays.items():
        if got.dtype.kind != "f" or name in FROM_CONFIG:
            continue
        allowed = NOT_FINITE.get(name)
        bad = ~np.isfinite(got)
        if allowed == "nan":
            bad &= ~np.isnan(got)
        elif allowed == "inf":
            bad &= ~np.isposinf(got)
        if bad.any():
            raise errors.StateUnusable(
                f"the saved detector state is damaged: its {name} holds "
                f"{float(got[bad].flat[0])!r}, which a detector never holds there")
    for name, bound in (below or {}).items():
        got = arrays[name]
        if got.size and int(got.max()) >= bound:
            raise errors.StateUnusable(
                f"the saved detector state is damaged: {name} holds {int(got.max())}, "
                f"past its bound {bound}")


def _keys(raw: object) -> list[tuple[str, str]]:
    if not isinstance(raw, list) or not all(
            isinstance(k, list) and len(k) == 2 and all(isinstance(p, str) for p in k)
            for k in raw):
        raise errors.StateUnusable("the saved detector state's series names are unreadable")
    keys = [(k[0], k[1]) for k in raw]
    if len(set(keys)) != len(keys):
        raise errors.StateUnusable("the saved detector state names a series twice")
    return keys
