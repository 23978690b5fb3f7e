"""Autoscaling baselines, each faithful to its upstream defaults (documented per parameter in
its module). Same contract as fleetpilot's own policy (controlplane/policy/replicas.py):

    decide_x(snapshot: ModelSnapshot, state: XState, cfg: XConfig) -> (Decision, XState)

pure (no clock, no I/O; `now_s` is in the snapshot), the Decision's `final` is the replica count
to apply (None: no decision, nothing changes). Call every simulated second: each policy keeps
its own cadence (HPA 15 s, KPA 2 s, Dynamo 180 s) and answers `not_due` in between.

hpa.py     Kubernetes HPA: ratio rule, 10 % tolerance, 15 s sync, 300 s scale-down
           stabilisation, default scale-up/-down policies
kpa.py     Knative KPA: 60 s stable / 6 s panic windows, panic at 200 %, max scale-down rate 2
dynamo.py  Dynamo-planner-like: predict the next 180 s (constant or Holt/ARIMA-like), size
           from the profiled replica, its SLO corrected by observed / profiled latency
static.py  a fixed count (e.g. the trace's peak / capacity)
oracle.py  knows the future: max load over [now, now + startup + lookahead] / capacity
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controlplane.policy.decision import Decision
from controlplane.policy.snapshot import ModelSnapshot
from controlplane.sim.baselines.dynamo import DynamoConfig, DynamoState, ProfileCurve, decide_dynamo
from controlplane.sim.baselines.hpa import HpaConfig, HpaState, decide_hpa
from controlplane.sim.baselines.kpa import KpaConfig, KpaState, decide_kpa
from controlplane.sim.baselines.oracle import OracleConfig, OracleState, decide_oracle
from controlplane.sim.baselines.static import StaticConfig, StaticState, decide_static


@dataclass(frozen=True)
class Baseline:
    """A policy bound to its config: `decide(snap, state) -> (Decision, state)`."""

    name: str
    cfg: Any
    initial_state: Any
    fn: Callable[[ModelSnapshot, Any, Any], tuple[Decision, Any]]

    def decide(self, snap: ModelSnapshot, state: Any) -> tuple[Decision, Any]:
        return self.fn(snap, state, self.cfg)


_STATES: dict[type, tuple[str, type, Callable]] = {
    HpaConfig: ("hpa", HpaState, decide_hpa),
    KpaConfig: ("kpa", KpaState, decide_kpa),
    DynamoConfig: ("dynamo", DynamoState, decide_dynamo),
    StaticConfig: ("static", StaticState, decide_static),
    OracleConfig: ("oracle", OracleState, decide_oracle),
}


def baseline(cfg: Any) -> Baseline:
    """The baseline a config belongs to, e.g. `baseline(HpaConfig(target_rps_per_replica=40))`."""
    try:
        name, state_cls, fn = _STATES[type(cfg)]
    except KeyError:
        raise ValueError(
            f"not a baseline config: {type(cfg).__name__}; one of {sorted(c.__name__ for c in _STATES)}"
        ) from None
    return Baseline(name, cfg, state_cls(), fn)


__all__ = [
    "Baseline",
    "DynamoConfig",
    "DynamoState",
    "HpaConfig",
    "HpaState",
    "KpaConfig",
    "KpaState",
    "OracleConfig",
    "OracleState",
    "ProfileCurve",
    "StaticConfig",
    "StaticState",
    "baseline",
    "decide_dynamo",
    "decide_hpa",
    "decide_kpa",
    "decide_oracle",
    "decide_static",
]
