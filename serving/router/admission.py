"""Admission control: priority classes with a load-ratio threshold each.

Load ratio = requests the router has in flight / max_inflight_requests. A class is admitted
only while the load ratio is below its threshold, so as load rises the class with the lowest
threshold (batch) is shed first, then standard, and premium last.
"""

from __future__ import annotations

from collections.abc import Mapping


class PriorityError(ValueError):
    """The X-Priority header names no known class (HTTP 400)."""


def parse_priority(header: str | None, default: str, thresholds: Mapping[str, float]) -> str:
    """The request's class: the header value (case-insensitive) or the default."""
    if not header:
        return default
    name = header.strip().lower()
    if name not in thresholds:
        allowed = ", ".join(sorted(thresholds, key=lambda k: -thresholds[k]))
        raise PriorityError(f"unknown priority {header!r} in X-Priority; allowed: {allowed}")
    return name


def load_ratio(inflight: int, max_inflight_requests: int) -> float:
    return inflight / max_inflight_requests


def shed_reason(
    priority: str, inflight: int, max_inflight_requests: int, thresholds: Mapping[str, float]
) -> str | None:
    """None to admit; otherwise the message of the 429 response."""
    load = inflight / max_inflight_requests
    threshold = thresholds[priority]
    if load < threshold:
        return None
    return f"overloaded: shed priority {priority!r} at load {load:.2f} >= {threshold:.2f}"
