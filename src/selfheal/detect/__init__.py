"""Detection: streaming, context-aware anomaly detection over many series at once.

The engine calls `Detector.update` every tick with the latest value of each (service, metric)
series, then `fuse` to decide which services open an incident. Everything runs on one
vectorised NumPy core (`core.Bank`), which the NAB and scale benchmarks drive directly.
"""

from __future__ import annotations

from selfheal.detect.context import Context
from selfheal.detect.core import Bank, Step
from selfheal.detect.detector import Detector
from selfheal.detect.fusion import ServiceFinding, fuse
from selfheal.detect.settings import Settings

__all__ = ["Bank", "Context", "Detector", "ServiceFinding", "Settings", "Step", "fuse"]
