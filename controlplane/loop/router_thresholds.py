"""The loop's side of the router-thresholds policy: its state across ticks, what the router holds,
and the `PUT /admin/thresholds` call (through the RouterControl port) with its recorded action.

The decision itself is pure (controlplane.policy.thresholds.decide_thresholds); this class does the
I/O around it, as the controller does for replicas and weights.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from controlplane.actuators.router import RouterControl
from controlplane.config import Settings
from controlplane.loop.live import LiveView
from controlplane.loop.recorder import Recorder, action_row
from controlplane.loop.threshold_inputs import build_threshold_inputs, threshold_config
from controlplane.policy.replicas import ReplicaPolicyState
from controlplane.policy.snapshot import ModelSnapshot
from controlplane.policy.thresholds import (
    ADMIT_FIELD,
    SPILL_FIELD,
    TIER_FIELD,
    RouterThresholds,
    ThresholdResult,
    ThresholdState,
    decide_thresholds,
)

REFRESH_S = 30.0  # re-send engaged thresholds this often: a restarted router is back at its config


def router_baseline(settings: Settings) -> RouterThresholds:
    """What a router started from these settings holds."""
    r = settings.router
    return RouterThresholds(
        dict(r.admit_below_load_ratio), r.tier_complexity_threshold_ratio, r.spill_inflight_per_replica
    )


def merged(applied: RouterThresholds, body: Mapping[str, Any]) -> RouterThresholds:
    """The router's values after it accepted `body` (it merges admit classes, like this)."""
    return RouterThresholds(
        {**applied.admit_below_load_ratio, **body.get(ADMIT_FIELD, {})},
        body.get(TIER_FIELD, applied.tier_complexity_threshold_ratio),
        body.get(SPILL_FIELD, applied.spill_inflight_per_replica),
    )


class RouterThresholdsStep:
    def __init__(
        self,
        settings: Settings,
        router: RouterControl | None,
        recorder: Recorder,
        tuning: Mapping[str, Any] | None = None,  # ThresholdConfig fields other than the baselines
    ) -> None:
        self.s = settings
        self.router = router
        self.recorder = recorder
        self.tuning = dict(tuning or {})
        self.state = ThresholdState()
        self.applied = router_baseline(settings)  # what the router holds, as far as this loop knows
        self._sent_s = -1e18
        self.last: ThresholdResult | None = None

    def tick(
        self,
        now_s: float,
        view: LiveView,
        snapshots: Iterable[ModelSnapshot],
        *,
        rep_states: Mapping[str, ReplicaPolicyState],
        max_replicas: Mapping[str, int],
        mode: str,
        exclude: frozenset[str] = frozenset(),
        paused: bool = False,
    ) -> ThresholdResult:
        """Decide, and when active (not paused, routing managed, a router known) apply the changes.

        Returns the result; its decisions are for the controller to record (after its overrides)."""
        inputs = build_threshold_inputs(
            now_s,
            view,
            snapshots,
            rep_states=rep_states,
            max_replicas=max_replicas,
            slo_for=self.s.control.slo_for,
            exclude=exclude,
            current=self.applied,
        )
        res, self.state = decide_thresholds(inputs, self.state, threshold_config(self.s, mode, **self.tuning))
        self.last = res
        may_act = (
            mode == "active" and not paused and self.s.control.manage_routing and self.router is not None
        )
        if not may_act:
            return res
        body = res.changes
        if not body and res.engaged and now_s - self._sent_s >= REFRESH_S:
            body = res.desired
        if body:
            self._send(now_s, res, body)
        return res

    def _send(self, now_s: float, res: ThresholdResult, body: dict[str, Any]) -> None:
        out = self.router.set_thresholds(body)  # type: ignore[union-attr]
        if out.ok:
            self.applied = merged(self.applied, body)
            self._sent_s = now_s
        # A failed send leaves `applied` as it was: the next tick's changes include it again.
        cause = next((d for d in res.decisions if d.actuate), res.decisions[0] if res.decisions else None)
        self.recorder.add(
            "actions",
            [
                action_row(
                    now_s,
                    decision_id=cause.decision_id if cause else "",
                    actuator="router",
                    action="set_thresholds",
                    mode="active",
                    model="",
                    replica="",
                    params={"thresholds": body},
                    res=out,
                )
            ],
        )
