"""The one wrapper every replica policy goes through. In this order:

  bounds (min/max) -> step limits (max up/down per interval) -> stabilisation (up fast, down
  slowly, never down in a surge) -> [policy's own scale-down guard] -> mode (active | advisory | off)

Each clamp is a pure function returning `Clamp(value, reason, message)` (Kubernetes HPA style);
the wrapper records the reason of every clamp that changed the value, in order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple

from controlplane.policy.decision import Decision
from controlplane.policy.validate import out_of_range

MODES = ("active", "advisory", "off")

# Reason codes (stable; stored and shown).
BOUNDED_MIN = "bounded_min"
BOUNDED_MAX = "bounded_max"
WITHIN_BOUNDS = "within_bounds"
STEP_LIMITED_UP = "step_limited_up"
STEP_LIMITED_DOWN = "step_limited_down"
WITHIN_STEP = "within_step"
STABILISED_UP = "stabilised_up"  # an up window > 0 keeps the lowest recent recommendation
STABILISED_DOWN = "stabilised_down"  # the highest recommendation in the down window holds
SURGE_NO_SCALE_DOWN = "surge_no_scale_down"
STABLE = "stable"
MODE_ACTIVE = "mode_active"
MODE_ADVISORY = "mode_advisory"
MODE_OFF = "mode_off"


class Clamp(NamedTuple):
    value: int
    reason: str
    message: str


@dataclass(frozen=True)
class RailsConfig:
    """Per model. Example: min 1, max 8, up by max(4, 100%) and down by 1 per 60 s, scale-down
    stabilised over 300 s (HPA's default)."""

    min_replicas: int = 1  # never 0: missing telemetry must not be able to scale to zero
    max_replicas: int = 16
    max_up_step: int = 4  # replicas added per step interval (at least this many) ...
    max_up_ratio: float = 1.0  # ... or this fraction of the current count, whichever is more
    max_down_step: int = 1  # replicas removed per step interval (at least this many) ...
    max_down_ratio: float = 0.0  # ... or this fraction of the current count (floor), whichever is more
    step_interval_s: float = 60.0
    up_window_s: float = 0.0  # 0: scale up on the first tick that asks for it
    down_window_s: float = 300.0  # scale down to the highest recommendation of this window
    mode: str = "active"  # active | advisory | off

    def __post_init__(self) -> None:
        bad = partial(out_of_range, "rails")

        if self.min_replicas < 1:
            bad("min_replicas", self.min_replicas, ">= 1")
        if self.max_replicas < self.min_replicas:
            bad("max_replicas", self.max_replicas, f">= min_replicas ({self.min_replicas})")
        if self.max_up_step < 1:
            bad("max_up_step", self.max_up_step, ">= 1")
        if self.max_down_step < 1:
            bad("max_down_step", self.max_down_step, ">= 1")
        if not (self.max_up_ratio >= 0 and math.isfinite(self.max_up_ratio)):
            bad("max_up_ratio", self.max_up_ratio, "a finite number >= 0")
        if not (0 <= self.max_down_ratio < 1):
            bad("max_down_ratio", self.max_down_ratio, "[0, 1)")
        for key in ("step_interval_s", "up_window_s", "down_window_s"):
            v = getattr(self, key)
            if not (v >= 0 and math.isfinite(v)):
                bad(key, v, "a finite number of seconds >= 0")
        if self.mode not in MODES:
            bad("mode", self.mode, " | ".join(MODES))


@dataclass(frozen=True)
class RailsState:
    history: tuple[tuple[float, int], ...] = ()  # (ts, bounded recommendation), windowed
    changes: tuple[tuple[float, int], ...] = ()  # (ts, actuated delta) within the step interval


@dataclass(frozen=True)
class Recommendation:
    """A policy's raw answer. `value` None: no decision, `reasons` say why (no_data, ...)."""

    value: int | None
    reasons: tuple[str, ...] = ()
    inputs: dict = field(default_factory=dict)
    surge: bool = False  # a surge is on: the rails never scale down
    confidence_ratio: float = 1.0
    # What the stabilisation windows remember of this tick (None: `value`; this tick itself
    # still counts in full). A policy sets it below `value` for a transient part (replicas that
    # only clear a backlog): once the backlog is gone, it must not hold them for a whole down
    # window. (With an up window > 0 a later tick sees the lower count too.)
    hold_value: int | None = None


# ---- the clamps (pure, table-tested) -------------------------------------------------------------


def clamp_bounds(value: int, cfg: RailsConfig) -> Clamp:
    if value < cfg.min_replicas:
        return Clamp(cfg.min_replicas, BOUNDED_MIN, f"raised {value} to min_replicas {cfg.min_replicas}")
    if value > cfg.max_replicas:
        return Clamp(cfg.max_replicas, BOUNDED_MAX, f"lowered {value} to max_replicas {cfg.max_replicas}")
    return Clamp(value, WITHIN_BOUNDS, f"{value} within [{cfg.min_replicas}, {cfg.max_replicas}]")


def clamp_step(
    value: int, current: int, now_s: float, changes: tuple[tuple[float, int], ...], cfg: RailsConfig
) -> Clamp:
    """At most max(max_up_step, ceil(current * max_up_ratio)) up and max(max_down_step,
    floor(current * max_down_ratio)) down per step interval, counting what was already actuated
    inside the interval."""
    recent = [d for t, d in changes if now_s - t < cfg.step_interval_s]
    up_done = sum(d for d in recent if d > 0)
    down_done = -sum(d for d in recent if d < 0)
    up_room = max(0, max(cfg.max_up_step, math.ceil(current * cfg.max_up_ratio)) - up_done)
    down_room = max(0, max(cfg.max_down_step, math.floor(current * cfg.max_down_ratio)) - down_done)
    if value > current + up_room:
        return Clamp(
            current + up_room,
            STEP_LIMITED_UP,
            f"up step limited to +{up_room} ({up_done} added in the last {cfg.step_interval_s:g} s)",
        )
    if value < current - down_room:
        return Clamp(
            current - down_room,
            STEP_LIMITED_DOWN,
            f"down step limited to -{down_room} ({down_done} removed in the last {cfg.step_interval_s:g} s)",
        )
    return Clamp(value, WITHIN_STEP, f"{current} -> {value} within the step limits")


def stabilise(
    value: int,
    current: int,
    now_s: float,
    history: tuple[tuple[float, int], ...],
    surge: bool,
    cfg: RailsConfig,
    raw: int | None = None,
) -> Clamp:
    """HPA's rule: move `current` only as far as every recommendation of the window agrees
    (up to the lowest of the up window, down to the highest of the down window), and never
    further than the step limit allowed (`value`); never down in a surge.

    `history` holds earlier bounded recommendations; this tick's (`raw`, default `value`) is
    added here. Windows see the recommendations before the step limit, so a step held back
    by the limit does not itself hold the next step for a whole window."""
    raw = value if raw is None else raw
    up_vals = [v for t, v in history if now_s - t < cfg.up_window_s] + [raw]
    down_vals = [v for t, v in history if now_s - t < cfg.down_window_s] + [raw]
    target = min(max(current, min(up_vals)), max(down_vals))
    if target > current:
        out = min(target, value)
    elif target < current:
        out = max(target, value)
    else:
        out = current
    if surge and out < current:
        return Clamp(current, SURGE_NO_SCALE_DOWN, f"held at {current}: no scale-down during a surge")
    if out != value and value > current:
        return Clamp(out, STABILISED_UP, f"up held to {out}: lowest of the last {cfg.up_window_s:g} s")
    if out != value:
        return Clamp(out, STABILISED_DOWN, f"down held at {out}: highest of the last {cfg.down_window_s:g} s")
    return Clamp(out, STABLE, f"{out} agrees with the window")


# A policy's own check of a scale-down (e.g. the remaining replicas carry the load).
Guard = Callable[[int, int], Clamp]  # (value, current) -> Clamp


def apply_rails(
    rec: Recommendation,
    *,
    model: str,
    now_s: float,
    current: int,
    state: RailsState,
    cfg: RailsConfig,
    guard: Guard | None = None,
    policy: str = "replicas",
) -> tuple[Decision, RailsState]:
    """Rails around any replica policy's recommendation -> (Decision, new rails state)."""
    inputs = dict(rec.inputs)

    def no_decision(reasons: list[str], message: str, recommended: int | None) -> Decision:
        return Decision(
            model=model, ts=now_s, current=current, recommended=recommended, final=None,
            mode=cfg.mode, actuate=False, reason_codes=reasons, inputs=inputs, message=message,
            policy=policy, confidence_ratio=0.0,
        )  # fmt: skip

    if rec.value is None:
        why = ", ".join(rec.reasons) or "no recommendation"
        return no_decision(list(rec.reasons), f"no decision ({why}); holding {current}", None), state
    if cfg.mode == "off":
        return no_decision(
            [*rec.reasons, MODE_OFF], f"mode off; policy asked for {rec.value}", rec.value
        ), state

    reasons = list(rec.reasons)
    messages: list[str] = []
    value = rec.value

    def take(c: Clamp) -> None:
        nonlocal value
        if c.value != value:
            reasons.append(c.reason)
            messages.append(c.message)
        value = c.value

    take(clamp_bounds(value, cfg))
    bounded = value  # the windows remember recommendations before the step limit
    take(clamp_step(value, current, now_s, state.changes, cfg))
    take(stabilise(value, current, now_s, state.history, rec.surge, cfg, raw=bounded))
    # A forced cut to max_replicas is the operator's call; the guard does not block it.
    if guard is not None and value < current <= cfg.max_replicas:
        take(guard(value, current))

    keep_s = max(cfg.up_window_s, cfg.down_window_s)
    held = bounded if rec.hold_value is None else min(bounded, clamp_bounds(rec.hold_value, cfg).value)
    history = tuple((t, v) for t, v in state.history if now_s - t < keep_s) + ((now_s, held),)
    changes = tuple((t, d) for t, d in state.changes if now_s - t < cfg.step_interval_s)

    moved = value != current
    if cfg.mode == "active":
        reasons.append(MODE_ACTIVE)
        actuate = moved
        if moved:
            changes += ((now_s, value - current),)
        head = f"scale {current} -> {value}" if moved else f"hold at {current}"
    else:
        reasons.append(MODE_ADVISORY)
        actuate = False
        head = f"advisory: would scale to {value}" if moved else f"advisory: would hold at {current}"
    message = "; ".join([head, *messages])
    decision = Decision(
        model=model, ts=now_s, current=current, recommended=rec.value, final=value, mode=cfg.mode,
        actuate=actuate, reason_codes=reasons, inputs=inputs, message=message, policy=policy,
        confidence_ratio=rec.confidence_ratio,
    )  # fmt: skip
    return decision, RailsState(history=history, changes=changes)
