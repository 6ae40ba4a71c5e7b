"""Human theories: a person's "look at the database" becomes a hypothesis that is tested.

Each theory names services (matched against every service the window knows, by name or by a
name part such as `db` in `orders-db`) and possibly a fault (by the same words the logs
investigator uses). It becomes weak evidence of kind HUMAN, so the reconciler ranks it with the
rest: it can only rank high when real evidence supports it too. A theory may start with
`who:` (one word) to record who proposed it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from selfheal import model
from selfheal.diagnose import base
from selfheal.diagnose import logs as logs_mod
from selfheal.diagnose import window as window_mod

NAME = "human"

_WHO = re.compile(r"^\s*([\w.@-]{1,32}):\s+(.+)$", re.DOTALL)
_SYNONYMS = {"database": ("db", "database", "postgres", "mysql", "sql"), "db": ("db", "database")}


def split_theory(theory: str) -> tuple[str, str]:
    """(who, text): `who` is "a human" when the theory does not start with `name:`."""
    match = _WHO.match(theory)
    if match:
        return match.group(1), match.group(2).strip()
    return "a human", theory.strip()


def named_services(text: str, services: Sequence[str]) -> list[str]:
    words = set(re.findall(r"[a-z0-9]+", text.lower()))
    wanted = set(words)
    for word in words:
        wanted.update(_SYNONYMS.get(word, ()))
    hits = []
    for service in services:
        lowered = service.lower()
        parts = set(re.findall(r"[a-z0-9]+", lowered)) - {"ts", "service", "svc"}
        if (
            lowered in text.lower()
            or (parts and parts <= wanted)
            or (
                parts
                & wanted
                & {"db", "database", "cache", "redis", "queue", "auth", "gateway", "frontend"}
            )
        ):
            hits.append(service)
    return hits


class HumanInvestigator:
    """Turns theories into weak HUMAN evidence naming the service and fault they suspect."""

    name = NAME
    kind = model.SignalKind.HUMAN

    def investigate(
        self,
        window: window_mod.Window,
        prior: Sequence[model.Evidence],
        settings: window_mod.Settings,
    ) -> tuple[model.Evidence, ...]:
        out = []
        services = window.services()
        for theory in window.theories:
            who, text = split_theory(theory)
            query = f"theory by {who}: {text!r} matched against {len(services)} known services"
            hits = named_services(text, services)
            if not hits:
                out.append(
                    base.no_data(
                        NAME,
                        self.kind,
                        query,
                        f"theory by {who} names no service this incident can observe",
                    )
                )
                continue
            fault = logs_mod.fault_of(text)
            for service in hits:
                out.append(
                    model.Evidence(
                        investigator=NAME,
                        kind=self.kind,
                        status=model.EvidenceStatus.OK,
                        query=query,
                        observation=f"proposed by {who}: {text}",
                        service=service,
                        fault=fault,
                        strength=settings.human_strength,
                    )
                )
        return tuple(out)
