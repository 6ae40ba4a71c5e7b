"""The controller: the runtime that drives the loop over real sources and a real platform.

Each tick it collects from its feeds (scraper, log tail, receivers) into the store, syncs the
platform's changes, runs detection and correlation, and starts one `workflow` task per new
incident. Stages stay pure; every read and write of the outside world happens here, in the
workflow, or in the adapters.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from selfheal import config as config_mod
from selfheal import correlate, detect, errors, model, ports
from selfheal.detect import expiry as expiry_mod
from selfheal.detect import explain as explain_mod
from selfheal.detect import fusion as fusion_mod
from selfheal.detect import settings as detect_settings
from selfheal.engine import drains, learn, revive
from selfheal.engine import executor as executor_mod
from selfheal.engine import workflow as workflow_mod
from selfheal.policy import gate as gate_mod
from selfheal.sources import scrape
from selfheal.store import sql

TERMINAL = (model.IncidentState.RESOLVED, model.IncidentState.ESCALATED,
            model.IncidentState.MERGED)


WARM_START_S = 600.0
"""How much stored history rebuilds the detectors' state after a restart."""

REPLAY_MAX_S = 3600.0
"""At most this much stored history is replayed into a detector restored from its saved state
(a longer gap is a gap: the last hour catches the level up)."""

STATE_NAME = "detector"

RESTORE_SPACING = 1.5
"""A saved state learned from ticks more than this many times closer than the tick now is not
used: the detectors start from Prometheus's history at the new tick, or the stored samples."""
RESTORE_LAG = 3.0
"""Nor one learned from ticks more than this many times further apart: a loop whose ticks
lag under load learns a spacing longer than its tick, and keeps its state."""


FUSE_WEIGHTS = {**fusion_mod.DEFAULT_WEIGHTS, "up": 1.0}
"""A replica that stopped answering is an incident on its own (nothing else can show it: a hung
process reports nothing)."""


def detector_settings(cfg: config_mod.Detect) -> detect.Settings:
    """The product detector, plus the scraper's `up` (the fraction of a service's replicas
    that answered): only a fall is bad, and it must last `down_hold_s` (one slow scrape on a
    busy host is not a dead replica)."""
    d = detect_settings
    return detect.Settings(
        directions={**d.DEFAULT_DIRECTIONS, "up": -1},
        min_scale={**d.DEFAULT_MIN_SCALE, "up": 0.05, **cfg.min_scale},
        limits={**d.DEFAULT_LIMITS, **cfg.limits},
        ttl_horizon_s=cfg.limit_warning_s,
        growth_rel=cfg.growth_rel,
        hold_s={**d.DEFAULT_HOLD_S, "up": cfg.down_hold_s},
        report_z=cfg.report_z,
        report_lasting_s=cfg.report_lasting_s,
        slo=dict(cfg.slo),
        forget_s=cfg.forget_after_s,
        **d.season_overrides(cfg.season))


@dataclasses.dataclass(frozen=True)
class Event:
    """Something worth telling a human who is watching, as it happens."""

    t: float
    stage: str
    message: str
    incident_id: str = ""
    data: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Case:
    """The mutable working record of one incident while its task runs."""

    incident: model.Incident
    detail: dict[str, Any]
    timeline: list[dict[str, Any]]


class Controller:
    def __init__(self, cfg: config_mod.Config, platform: Any, store: sql.SqlStore,
                 gate: gate_mod.Gate, topology: Mapping[str, tuple[str, ...]],
                 clock: Callable[[], float], on_event: Callable[[Event], None],
                 feeds: Sequence[ports.Feed], failpoint: str = "",
                 history: ports.History | None = None) -> None:
        self.cfg = cfg
        self.history = history
        self.platform: ports.Platform = platform
        self.store = store
        self.gate = gate
        self.topology = dict(topology)
        self.clock = clock
        self.on_event = on_event
        self.executor = executor_mod.Executor(platform, store, gate.verifier, clock,
                                              failpoint=failpoint)
        self.feeds = list(feeds)
        self.kinds = frozenset(k for f in self.feeds for k in f.kinds)
        self.detector = detect.Detector(detector_settings(cfg.detect))
        self.expiry = expiry_mod.Expiry({"cert_ttl_s": cfg.detect.cert_renew_before_s,
                                         "credential_ttl_s": cfg.detect.credential_renew_before_s})
        self.cases: dict[str, Case] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.quiet_until: dict[str, float] = {}
        # Which incident owns the remediation of a service: one remedy per service at a time.
        self.remediating: dict[str, model.IncidentId] = {}
        # Services taken out of every request path while still broken (an unreachable region
        # routed around): not paged again until they answer or the shift is undone (see
        # `drains`). Durable: a restarted controller reads them back from the ledger.
        self.drained: dict[str, drains.Drain] = drains.restore(store)
        now = clock()
        self._seen_changes = {c.id for c in store.changes_between(now - 7 * 86_400, now)}
        self._limits_said: dict[str, str] = {}  # metric -> what was wrong with its limits
        self._maintenance = tuple((m.start, m.end, m.service) for m in cfg.maintenance)
        self._state_saved_at = now
        self._saving: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._halting = threading.Event()  # read by `warm_start`, which may run in a thread
        self.workflow = workflow_mod.Workflow(self)
        for svc, d in sorted(self.drained.items()):
            self.emit("detect", f"{svc} is still drained (since {d.since:.0f}: {d.why}); it is "
                      "not paged again until it answers", service=svc)

    # -- plumbing --------------------------------------------------------------------------

    def emit(self, stage: str, message: str, incident_id: str = "", **data: Any) -> None:
        self.on_event(Event(self.clock(), stage, message, incident_id, data))

    def record(self, case: Case, kind: str, payload: dict[str, Any]) -> model.LedgerEntry:
        """Write-ahead: the ledger entry is durable before the caller acts on it."""
        entry = self.store.append_ledger(self.clock(), case.incident.id, kind, payload)
        case.timeline.append({"t": entry.ts, "kind": kind, "seq": entry.seq})
        return entry

    def persist(self, case: Case, state: model.IncidentState | None = None) -> None:
        if state is not None:
            case.incident = dataclasses.replace(case.incident, state=state)
        case.detail["timeline"] = case.timeline
        self.store.save_incident(case.incident, case.detail, now=self.clock())

    def recover(self) -> list[str]:
        """Incidents a killed run left open. On a platform that survived the crash (adopted),
        an action whose intent is in the ledger without a result is completed or undone and
        then verified; anything else goes to a human. Returns the incident ids it touched."""
        left = []
        adopted = bool(getattr(self.platform, "adopted", False))
        for row in self.store.incidents():
            if row["state"] in {s.value for s in TERMINAL}:
                continue
            entries = self.store.ledger(row["id"])
            opened = revive.last(entries, "incident.opened")
            intent = revive.dangling_intent(entries)
            left.append(row["id"])
            if adopted and intent is not None and opened is not None:
                inc = revive.incident(opened["incident"], model.IncidentState(row["state"]))
                case = Case(incident=inc, detail=dict(row["detail"]),
                            timeline=list(row["detail"].get("timeline", [])))
                self.cases[inc.id] = case
                self.tasks[inc.id] = asyncio.create_task(
                    self.workflow.handle(case, resume=intent), name=inc.id)
                continue
            now = self.clock()
            why = ("selfheal stopped while this incident was in state "
                   f"{row['state']}; " + ("nothing was left half-done, so a human decides "
                                          "what next" if adopted else "the platform was "
                                          "restarted under it, so a human must check"))
            self.store.append_ledger(now, row["id"], "escalation", {"reason": why})
            inc = model.Incident(id=model.IncidentId(row["id"]), service=row["service"],
                                 opened_at=row["opened_at"], title=row["title"], anomalies=(),
                                 state=model.IncidentState.ESCALATED)
            detail = dict(row["detail"])
            detail["outcome"] = {"resolved": False, "escalated": True, "reason": why}
            self.store.save_incident(inc, detail, now=now)
        return left

    # -- the tick --------------------------------------------------------------------------

    def _fuse(self, found: Sequence[model.Anomaly]) -> list[detect.ServiceFinding]:
        """Each service's finding (`detect.fuse`); memory counts on its own only near its
        limit (`fusion.LIMITED_ALONE`), as the detectors know it now."""
        return detect.fuse(found, weights=FUSE_WEIGHTS, limit_of=self.detector.limit)

    def _take_limits(self, source: str, metric: str, by_service: Mapping[str, float],
                     samples: Sequence[model.Sample], now: float) -> None:
        """Each service's own limit of `metric` from a feed, checked against the same tick's
        values; what changed, what was refused and a query that gave none of the services
        watched is said (once, until it changes) and written to the ledger."""
        now_at = {s.service: s.value for s in samples if s.metric == metric and not s.replica}
        did = self.detector.set_limits(metric, by_service, now_at)
        none = bool(now_at) and not set(by_service) & set(now_at)
        # what is wrong with the answer is said when it changes, not at every refresh
        wrong = f"none of {len(now_at)}" if none else repr(sorted(did.refused))
        new_wrong = self._limits_said.get(metric) != wrong and (none or bool(did.refused))
        self._limits_said[metric] = wrong
        if did.changed or (new_wrong and did.refused):
            text = explain_mod.limits(metric, did.changed, did.refused if new_wrong else {},
                                      source)
        elif new_wrong:
            text = explain_mod.no_limits(metric, len(now_at),
                                         self.detector.settings.limit(metric), source)
        else:
            return
        self.emit("config", text)
        self.store.append_ledger(now, "", "signal.limits", {
            "metric": metric, "source": source, "limits": dict(by_service),
            "refused": {k: v[0] for k, v in did.refused.items()}})

    async def tick(self) -> None:
        now = self.clock()
        got = await asyncio.gather(*(f.collect(now) for f in self.feeds))
        samples = [s for c in got for s in c.samples]
        for feed, collected in zip(self.feeds, got, strict=True):
            for metric, by_service in collected.limits.items():
                self._take_limits(feed.name, metric, by_service, collected.samples, now)
        self.store.add_samples(samples)
        self.store.add_logs([r for c in got for r in c.logs])
        for change in self.platform.changes():
            if change.id in self._seen_changes:
                continue
            self._seen_changes.add(change.id)
            self.store.add_change(change)
            self.store.append_ledger(change.t, "", "signal.change", {"change": change})
            self.emit("change", f"{change.who}: {change.what}", service=change.service)
        self._alerts([a for c in got for a in c.alerts], now)
        values = {(s.service, s.metric): s.value for s in samples if not s.replica}
        recent = tuple(self.store.changes_between(now - 600, now))
        if getattr(self.platform, "shared_host", False):
            # Every service shares one machine: starting or stopping any replica disturbs all
            # of them for a moment, so each change opens a settle window host-wide ("*").
            recent += tuple(dataclasses.replace(c, service="*") for c in recent)
        drains.up_again(self, values)
        drains.routed_back(self)
        drained = tuple((d.since, now + 1.0, svc) for svc, d in self.drained.items())
        active = {c.incident.service: c.incident.id for c in self.cases.values()
                  if c.incident.state not in TERMINAL}
        active.update(self.remediating)  # a service being healed belongs to that incident
        for c in self.cases.values():  # a merged incident's service stays with its owner
            owner = c.detail.get("outcome", {}).get("merged_into")
            if owner in self.cases and self.cases[owner].incident.state not in TERMINAL:
                active.setdefault(c.incident.service, owner)
        # what an open incident covers (its service, its symptomatic callers, a service kept
        # quiet after an action) is not routine
        covered = set(active) | {svc for c in self.cases.values()
                                 if c.incident.state not in TERMINAL
                                 for svc in c.detail.get("related", [])}
        covered |= {svc for svc, until in self.quiet_until.items() if until > now}
        context = detect.Context(changes=recent, maintenance=self._maintenance + drained,
                                 settle_s=self.cfg.detect.settle_s,
                                 incidents=frozenset(covered))
        anomalies = self.detector.update(
            now, {k: v for k, v in values.items() if k[1] not in expiry_mod.WHAT}, context)
        dropped = self.detector.take_dropped()
        if dropped:
            names = ", ".join(f"{s}/{m}" for s, m in dropped[:5])
            self.emit("detect", f"{len(dropped)} series with no value for "
                      f"{self.cfg.detect.forget_after_s / 86_400:g} days dropped from the "
                      f"detectors: {names}{', ...' if len(dropped) > 5 else ''}")
        for svc, metric in self.detector.take_unranked():
            self.emit("detect", explain_mod.unranked_note(svc, metric), service=svc)
        anomalies += self.expiry.update(
            now, {k: v for k, v in values.items() if k[1] in expiry_mod.WHAT})
        result = correlate.correlate(
            self._fuse(anomalies), open_incidents=active,
            topology=self.topology, quiet_until=self.quiet_until, now=now,
            new_id=lambda: model.IncidentId(f"inc-{uuid.uuid4().hex[:8]}"))
        for inc in result.new:  # first: a finding of this same tick may join one of them
            self._open(inc)
        for incident_id, finding in result.joined:
            case = self.cases[incident_id]
            related = case.detail.setdefault("related", [])
            if finding.service not in related:  # one ledger entry per symptomatic service
                related.append(finding.service)
                self.record(case, "signal.related", {"service": finding.service,
                                                     "summary": finding.summary})
                self.persist(case)
                self.emit("correlate", f"{finding.summary} — a symptom of "
                          f"{case.incident.service}'s incident, joined to it", incident_id)
        every = self.cfg.detect.save_state_s
        if every > 0 and now - self._state_saved_at >= every and self.detector.last_t \
                is not None and (self._saving is None or self._saving.done()):
            # copied here, encoded and written in a thread: at 100,000 series that is ~1 s
            # the loop would otherwise stand still
            self._state_saved_at = now
            self._saving = asyncio.create_task(self._write_state(now, self.detector.snapshot()))

    def _open(self, inc: model.Incident) -> None:
        case = Case(incident=inc, detail={"anomalies": inc.anomalies, "alerts": inc.alerts},
                    timeline=[])
        self.cases[inc.id] = case
        recent = [c for c in self.store.changes_between(inc.opened_at - 600, inc.opened_at)
                  if c.service == inc.service]
        self.record(case, "incident.opened", {"incident": inc, "recent_changes": recent})
        self.persist(case)
        lead = inc.anomalies[0] if inc.anomalies else None
        self.emit("detect", inc.title, inc.id, explanation=lead.explanation if lead else "")
        self.tasks[inc.id] = asyncio.create_task(self.workflow.handle(case), name=inc.id)

    def _alerts(self, alerts: Sequence[model.Alert], now: float) -> None:
        """A firing alert joins its service's open incident or opens one; resolved alerts
        are recorded on the incident they joined."""
        for alert in alerts:
            case = next((c for c in self.cases.values() if c.incident.service == alert.service
                         and c.incident.state not in TERMINAL), None)
            if case is not None:
                case.incident = dataclasses.replace(
                    case.incident, alerts=(*case.incident.alerts, alert))
                self.record(case, "signal.alert", {"alert": alert, "joined": True})
                self.persist(case)
                continue
            if alert.status != "firing" or not alert.service:
                self.store.append_ledger(now, "", "signal.alert", {"alert": alert,
                                                                   "joined": False})
                continue
            self._open(model.Incident(
                id=model.IncidentId(f"inc-{uuid.uuid4().hex[:8]}"), service=alert.service,
                opened_at=now, title=f"{alert.service}: alert {alert.name} firing",
                anomalies=(), alerts=(alert,)))

    def save_state(self, now: float) -> None:
        """Save what the detectors learned to the store now (`detect.save_state_s`; the tick
        saves in a thread instead); nothing before their first tick, so a start that never
        ran keeps the last saved state."""
        if self.cfg.detect.save_state_s <= 0 or self.detector.last_t is None:
            return
        self._state_saved_at = now  # a failed save is tried again at the next interval
        try:
            self.store.save_state(STATE_NAME, now, self.detector.save())
        except errors.DataUnavailable as exc:
            self.emit("error", f"the detectors' state was not saved: {exc}")

    async def _write_state(self, now: float, encode: Callable[[], bytes]) -> None:
        try:
            await asyncio.to_thread(lambda: self.store.save_state(STATE_NAME, now, encode()))
        except errors.DataUnavailable as exc:
            self.emit("error", f"the detectors' state was not saved: {exc}")

    async def state_saved(self) -> None:
        """Wait for the save the last tick started, if one is under way."""
        if self._saving is not None:
            await self._saving

    def _restore(self, now: float) -> None:
        """Take back the detectors' saved state, when there is one that fits the config."""
        if self.cfg.detect.save_state_s <= 0:
            return
        saved = self.store.load_state(STATE_NAME)
        if saved is None:
            return
        try:
            det = detect.Detector.load(saved[1], detector_settings(self.cfg.detect))
            if det.last_t is not None and det.last_t > now + 60.0:
                raise errors.StateUnusable(
                    f"it was saved {det.last_t - now:.0f} s in the future (is the clock right?)")
            tick, learned = self.cfg.scrape.interval_s, det.spacing_s
            if learned is not None and not (tick / RESTORE_SPACING <= learned
                                            <= RESTORE_LAG * tick):
                # memories counted in ticks misjudge values at another spacing (as history
                # does); the tick changes when scrape.interval_s, or Prometheus's scrape
                # interval it follows, does
                raise errors.StateUnusable(
                    f"it was learned from ticks {learned:.3g} s apart and selfheal now ticks "
                    f"every {tick:g} s (scrape.interval_s, or Prometheus's scrape interval "
                    f"when it is unset; set it to {learned:.3g} to keep the state)")
        except errors.StateUnusable as exc:
            self.emit("detect", f"the detectors' saved state is not used: {exc}; they start "
                      "from the stored samples")
            return
        self.detector = det
        age = now - (det.last_t if det.last_t is not None else saved[0])
        self.emit("detect", f"detectors restored from their saved state ({len(det.series)} "
                  f"series, last tick {age:.0f} s ago)")

    def warm_start(self, lookback_s: float = WARM_START_S) -> int:
        """Rebuild the detectors' state after a restart (a detector that starts cold would be
        blind for its warm-up and take the first minutes of an ongoing fault for its
        baseline). The saved state (`save_state`) is taken back when it fits the config, and
        the samples stored since its last tick are replayed (at most `REPLAY_MAX_S`);
        without one, the last `lookback_s` seconds of service-level series are. Replayed in
        time order with the changes of that time; what fired then was handled then, so the
        anomalies are dropped. Returns the ticks replayed."""
        now = self.clock()
        self._restore(now)
        since = self.detector.last_t
        start = now - lookback_s
        if since is None:
            learn.learn_history(self, start)
        if since is not None:
            start = min(start, max(since, now - REPLAY_MAX_S))
        by_t: dict[float, dict[tuple[str, str], float]] = {}
        try:
            # the series the store kept, and those the restored detectors know (the store may
            # answer queries from elsewhere, Prometheus, for a time it kept nothing itself)
            names = sorted(set(self.store.series_names(start, now)) | {
                key for key in self.detector.series if key[1] not in expiry_mod.WHAT})
            for service, metric in names:
                for smp in self.store.query(service, metric, start, now):
                    by_t.setdefault(smp.t, {})[(service, metric)] = smp.value
        except errors.DataUnavailable as exc:
            self.emit("detect", f"no stored samples to warm the detectors from: {exc}")
            return 0
        if not by_t:
            return 0
        changes = tuple(self.store.changes_between(start - 600, now))
        troubled = self._troubled(start)
        ticks = 0
        for t in sorted(by_t):
            values = by_t[t]
            if t >= now - lookback_s:
                self.expiry.update(
                    t, {k: v for k, v in values.items() if k[1] in expiry_mod.WHAT})
            if since is not None and t <= since:
                continue  # the saved state has it already
            context = detect.Context(changes=tuple(c for c in changes if c.t <= t),
                                     maintenance=self._maintenance,
                                     settle_s=self.cfg.detect.settle_s, incidents=troubled)
            self.detector.update(
                t, {k: v for k, v in values.items() if k[1] not in expiry_mod.WHAT}, context)
            ticks += 1
        if since is None:
            self.emit("detect", f"detectors warmed from {ticks} stored ticks "
                      f"({len(names)} series, last {lookback_s:.0f} s)")
        elif since < now - REPLAY_MAX_S:
            self.emit("detect", f"detectors caught up on the {ticks} ticks stored in the last "
                      f"{REPLAY_MAX_S:.0f} s (their saved state is {now - since:.0f} s old)")
        else:
            self.emit("detect", f"detectors caught up on {ticks} ticks stored since their "
                      "saved state")
        return ticks

    def _troubled(self, since: float) -> frozenset[str]:
        """The services of incidents open since `since` (or still open): their episodes of
        that time are not learned as routine by the report gate."""
        done = {state.value for state in TERMINAL}
        return frozenset(row["service"] for row in self.store.incidents()
                         if row["updated_at"] >= since or row["state"] not in done)

    async def run(self) -> None:
        """Tick until `stop()`; a tick failing on the outside world is reported and the loop
        goes on (a bug still surfaces)."""
        interval = self.cfg.scrape.interval_s
        loop = asyncio.get_running_loop()
        nxt = loop.time()
        while not self._stopping.is_set():
            try:
                await self.tick()
            except (errors.SelfhealError, OSError) as exc:
                self.emit("error", f"tick failed, retrying next tick: {exc}")
            nxt += interval
            delay = nxt - loop.time()
            if delay < 0:
                nxt = loop.time()
                delay = 0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    def halt(self) -> None:
        """Interrupt a `warm_start` running in another thread (between two ticks of history);
        what it learned until then stays."""
        self._halting.set()

    async def stop(self) -> None:
        self.halt()
        self._stopping.set()
        for t in self.tasks.values():
            t.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        await self.state_saved()
        self.save_state(self.clock())
        for f in self.feeds:
            await f.close()

    # -- reads for the workflow -------------------------------------------------------------

    def series(self, service: str, start: float, end: float,
               replica: str = "") -> dict[str, list[model.Sample]]:
        return {m: self.store.query(service, m, start, end, replica=replica)
                for m in scrape.SIGNALS}
