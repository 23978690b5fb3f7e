"""Router weights per replica from health, latency and open anomaly incidents.

A replica is bad when it is unhealthy, has an open incident, or its p99 is slow_ratio x the
median of its peers (and above slow_floor_ms, so that 1 ms vs 2 ms is not "slow"). A bad
replica is drained gradually (drain_step_weight per tick, so its in-flight work and the other
replicas' warm-up are not hit at once), flagged for replacement once it has been bad for
replace_after_s, and restored gradually once it has been good again for restore_after_s.
Drains never start while no other replica is good: weight has to go somewhere.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from functools import partial

from controlplane.policy.decision import Decision
from controlplane.policy.rails import MODES
from controlplane.policy.snapshot import ModelSnapshot, ReplicaSignal
from controlplane.policy.validate import out_of_range

# Reason codes (stable; stored and shown).
UNHEALTHY = "unhealthy"
OPEN_INCIDENT = "open_incident"
SLOW_VS_PEERS = "slow_vs_peers"
DRAIN = "drain"
DRAINED = "drained"  # already at 0
DRAIN_HELD_NO_GOOD_PEER = "drain_held_no_good_peer"
REPLACE_AFTER_BAD = "replace_after_bad"
RESTORE = "restore"
RESTORE_WAIT = "restore_wait"  # good again, waiting out restore_after_s
HEALTHY = "healthy"
NEW_REPLICA = "new_replica"
MODE_OFF = "mode_off"
DRAIN_BUDGET_EXHAUSTED = "drain_budget_exhausted"  # too many replicas already out: hold this one


@dataclass(frozen=True)
class RoutingConfig:
    full_weight: int = 100
    drain_step_weight: int = 25  # weight removed per tick from a bad replica
    restore_step_weight: int = 25  # weight given back per tick after recovery
    slow_ratio: float = 2.0  # p99 / median p99 of the peers that makes a replica slow
    slow_floor_ms: float = 5.0  # below this p99 a replica is never "slow"
    # ... nor below this fraction of the model's SLO: under a surge replicas differ by 2x in
    # latency while all meet the SLO, and draining one would only overload the others.
    slow_min_slo_ratio: float = 0.5
    replace_after_s: float = 120.0  # bad this long -> flag for replacement
    restore_after_s: float = 30.0  # good this long before restoring (hysteresis)
    # At most this fraction of the replicas (at least one) may be out of rotation at once, so an
    # overload that makes every replica slow never drains the fleet (a disruption budget).
    max_drained_ratio: float = 0.34
    mode: str = "active"  # active | advisory | off

    def __post_init__(self) -> None:
        bad = partial(out_of_range, "routing")

        for key in ("full_weight", "drain_step_weight", "restore_step_weight"):
            if getattr(self, key) < 1:
                bad(key, getattr(self, key), "an integer >= 1")
        if not (self.slow_ratio > 1 and math.isfinite(self.slow_ratio)):
            bad("slow_ratio", self.slow_ratio, "a finite number > 1")
        for key in ("slow_floor_ms", "replace_after_s", "restore_after_s"):
            v = getattr(self, key)
            if not (v >= 0 and math.isfinite(v)):
                bad(key, v, "a finite number >= 0")
        if self.mode not in MODES:
            bad("mode", self.mode, " | ".join(MODES))
        if not (0 < self.max_drained_ratio <= 1):
            bad("max_drained_ratio", self.max_drained_ratio, "(0, 1]")


@dataclass(frozen=True)
class ReplicaRoute:
    weight: int  # last weight set (in advisory mode: the weight that would have been set)
    bad_since_s: float | None = None
    good_since_s: float | None = None
    replace_requested: bool = False  # once per bad streak


@dataclass(frozen=True)
class RoutingState:
    replicas: dict[str, ReplicaRoute] = field(default_factory=dict)


@dataclass(frozen=True)
class RoutingResult:
    weights: dict[str, int]  # replica -> weight to apply (or that would be applied)
    replace: tuple[str, ...]  # replicas to replace now
    decisions: list[Decision]  # one per replica (policy "routing")
    actuate: bool  # active mode and something changed


def judge(
    rep: ReplicaSignal, peers: list[ReplicaSignal], cfg: RoutingConfig, slo_p99_ms: float | None = None
) -> list[str]:
    """Why a replica is bad (empty: it is good)."""
    why = []
    if not rep.healthy:
        why.append(UNHEALTHY)
    if rep.open_incidents > 0:
        why.append(OPEN_INCIDENT)
    peer_p99 = [p.p99_ms for p in peers if p.p99_ms is not None and p.healthy]
    floor_ms = max(cfg.slow_floor_ms, cfg.slow_min_slo_ratio * slo_p99_ms if slo_p99_ms else 0.0)
    if rep.p99_ms is not None and rep.p99_ms > floor_ms and peer_p99:
        if rep.p99_ms > cfg.slow_ratio * statistics.median(peer_p99):
            why.append(SLOW_VS_PEERS)
    return why


def _badness(rep: ReplicaSignal, why: list[str]) -> tuple:
    """Worst first: down, then open incidents, then slowest."""
    return (UNHEALTHY not in why, -rep.open_incidents, -(rep.p99_ms or 0.0), rep.name)


def drain_budget(
    replicas: tuple[ReplicaSignal, ...],
    verdicts: dict[str, list[str]],
    state: RoutingState,
    cfg: RoutingConfig,
) -> set[str]:
    """The bad replicas allowed out of rotation: those already below full weight first (a drain
    in progress continues), then the worst, up to max_drained_ratio of the replicas."""
    budget = max(1, math.floor(cfg.max_drained_ratio * len(replicas)))
    # Out of rotation now: any replica below full weight, bad or merely not yet restored (a
    # drained replica has no traffic, so it no longer looks bad, but it is still out).
    out_now = [
        r
        for r in replicas
        if state.replicas.get(r.name, ReplicaRoute(cfg.full_weight)).weight < cfg.full_weight
    ]
    keep = [r for r in out_now if verdicts[r.name]]  # a drain in progress may go on
    room = max(0, budget - len(out_now))
    rest = sorted(
        (r for r in replicas if verdicts[r.name] and r not in out_now),
        key=lambda r: _badness(r, verdicts[r.name]),
    )
    return {r.name for r in keep} | {r.name for r in rest[:room]}


def decide_weights(
    snap: ModelSnapshot, state: RoutingState, cfg: RoutingConfig
) -> tuple[RoutingResult, RoutingState]:
    now = snap.now_s
    if cfg.mode == "off":
        weights = {
            r.name: state.replicas.get(r.name, ReplicaRoute(cfg.full_weight)).weight for r in snap.replicas
        }
        off = Decision(
            model=snap.model, ts=now, current=None, recommended=None, final=None, mode="off",
            actuate=False, reason_codes=[MODE_OFF], inputs={}, message="routing mode off",
            policy="routing", action="none", confidence_ratio=0.0,
        )  # fmt: skip
        return RoutingResult(weights, (), [off], False), state

    verdicts = {
        r.name: judge(r, [p for p in snap.replicas if p.name != r.name], cfg, snap.slo_p99_ms)
        for r in snap.replicas
    }
    any_good = any(not v for v in verdicts.values())
    may_drain = drain_budget(snap.replicas, verdicts, state, cfg)
    new_routes: dict[str, ReplicaRoute] = {}
    decisions: list[Decision] = []
    weights: dict[str, int] = {}
    replace: list[str] = []
    for rep in snap.replicas:
        why = verdicts[rep.name]
        prev = state.replicas.get(rep.name)
        reasons: list[str] = []
        if prev is None:
            prev = ReplicaRoute(cfg.full_weight)
            reasons.append(NEW_REPLICA)
        route = prev
        current = prev.weight
        if why:
            bad_since = prev.bad_since_s if prev.bad_since_s is not None else now
            route = ReplicaRoute(current, bad_since, None, prev.replace_requested)
            reasons += why
            target = 0
            if current == 0:
                reasons.append(DRAINED)
                new_w = 0
            elif not any_good:
                reasons.append(DRAIN_HELD_NO_GOOD_PEER)
                new_w = current
            elif rep.name not in may_drain:
                reasons.append(DRAIN_BUDGET_EXHAUSTED)
                new_w = current
            else:
                reasons.append(DRAIN)
                new_w = max(0, current - cfg.drain_step_weight)
            action = "drain" if new_w < current else "hold"
            # Replacing is for a replica that stays bad on its own: not one held back by the budget,
            # and not while every replica looks bad (more likely the telemetry than the fleet).
            if (
                now - bad_since >= cfg.replace_after_s
                and not prev.replace_requested
                and rep.name in may_drain
                and any_good
            ):
                reasons.append(REPLACE_AFTER_BAD)
                route = ReplicaRoute(new_w, bad_since, None, True)
                replace.append(rep.name)
                action = "replace"
            else:
                route = ReplicaRoute(new_w, bad_since, None, route.replace_requested)
        else:
            good_since = prev.good_since_s if prev.good_since_s is not None else now
            target = cfg.full_weight
            new_w = current
            if current < cfg.full_weight:
                if now - good_since >= cfg.restore_after_s:
                    reasons.append(RESTORE)
                    new_w = min(cfg.full_weight, current + cfg.restore_step_weight)
                else:
                    reasons.append(RESTORE_WAIT)
            else:
                reasons.append(HEALTHY)
            action = "restore" if new_w > current else "hold"
            # "Good" without traffic (drained, no p99) is no evidence of recovery: the bad streak
            # goes on until it serves well again, so a replica that relapses is still replaced.
            unproven = rep.p99_ms is None and current < cfg.full_weight and prev.bad_since_s is not None
            keep_bad = prev.bad_since_s if unproven else None
            route = ReplicaRoute(new_w, keep_bad, good_since, prev.replace_requested and unproven)
        new_routes[rep.name] = route
        weights[rep.name] = route.weight
        changed = route.weight != current or action == "replace"
        actuate = cfg.mode == "active" and changed
        verb = "set" if cfg.mode == "active" else "would set"
        msg = f"{verb} weight {current} -> {route.weight}" if route.weight != current else f"weight {current}"
        if action == "replace":
            msg += (
                "; replace" if cfg.mode == "active" else "; would replace"
            ) + f" (bad since {bad_since:g})"
        decisions.append(
            Decision(
                model=snap.model,
                ts=now,
                current=current,
                recommended=target,
                final=route.weight,
                mode=cfg.mode,
                actuate=actuate,
                reason_codes=reasons,
                inputs={
                    "healthy": rep.healthy,
                    "p99_ms": rep.p99_ms,
                    "open_incidents": rep.open_incidents,
                    "bad_since_s": route.bad_since_s,
                    "good_since_s": route.good_since_s,
                    "zone": rep.zone,
                },
                message=msg,
                policy="routing",
                replica=rep.name,
                action=action,
            )  # fmt: skip
        )
    any_actuate = any(d.actuate for d in decisions)
    return RoutingResult(weights, tuple(replace), decisions, any_actuate), RoutingState(new_routes)
