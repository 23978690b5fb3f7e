"""`bench query` at a small size: generated rollups equal what the views produce, raw == rollups."""

from __future__ import annotations

from controlplane.store.bench_query import run_query_bench


def test_small_query_bench(tmp_path):
    out = run_query_bench(tmp_path, replicas=12, days=0.25, raw_hours=1, repeats=1, check_minutes=5)
    assert out["direct_rollups_match_views"], out["direct_rollups_max_rel_diff"]
    assert out["equivalent"]
    assert set(out["panels"]) == {"p99_latency_per_model", "request_rate_per_model", "gpu_utilization"}
    for panel in out["panels"].values():
        assert panel["rollup_full_period_points"] > 0
        assert panel["rollup_full_period_s"] > 0 and panel["raw_slice_s"] > 0
    assert out["rows"]["samples"] == 12 * 240 * (1 + 4 + 4 * 11)  # one hour of raw at 15 s
