"""Pure builders of the thresholds policy's inputs from what the loop has at a tick.

The controller already holds, per model, the `ModelSnapshot` it gave the replica policy and that
policy's state (its panic window), and the `LiveView` of recent scrapes; these functions turn
them into `ThresholdInputs` (controlplane.policy.thresholds). No I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from controlplane.config import Settings
from controlplane.loop.live import LiveView, WindowStats, histogram_quantile
from controlplane.policy.replicas import ReplicaPolicyState
from controlplane.policy.snapshot import ModelSnapshot
from controlplane.policy.thresholds import (
    DEFAULT_ADMIT_FLOOR,
    ModelLoad,
    RouterThresholds,
    ThresholdConfig,
    ThresholdInputs,
    ZoneLoad,
)


def in_surge(state: ReplicaPolicyState | None, now_s: float) -> bool:
    """The replica policy's panic window is open for the model."""
    return state is not None and state.panic_until_s is not None and now_s < state.panic_until_s


def _p99(windows: list[WindowStats]) -> float | None:
    """p99 over the windows' merged latency histograms; the worst mean latency when none has one."""
    merged: dict[float, float] = {}
    for w in windows:
        for le, n in w.buckets.items():
            merged[le] = merged.get(le, 0.0) + n
    p99 = histogram_quantile(dict(sorted(merged.items())), 0.99) if merged else None
    if p99 is None:
        lat = [w.latency_ms for w in windows if w.latency_ms is not None]
        p99 = max(lat) if lat else None
    return p99


def zone_loads(
    view: LiveView,
    slo_for: Callable[[str], float],
    exclude: frozenset[str] = frozenset(),
) -> tuple[ZoneLoad, ...]:
    """One `ZoneLoad` per zone seen in the stable window: the p99 of the model furthest over (or
    closest to) its SLO in that zone, and rate and queue per replica over every model.

    Replicas in `exclude` (out of rotation: being drained by the routing policy) do not count
    towards a zone's latency, unless they are all the zone has."""
    by_zone: dict[str, list[WindowStats]] = {}
    for w in view.stable.values():
        by_zone.setdefault(w.zone, []).append(w)
    out = []
    for zone in sorted(by_zone):
        windows = by_zone[zone]
        replicas = {w.replica for w in windows}
        in_rotation = [w for w in windows if w.replica not in exclude] or windows
        worst: tuple[float, str, float, float] | None = None  # (ratio, model, p99, slo)
        for model in sorted({w.model for w in in_rotation}):
            p99 = _p99([w for w in in_rotation if w.model == model])
            slo = slo_for(model)
            if p99 is None or not slo or slo <= 0:
                continue
            if worst is None or p99 / slo > worst[0]:
                worst = (p99 / slo, model, p99, slo)
        queues = [w.queue_len for w in windows if w.queue_len is not None]
        n = len(replicas)
        out.append(
            ZoneLoad(
                zone=zone,
                p99_ms=worst[2] if worst else None,
                slo_p99_ms=worst[3] if worst else None,
                model=worst[1] if worst else "",
                replicas=n,
                rate_per_replica_rps=sum(w.rate_rps for w in windows) / n,
                queue_per_replica=sum(queues) / n if queues else None,
            )
        )
    return tuple(out)


def build_threshold_inputs(
    now_s: float,
    view: LiveView,
    snapshots: Iterable[ModelSnapshot],
    *,
    rep_states: Mapping[str, ReplicaPolicyState],
    max_replicas: Mapping[str, int],
    slo_for: Callable[[str], float],
    exclude: frozenset[str] = frozenset(),
    current: RouterThresholds | None = None,
) -> ThresholdInputs:
    """`snapshots`: the ones the replica policy decided on this tick (out-of-rotation replicas
    already left out of their latency); `max_replicas`: per model, the rails' max (the pinned
    count when pinned)."""
    models = tuple(
        ModelLoad.from_snapshot(
            s, max_replicas=max_replicas[s.model], surge=in_surge(rep_states.get(s.model), now_s)
        )
        for s in snapshots
    )
    return ThresholdInputs(
        now_s=now_s, models=models, zones=zone_loads(view, slo_for, exclude), current=current
    )


def threshold_config(settings: Settings, mode: str, **tuning) -> ThresholdConfig:
    """Baselines from the router section (what the router starts with); `tuning`: any other
    ThresholdConfig field (steps, floors, bands, timings) - defaults otherwise."""
    r = settings.router
    base = dict(r.admit_below_load_ratio)
    if "admit_floor_ratio" not in tuning:  # default floors for the classes configured, never above them
        tuning["admit_floor_ratio"] = {
            c: min(f, base[c]) for c, f in DEFAULT_ADMIT_FLOOR.items() if c in base
        }
    return ThresholdConfig(
        admit_below_load_ratio=base,
        tier_complexity_threshold_ratio=r.tier_complexity_threshold_ratio,
        large_tier_model=r.large_tier_model,
        spill_inflight_per_replica=r.spill_inflight_per_replica,
        mode=mode,
        **tuning,
    )
