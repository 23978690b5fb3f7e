"""What a policy sees of one model at one tick. The loop (and later the simulator) builds it;
policies only read it. Every optional signal may be None: "unknown" is never guessed as 0."""

from __future__ import annotations

import math
from dataclasses import dataclass

from controlplane.forecast.forecasters import Quantiles


@dataclass(frozen=True)
class ReplicaSignal:
    """One replica serving the model, for routing."""

    name: str
    healthy: bool = True  # ready and answering health checks
    p99_ms: float | None = None  # recent end-to-end p99 on this replica
    open_incidents: int = 0  # open anomaly incidents (controlplane.anomaly.incidents) on it
    zone: str = ""


@dataclass(frozen=True)
class ModelSnapshot:
    now_s: float  # epoch seconds of this tick (the only clock a policy sees)
    model: str
    observed_replicas: int  # running replicas serving the model
    ready_replicas: int  # of those, ready to take traffic
    rate_rps: float | None  # request rate over the stable window (e.g. 60 s); None: no data
    rate_age_s: float | None  # age of the newest sample behind rate_rps; None: no data
    short_rate_rps: float | None = None  # rate over the short "panic" window (e.g. 6 s)
    queue_len: float | None = None  # requests waiting in the model's queues, all replicas
    p99_ms: float | None = None  # model-level end-to-end p99
    # mean latency of the requests served lately: the live loop's stable window, weighted by
    # requests over the replicas in rotation; the simulator's ticks since the last snapshot
    mean_latency_ms: float | None = None
    slo_p99_ms: float | None = None
    forecast_p90_rps: float | None = None  # p90 forecast at now + replica startup time
    capacity_rps: float | None = None  # one replica's capacity at the SLO (capacity model)
    spec_replicas: int | None = None  # replicas last asked for (None: use observed)
    replicas: tuple[ReplicaSignal, ...] = ()

    @property
    def current_replicas(self) -> int:
        """The count decisions move from: the spec when known (replicas still starting count as
        asked for, so a slow start is not re-ordered every tick), else what runs."""
        return self.spec_replicas if self.spec_replicas is not None else self.observed_replicas


def forecast_at(quantiles: Quantiles, step_s: float, ahead_s: float) -> float | None:
    """p90 of a forecast made at `now` for `now + ahead_s` (horizon step k covers now + k*step_s);
    past the horizon -> the last step; an empty forecast -> None."""
    p90 = quantiles.p90
    if len(p90) == 0 or step_s <= 0:
        return None
    k = min(max(1, math.ceil(ahead_s / step_s - 1e-9)), len(p90))
    return float(p90[k - 1])
