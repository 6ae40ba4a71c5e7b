"""The root-cause analysis benchmark on Nezha's fault-injection data (`selfheal bench rca`).

For every fault of every day's fault list, build the window around the injection with
`selfheal.sources.nezha`, diagnose it with the same `selfheal.diagnose.Settings` for every case
and system, and score service-level AC@1/@3/@5, fault-type accuracy, the expected calibration
error of the top hypothesis' probability, the abstention rate, the AC@1 among the cases it did
not abstain on (selective accuracy: how often an action would have hit the right service) and
the time per case. With a reasoner (`--reasoner openai`), each case also asks the model, as the
engine does, and the same metrics measure the diagnosis with its hypotheses weighed in. The
published table of the Nezha paper is kept here to print beside our figures.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from selfheal import diagnose, model, ports, reasoners
from selfheal.sources import nezha

PUBLISHED: Mapping[str, Mapping[str, tuple[float, float, float]]] = {
    "hipster": {
        "Nezha (FSE'23)": (92.86, 96.43, 96.43),
        "PDiagnose": (41.07, 73.21, 82.14),
        "MicroRank": (41.07, 48.21, 62.50),
        "TraceAnomaly": (30.35, 33.92, 48.21),
        "MicroRCA": (16.07, 62.50, 92.75),
    },
    "ts": {
        "Nezha (FSE'23)": (86.67, 97.78, 97.78),
        "PDiagnose": (8.89, 13.33, 22.22),
        "MicroRank": (15.56, 24.44, 35.56),
        "TraceAnomaly": (13.33, 28.89, 33.33),
        "MicroRCA": (20.00, 31.11, 44.44),
    },
}
"""AC@1/@3/@5 (%) published on the full data (both days of each system), service level."""

ECE_BINS = 10


@dataclasses.dataclass(frozen=True)
class Case:
    """One diagnosed fault: the truth and what the diagnosis said."""

    system: str
    day: str
    fault: nezha.Fault
    ranked: tuple[str, ...]
    top_fault: model.FaultKind
    top_probability: float
    sufficient: bool
    seconds: float
    summary: str = ""
    model_tokens: int = 0
    model_refused: int = 0
    """Parts of the reasoner's answer refused (outside the schema or the catalogue)."""
    model_error: str = ""

    @property
    def rank(self) -> int | None:
        """1-based rank of the true service, None when it is not among the hypotheses."""
        try:
            return self.ranked.index(self.fault.service) + 1
        except ValueError:
            return None

    def hit(self, k: int) -> bool:
        rank = self.rank
        return rank is not None and rank <= k


@dataclasses.dataclass(frozen=True)
class Score:
    n: int
    ac1: float
    ac3: float
    ac5: float
    type_acc: float
    ece: float
    abstain: float
    s_per_case: float
    selective_ac1: float | None = None
    """AC@1 among the cases the diagnosis did not abstain on (None when it abstained on all)."""
    acted: int = 0
    """How many cases were diagnosed with sufficient evidence (not abstained)."""

    def as_json(self) -> dict[str, float | int | None]:
        return {
            "n": self.n,
            "ac@1": round(self.ac1, 4),
            "ac@3": round(self.ac3, 4),
            "ac@5": round(self.ac5, 4),
            "type_acc": round(self.type_acc, 4),
            "ece": round(self.ece, 4),
            "abstain": round(self.abstain, 4),
            "s_per_case": round(self.s_per_case, 4),
            "selective_ac@1": (
                None if self.selective_ac1 is None else round(self.selective_ac1, 4)
            ),
            "acted": self.acted,
        }


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = ECE_BINS
) -> float:
    """ECE with equal-width bins: Σ (bin size / n) · |accuracy − mean confidence|."""
    if not confidences:
        return 0.0
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [i for i, c in enumerate(confidences) if (lo < c <= hi) or (b == 0 and c == 0.0)]
        if not members:
            continue
        accuracy = sum(correct[i] for i in members) / len(members)
        confidence = sum(confidences[i] for i in members) / len(members)
        total += len(members) / len(confidences) * abs(accuracy - confidence)
    return total


def score(cases: Sequence[Case]) -> Score:
    n = len(cases)
    if n == 0:
        return Score(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    acted = [c for c in cases if c.sufficient]
    return Score(
        n=n,
        ac1=sum(c.hit(1) for c in cases) / n,
        ac3=sum(c.hit(3) for c in cases) / n,
        ac5=sum(c.hit(5) for c in cases) / n,
        type_acc=sum(c.top_fault is c.fault.fault_kind for c in cases) / n,
        ece=expected_calibration_error(
            [c.top_probability for c in cases], [c.hit(1) for c in cases]
        ),
        abstain=sum(not c.sufficient for c in cases) / n,
        s_per_case=sum(c.seconds for c in cases) / n,
        selective_ac1=sum(c.hit(1) for c in acted) / len(acted) if acted else None,
        acted=len(acted),
    )


def by_system(cases: Iterable[Case]) -> dict[str, Score]:
    groups: dict[str, list[Case]] = {}
    for case in cases:
        groups.setdefault(case.system, []).append(case)
    return {system: score(group) for system, group in sorted(groups.items())}


def run_case(
    day: nezha.Day,
    fault: nezha.Fault,
    settings: diagnose.Settings,
    horizon_s: float,
    reasoner: ports.Reasoner | None = None,
    budget_tokens: int = 4000,
) -> Case:
    began = time.perf_counter()
    window = nezha.window_for(day, fault, horizon_s=horizon_s)
    result = diagnose.diagnose(window, now=window.end, settings=settings)
    exchange = None
    if reasoner is not None:
        # As the engine does: the model reads the pack, its hypotheses re-enter as evidence.
        exchange = reasoner.propose(window, result, budget_tokens)
        if exchange.hypotheses:
            window = reasoners.with_hypotheses(window, exchange)
            result = diagnose.diagnose(window, now=window.end, settings=settings)
    seconds = time.perf_counter() - began
    ranked: list[str] = []
    for hypothesis in result.hypotheses:
        if hypothesis.service not in ranked:
            ranked.append(hypothesis.service)
    top = result.top
    return Case(
        system=day.system,
        day=day.day,
        fault=fault,
        ranked=tuple(ranked),
        top_fault=top.fault if top else model.FaultKind.UNKNOWN,
        top_probability=top.probability if top else 0.0,
        sufficient=result.sufficient,
        seconds=seconds,
        summary=top.summary if top else "; ".join(result.missing),
        model_tokens=exchange.tokens if exchange else 0,
        model_refused=len(exchange.rejected) if exchange else 0,
        model_error=exchange.error if exchange else "",
    )


def plan(root: Path, day_filter: str | None = None) -> list[nezha.Day]:
    names = [d for d in nezha.days(root) if day_filter is None or d == day_filter]
    return [nezha.Day(root, name) for name in names]


def run(
    days: Sequence[nezha.Day],
    settings: diagnose.Settings = diagnose.DEFAULT_SETTINGS,
    *,
    horizon_s: float = 180.0,
    on_case: Callable[[Case], None] | None = None,
    reasoner: ports.Reasoner | None = None,
    budget_tokens: int = 4000,
) -> list[Case]:
    cases = []
    for day in days:
        for fault in day.faults:
            case = run_case(day, fault, settings, horizon_s, reasoner, budget_tokens)
            cases.append(case)
            if on_case is not None:
                on_case(case)
    return cases
