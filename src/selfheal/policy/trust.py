"""Earned autonomy: trust per (agent, action type), learned from outcomes.

Pure. A verified success raises trust; a failed verification, a human's rejection or a human's
override lowers it twice as much and demotes the action type at once (auto → approve). A
demoted or not-yet-trusted action type graduates back only after enough verified successes
since its last bad outcome and a score above the policy's threshold.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from selfheal import model
from selfheal.policy import document

Outcome = Literal["success", "failure", "rejection", "override"]
BAD: tuple[Outcome, ...] = ("failure", "rejection", "override")


@dataclasses.dataclass(frozen=True)
class TrustState:
    agent: str
    action: model.ActionKind
    successes: int = 0
    failures: int = 0
    rejections: int = 0
    since_bad: int = 0
    """Verified successes since the last bad outcome."""
    demoted: bool = False

    @property
    def outcomes(self) -> int:
        return self.successes + self.failures + self.rejections

    @property
    def score(self) -> float:
        """A smoothed success rate in (0, 1) where each bad outcome counts double."""
        bad = self.failures + self.rejections
        return (self.successes + 1) / (self.successes + 2 * bad + 2)


def record(state: TrustState, outcome: Outcome, cfg: document.Trust) -> TrustState:
    if outcome == "success":
        s = dataclasses.replace(state, successes=state.successes + 1,
                                since_bad=state.since_bad + 1)
        if s.demoted and s.since_bad >= cfg.min_outcomes and s.score >= cfg.graduate_at:
            s = dataclasses.replace(s, demoted=False)
        return s
    if outcome == "failure":
        return dataclasses.replace(state, failures=state.failures + 1, since_bad=0,
                                   demoted=True)
    return dataclasses.replace(state, rejections=state.rejections + 1, since_bad=0,
                               demoted=True)


def effective_mode(policy_mode: model.Mode, state: TrustState,
                   cfg: document.Trust) -> tuple[model.Mode, str]:
    """The mode after trust: demotion caps `auto` at `approve`; trust may lift `approve`."""
    if policy_mode == model.Mode.AUTO and state.demoted:
        need = max(0, cfg.min_outcomes - state.since_bad)
        return model.Mode.APPROVE, (f"{state.action.value} by {state.agent} was demoted after a "
                                    f"bad outcome; {need} more verified success(es) to re-earn "
                                    "auto")
    if policy_mode == model.Mode.APPROVE and state.action in cfg.earn_auto \
            and not state.demoted and state.since_bad >= cfg.min_outcomes \
            and state.score >= cfg.graduate_at:
        return model.Mode.AUTO, (f"{state.action.value} by {state.agent} graduated to auto "
                                 f"(trust {state.score:.2f} over {state.outcomes} outcomes)")
    return policy_mode, ""
