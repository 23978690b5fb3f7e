"""Validation of admin updates (pure). Errors name the field, the value and what is allowed."""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from typing import Any

THRESHOLD_FIELDS = (
    "tier_complexity_threshold_ratio",
    "admit_below_load_ratio",
    "max_inflight_requests",
    "large_tier_model",
    "default_priority",
    "local_zone",
    "spill_inflight_per_replica",
)
MAX_SPILL_INFLIGHT_PER_REPLICA = 1e6
MAX_ZONE_CHARS = 64
_CLASS_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class AdminError(ValueError):
    """An admin request body is invalid (HTTP 400)."""


def _number(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AdminError(f"{field} = {value!r} is invalid: expected a finite number")
    return float(value)


def validate_weights(payload: Any, known_replicas: Collection[str]) -> dict[str, float]:
    """`{"weights": {"replica-0": 3, ...}}` -> {name: weight}; weight >= 0 (0 drains)."""
    if (
        not isinstance(payload, dict)
        or not isinstance(payload.get("weights"), dict)
        or not payload["weights"]
    ):
        raise AdminError('body must be {"weights": {"<replica>": <weight >= 0>, ...}}')
    extra = set(payload) - {"weights"}
    if extra:
        raise AdminError(f"unknown field(s) {sorted(extra)}; allowed: ['weights']")
    out: dict[str, float] = {}
    for name, value in payload["weights"].items():
        field = f"weights.{name}"
        if name not in known_replicas:
            raise AdminError(f"{field}: unknown replica {name!r}; known: {sorted(known_replicas)}")
        w = _number(field, value)
        if not 0.0 <= w <= 1e6:
            raise AdminError(f"{field} = {value!r} is invalid: allowed range [0, 1000000] (0 drains)")
        out[name] = w
    return out


def validate_thresholds(payload: Any, current: Mapping[str, Any]) -> dict[str, Any]:
    """Partial update of the routing thresholds -> the full new values of the changed fields.

    `current` holds the present values of THRESHOLD_FIELDS. admit_below_load_ratio is merged
    into the current classes (new class names are allowed).
    """
    if not isinstance(payload, dict) or not payload:
        raise AdminError(f"body must be a JSON object with one or more of {list(THRESHOLD_FIELDS)}")
    extra = set(payload) - set(THRESHOLD_FIELDS)
    if extra:
        raise AdminError(f"unknown field(s) {sorted(extra)}; allowed: {list(THRESHOLD_FIELDS)}")
    out: dict[str, Any] = {}
    if "tier_complexity_threshold_ratio" in payload:
        v = payload["tier_complexity_threshold_ratio"]
        r = _number("tier_complexity_threshold_ratio", v)
        if not 0.0 <= r <= 1.0:
            raise AdminError(f"tier_complexity_threshold_ratio = {v!r} is invalid: allowed range [0, 1]")
        out["tier_complexity_threshold_ratio"] = r
    if "max_inflight_requests" in payload:
        v = payload["max_inflight_requests"]
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 100000:
            raise AdminError(f"max_inflight_requests = {v!r} is invalid: expected an integer in [1, 100000]")
        out["max_inflight_requests"] = v
    if "large_tier_model" in payload:
        v = payload["large_tier_model"]
        if not isinstance(v, str) or not v.strip():
            raise AdminError(f"large_tier_model = {v!r} is invalid: expected a model name")
        out["large_tier_model"] = v.strip()
    if "spill_inflight_per_replica" in payload:
        v = payload["spill_inflight_per_replica"]
        r = _number("spill_inflight_per_replica", v)
        if not 0.0 <= r <= MAX_SPILL_INFLIGHT_PER_REPLICA:
            raise AdminError(
                f"spill_inflight_per_replica = {v!r} is invalid: allowed range [0, 1000000] "
                "(mean in-flight requests per replica at which a zone spills; 0 always spills)"
            )
        out["spill_inflight_per_replica"] = r
    if "local_zone" in payload:
        v = payload["local_zone"]
        if not isinstance(v, str) or len(v.strip()) > MAX_ZONE_CHARS:
            raise AdminError(
                f"local_zone = {v!r} is invalid: expected a zone name of at most {MAX_ZONE_CHARS} "
                'characters ("" = no zone preference)'
            )
        out["local_zone"] = v.strip()
    classes = dict(current["admit_below_load_ratio"])
    if "admit_below_load_ratio" in payload:
        v = payload["admit_below_load_ratio"]
        if not isinstance(v, dict) or not v:
            raise AdminError(
                f"admit_below_load_ratio = {v!r} is invalid: expected an object {{class: ratio}}"
            )
        for name, ratio in v.items():
            field = f"admit_below_load_ratio.{name}"
            if not _CLASS_NAME.match(str(name)):
                raise AdminError(f"{field}: class names are lowercase [a-z0-9_-], at most 32 characters")
            r = _number(field, ratio)
            if not 0.0 < r <= 1.0:
                raise AdminError(f"{field} = {ratio!r} is invalid: allowed range (0, 1]")
            classes[name] = r
        out["admit_below_load_ratio"] = classes
    if "default_priority" in payload:
        v = payload["default_priority"]
        if v not in classes:
            raise AdminError(f"default_priority = {v!r} is invalid: allowed {sorted(classes)}")
        out["default_priority"] = v
    return out
