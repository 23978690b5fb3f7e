"""`bench query`: the dashboard's standard panels over N days of R replicas, from rollups vs raw.

What is generated (all inside the engine with INSERT ... SELECT, no Python rows):
- A Triton-shaped fleet: R replicas spread over zones, each serving M models, scraped every
  15 s: `nv_inference_request_success` (counter per replica and model), the latency histogram
  `nv_inference_first_response_histogram_ms_bucket` (11 buckets per replica and model),
  `nv_gpu_utilization` (gauge per replica). Every value is a closed-form function of
  (replica, model, scrape index), so any time range can be generated independently.
- Raw samples for the last `raw_hours` (a bounded slice; 7 days of raw histograms for 1,000
  replicas would be ~1.6 billion rows). They go through `samples`, so the materialized views
  fill every rollup for the slice exactly as in production.
- For the rest of the period the fleet rollups the panels read (fleet_1m, and fleet_1h via its
  view) are generated directly from the same closed forms, aggregated per zone group. A check
  regenerates the first minutes of the slice the direct way and compares them with what the
  views produced (`direct_rollups_match_views`).

Timed: each panel from rollups over the whole period, and raw vs rollups over the slice (with
the answers compared: `equivalent`). `raw_full_period_estimated_s` is the slice time scaled
linearly to the whole period, labelled as an estimate.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from controlplane.store import derived
from controlplane.store.client import Store, open_store

SCRAPE_S = 15
LES_MS = [1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, math.inf]
MODEL_NAMES = ["classifier-small", "classifier-large", "classifier-large-int8", "chat-lm"]
MODEL_MEDIAN_MS = [2.0, 6.0, 4.0, 40.0]  # exponential latency scale per model
CLASSES = 3  # replica speed classes: latency scale x1, x2, x3
HIST = derived.LATENCY_HISTOGRAM_MS + "_bucket"
REQ = derived.REQUEST_SUCCESS
GPU = derived.GPU_METRICS["triton"]["util"]
_NO_DEDUP = {"insert_deduplicate": 0, "max_partitions_per_insert_block": 10000}


def _base(r: int, m: int) -> int:
    # Requests per scrape of replica r, model m (before the minute-of-week wobble).
    return 1 + (r * 7 + m * 13) % 20


def _frac(le: float, m: int, c: int) -> float:
    if math.isinf(le):
        return 1.0
    return 1.0 - math.exp(-le / (MODEL_MEDIAN_MS[m] * (1 + c)))


def _le_str(le: float) -> str:
    return "+Inf" if math.isinf(le) else f"{le:g}"


def _groups(replicas: int, models: int, zones: int) -> list[dict[str, Any]]:
    """Per (zone, model, class): replica count and base sums; what the direct rollups are built from."""
    out: dict[tuple[int, int, int], dict[str, Any]] = {}
    for r in range(replicas):
        z, c = r % zones, r % CLASSES
        for m in range(models):
            g = out.setdefault((z, m, c), {"z": z, "m": m, "c": c, "n": 0, "sb": 0, "bmin": 10**9, "bmax": 0})
            b = _base(r, m)
            g["n"] += 1
            g["sb"] += b
            g["bmin"] = min(g["bmin"], b)
            g["bmax"] = max(g["bmax"], b)
    return list(out.values())


def _zone_gpu_residues(replicas: int, zones: int) -> list[list[int]]:
    """cnt[z][res]: replicas of zone z with 7r mod 10 == res (GPU utilisation is a function of (7r + minute) mod 10)."""
    cnt = [[0] * 10 for _ in range(zones)]
    for r in range(replicas):
        cnt[r % zones][(7 * r) % 10] += 1
    return cnt


# ---- raw slice ------------------------------------------------------------------------------
# k: absolute scrape index (ts / 15); M = intDiv(k, 4): absolute minute. Counter value C(k) =
# base*(k+1) + 4*S7(M) + (k%4 + 1)*(M%7) where S7(M) = sum_{j<M} j%7, so delta(k) = base + M%7.

_S7 = "(21 * intDiv(M, 7) + (M % 7) * ((M % 7) - 1) / 2)"
_C = f"(base * (k + 1) + 4 * {_S7} + (k % 4 + 1) * (M % 7))"


def _raw_inserts(replicas: int, models: int, zones: int, k0: int, k1: int) -> list[str]:
    n_k = k1 - k0
    rep = (
        f"concat('bench-replica-', toString(r)) AS target, concat('zone-', toString(r % {zones})) AS zone, "
        f"concat('region-', toString((r % {zones}) % 2)) AS region"
    )
    les = "[" + ", ".join("inf" if math.isinf(x) else repr(x) for x in LES_MS) + "]"
    le_strs = "[" + ", ".join(derived.q(_le_str(x)) for x in LES_MS) + "]"
    med = "[" + ", ".join(repr(x) for x in MODEL_MEDIAN_MS) + "]"
    names = "[" + ", ".join(derived.q(x) for x in MODEL_NAMES[:models]) + "]"
    gpu = f"""INSERT INTO samples SELECT fromUnixTimestamp64Milli(k * {SCRAPE_S * 1000}, 'UTC') AS ts, {rep}, '' AS model,
    {derived.q(GPU)} AS metric, map('gpu_uuid', concat('GPU-', toString(r))) AS labels, 'gauge' AS kind,
    0.2 + 0.07 * ((7 * r + M) % 10) AS value, cityHash64(target, metric) AS series_id, 0 AS delta
FROM (SELECT {k0} + intDiv(number, {replicas}) AS k, number % {replicas} AS r, intDiv(k, 4) AS M FROM numbers({n_k * replicas}))"""
    counters = f"""INSERT INTO samples SELECT fromUnixTimestamp64Milli(k * {SCRAPE_S * 1000}, 'UTC') AS ts, {rep}, {names}[m + 1] AS model,
    {derived.q(REQ)} AS metric, map('version', '1') AS labels, 'counter' AS kind, {_C} AS value,
    cityHash64(target, metric, model) AS series_id, base + (M % 7) AS delta
FROM (SELECT {k0} + intDiv(number, {replicas * models}) AS k, intDiv(number % {replicas * models}, {models}) AS r,
      number % {models} AS m, intDiv(k, 4) AS M, 1 + (r * 7 + m * 13) % 20 AS base FROM numbers({n_k * replicas * models}))"""
    hist = f"""INSERT INTO samples SELECT fromUnixTimestamp64Milli(k * {SCRAPE_S * 1000}, 'UTC') AS ts, {rep}, {names}[m + 1] AS model,
    {derived.q(HIST)} AS metric, map('le', {le_strs}[i]) AS labels, 'histogram' AS kind, frac * {_C} AS value,
    cityHash64(target, metric, model, {le_strs}[i]) AS series_id, frac * (base + (M % 7)) AS delta
FROM (SELECT {k0} + intDiv(number, {replicas * models}) AS k, intDiv(number % {replicas * models}, {models}) AS r,
      number % {models} AS m, intDiv(k, 4) AS M, 1 + (r * 7 + m * 13) % 20 AS base, arrayJoin(range(1, {len(LES_MS) + 1})) AS i,
      if(isInfinite({les}[i]), 1.0, 1 - exp(-{les}[i] / ({med}[m + 1] * (1 + r % {CLASSES})))) AS frac
      FROM numbers({n_k * replicas * models}))"""
    return [gpu, counters, hist]


# ---- direct fleet rollups -------------------------------------------------------------------


def _direct_fleet(table: str, replicas: int, models: int, zones: int, m0: int, m1: int) -> list[str]:
    """fleet_1m rows for minutes [m0, m1) from per-group closed forms (same numbers the views would produce)."""
    groups = _groups(replicas, models, zones)
    n_min = m1 - m0
    spm = 60 // SCRAPE_S  # 4 scrapes per minute
    sum_j = spm * (spm + 1) // 2  # sum over the minute's scrapes of (k%4 + 1)
    arr = lambda key: "[" + ", ".join(str(g[key]) for g in groups) + "]"  # noqa: E731
    names = "[" + ", ".join(derived.q(x) for x in MODEL_NAMES[:models]) + "]"
    # Per group and minute: sum over replicas and the 4 scrapes of C(k), with k = 4M + j.
    csum = f"(sb * ({spm * spm} * M + {sum_j}) + n * ({spm * spm} * {_S7} + (M % 7) * {sum_j}))"
    cmin = f"(bmin * ({spm} * M + 1) + {spm} * {_S7} + (M % 7))"
    cmax = f"(bmax * ({spm} * M + {spm}) + {spm} * {_S7} + {spm} * (M % 7))"
    inc = f"({spm} * (sb + n * (M % 7)))"
    groups_sel = (
        f"SELECT {m0} + number AS M, toDateTime(M * 60, 'UTC') AS ts, "
        f"arrayJoin(arrayZip({arr('z')}, {arr('m')}, {arr('c')}, {arr('n')}, {arr('sb')}, {arr('bmin')}, {arr('bmax')})) AS g, "
        "g.1 AS z, g.2 AS m, g.3 AS c, g.4 AS n, g.5 AS sb, g.6 AS bmin, g.7 AS bmax "
        f"FROM numbers({n_min})"
    )
    counters = f"""INSERT INTO {table} (ts, metric, model, le, reason, min_value, max_value, sum_value, count, increase)
SELECT ts, {derived.q(REQ)}, {names}[m + 1], '', '', min({cmin}), max({cmax}), sum({csum}), sum({spm} * n), sum({inc})
FROM ({groups_sel}) GROUP BY ts, M, m"""
    les = "[" + ", ".join("inf" if math.isinf(x) else repr(x) for x in LES_MS) + "]"
    le_strs = "[" + ", ".join(derived.q(_le_str(x)) for x in LES_MS) + "]"
    med = "[" + ", ".join(repr(x) for x in MODEL_MEDIAN_MS) + "]"
    frac = f"if(isInfinite({les}[i]), 1.0, 1 - exp(-{les}[i] / ({med}[m + 1] * (1 + c))))"
    hist = f"""INSERT INTO {table} (ts, metric, model, le, reason, min_value, max_value, sum_value, count, increase)
SELECT ts, {derived.q(HIST)}, {names}[m + 1], {le_strs}[i], '',
    min(f * {cmin}), max(f * {cmax}), sum(f * {csum}), sum({spm} * n), sum(f * {inc})
FROM (SELECT *, arrayJoin(range(1, {len(LES_MS) + 1})) AS i, {frac} AS f FROM ({groups_sel})) GROUP BY ts, M, m, i"""
    cnt = _zone_gpu_residues(replicas, zones)
    cnt_lit = "[" + ", ".join("[" + ", ".join(map(str, row)) + "]" for row in cnt) + "]"
    gpu = f"""INSERT INTO {table} (ts, metric, model, le, reason, min_value, max_value, sum_value, count, increase)
SELECT toDateTime(M * 60, 'UTC'), {derived.q(GPU)}, '', '', '',
    0.2 + 0.07 * min(arrayMin(arrayFilter((res, c) -> c > 0, arrayMap(x -> (x + M) % 10, range(10)), cnt))),
    0.2 + 0.07 * max(arrayMax(arrayFilter((res, c) -> c > 0, arrayMap(x -> (x + M) % 10, range(10)), cnt))),
    sum({spm} * (0.2 * arraySum(cnt) + 0.07 * arraySum(arrayMap((c, x) -> c * ((x + M) % 10), cnt, range(10))))),
    sum({spm} * arraySum(cnt)), 0
FROM (SELECT {m0} + intDiv(number, {zones}) AS M, number % {zones} AS z, {cnt_lit}[z + 1] AS cnt FROM numbers({n_min * zones}))
WHERE arraySum(cnt) > 0 GROUP BY M"""
    return [counters, hist, gpu]


# ---- timing ---------------------------------------------------------------------------------


def _time(store: Store, sql: str, repeats: int) -> tuple[float, list[tuple]]:
    times, rows = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        rows = store.query(sql).rows
        times.append(time.perf_counter() - t0)
    return statistics.median(times), rows


def _max_rel_diff(a: list[tuple], b: list[tuple]) -> float:
    """Largest relative difference between two result sets of the same shape (inf if shapes differ)."""
    if len(a) != len(b):
        return math.inf
    worst = 0.0
    for ra, rb in zip(a, b, strict=True):
        for x, y in zip(ra, rb, strict=True):
            if isinstance(x, float | int) and isinstance(y, float | int):
                worst = max(worst, abs(x - y) / max(abs(x), abs(y), 1e-12))
            elif x != y and not (x is None and y is None):
                return math.inf
    return worst


def _resolve(store_dsn_or_dir: str | Path | None) -> tuple[str, tempfile.TemporaryDirectory | None]:
    if store_dsn_or_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="fleetpilot-bench-query-")
        return f"chdb:///{Path(tmp.name).resolve() / 'clickhouse'}", tmp
    s = str(store_dsn_or_dir)
    if "://" in s:
        return s, None
    return f"chdb:///{Path(s).resolve() / 'clickhouse'}", None


def run_query_bench(
    store_dsn_or_tmpdir: str | Path | None = None,
    replicas: int = 1000,
    days: float = 7,
    *,
    models: int = 4,
    zones: int = 8,
    raw_hours: int = 1,
    repeats: int = 3,
    check_minutes: int = 10,
    end_s: float | None = None,
) -> dict[str, Any]:
    """Generate the synthetic fleet, time the standard panels, return one JSON-able dict.

    `store_dsn_or_tmpdir`: a DSN, a directory (the store goes to <dir>/clickhouse), or None for
    a temporary directory. Use an empty store: synthetic targets are named bench-replica-N.
    """
    if not 1 <= models <= len(MODEL_NAMES):
        raise ValueError(f"models must be 1..{len(MODEL_NAMES)}")
    if raw_hours < 1 or raw_hours > days * 24:
        raise ValueError("raw_hours must be >= 1 and within the period")
    dsn, tmp = _resolve(store_dsn_or_tmpdir)
    end = int((end_s or time.time()) // 3600 * 3600)  # hour-aligned: rollup hours are all-direct or all-view
    start = end - int(days * 86400)
    slice_start = end - raw_hours * 3600
    out: dict[str, Any] = {
        "replicas": replicas,
        "models": models,
        "zones": zones,
        "days": days,
        "scrape_interval_s": SCRAPE_S,
        "raw_hours": raw_hours,
        "store": "embedded" if dsn.startswith("chdb:") else "server",
    }
    store = open_store(dsn)
    try:
        t0 = time.perf_counter()
        for sql in _raw_inserts(replicas, models, zones, slice_start // SCRAPE_S, end // SCRAPE_S):
            store.command(sql, settings=_NO_DEDUP)
        t1 = time.perf_counter()
        for sql in _direct_fleet("fleet_1m", replicas, models, zones, start // 60, slice_start // 60):
            store.command(sql, settings=_NO_DEDUP)
        t2 = time.perf_counter()
        store.command("OPTIMIZE TABLE fleet_1m FINAL")
        store.command("OPTIMIZE TABLE fleet_1h FINAL")
        t3 = time.perf_counter()
        rows = dict(
            store.query(
                "SELECT 'samples', count() FROM samples UNION ALL SELECT 'fleet_1m', count() FROM fleet_1m "
                "UNION ALL SELECT 'fleet_1h', count() FROM fleet_1h UNION ALL SELECT 'samples_1m', count() FROM samples_1m"
            ).rows
        )
        out["rows"] = rows
        out["generate_raw_s"] = round(t1 - t0, 2)
        out["generate_rollups_s"] = round(t2 - t1, 2)
        out["optimize_s"] = round(t3 - t2, 2)
        out["raw_samples_per_s_generated"] = round(rows["samples"] / max(t1 - t0, 1e-9))

        # Direct rollups == what the views produce (first minutes of the slice, both ways).
        store.command("DROP TABLE IF EXISTS fleet_1m_check")
        store.command("CREATE TABLE fleet_1m_check AS fleet_1m")
        m0 = slice_start // 60
        for sql in _direct_fleet("fleet_1m_check", replicas, models, zones, m0, m0 + check_minutes):
            store.command(sql, settings=_NO_DEDUP)
        cmp_sql = (
            "SELECT ts, metric, model, le, sum(increase), sum(sum_value), sum(count), min(min_value), max(max_value) FROM {t} "
            f"WHERE ts >= toDateTime({slice_start}, 'UTC') AND ts < toDateTime({slice_start + 60 * check_minutes}, 'UTC') "
            "GROUP BY ts, metric, model, le ORDER BY ts, metric, model, le"
        )
        diff = _max_rel_diff(
            store.query(cmp_sql.format(t="fleet_1m")).rows,
            store.query(cmp_sql.format(t="fleet_1m_check")).rows,
        )
        store.command("DROP TABLE fleet_1m_check")
        out["direct_rollups_match_views"] = diff < 1e-9
        out["direct_rollups_max_rel_diff"] = diff

        panels: dict[str, Any] = {}
        full = derived.standard_panels(start, end, 60, source="1m")
        hourly = derived.standard_panels(start, end, 3600, source="1h")
        slice_roll = derived.standard_panels(slice_start, end, 60, source="1m")
        slice_raw = derived.standard_panels(slice_start, end, 60, source="raw")
        all_equal = True
        for name in full:
            roll_s, roll_rows = _time(store, full[name], repeats)
            hour_s, _ = _time(store, hourly[name], repeats)
            sr_s, sr_rows = _time(store, slice_roll[name], repeats)
            raw_s, raw_rows = _time(store, slice_raw[name], max(1, repeats - 2))
            d = _max_rel_diff(sr_rows, raw_rows)
            all_equal &= d < 1e-9
            panels[name] = {
                "rollup_full_period_s": round(roll_s, 4),
                "rollup_full_period_points": len(roll_rows),
                "rollup_1h_full_period_s": round(hour_s, 4),
                "rollup_slice_s": round(sr_s, 4),
                "raw_slice_s": round(raw_s, 4),
                "raw_over_rollup_ratio": round(raw_s / max(sr_s, 1e-9), 1),
                "raw_full_period_estimated_s": round(raw_s * days * 24 / raw_hours, 1),
                "slice_max_rel_diff": d,
                "under_1s_from_rollups": roll_s < 1.0,
            }
        out["panels"] = panels
        out["equivalent"] = all_equal
        out["target_met"] = all(p["under_1s_from_rollups"] for p in panels.values())
    finally:
        store.close()
        if tmp is not None:
            tmp.cleanup()
    return out
