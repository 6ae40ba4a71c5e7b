"""The one place investigators are registered, in the order they run.

Order matters: topology and human theories reason over the evidence gathered before them.
To add an investigator, implement `selfheal.diagnose.base.Investigator` and list it here.
"""

from __future__ import annotations

from selfheal.diagnose import alerts as alerts_mod
from selfheal.diagnose import base
from selfheal.diagnose import changes as changes_mod
from selfheal.diagnose import health as health_mod
from selfheal.diagnose import human as human_mod
from selfheal.diagnose import logs as logs_mod
from selfheal.diagnose import metrics as metrics_mod
from selfheal.diagnose import proposals as proposals_mod
from selfheal.diagnose import topology as topology_mod
from selfheal.diagnose import traces as traces_mod

INVESTIGATORS: tuple[base.Investigator, ...] = (
    metrics_mod.MetricsInvestigator(),
    logs_mod.LogsInvestigator(),
    traces_mod.TracesInvestigator(),
    changes_mod.ChangesInvestigator(),
    alerts_mod.AlertsInvestigator(),
    health_mod.HealthInvestigator(),
    health_mod.CalleeLogsInvestigator(),
    topology_mod.TopologyInvestigator(),
    human_mod.HumanInvestigator(),
    proposals_mod.ModelInvestigator(),
)
