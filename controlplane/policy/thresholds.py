"""Router thresholds under overload: admission per priority class, tier routing, zone spill-over.

Three levers, each an integer level (0 = the router's configured value) moved one step at a time:

  admission  a model over its SLO or in a surge that more replicas cannot help now (at max
             replicas, or replicas still starting) -> tighten: batch's admit ratio down by
             admit_step_ratio to its floor, then standard's, then premium's (never below its
             floor). A class without a floor is never tightened.
  tier       the large-tier model over its SLO while the small one has headroom -> raise
             tier_complexity_threshold_ratio by tier_step_ratio (fewer requests to the large
             tier), up to tier_max_ratio.
  spill      one zone over the SLO while another has headroom -> lower spill_inflight_per_replica
             (times spill_step_ratio per step, down to spill_min_inflight_per_replica) so that
             requests leave the slow zone sooner.

Hysteresis, so a lever does not flap: it moves away from baseline only while its trigger holds,
one step per step_interval_s (the effect of a step is seen before the next); it moves back one
step once its relief condition (p99 <= restore_below_slo_ratio x SLO, no surge) has held for
restore_after_s and restore_after_s has passed since its last step; between the two it holds
and the relief streak starts over. Unknown latency (p99 None) is neither overload nor relief.

Pure: `now_s` comes in the inputs; nothing here reads the clock or does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from controlplane.policy.decision import Decision
from controlplane.policy.rails import MODES
from controlplane.policy.snapshot import ModelSnapshot
from controlplane.policy.validate import out_of_range

POLICY = "thresholds"
ADMISSION, TIER, SPILL = "admission", "tier", "spill"  # the levers (Decision.replica names one)
LEVERS = (ADMISSION, TIER, SPILL)
ADMIT_FIELD = "admit_below_load_ratio"
TIER_FIELD = "tier_complexity_threshold_ratio"
SPILL_FIELD = "spill_inflight_per_replica"
FIELD_OF = {ADMISSION: ADMIT_FIELD, TIER: TIER_FIELD, SPILL: SPILL_FIELD}

# Reason codes (stable; stored and shown).
OVER_SLO = "over_slo"  # a model's p99 is over its SLO
SURGE = "surge"  # a model is in a surge (the replica policy's panic window)
AT_MAX_REPLICAS = "at_max_replicas"
REPLICAS_STARTING = "replicas_starting"
CAPACITY_CAN_BE_ADDED = "capacity_can_be_added"  # overload the replica policy can still fix: hold
LARGE_OVER_SLO = "large_over_slo"
SMALL_HEADROOM = "small_headroom"
SMALL_NO_HEADROOM = "small_no_headroom"  # moving load to the small tier would hurt it: hold
ZONE_OVER_SLO = "zone_over_slo"
OTHER_ZONE_HEADROOM = "other_zone_headroom"
NO_ZONE_HEADROOM = "no_zone_headroom"  # every other zone is busy too: spilling would not help
SINGLE_ZONE = "single_zone"
HEALTHY = "healthy"  # the relief condition holds
NOT_YET_HEALTHY = "not_yet_healthy"  # neither trigger nor relief (the dead band)
NO_DATA = "no_data"
TIGHTEN = "tighten"
AT_LIMIT = "at_limit"  # already at the floor / maximum
STEP_WAIT = "step_wait"  # tightened less than step_interval_s ago
RESTORE = "restore"
RESTORE_WAIT = "restore_wait"  # healthy, waiting out restore_after_s
AT_BASELINE = "at_baseline"
ROUTER_OUT_OF_SYNC = "router_out_of_sync"  # the router holds other values (e.g. it restarted)
MODE_ACTIVE = "mode_active"
MODE_ADVISORY = "mode_advisory"
MODE_OFF = "mode_off"

DEFAULT_ADMIT = {"premium": 1.0, "standard": 0.8, "batch": 0.5}
DEFAULT_ADMIT_FLOOR = {"premium": 0.9, "standard": 0.3, "batch": 0.1}


# ---- inputs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelLoad:
    """One model at this tick, as the replica policy saw it."""

    model: str
    p99_ms: float | None  # end-to-end p99 over the stable window; None: no data
    slo_p99_ms: float | None
    surge: bool = False  # the replica policy is in panic (a surge) for this model
    current_replicas: int = 0  # replicas asked for (spec) or running
    max_replicas: int = 0  # the most the replica policy may ask for (pinned count when pinned)
    starting_replicas: int = 0  # asked for but not ready yet

    @property
    def at_max(self) -> bool:
        return self.current_replicas >= self.max_replicas

    @classmethod
    def from_snapshot(cls, snap: ModelSnapshot, *, max_replicas: int, surge: bool) -> ModelLoad:
        current = snap.current_replicas
        return cls(
            model=snap.model,
            p99_ms=snap.p99_ms,
            slo_p99_ms=snap.slo_p99_ms,
            surge=surge,
            current_replicas=current,
            max_replicas=max_replicas,
            starting_replicas=max(0, current - snap.ready_replicas),
        )


@dataclass(frozen=True)
class ZoneLoad:
    """One zone at this tick: its worst model's p99 against that model's SLO."""

    zone: str
    p99_ms: float | None
    slo_p99_ms: float | None
    model: str = ""  # the model p99_ms belongs to (the one closest to, or furthest over, its SLO)
    replicas: int = 0
    rate_per_replica_rps: float | None = None  # recorded with the decision
    queue_per_replica: float | None = None  # queued requests per replica; recorded


@dataclass(frozen=True)
class RouterThresholds:
    """The router's present values of the three fields this policy sets."""

    admit_below_load_ratio: Mapping[str, float]
    tier_complexity_threshold_ratio: float
    spill_inflight_per_replica: float

    def as_dict(self) -> dict[str, Any]:
        return {
            ADMIT_FIELD: dict(self.admit_below_load_ratio),
            TIER_FIELD: self.tier_complexity_threshold_ratio,
            SPILL_FIELD: self.spill_inflight_per_replica,
        }


@dataclass(frozen=True)
class ThresholdInputs:
    now_s: float  # epoch seconds of this tick (the only clock the policy sees)
    models: tuple[ModelLoad, ...] = ()
    zones: tuple[ZoneLoad, ...] = ()
    # What the router holds now; None: assume what this policy last set (or would have set).
    current: RouterThresholds | None = None


# ---- config, state, result ---------------------------------------------------------------------


@dataclass(frozen=True)
class ThresholdConfig:
    """Baselines are the router's configured values (settings.router); levels restore to them."""

    # admission: per class, ratio of the router's in-flight limit below which it is admitted
    admit_below_load_ratio: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_ADMIT))
    admit_floor_ratio: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_ADMIT_FLOOR))
    admit_step_ratio: float = 0.1  # a class's admit ratio moves this much per step (ratio 0-1)
    # tier routing: complexity (0-1) at or above which the large tier serves
    tier_complexity_threshold_ratio: float = 0.5
    tier_step_ratio: float = 0.1  # raised this much per step (ratio 0-1)
    tier_max_ratio: float = 0.9  # never above this (ratio 0-1)
    small_tier_model: str = "classifier-small"
    large_tier_model: str = "classifier-large"
    # spill-over: mean in-flight requests per replica at which a zone spills
    spill_inflight_per_replica: float = 8.0
    spill_step_ratio: float = 0.5  # multiplied by this per step (ratio, 0-1 exclusive)
    spill_min_inflight_per_replica: float = 1.0  # never below this (requests per replica)
    # latency bands, as p99 / SLO
    over_slo_ratio: float = 1.0  # above: over the SLO (a trigger)
    headroom_below_slo_ratio: float = 0.7  # at or below: room to take more load (small tier, other zone)
    restore_below_slo_ratio: float = 0.8  # at or below: healthy (relief)
    step_interval_s: float = 15.0  # at least this long between two tightening steps (seconds)
    restore_after_s: float = 60.0  # healthy this long, and this long since the last step (seconds)
    mode: str = "active"  # active | advisory | off

    def __post_init__(self) -> None:
        bad = partial(out_of_range, "thresholds")

        def finite(key: str, lo: float, hi: float, allowed: str, lo_open: bool = False) -> None:
            v = getattr(self, key)
            ok = isinstance(v, int | float) and math.isfinite(v) and (v > lo if lo_open else v >= lo)
            if not (ok and v <= hi):
                bad(key, v, allowed)

        for name, ratio in self.admit_below_load_ratio.items():
            if not (isinstance(ratio, int | float) and 0 < ratio <= 1):
                bad(f"admit_below_load_ratio.{name}", ratio, "(0, 1]")
        for name, floor in self.admit_floor_ratio.items():
            base = self.admit_below_load_ratio.get(name)
            if base is None:
                bad(f"admit_floor_ratio.{name}", floor, f"a class of {sorted(self.admit_below_load_ratio)}")
            if not (isinstance(floor, int | float) and 0 < floor <= base):
                bad(f"admit_floor_ratio.{name}", floor, f"(0, {base}] (at most the class's admit ratio)")
        finite("admit_step_ratio", 0, 1, "(0, 1]", lo_open=True)
        finite("tier_complexity_threshold_ratio", 0, 1, "[0, 1]")
        finite("tier_step_ratio", 0, 1, "(0, 1]", lo_open=True)
        finite(
            "tier_max_ratio",
            self.tier_complexity_threshold_ratio,
            1,
            f"[tier_complexity_threshold_ratio ({self.tier_complexity_threshold_ratio}), 1]",
        )
        finite("spill_inflight_per_replica", 0, 1e6, "[0, 1000000]")
        finite("spill_step_ratio", 0, 1, "(0, 1)", lo_open=True)
        if self.spill_step_ratio >= 1:
            bad("spill_step_ratio", self.spill_step_ratio, "(0, 1)")
        finite("spill_min_inflight_per_replica", 0, 1e6, "(0, 1000000]", lo_open=True)
        finite("over_slo_ratio", 0, 100, "(0, 100]", lo_open=True)
        finite("headroom_below_slo_ratio", 0, self.over_slo_ratio, f"(0, over_slo_ratio ({self.over_slo_ratio})]", lo_open=True)  # fmt: skip
        finite("restore_below_slo_ratio", 0, self.over_slo_ratio, f"(0, over_slo_ratio ({self.over_slo_ratio})]", lo_open=True)  # fmt: skip
        finite("step_interval_s", 0, 1e7, "a finite number of seconds >= 0")
        finite("restore_after_s", 0, 1e7, "a finite number of seconds >= 0")
        if self.mode not in MODES:
            bad("mode", self.mode, " | ".join(MODES))


@dataclass(frozen=True)
class LeverState:
    level: int = 0  # steps away from the baseline
    changed_s: float | None = None  # when it last moved (either way)
    healthy_since_s: float | None = None  # start of the current relief streak


@dataclass(frozen=True)
class ThresholdState:
    admission: LeverState = LeverState()
    tier: LeverState = LeverState()
    spill: LeverState = LeverState()

    def lever(self, name: str) -> LeverState:
        return getattr(self, name)


@dataclass(frozen=True)
class ThresholdResult:
    changes: dict[str, Any]  # fields whose value differs from the router's: the PUT body
    desired: dict[str, Any]  # all three fields at the (new) levels
    decisions: list[Decision]  # one per lever, policy "thresholds", replica = the lever
    actuate: bool  # active mode and there are changes: call RouterControl.set_thresholds(changes)
    engaged: bool  # some lever is away from its baseline


# ---- levels -> values (pure, table-tested) --------------------------------------------------------


def _tightening_order(cfg: ThresholdConfig) -> list[str]:
    """Classes with a floor, lowest admit ratio first (batch, then standard, then premium)."""
    classes = [c for c in cfg.admit_floor_ratio if c in cfg.admit_below_load_ratio]
    return sorted(classes, key=lambda c: (cfg.admit_below_load_ratio[c], c))


def _steps(span: float, step: float) -> int:
    return max(0, math.ceil(span / step - 1e-9))


def admission_max_level(cfg: ThresholdConfig) -> int:
    return sum(
        _steps(cfg.admit_below_load_ratio[c] - cfg.admit_floor_ratio[c], cfg.admit_step_ratio)
        for c in _tightening_order(cfg)
    )


def admission_values(level: int, cfg: ThresholdConfig) -> dict[str, float]:
    """Admit ratio per class at `level`: each step lowers the first class not yet at its floor."""
    out = {c: float(r) for c, r in cfg.admit_below_load_ratio.items()}
    left = level
    for c in _tightening_order(cfg):
        base, floor = cfg.admit_below_load_ratio[c], cfg.admit_floor_ratio[c]
        take = min(left, _steps(base - floor, cfg.admit_step_ratio))
        out[c] = round(max(floor, base - take * cfg.admit_step_ratio), 6)
        left -= take
    return out


def tier_max_level(cfg: ThresholdConfig) -> int:
    return _steps(cfg.tier_max_ratio - cfg.tier_complexity_threshold_ratio, cfg.tier_step_ratio)


def tier_value(level: int, cfg: ThresholdConfig) -> float:
    v = cfg.tier_complexity_threshold_ratio + level * cfg.tier_step_ratio
    return round(min(cfg.tier_max_ratio, v), 6)


def spill_max_level(cfg: ThresholdConfig) -> int:
    base, lo = cfg.spill_inflight_per_replica, cfg.spill_min_inflight_per_replica
    if base <= lo:
        return 0
    return math.ceil(math.log(lo / base) / math.log(cfg.spill_step_ratio) - 1e-9)


def spill_value(level: int, cfg: ThresholdConfig) -> float:
    if level <= 0:
        return float(cfg.spill_inflight_per_replica)
    v = cfg.spill_inflight_per_replica * cfg.spill_step_ratio**level
    return round(max(cfg.spill_min_inflight_per_replica, v), 6)


def values_at(levels: Mapping[str, int], cfg: ThresholdConfig) -> dict[str, Any]:
    return {
        ADMIT_FIELD: admission_values(levels[ADMISSION], cfg),
        TIER_FIELD: tier_value(levels[TIER], cfg),
        SPILL_FIELD: spill_value(levels[SPILL], cfg),
    }


def max_levels(cfg: ThresholdConfig) -> dict[str, int]:
    return {ADMISSION: admission_max_level(cfg), TIER: tier_max_level(cfg), SPILL: spill_max_level(cfg)}


# ---- triggers (pure, table-tested) -----------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    trigger: bool  # move away from the baseline
    relief: bool  # healthy: may move back
    reasons: tuple[str, ...]
    inputs: dict


def _ratio(p99_ms: float | None, slo_p99_ms: float | None) -> float | None:
    if p99_ms is None or slo_p99_ms is None or slo_p99_ms <= 0:
        return None
    return p99_ms / slo_p99_ms


def _model_inputs(m: ModelLoad) -> dict:
    return {
        "p99_ms": m.p99_ms,
        "slo_p99_ms": m.slo_p99_ms,
        "surge": m.surge,
        "current_replicas": m.current_replicas,
        "max_replicas": m.max_replicas,
        "starting_replicas": m.starting_replicas,
    }


def judge_admission(models: tuple[ModelLoad, ...], cfg: ThresholdConfig) -> Verdict:
    """Trigger: some model over its SLO (or in a surge) that cannot get replicas now."""
    inputs = {"models": {m.model: _model_inputs(m) for m in models}}
    ratios = {m.model: _ratio(m.p99_ms, m.slo_p99_ms) for m in models}
    over = [m for m in models if m.surge or (ratios[m.model] or 0.0) > cfg.over_slo_ratio]
    if over:
        reasons: list[str] = []
        if any((ratios[m.model] or 0.0) > cfg.over_slo_ratio for m in over):
            reasons.append(OVER_SLO)
        if any(m.surge for m in over):
            reasons.append(SURGE)
        blocked = [m for m in over if m.at_max or m.starting_replicas > 0]
        inputs["overloaded"] = sorted(m.model for m in over)
        if not blocked:
            return Verdict(False, False, (*reasons, CAPACITY_CAN_BE_ADDED), inputs)
        if any(m.at_max for m in blocked):
            reasons.append(AT_MAX_REPLICAS)
        if any(m.starting_replicas > 0 for m in blocked):
            reasons.append(REPLICAS_STARTING)
        inputs["cannot_add_now"] = sorted(m.model for m in blocked)
        return Verdict(True, False, tuple(reasons), inputs)
    known = [r for r in ratios.values() if r is not None]
    if not known:
        return Verdict(False, False, (NO_DATA,), inputs)
    if all(r <= cfg.restore_below_slo_ratio for r in known):
        return Verdict(False, True, (HEALTHY,), inputs)
    return Verdict(False, False, (NOT_YET_HEALTHY,), inputs)


def judge_tier(models: tuple[ModelLoad, ...], cfg: ThresholdConfig) -> Verdict:
    """Trigger: the large tier over its SLO while the small one has headroom."""
    by_name = {m.model: m for m in models}
    large, small = by_name.get(cfg.large_tier_model), by_name.get(cfg.small_tier_model)
    inputs = {
        "large": {"model": cfg.large_tier_model, **(_model_inputs(large) if large else {})},
        "small": {"model": cfg.small_tier_model, **(_model_inputs(small) if small else {})},
    }
    large_r = _ratio(large.p99_ms, large.slo_p99_ms) if large else None
    small_r = _ratio(small.p99_ms, small.slo_p99_ms) if small else None
    if large_r is None:
        return Verdict(False, False, (NO_DATA,), inputs)
    if large_r > cfg.over_slo_ratio:
        if small_r is None or small.surge or small_r > cfg.headroom_below_slo_ratio:  # type: ignore[union-attr]
            return Verdict(False, False, (LARGE_OVER_SLO, SMALL_NO_HEADROOM), inputs)
        return Verdict(True, False, (LARGE_OVER_SLO, SMALL_HEADROOM), inputs)
    if large_r <= cfg.restore_below_slo_ratio and not large.surge:  # type: ignore[union-attr]
        return Verdict(False, True, (HEALTHY,), inputs)
    return Verdict(False, False, (NOT_YET_HEALTHY,), inputs)


def judge_spill(zones: tuple[ZoneLoad, ...], cfg: ThresholdConfig) -> Verdict:
    """Trigger: one zone over the SLO while another has headroom."""
    inputs = {
        "zones": {
            z.zone: {
                "p99_ms": z.p99_ms,
                "slo_p99_ms": z.slo_p99_ms,
                "model": z.model,
                "replicas": z.replicas,
                "rate_per_replica_rps": z.rate_per_replica_rps,
                "queue_per_replica": z.queue_per_replica,
            }
            for z in zones
        }
    }
    ratios = {z.zone: _ratio(z.p99_ms, z.slo_p99_ms) for z in zones}
    known = {k: r for k, r in ratios.items() if r is not None}
    if not known:
        return Verdict(False, False, (NO_DATA,), inputs)
    over = sorted(k for k, r in known.items() if r > cfg.over_slo_ratio)
    if over:
        room = sorted(k for k, r in known.items() if r <= cfg.headroom_below_slo_ratio)
        inputs["over"], inputs["headroom"] = over, room
        if len(zones) < 2:
            return Verdict(False, False, (ZONE_OVER_SLO, SINGLE_ZONE), inputs)
        if not room:
            return Verdict(False, False, (ZONE_OVER_SLO, NO_ZONE_HEADROOM), inputs)
        return Verdict(True, False, (ZONE_OVER_SLO, OTHER_ZONE_HEADROOM), inputs)
    if all(r <= cfg.restore_below_slo_ratio for r in known.values()):
        return Verdict(False, True, (HEALTHY,), inputs)
    return Verdict(False, False, (NOT_YET_HEALTHY,), inputs)


# ---- one lever, one tick ----------------------------------------------------------------------------


def step_lever(
    st: LeverState, v: Verdict, now_s: float, max_level: int, cfg: ThresholdConfig
) -> tuple[LeverState, int, str]:
    """(new state, level the verdict asks for before pacing, reason of the move or hold)."""
    level = min(st.level, max_level)  # the config may have shrunk the range
    if v.trigger:
        if level >= max_level:
            return LeverState(level, st.changed_s, None), level, AT_LIMIT
        if st.changed_s is not None and now_s - st.changed_s < cfg.step_interval_s:
            return LeverState(level, st.changed_s, None), level + 1, STEP_WAIT
        return LeverState(level + 1, now_s, None), level + 1, TIGHTEN
    if not v.relief:  # the dead band: hold, and the relief streak starts over
        return LeverState(level, st.changed_s, None), level, ""
    since = st.healthy_since_s if st.healthy_since_s is not None else now_s
    if level == 0:
        return LeverState(0, st.changed_s, since), 0, AT_BASELINE
    rested = st.changed_s is None or now_s - st.changed_s >= cfg.restore_after_s
    if now_s - since >= cfg.restore_after_s and rested:
        return LeverState(level - 1, now_s, since), level - 1, RESTORE
    return LeverState(level, st.changed_s, since), level - 1, RESTORE_WAIT


def _fmt(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v:g}" for k, v in sorted(value.items())) + "}"
    return f"{value:g}"


def _differs(name: str, want: Any, have: Any) -> bool:
    if name == ADMIT_FIELD:
        return any(have.get(c) != r for c, r in want.items())
    return have != want


def decide_thresholds(
    view: ThresholdInputs, state: ThresholdState, cfg: ThresholdConfig
) -> tuple[ThresholdResult, ThresholdState]:
    now = view.now_s
    limits = max_levels(cfg)
    old_levels = {k: min(state.lever(k).level, limits[k]) for k in LEVERS}
    verdicts = {
        ADMISSION: judge_admission(view.models, cfg),
        TIER: judge_tier(view.models, cfg),
        SPILL: judge_spill(view.zones, cfg),
    }
    if cfg.mode == "off":
        desired = values_at(old_levels, cfg)
        decisions = [
            Decision(
                model="",
                ts=now,
                current=old_levels[k],
                recommended=None,
                final=None,
                mode="off",
                actuate=False,
                reason_codes=[*verdicts[k].reasons, MODE_OFF],
                inputs=verdicts[k].inputs,
                message=f"{FIELD_OF[k]}: mode off",
                policy=POLICY,
                replica=k,
                action="none",
                confidence_ratio=0.0,
            )  # fmt: skip
            for k in LEVERS
        ]
        engaged = any(old_levels.values())
        return ThresholdResult({}, desired, decisions, False, engaged), state

    new_states: dict[str, LeverState] = {}
    asked: dict[str, int] = {}
    moves: dict[str, str] = {}
    for k in LEVERS:
        new_states[k], asked[k], moves[k] = step_lever(state.lever(k), verdicts[k], now, limits[k], cfg)
    new_levels = {k: new_states[k].level for k in LEVERS}
    desired = values_at(new_levels, cfg)
    # Compared with the router's values when the loop read them, else with what this policy last
    # set (or, in advisory mode, would have set).
    have = view.current.as_dict() if view.current is not None else values_at(old_levels, cfg)
    changes = {f: desired[f] for f in desired if _differs(f, desired[f], have[f])}
    active = cfg.mode == "active"
    verb = "set" if active else "would set"

    decisions = []
    for k in LEVERS:
        f = FIELD_OF[k]
        v = verdicts[k]
        reasons = list(v.reasons)
        if moves[k]:
            reasons.append(moves[k])
        moved = new_levels[k] != old_levels[k]
        if active and f in changes and not moved:  # (advisory: the router never got it, by design)
            reasons.append(ROUTER_OUT_OF_SYNC)
        reasons.append(MODE_ACTIVE if active else MODE_ADVISORY)
        st = new_states[k]
        if f in changes:
            head = f"{verb} {f} {_fmt(have[f])} -> {_fmt(desired[f])}"
        else:
            head = f"{f} stays {_fmt(desired[f])}"
        action = "hold"
        if new_levels[k] > old_levels[k]:
            action = "tighten"
        elif new_levels[k] < old_levels[k]:
            action = "restore"
        decisions.append(
            Decision(
                model="",
                ts=now,
                current=old_levels[k],
                recommended=asked[k],
                final=new_levels[k],
                mode=cfg.mode,
                actuate=active and f in changes,
                reason_codes=reasons,
                inputs={
                    **v.inputs,
                    "field": f,
                    "from": have[f],
                    "to": desired[f],
                    "max_level": limits[k],
                    "changed_s": st.changed_s,
                    "healthy_since_s": st.healthy_since_s,
                },
                message=f"{head} (level {old_levels[k]} -> {new_levels[k]} of {limits[k]})",
                policy=POLICY,
                replica=k,
                action=action,
            )
        )
    new_state = ThresholdState(**new_states)
    result = ThresholdResult(
        changes=changes,
        desired=desired,
        decisions=decisions,
        actuate=active and bool(changes),
        engaged=any(new_levels.values()),
    )
    return result, new_state


__all__ = [
    "LeverState",
    "ModelLoad",
    "RouterThresholds",
    "ThresholdConfig",
    "ThresholdInputs",
    "ThresholdResult",
    "ThresholdState",
    "ZoneLoad",
    "decide_thresholds",
]
