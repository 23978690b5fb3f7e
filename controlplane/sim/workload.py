"""Trace -> arrivals per simulated tick (the simulator's only view of a trace).

Reuses the replay's readers (serving/replay/traces.py), so the simulator accepts exactly what
`fleetpilot replay` accepts:
- token traces (azure, jsonl): `open_trace` parses and validates every request; their offsets
  are counted per tick. `rate_scale` K multiplies the load as K times as many independent
  users would: floor(K) copies of the trace, each shifted circularly by a random offset, plus
  one copy thinned to frac(K) (binomial). Copying requests onto the same instants instead
  would make every burst K times taller, which more users of a service do not do.
- rate traces (`ts_s,rate_rps`): `parse_rate_rows` validates the intervals; the arrivals per
  tick are Poisson with the rate integrated over the tick (the same distribution as the
  replay's per-request Poisson process binned per tick, drawn in one numpy call: a ServeGen
  fortnight at ~1000 rps is 10^9 requests, too many to draw one by one).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serving.replay.traces import (
    ParseReport,
    TraceError,
    detect_format,
    open_trace,
    parse_rate_rows,
)


@dataclass(frozen=True)
class Workload:
    """Arrivals per tick of one model's trace; tick k covers [k * tick_s, (k + 1) * tick_s)."""

    name: str
    tick_s: float
    counts: np.ndarray  # int64 arrivals per tick
    intensity_rps: np.ndarray | None = None  # rate traces: the Poisson rate behind each tick

    def __post_init__(self) -> None:
        if not (self.tick_s > 0 and math.isfinite(self.tick_s)):
            raise ValueError(f"tick_s={self.tick_s} must be a finite number of seconds > 0")
        if self.counts.ndim != 1 or len(self.counts) == 0:
            raise ValueError(f"workload {self.name!r}: counts must be a non-empty 1-d array")
        if np.any(self.counts < 0):
            raise ValueError(f"workload {self.name!r}: negative arrival counts")

    @property
    def ticks(self) -> int:
        return len(self.counts)

    @property
    def duration_s(self) -> float:
        return self.ticks * self.tick_s

    @property
    def total_requests(self) -> int:
        return int(self.counts.sum())

    def rate_rps(self) -> np.ndarray:
        return self.counts / self.tick_s


def scale_counts(counts: np.ndarray, rate_scale: float, rng: np.random.Generator) -> np.ndarray:
    """K x the load as independent users: shifted copies (the first unshifted) + a thinned one."""
    if not (rate_scale >= 0 and math.isfinite(rate_scale)):
        raise TraceError(f"rate scale {rate_scale} must be a finite number >= 0")
    whole = math.floor(rate_scale)
    frac = rate_scale - whole
    out = np.zeros_like(counts)
    n = len(counts)
    for j in range(whole + (frac > 0)):
        shift = 0 if j == 0 else int(rng.integers(0, n))
        copy = np.roll(counts, shift)
        out += copy if j < whole else rng.binomial(copy, frac)
    return out.astype(np.int64)


def counts_from_offsets(offsets_s: np.ndarray, tick_s: float) -> np.ndarray:
    """Arrivals per tick from arrival offsets (seconds from the trace start)."""
    if len(offsets_s) == 0:
        raise TraceError("the trace holds no requests")
    idx = np.floor(np.asarray(offsets_s, dtype=float) / tick_s).astype(np.int64)
    return np.bincount(idx, minlength=int(idx.max()) + 1).astype(np.int64)


def expected_per_tick(
    starts_s: np.ndarray, durations_s: np.ndarray, rates_rps: np.ndarray, tick_s: float
) -> np.ndarray:
    """Expected arrivals per tick for a piecewise-constant rate (intervals back to back)."""
    edges = np.append(starts_s, starts_s[-1] + durations_s[-1])
    cum = np.concatenate([[0.0], np.cumsum(rates_rps * durations_s)])  # expected arrivals by edge
    ticks = max(1, math.ceil(edges[-1] / tick_s - 1e-9))
    tick_edges = np.minimum(np.arange(ticks + 1) * tick_s, edges[-1])
    return np.maximum(np.diff(np.interp(tick_edges, edges, cum)), 0.0)  # exact: cum is piecewise linear


def load_workload(
    path: str | Path, fmt: str | None = None, *, rate_scale: float = 1.0, tick_s: float = 1.0, seed: int = 0
) -> Workload:
    """Open a trace (any replay format) as arrivals per tick. Errors name the file and line."""
    path = Path(path)
    if not (tick_s > 0 and math.isfinite(tick_s)):
        raise ValueError(f"tick_s={tick_s} must be a finite number of seconds > 0")
    rng = np.random.default_rng(seed)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TraceError(f"trace file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"cannot read trace file {path}: {exc}") from None
    if not text.strip():
        raise TraceError(f"{path.name}: the trace file is empty")
    chosen = fmt or detect_format(path, text.split("\n", 1)[0])
    if chosen == "rate":
        intervals = parse_rate_rows(io.StringIO(text), path, ParseReport())
        if not intervals:
            raise TraceError(f"{path.name}: the rate trace has no rows")
        starts = np.array([i.start_s for i in intervals])
        durs = np.array([i.duration_s for i in intervals])
        rates = np.array([i.rate_rps for i in intervals]) * rate_scale
        if not (rate_scale >= 0 and math.isfinite(rate_scale)):
            raise TraceError(f"rate scale {rate_scale} must be a finite number >= 0")
        expected = expected_per_tick(starts, durs, rates, tick_s)
        counts = rng.poisson(expected).astype(np.int64)
        if counts.sum() == 0:
            raise TraceError(f"{path.name}: no arrivals (all rates zero, or --rate-scale 0)")
        return Workload(path.name, float(tick_s), counts, expected / tick_s)
    else:
        trace = open_trace(path, chosen)
        offsets = np.fromiter((r.offset_s for r in trace.requests), dtype=float)
        counts = scale_counts(counts_from_offsets(offsets, tick_s), rate_scale, rng)
    if counts.sum() == 0:
        raise TraceError(f"{path.name}: no arrivals (all rates zero, or --rate-scale 0)")
    return Workload(path.name, float(tick_s), counts)


def smoothed_rate_rps(workload: Workload, window_s: float) -> np.ndarray:
    """Per tick, the mean rate over the trailing window (at least one tick): the load that must
    be served within `window_s` (a request may wait that long)."""
    w = max(1, int(round(window_s / workload.tick_s)))
    c = np.concatenate([[0], np.cumsum(workload.counts)])
    k = np.arange(1, workload.ticks + 1)
    lo = np.maximum(0, k - w)
    return (c[k] - c[lo]) / ((k - lo) * workload.tick_s)
