"""Dashboards: every chart builder yields a valid Vega-Lite spec with the data in it, or None."""

from __future__ import annotations

import pandas as pd
import pytest

from dashboards import charts, frames

TS = pd.date_range("2026-01-01", periods=6, freq="min", tz="UTC")


def _spec(chart):
    spec = chart.to_dict()  # validates against the Vega-Lite schema; raises on a bad spec
    assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/")
    return spec


def _rows(spec) -> int:
    """Data rows carried by a spec (Altair moves inline data into `datasets`)."""
    return sum(len(v) for v in spec.get("datasets", {}).values())


def _series_df():
    return pd.DataFrame(
        {
            "ts": list(TS) * 2,
            "model": ["a"] * 6 + ["b"] * 6,
            "requests_per_s": [1, 2, 3, None, 5, 6] + [2] * 6,
            "avg_queue_ms": [0.5] * 12,
            "avg_request_ms": [3.0] * 12,
        }
    )


def test_time_series_lines_and_stacked_area():
    df = _series_df()
    line = _spec(charts.time_series(df, "requests_per_s", color="model", title="rps"))
    assert line["mark"]["type"] == "line" and _rows(line) == 12
    area = _spec(charts.time_series(df, "requests_per_s", color="model", area=True))
    assert area["mark"]["type"] == "area" and area["encoding"]["y"]["stack"] == "zero"


def test_builders_return_none_without_data():
    empty = pd.DataFrame(
        {"ts": pd.Series(dtype="datetime64[ns, UTC]"), "requests_per_s": pd.Series(dtype=float)}
    )
    assert charts.time_series(empty, "requests_per_s") is None
    nulls = pd.DataFrame({"ts": TS, "requests_per_s": [None] * 6})
    assert charts.time_series(nulls, "requests_per_s") is None  # all unknown: no flat zero line
    assert charts.time_series(_series_df(), "no_such_column") is None
    assert charts.forecast_band(pd.DataFrame(), None, "x") is None
    assert charts.replicas_steps(pd.DataFrame()) is None
    assert charts.incident_timeline(pd.DataFrame()) is None
    assert charts.result_chart(pd.DataFrame(), None, [], None) is None
    assert charts.slo_bars(pd.DataFrame(), 0.99) is None


def test_multi_series_and_slo_rule():
    df = _series_df()
    spec = _spec(charts.multi_series(df, {"avg_request_ms": "request", "avg_queue_ms": "queue"}))
    assert _rows(spec) == 12  # two models averaged per (ts, series): 6 ts x 2 series
    layered = _spec(charts.with_rule(charts.time_series(df, "requests_per_s"), 4.0, "SLO"))
    assert len(layered["layer"]) == 3
    assert charts.with_rule(None, 4.0, "SLO") is None


def test_slo_bars_colour_by_objective():
    slo = pd.DataFrame(
        [
            {"model": "a", "within_slo_ratio": 0.999, "burn_rate": 0.1, "slo_p99_ms": 50, "requests": 10},
            {"model": "b", "within_slo_ratio": 0.95, "burn_rate": 5.0, "slo_p99_ms": 50, "requests": 10},
        ]
    )
    spec = _spec(charts.slo_bars(slo, 0.99))
    data = [r for v in spec["datasets"].values() for r in v if "model" in r]
    assert {r["model"]: r["status"] for r in data} == {"a": "meets SLO", "b": "below SLO"}


def test_forecast_band_layers_band_line_and_actual():
    fc = pd.DataFrame({"target_ts": TS, "value": range(6), "lower": range(-1, 5), "upper": range(1, 7)})
    actual = pd.DataFrame({"ts": TS, "requests_per_s": [0.5, 1, 2, 3, 4, 5]})
    spec = _spec(charts.forecast_band(fc, actual, "requests_per_s"))
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["area", "line", "line"]
    only_actual = _spec(charts.forecast_band(pd.DataFrame(), actual, "requests_per_s"))
    assert len(only_actual["layer"]) == 1


def test_replicas_steps_and_decision_timeline():
    dec = frames.decisions_frame(
        [
            {
                "ts": f"2026-01-01T00:0{i}:00Z",
                "model": m,
                "policy": "replicas",
                "mode": "active",
                "action": "scale_up" if i == 2 else "hold",
                "params": {"current": 2, "recommended": 3, "final": 3 if i >= 2 else 2},
                "inputs": {"observed_replicas": 2},
                "reason_codes": ["load_over_capacity"],
            }
            for i in range(4)
            for m in ("a", "b")
        ]
    )
    now = pd.Timestamp("2026-01-01T00:10:00Z")
    steps = _spec(charts.replicas_steps(dec, now=now))
    assert steps["mark"]["interpolate"] == "step-after"
    rows = [r for v in steps["datasets"].values() for r in v]
    # 4 decisions x 2 models + the last one held on to `now`, for desired, current and observed
    assert len(rows) == 3 * (8 + 2)
    assert {r["series"] for r in rows} == {"desired", "current", "observed"}
    no_obs = dec.assign(observed_replicas=float("nan"))
    rows = [r for v in _spec(charts.replicas_steps(no_obs))["datasets"].values() for r in v]
    assert {r["series"] for r in rows} == {"desired", "current"}  # unknown is not drawn
    tl = _spec(charts.decisions_timeline(dec))
    assert tl["mark"]["type"] == "point" and _rows(tl) == 8


def test_incident_timeline_and_expected_vs_observed():
    now = pd.Timestamp("2026-01-01T00:30:00Z")
    ev = frames.events_frame(
        [
            {
                "ts": "2026-01-01T00:05:00Z",
                "event_id": "i1#0",
                "model": "m",
                "replica": "r1",
                "metric": "p99_latency_ms",
                "severity": "critical",
                "score": 0.95,
                "observed_value": 200.0,
                "expected_value": 20.0,
                "reason_codes": ["open"],
                "inputs": {"incident_id": "i1"},
                "window_start": "2026-01-01T00:04:00Z",
                "window_end": "2026-01-01T00:05:00Z",
            }
        ]
    )
    tl = _spec(charts.incident_timeline(frames.incidents_frame(ev, now)))
    assert tl["encoding"]["x2"]["field"] == "end"
    evo = _spec(charts.expected_vs_observed(ev, "p99_latency_ms"))
    assert [layer["mark"]["type"] for layer in evo["layer"]] == ["rule", "tick", "point"]
    assert charts.expected_vs_observed(ev, "other_metric") is None


def test_capacity_and_actions_charts():
    models = pd.DataFrame(
        [
            {
                "model": "a",
                "rate_rps": 10.0,
                "forecast_p90_rps": 12.0,
                "capacity_rps": 8.0,
                "observed_replicas": 2,
            }
        ]
    )
    spec = _spec(charts.capacity_bars(models))
    carry = [r for v in spec["datasets"].values() for r in v if r["series"] == "fleet capacity"]
    assert carry[0]["rps"] == 16.0
    acts = frames.actions_frame(
        [
            {
                "ts": "2026-01-01T00:00:00Z",
                "model": "a",
                "action": "scale_up",
                "outcome": "ok",
                "params": {"replicas": 3},
            }
        ]
    )
    assert acts.loc[0, "params"] == "replicas=3"
    assert _spec(charts.actions_timeline(acts))["mark"]["shape"] == "diamond"


@pytest.mark.parametrize("temporal", [True, False])
def test_result_chart_lines_over_time_bars_over_categories(temporal):
    x = TS if temporal else [f"m{i}" for i in range(6)]
    df = pd.DataFrame({"x": x, "n": range(6), "k": [1.0] * 6})
    spec = _spec(charts.result_chart(df, "x", ["n", "k"], None))
    assert spec["mark"]["type"] == ("line" if temporal else "bar")
    assert spec["encoding"]["color"]["field"] == "column"  # two y columns: one series each
