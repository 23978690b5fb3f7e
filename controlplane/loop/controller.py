"""The control loop's tick: live view -> detectors -> snapshots -> policies -> actuators -> records.

`Controller.tick(now_s)` does the I/O around the pure parts (controlplane/anomaly, policy,
loop/fleet_plan). Replica processes take seconds to start, so fleet operations run on one worker
thread, one at a time, and the tick goes on deciding and detecting meanwhile; the count asked for
is kept as the spec (`spec_replicas`) so a slow start is not re-ordered every tick.
Overrides (pause, pin, mode) from the API apply at the next tick.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from opentelemetry.trace import Tracer

from collectors.telemetry import make_tracer
from controlplane.actuators.replicas import ReplicaProcesses
from controlplane.actuators.router import RouterControl
from controlplane.anomaly.combine import CombineParams, Ramp
from controlplane.anomaly.incidents import IncidentParams
from controlplane.anomaly.tick import EngineParams
from controlplane.api.overrides import (
    ALL_MODELS,
    EffectiveOverride,
    Override,
    effective_overrides,
    override_for,
)
from controlplane.config import Settings
from controlplane.loop import fleet_plan
from controlplane.loop.detect import Detector, observe
from controlplane.loop.live import LiveView, LiveWindow, build_view
from controlplane.loop.metrics import LoopMetrics
from controlplane.loop.recorder import Recorder, action_row, utc
from controlplane.loop.router_thresholds import RouterThresholdsStep
from controlplane.policy import (
    Decision,
    ModelSnapshot,
    RailsConfig,
    ReplicaPolicyConfig,
    ReplicaPolicyState,
    ReplicaSignal,
    RoutingConfig,
    RoutingState,
    decide_replicas,
    decide_weights,
    first_state,
)

log = logging.getLogger(__name__)

PAUSED = "paused"  # reason code: an override paused actuation for this model
PINNED = "pinned"  # reason code: an override pinned the replica count
WEIGHTS_REFRESH_S = 30.0  # re-send weights this often: a restarted router forgets them
# Incidents on these metrics take a replica out of rotation: requests there are slow or fail.
# A low cache hit ratio (a new replica's cold cache warms only with traffic) or memory growth
# (draining does not stop a leak) are for SREs and the dashboards, not the router.
ROUTING_METRICS = frozenset({"latency_ms", "queue_ms", "error_ratio"})


def replica_policy_config(s: Settings, model: str, mode: str, pinned: int | None) -> ReplicaPolicyConfig:
    c = s.control
    lo, hi = (pinned, pinned) if pinned is not None else (c.min_replicas, c.max_replicas)
    rails = RailsConfig(
        min_replicas=lo,
        max_replicas=hi,
        max_up_step=c.max_up_step_replicas,
        max_down_step=c.max_down_step_replicas,
        max_down_ratio=c.max_down_ratio,
        step_interval_s=c.step_interval_s,
        down_window_s=c.scale_down_window_s,
        mode=mode,
    )
    return ReplicaPolicyConfig(
        headroom_ratio=c.headroom_ratio,
        stale_after_s=c.stale_after_s,
        queue_per_replica_target=c.queue_target_requests,
        panic_threshold_ratio=c.panic_threshold_ratio,
        backlog_drain_s=c.backlog_drain_s,
        latency_settle_s=c.latency_settle_s,
        forecast_max_lead_ratio=c.forecast_max_lead_ratio,
        burst_window_s=c.burst_window_s,
        burst_quantile_ratio=c.burst_quantile_ratio,
        sustained_window_s=c.sustained_window_s if c.burst_window_s is not None else None,
        backlog_lead_s=c.replica_startup_s if c.project_backlog and c.backlog_drain_s is not None else None,
        rails=rails,
    )


def routing_config(s: Settings, mode: str) -> RoutingConfig:
    c = s.control
    return RoutingConfig(
        drain_step_weight=c.drain_step_weight,
        restore_step_weight=c.restore_step_weight,
        slow_ratio=c.slow_ratio,
        replace_after_s=c.replace_after_s,
        restore_after_s=c.restore_after_s,
        mode=mode,
    )


def build_snapshot(
    model: str,
    view: LiveView,
    *,
    now_s: float,
    fleet: list[fleet_plan.FleetReplica],
    spec_replicas: int | None,
    open_by_replica: dict[tuple[str, str], int],
    slo_p99_ms: float,
    forecast_p90_rps: float | None,
    capacity_rps: float | None,
    out_of_rotation: frozenset[str] = frozenset(),
) -> ModelSnapshot:
    """Pure: one model's snapshot from the live view and the fleet."""
    names = [r.name for r in fleet] or sorted({rep for (m, rep) in view.stable if m == model})
    zones = {r.name: r.zone for r in fleet}
    signals = []
    for name in names:
        lvl = view.replicas.get(name)
        w = view.stable.get((model, name))
        # Routing judges a replica on the short window: a recovered replica is seen as such in
        # seconds, not after the stable window has forgotten its slow minute.
        recent = view.short.get((model, name)) or w
        p99 = None
        if recent is not None and recent.requests > 0:
            p99 = recent.p99_ms if recent.p99_ms is not None else recent.latency_ms
        signals.append(
            ReplicaSignal(
                name=name,
                healthy=lvl is not None and lvl.up and w is not None,
                p99_ms=p99,
                open_incidents=open_by_replica.get((model, name), 0) + open_by_replica.get(("", name), 0),
                zone=zones.get(name, lvl.zone if lvl else ""),
            )
        )
    ready = sum(1 for s in signals if s.healthy)
    snap = ModelSnapshot(
        now_s=now_s,
        model=model,
        observed_replicas=len(names),
        ready_replicas=ready,
        rate_rps=None,
        rate_age_s=None,
        slo_p99_ms=slo_p99_ms,
        forecast_p90_rps=forecast_p90_rps,
        capacity_rps=capacity_rps,
        spec_replicas=spec_replicas,
        replicas=tuple(signals),
    )
    return with_aggregate(snap, view, out_of_rotation)


def with_aggregate(snap: ModelSnapshot, view: LiveView, out_of_rotation: frozenset[str]) -> ModelSnapshot:
    """Pure: the snapshot's model-level load and latency, leaving out the latency of replicas
    out of rotation (their slow minute is not the model's)."""
    agg = view.model_aggregate(snap.model, out_of_rotation)
    return replace(
        snap,
        rate_rps=agg.rate_rps,
        rate_age_s=None if agg.newest_s is None else max(0.0, snap.now_s - agg.newest_s),
        short_rate_rps=agg.short_rate_rps,
        queue_len=agg.queue_len,
        p99_ms=agg.p99_ms,
        mean_latency_ms=agg.mean_latency_ms,
    )


def with_override(d: Decision, ov: EffectiveOverride) -> Decision:
    """Pause turns an active decision advisory (recorded, not applied) and says so."""
    reasons = list(d.reason_codes)
    if ov.pinned_replicas is not None and d.policy == "replicas":
        reasons.append(PINNED)
    if ov.paused:
        reasons.append(PAUSED)
        return replace(
            d, mode="advisory" if d.mode == "active" else d.mode, actuate=False, reason_codes=reasons
        )
    return replace(d, reason_codes=reasons)


@dataclass(frozen=True)
class Observed:
    """What one tick sees before deciding."""

    fleet: list[fleet_plan.FleetReplica]  # with the weights last sent
    view: LiveView
    events: list  # anomaly events raised this tick
    routing_open: dict[tuple[str, str], int]  # (model, replica) -> open incidents that drain
    all_open: dict[tuple[str, str], int]  # (model, replica) -> every open incident (the API's)


@dataclass(frozen=True)
class ModelOutcome:
    """One model's decisions in one tick."""

    snap: ModelSnapshot  # load and latency without the replicas out of rotation
    replicas_decision: Decision
    routing: list[Decision]
    weights: dict[str, int]
    replace: list[str]  # replicas routing wants replaced
    out_of_rotation: frozenset[str]
    max_replicas: int
    acting: bool  # active and not paused: its weights and replacements are applied
    row: dict  # the API's view of the model

    @property
    def decisions(self) -> list[Decision]:
        return [self.replicas_decision, *self.routing]


class Controller:
    def __init__(
        self,
        settings: Settings,
        live: LiveWindow,
        recorder: Recorder,
        *,
        fleet_state: Callable[[], list[fleet_plan.FleetReplica]] | None = None,
        processes: ReplicaProcesses | None = None,
        router: RouterControl | None = None,
        forecast_p90: Callable[[str, float], float | None] | None = None,
        capacity: Callable[[str], float | None] | None = None,
        scrape_interval_s: float | None = None,
        inline_ops: bool = False,  # tests: run fleet operations in the tick instead of a worker
        metrics: LoopMetrics | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.s = settings
        self.metrics = metrics or LoopMetrics()
        self.tracer = tracer or make_tracer(settings.collect.otlp_endpoint)
        self.live = live
        self.recorder = recorder
        recorder.on_action = lambda r: self.metrics.actions.labels(
            r["actuator"], r["action"], r["outcome"]
        ).inc()
        self.fleet_state = fleet_state
        self.processes = processes
        self.router = router
        self.forecast_p90 = forecast_p90 or (lambda model, ahead_s: None)
        self.capacity = capacity or settings.control.capacity_rps_by_model.get
        self.detect_window_s = scrape_interval_s or settings.collect.scrape_interval_s
        # Incidents close after a few quiet scrapes: a drained replica gets no traffic, so its
        # incident would otherwise hold it out of rotation long after the fault is gone.
        close_s = max(15.0, 5 * self.detect_window_s)
        # A change point alone (score 0.5) does not open an incident; with a robust or peer
        # deviation beside it, it does.
        self.detector = Detector(
            slo_ms=settings.control.slo_for,
            params=EngineParams(
                incidents=IncidentParams(close_after_s=close_s, cooldown_s=close_s / 2),
                combine=CombineParams(changepoint=Ramp(0.0, 2.0)),
            ),
        )
        self.rep_state: dict[str, ReplicaPolicyState] = {}
        self.route_state: dict[str, RoutingState] = {}
        self.thresholds = RouterThresholdsStep(
            settings,
            router,
            recorder,
            tuning={
                "step_interval_s": settings.control.thresholds_step_interval_s,
                "restore_after_s": settings.control.thresholds_restore_after_s,
            },
        )
        self.models_seen: set[str] = set()
        self.override_rows: list[Override] = []  # every override the API stored (they expire by ttl)
        self.spec_replicas: int | None = None
        self.weights: dict[str, int] = {}
        self._weights_sent_s = -1e18
        self.inline_ops = inline_ops
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fleet-op")
        self._op: Future | None = None
        self._lock = threading.Lock()  # guards the views below (the API reads them)
        self._last_recorded: dict[str, tuple] = {}
        self.tick_count = 0
        self.last_tick_s: float | None = None
        self.last_error: str | None = None
        self.model_rows: list[dict] = []
        self.replica_rows: list[dict] = []
        self.events_total = 0
        self.recent_events: deque = deque(maxlen=2000)  # the newest anomaly events, for readers in-process

    # ---- overrides (the API calls this) ---------------------------------------------------
    def add_override(self, ov: Override) -> None:
        with self._lock:
            self.override_rows.append(ov)

    def effective(self, now_s: float) -> dict[str, EffectiveOverride]:
        with self._lock:
            return effective_overrides(self.override_rows, now_s)

    # ---- the tick ----------------------------------------------------------------------------
    def tick(self, now_s: float | None = None) -> dict[str, Any]:
        now = time.time() if now_s is None else now_s
        started = time.perf_counter()
        try:
            with self.tracer.start_as_current_span("loop.tick") as span:
                report = self._tick(now)
                span.set_attribute("decisions", len(report["decisions"]))
        except Exception:
            self.metrics.tick_errors.inc()
            raise
        m = self.metrics
        m.tick_seconds.observe(time.perf_counter() - started)
        for d in report["decisions"]:
            m.decisions.labels(d.policy, d.kind, d.mode).inc()
        for e in report["events"]:
            m.anomaly_events.labels(e.kind).inc()
        m.open_incidents.set(len(self.detector.open_incidents()))
        m.recorder_pending_rows.set(self.recorder.pending())
        m.recorder_dropped_rows.set(self.recorder.dropped_rows)
        return report

    def _tick(self, now: float) -> dict[str, Any]:
        c = self.s.control
        seen = self._observe(now)
        if not self.busy():  # no operation in flight: the spec is what runs
            self.spec_replicas = len(seen.fleet) if seen.fleet else None
        effective = self.effective(now)
        with self.tracer.start_as_current_span("loop.decide"):
            # A model seen before stays decided on (no data is a decision: hold, never scale down).
            self.models_seen.update(seen.view.models)
            outcomes = [self._decide_model(now, model, seen, effective) for model in sorted(self.models_seen)]
        decisions = [x for o in outcomes for x in o.decisions]
        acting = [o for o in outcomes if o.acting]

        # Router thresholds (admission, tier, spill-over): one router-wide decision per lever.
        ov_all = override_for(effective, ALL_MODELS)
        t_res = self.thresholds.tick(
            now,
            seen.view,
            [o.snap for o in outcomes],
            rep_states=self.rep_state,
            max_replicas={o.snap.model: o.max_replicas for o in outcomes},
            mode=ov_all.mode or c.mode,
            exclude=frozenset().union(*(o.out_of_rotation for o in outcomes)),
            paused=ov_all.paused,
        )
        decisions += [with_override(x, ov_all) for x in t_res.decisions]

        target, top = fleet_plan.fleet_target([o.replicas_decision for o in outcomes])
        self._record_decisions(decisions, now)
        with self.tracer.start_as_current_span("loop.actuate") as span:
            self._route(
                now,
                [o.weights for o in acting],
                seen.fleet,
                [x for o in acting for x in o.routing if x.actuate],
            )
            step = self._fleet_step(now, target, top, seen.fleet, [n for o in acting for n in o.replace])
            span.set_attribute("fleet_step", step.op)
        self._record_replicas(now, seen.fleet, seen.view, seen.all_open)
        self.metrics.fleet_replicas.set(len(seen.fleet))
        self.recorder.flush()
        with self._lock:
            self.tick_count += 1
            self.last_tick_s = now
            self.model_rows = [o.row for o in outcomes]
        return {
            "now_s": now,
            "models": list(seen.view.models),
            "events": seen.events,
            "decisions": decisions,
            "fleet_target": target,
            "fleet_step": step,
            "weights": dict(self.weights),
        }

    def _observe(self, now: float) -> Observed:
        """The fleet, the live view, this tick's anomaly events and the open incidents."""
        c = self.s.control
        fleet = self.fleet_state() if self.fleet_state is not None else []
        if fleet:  # a removed or replaced replica's old scrapes must not count
            self.live.forget_missing({r.name for r in fleet})
        histories = self.live.histories()
        view = build_view(
            histories,
            now,
            detect_window_s=self.detect_window_s,
            stable_window_s=c.stable_window_s,
            short_window_s=c.short_window_s,
        )
        events = []
        if c.detect:
            observed = observe(view, {k: list(v) for k, v in histories.items()}, 6 * self.detect_window_s)
            events = self.detector.tick(now, observed.values, observed.trials)
            self.recorder.add("anomaly_events", [e.as_row() for e in events])
            self.events_total += len(events)
            self.recent_events.extend(events)
        routing_open: dict[tuple[str, str], int] = {}
        all_open: dict[tuple[str, str], int] = {}
        for inc in self.detector.open_incidents():
            key = (inc.model, inc.replica)
            all_open[key] = all_open.get(key, 0) + 1
            if inc.metric in ROUTING_METRICS:
                routing_open[key] = routing_open.get(key, 0) + 1
        return Observed(
            fleet=[replace(r, weight=self.weights.get(r.name)) for r in fleet],
            view=view,
            events=events,
            routing_open=routing_open,
            all_open=all_open,
        )

    def _decide_model(
        self, now: float, model: str, seen: Observed, effective: dict[str, EffectiveOverride]
    ) -> ModelOutcome:
        """Routing, then replicas, for one model; updates the model's policy states."""
        c = self.s.control
        ov = override_for(effective, model)
        mode = ov.mode or c.mode_for(model)
        snap = build_snapshot(
            model,
            seen.view,
            now_s=now,
            fleet=seen.fleet,
            spec_replicas=self.spec_replicas,
            open_by_replica=seen.routing_open,
            slo_p99_ms=c.slo_for(model),
            forecast_p90_rps=self.forecast_p90(model, c.replica_startup_s),
            capacity_rps=self.capacity(model),
        )
        # Routing first: a replica it takes out of rotation does not count towards the model's
        # latency (draining a slow replica must not also add replicas).
        routed, self.route_state[model] = decide_weights(
            snap, self.route_state.get(model, RoutingState()), routing_config(self.s, mode)
        )
        bad = frozenset(n for n, r in self.route_state[model].replicas.items() if r.bad_since_s is not None)
        snap = with_aggregate(snap, seen.view, bad)
        rcfg = replica_policy_config(self.s, model, mode, ov.pinned_replicas)
        d, self.rep_state[model] = decide_replicas(
            snap, self.rep_state.get(model) or first_state(now, snap.current_replicas), rcfg
        )
        d = with_override(d, ov)
        return ModelOutcome(
            snap=snap,
            replicas_decision=d,
            routing=[with_override(x, ov) for x in routed.decisions],
            weights=routed.weights,
            replace=list(routed.replace),
            out_of_rotation=bad,
            max_replicas=rcfg.rails.max_replicas,
            acting=mode == "active" and not ov.paused,
            row=self._model_row(snap, d, mode, ov, seen.all_open),
        )

    # ---- actuation ----------------------------------------------------------------------------
    def _route(self, now: float, per_model: list[dict[str, int]], fleet, changes: list[Decision]) -> None:
        """Send the combined weights when they changed (or every WEIGHTS_REFRESH_S); the action
        points at the first routing decision that changed a weight and carries every reason."""
        if not (self.s.control.manage_routing and self.router is not None and per_model):
            return
        weights = fleet_plan.combined_weights(per_model)
        live_names = {r.name for r in fleet} if fleet else set(weights)
        weights = {k: v for k, v in weights.items() if k in live_names}
        if not weights:
            return
        changed = weights != {k: self.weights.get(k) for k in weights}
        if not changed and now - self._weights_sent_s < WEIGHTS_REFRESH_S:
            return
        res = self.router.set_weights({k: float(v) for k, v in weights.items()})
        if res.ok:
            self.weights.update(weights)
            self._weights_sent_s = now
        if changed or not res.ok:
            self.recorder.add(
                "actions",
                [
                    action_row(
                        now,
                        decision_id=changes[0].decision_id if changes else "",
                        actuator="router",
                        action="set_weights",
                        mode="active",
                        model="",
                        replica="",
                        params={
                            "weights": weights,
                            "reasons": {d.replica: list(d.reason_codes) for d in changes},
                        },
                        res=res,
                    )
                ],
            )

    def _fleet_step(self, now, target, top, fleet, replace_names) -> fleet_plan.FleetStep:
        c = self.s.control
        if self._op is not None and not self._op.done():
            return fleet_plan.FleetStep("none", reason="operation_in_progress")
        self._op = None
        if not (c.manage_replicas and self.processes is not None and self.fleet_state is not None):
            return fleet_plan.FleetStep("none", reason="replicas_not_managed")
        step = fleet_plan.next_step(target, fleet, list(self.s.fleet.zones), replace_names)
        if step.op == "none":
            return step
        decision_id = top.decision_id if top is not None else ""
        model = top.model if top is not None else ""
        if step.op == "add":
            self.spec_replicas = len(fleet) + 1
        elif step.op == "remove":
            self.spec_replicas = len(fleet) - 1
        if self.inline_ops:
            self._run_step(step, decision_id, model)
        else:
            self._op = self._worker.submit(self._run_step, step, decision_id, model)
        return step

    def _run_step(self, step: fleet_plan.FleetStep, decision_id: str, model: str) -> None:
        start = time.time()
        if step.op == "add":
            res = self.processes.add(step.zone)
        elif step.op == "remove":
            res = self.processes.remove(step.replica)
        else:
            res = self.processes.replace(step.replica)
        if not res.ok:
            log.warning("fleet %s failed: %s", step.op, res.message)
        self.recorder.add(
            "actions",
            [
                action_row(
                    start,
                    decision_id=decision_id,
                    actuator="replicas",
                    action=step.op,
                    mode="active",
                    model=model,
                    replica=step.replica or str(res.details.get("replica", "")),
                    params={"zone": step.zone, "reason": step.reason},
                    res=res,
                )
            ],
        )

    # ---- records and views ------------------------------------------------------------------
    def _record_decisions(self, decisions: list[Decision], now: float) -> None:
        """Every change of action, reasons or count is recorded; an unchanged hold once a minute."""
        keep = []
        for d in decisions:
            key = f"{d.policy}:{d.model}:{d.replica}"
            sig = (d.kind, tuple(d.reason_codes), d.final, d.mode)
            last = self._last_recorded.get(key)
            if last is None or last[0] != sig or now - last[1] >= 60.0 or d.actuate:
                keep.append(d)
                self._last_recorded[key] = (sig, now)
        self.recorder.decisions(keep)

    def _record_replicas(self, now, fleet, view: LiveView, open_by) -> None:
        rows, status_rows = [], []
        names = [r.name for r in fleet] or sorted(view.replicas)
        zones = {r.name: r.zone for r in fleet}
        for name in names:
            lvl = view.replicas.get(name)
            state = (
                "ready" if lvl is not None and lvl.up else ("unhealthy" if lvl is not None else "starting")
            )
            models = sorted({m for (m, rep) in view.stable if rep == name})
            status_rows.append(
                {
                    "ts": utc(now),
                    "replica": name,
                    "model": "",
                    "zone": zones.get(name, lvl.zone if lvl else ""),
                    "region": "",
                    "state": state,
                    "ready": 1 if state == "ready" else 0,
                    "instance_count": 0,
                    "pid": 0,
                    "detail": ",".join(models),
                }
            )
            weight = self.weights.get(name)
            rows.append(
                {
                    "replica": name,
                    "zone": zones.get(name, lvl.zone if lvl else ""),
                    "region": self.s.fleet.region,
                    "models": models,
                    "spec": {
                        "desired_state": "drained" if weight == 0 else "running",
                        "weight": float(weight if weight is not None else 100),
                        "instance_count": 0,
                    },
                    "observed": {"state": state, "ready": state == "ready", "pid": None, "detail": ""},
                    "weight": self.weights.get(name),
                    "open_incidents": sum(v for (m, rep), v in open_by.items() if rep == name),
                }
            )
        self.recorder.add("replica_status", status_rows)
        with self._lock:
            self.replica_rows = rows

    def _model_row(self, snap: ModelSnapshot, d: Decision, mode: str, ov: EffectiveOverride, open_by) -> dict:
        return {
            "model": snap.model,
            "mode": mode,
            "paused": ov.paused,
            "pinned_replicas": ov.pinned_replicas,
            "desired_replicas": d.final,
            "observed_replicas": snap.observed_replicas,
            "ready_replicas": snap.ready_replicas,
            "rate_rps": snap.rate_rps,
            "p99_ms": snap.p99_ms,
            "slo_p99_ms": snap.slo_p99_ms,
            "capacity_rps": snap.capacity_rps,
            "forecast_p90_rps": snap.forecast_p90_rps,
            "open_incidents": sum(v for (m, _), v in open_by.items() if m == snap.model),
            "last_decision": {
                "action": d.kind,
                "reason_codes": list(d.reason_codes),
                "message": d.message,
                "current": d.current,
                "final": d.final,
            },
        }

    def models_view(self) -> list[dict]:
        with self._lock:
            return list(self.model_rows)

    def replicas_view(self) -> list[dict]:
        with self._lock:
            return list(self.replica_rows)

    def busy(self) -> bool:
        return self._op is not None and not self._op.done()

    def close(self, timeout_s: float = 30.0) -> None:
        """Wait for a fleet operation in flight (bounded), then stop the worker."""
        op = self._op
        if op is not None:
            try:
                op.result(timeout=timeout_s)
            except Exception:  # noqa: BLE001 - shutting down: report, do not raise
                log.exception("fleet operation did not finish cleanly")
        self._worker.shutdown(wait=False, cancel_futures=True)
        self.recorder.flush()
