"""Policy: pure decision functions (no clock, no I/O; `now_s` is in the snapshot).

snapshot.py  what a policy sees of one model at one tick (`ModelSnapshot`)
decision.py  the `Decision` record every policy returns (one row of the `decisions` table)
rails.py     the one wrapper every replica policy goes through: bounds -> step limits ->
             stabilisation -> mode
replicas.py  replicas per model: predictive floor + reactive path (queue, latency, panic)
routing.py   router weights per replica: gradual drain, replacement flag, gradual restore
"""

from controlplane.policy.decision import Decision
from controlplane.policy.rails import Clamp, RailsConfig, RailsState, Recommendation, apply_rails
from controlplane.policy.replicas import ReplicaPolicyConfig, ReplicaPolicyState, decide_replicas, first_state
from controlplane.policy.routing import RoutingConfig, RoutingResult, RoutingState, decide_weights
from controlplane.policy.snapshot import ModelSnapshot, ReplicaSignal, forecast_at

__all__ = [
    "Clamp",
    "Decision",
    "ModelSnapshot",
    "RailsConfig",
    "RailsState",
    "Recommendation",
    "ReplicaPolicyConfig",
    "ReplicaPolicyState",
    "ReplicaSignal",
    "RoutingConfig",
    "RoutingResult",
    "RoutingState",
    "apply_rails",
    "decide_replicas",
    "decide_weights",
    "first_state",
    "forecast_at",
]
