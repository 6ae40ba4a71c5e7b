"""A detector's saved state as an older format wrote it: for the tests that such a state
still loads, with what the newer arrays take in its place."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import numpy.typing as npt

from selfheal import detect
from selfheal.detect import persist


def as_format(det: detect.Detector, version: int, *dropped: str
              ) -> tuple[dict[str, npt.NDArray[Any]], bytes]:
    """(the arrays kept, the blob) of `det`'s state saved as format `version`, without the
    arrays named in `dropped` (those that format did not have)."""
    keys, (last_t, last_dt), arrays = persist.decode(det.save(), det.settings.season_period_s)
    for name in dropped:
        del arrays[name]
    header = {"format": version, "last_t": last_t, "last_dt": last_dt,
              "season_period_s": det.settings.season_period_s, "keys": [list(k) for k in keys]}
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False,
             header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)
    return arrays, buf.getvalue()
