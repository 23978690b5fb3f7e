"""One detection tick over every series of the fleet: detectors -> combiner -> incidents.

The series layout (which model/replica/metric each column is) is fixed for a run of ticks; the
loop rebuilds it (and a fresh state) when replicas come or go. Everything here is pure:
`detect_tick(state, layout, now_s, values, params) -> (state, findings, events)`; the loop reads
the snapshot from the store and writes `events` to `anomaly_events`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from controlplane.anomaly import changepoint, combine, incidents, multivariate, peer, robust


@dataclass(frozen=True)
class SeriesKey:
    model: str
    replica: str
    metric: str
    zone: str = ""


@dataclass(frozen=True)
class Layout:
    keys: tuple[SeriesKey, ...]
    peer_group: np.ndarray  # [S] int: same (model, metric) -> same group
    replicas: tuple[tuple[str, str], ...]  # (model, replica) rows of the multivariate matrix
    mv_row: np.ndarray  # [S] row in the multivariate matrix, -1 if the metric is not a feature
    mv_col: np.ndarray  # [S] feature column, -1 if not a feature
    # [S] which way is bad: +1 only high values (latency), -1 only low ones (cache hit ratio), 0 both
    direction: np.ndarray | None = None
    floor: np.ndarray | None = None  # [S] smallest spread (metric units): noise below it is not news

    @staticmethod
    def build(
        keys: list[SeriesKey], direction: list[int] | None = None, floor: list[float] | None = None
    ) -> Layout:
        groups: dict[tuple[str, str], int] = {}
        reps: dict[tuple[str, str], int] = {}
        pg, rows, cols = [], [], []
        for k in keys:
            pg.append(groups.setdefault((k.model, k.metric), len(groups)))
            if k.metric in multivariate.FEATURES:
                rows.append(reps.setdefault((k.model, k.replica), len(reps)))
                cols.append(multivariate.FEATURES.index(k.metric))
            else:
                rows.append(-1)
                cols.append(-1)
        return Layout(
            tuple(keys),
            np.array(pg),
            tuple(reps),
            np.array(rows),
            np.array(cols),
            None if direction is None else np.asarray(direction, dtype=float),
            None if floor is None else np.asarray(floor, dtype=float),
        )


def _one_sided(z: np.ndarray, direction: np.ndarray | None) -> np.ndarray:
    """Keep the bad side of a signed z only (a replica faster than its peers is not an anomaly)."""
    if direction is None:
        return z
    return np.where((direction == 0) | (z * direction > 0), z, 0.0)


@dataclass(frozen=True)
class EngineParams:
    robust: robust.RobustParams = robust.RobustParams()
    cusum: changepoint.CusumParams = changepoint.CusumParams()
    peer: peer.PeerParams = peer.PeerParams()
    multi: multivariate.MultiParams = multivariate.MultiParams()
    combine: combine.CombineParams = combine.CombineParams()
    incidents: incidents.IncidentParams = incidents.IncidentParams()
    use_multivariate: bool = True


@dataclass(frozen=True)
class EngineState:
    robust: robust.RobustState
    cusum: changepoint.CusumState
    multi: multivariate.MultiState
    incidents: incidents.IncidentState = field(default_factory=incidents.IncidentState)
    peer_blamed: np.ndarray | None = None  # [S] bool: blamed for an open two-replica peer gap


def init_state(layout: Layout, params: EngineParams = EngineParams()) -> EngineState:
    n = len(layout.keys)
    return EngineState(
        robust=robust.init_state(n, params.robust),
        cusum=changepoint.init_state(n),
        multi=multivariate.init_state(len(multivariate.FEATURES), params.multi),
    )


def detect_tick(
    state: EngineState,
    layout: Layout,
    now_s: float,
    values: np.ndarray,
    params: EngineParams = EngineParams(),
    trials: np.ndarray | None = None,
) -> tuple[EngineState, list[incidents.Finding], list[incidents.AnomalyEvent]]:
    """`trials[i]`: the count behind series i's ratio this tick (NaN: not a ratio); the peer
    comparison then allows for the ratios' binomial noise (peer.peer_z)."""
    x = np.asarray(values, dtype=float)
    rp = params.robust
    if layout.floor is not None:
        rp = replace(rp, min_spread_abs=np.maximum(layout.floor, rp.min_spread_abs))
    rs, r = robust.step(state.robust, x, now_s, rp)
    cs, cp = changepoint.step(state.cusum, r.signed_z, params.cusum, mask=r.spread > 0)
    pz = peer.peer_z(x, layout.peer_group, params.peer, floor=layout.floor, trials=trials)
    blamed = state.peer_blamed if state.peer_blamed is not None else np.zeros(x.size, dtype=bool)
    pair_z, blamed = peer.attribute_pairs(
        pz.z, x, layout.peer_group, r.signed_z, blamed, params.combine.peer.lo, layout.direction
    )
    pz = replace(pz, z=pair_z)
    if layout.direction is not None:
        signed = _one_sided(r.signed_z, layout.direction)
        r = replace(r, signed_z=signed, z=np.abs(signed))
        pz = replace(pz, z=_one_sided(pz.z, layout.direction))
        cp = replace(cp, change=cp.change & (signed != 0))
    # A sustained move (the level re-anchored after `shift_run` surprises on one side) that the
    # peers did not make is a change point of this replica: a low-traffic cache collapse moves
    # 3-5 spreads per scrape, which neither detector scores high enough on its own, and the
    # re-anchored level would forget it.
    apart = r.shifted & (r.signed_z != 0) & (np.abs(pz.z) >= params.combine.peer.lo)
    cp = replace(cp, change=cp.change | apart)
    ms, mv_series = state.multi, np.zeros(x.size)
    if params.use_multivariate and layout.replicas:
        X = np.full((len(layout.replicas), len(multivariate.FEATURES)), np.nan)
        f = layout.mv_row >= 0
        X[layout.mv_row[f], layout.mv_col[f]] = x[f]
        ms, mo = multivariate.step(state.multi, X, params.multi)
        mv_series[f] = mo.score[layout.mv_row[f]]
    # The peer view explains a series better when it is the stronger evidence.
    peer_wins = np.abs(pz.z) > np.abs(r.z)
    ev = combine.Evidence(
        observed=x,
        expected=np.where(peer_wins, pz.expected, r.expected),
        spread=np.where(peer_wins, pz.spread, r.spread),
        robust_z=r.z,
        peer_z=pz.z,
        change=cp.change,
        multivariate=mv_series,
    )
    score, parts = combine.combine(ev, params.combine)
    findings = []
    for i in np.flatnonzero(score >= params.incidents.close_score):
        k = layout.keys[i]
        findings.append(
            incidents.Finding(
                k.model, k.replica, k.metric, float(score[i]), combine.explain(i, k.metric, ev, parts), k.zone
            )
        )
    inc, events = incidents.step(state.incidents, findings, now_s, params.incidents)
    return EngineState(robust=rs, cusum=cs, multi=ms, incidents=inc, peer_blamed=blamed), findings, events


def run_tick_bench(n_series: int = 1000, warmup_ticks: int = 120, ticks: int = 200, seed: int = 1) -> dict:
    """Wall time of one detection tick over `n_series` series (6 metrics per replica, 8 replicas
    per model), after warm-up. Ticks that refit the IsolationForest are reported separately."""
    rng = np.random.default_rng(seed)
    feats = multivariate.FEATURES
    keys: list[SeriesKey] = []
    r = 0
    while len(keys) < n_series:
        model = f"model-{r // 8}"
        for m in feats:
            if len(keys) < n_series:
                keys.append(SeriesKey(model, f"replica-{r}", m, f"zone-{r % 3}"))
        r += 1
    layout = Layout.build(keys)
    params = EngineParams()
    state = init_state(layout, params)
    base = np.array([{"latency_ms": 20, "queue_ms": 2, "error_ratio": 0.001, "cache_hit_ratio": 0.6,
                      "gpu_util_ratio": 0.5, "memory_bytes": 4e9}[k.metric] for k in keys])  # fmt: skip
    plain, refit = [], []
    now = 1_700_000_000.0
    for t in range(warmup_ticks + ticks):
        now += 5.0
        values = base * (1 + 0.05 * rng.standard_normal(base.size))
        fits_before = state.multi.ticks_since_fit
        t0 = time.perf_counter()
        state, _, _ = detect_tick(state, layout, now, values, params)
        dt_ms = (time.perf_counter() - t0) * 1000
        if t >= warmup_ticks:
            (refit if state.multi.ticks_since_fit <= fits_before else plain).append(dt_ms)
    p = np.asarray(plain)
    return {
        "series": n_series,
        "ticks": len(plain),
        "tick_ms_p50": round(float(np.percentile(p, 50)), 2),
        "tick_ms_p99": round(float(np.percentile(p, 99)), 2),
        "tick_ms_max": round(float(p.max()), 2),
        "refit_ticks": len(refit),
        "refit_tick_ms_max": round(max(refit), 2) if refit else None,
        "budget_ms": 50.0,
        "within_budget": bool(np.percentile(p, 99) < 50.0),
    }
