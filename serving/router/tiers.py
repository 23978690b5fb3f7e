"""Tier routing: the virtual model `classifier` resolves to a small or a large classifier.

`X-Tier: small|large|large-int8` names the tier explicitly; otherwise `X-Complexity` (0-1)
at or above the threshold selects the configured large tier model. Requests for a concrete
model ignore both headers.
"""

from __future__ import annotations

import math

VIRTUAL_MODEL = "classifier"
SMALL_MODEL = "classifier-small"
TIER_MODELS = {"small": SMALL_MODEL, "large": "classifier-large", "large-int8": "classifier-large-int8"}


class TierError(ValueError):
    """A tier header is malformed (HTTP 400)."""


def resolve_model(
    model: str,
    complexity_header: str | None,
    tier_header: str | None,
    threshold_ratio: float,
    large_tier_model: str,
) -> str:
    if model != VIRTUAL_MODEL:
        return model
    if tier_header:
        tier = tier_header.strip().lower()
        if tier not in TIER_MODELS:
            raise TierError(f"unknown tier {tier_header!r} in X-Tier; allowed: {', '.join(TIER_MODELS)}")
        return TIER_MODELS[tier]
    if not complexity_header:
        return SMALL_MODEL
    try:
        complexity = float(complexity_header)
    except ValueError:
        raise TierError(f"X-Complexity must be a number in [0, 1], got {complexity_header!r}") from None
    if not (math.isfinite(complexity) and 0.0 <= complexity <= 1.0):
        raise TierError(f"X-Complexity must be a number in [0, 1], got {complexity_header!r}")
    return large_tier_model if complexity >= threshold_ratio else SMALL_MODEL
