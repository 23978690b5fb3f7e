"""Shared by every baseline: reading the rate from a snapshot and building the `Decision`.

Baselines are not wrapped by fleetpilot's rails (controlplane/policy/rails.py): each applies
its own upstream bounds and rate limits, so the comparison is with the real thing.
"""

from __future__ import annotations

import math

from controlplane.policy.decision import Decision
from controlplane.policy.snapshot import ModelSnapshot

# Reason codes (stable; stored and shown).
NO_DATA = "no_data"  # no rate in the snapshot
STALE_DATA = "stale_data"  # the newest sample is older than stale_after_s
NOT_DUE = "not_due"  # between the policy's sync ticks: nothing decided
NO_CAPACITY = "no_capacity"  # the policy sizes from capacity and the snapshot has none

# Not an upstream parameter: the baselines treat telemetry older than this as absent, like
# fleetpilot's own policy (replicas.py), so no policy wins by acting on stale data.
STALE_AFTER_S = 30.0


def known(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x >= 0


def fresh_rate(snap: ModelSnapshot, stale_after_s: float) -> tuple[float | None, str | None]:
    """(stable-window rate, None) or (None, reason) when it is missing or stale."""
    if not known(snap.rate_rps) or snap.rate_age_s is None:
        return None, NO_DATA
    if not (snap.rate_age_s <= stale_after_s):  # NaN counts as stale too
        return None, STALE_DATA
    return float(snap.rate_rps), None  # type: ignore[arg-type]


def hold(snap: ModelSnapshot, policy: str, reason: str, inputs: dict | None = None) -> Decision:
    """ "No decision" (final None): nothing changes."""
    return Decision(
        model=snap.model,
        ts=snap.now_s,
        current=snap.current_replicas,
        recommended=None,
        final=None,
        mode="active",
        actuate=False,
        reason_codes=[reason],
        inputs=inputs or {},
        message=reason,
        policy=policy,
        confidence_ratio=0.0,
    )


def decided(
    snap: ModelSnapshot,
    policy: str,
    recommended: int,
    final: int,
    reasons: list[str],
    inputs: dict,
    message: str = "",
) -> Decision:
    current = snap.current_replicas
    return Decision(
        model=snap.model,
        ts=snap.now_s,
        current=current,
        recommended=recommended,
        final=final,
        mode="active",
        actuate=final != current,
        reason_codes=reasons,
        inputs=inputs,
        message=message or f"{current} -> {final}",
        policy=policy,
    )
