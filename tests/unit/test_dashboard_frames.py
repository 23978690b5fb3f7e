"""Dashboards: API JSON -> frames, number formatting, settings resolution (pure functions)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pandas as pd
import pytest

from controlplane.config import ConfigError, Settings
from dashboards import formatting as fmt
from dashboards import frames
from dashboards.settings import api_url, connect_host, streamlit_command


def _series():
    return {
        "name": "request_rate",
        "columns": ["ts", "model", "requests_per_s", "failures_per_s"],
        "rows": [
            {"ts": "2026-01-01T00:01:00Z", "model": "a", "requests_per_s": 2.0, "failures_per_s": None},
            {"ts": "2026-01-01T00:00:00Z", "model": "a", "requests_per_s": 1.0, "failures_per_s": 0.0},
            {"ts": "2026-01-01T00:00:00Z", "model": "b", "requests_per_s": 3.0, "failures_per_s": 0.0},
            {"ts": "2026-01-01T00:01:00Z", "model": "b", "requests_per_s": None, "failures_per_s": 0.0},
        ],
    }


def test_series_frame_sorts_parses_times_and_keeps_nulls_as_nan():
    df = frames.series_frame(_series())
    assert list(df.columns) == ["ts", "model", "requests_per_s", "failures_per_s"]
    assert str(df["ts"].dt.tz) == "UTC"
    assert df["ts"].is_monotonic_increasing
    assert df["requests_per_s"].isna().sum() == 1  # null stays unknown, not 0


def test_fleet_total_and_last_value_sum_groups_and_skip_unknown():
    df = frames.series_frame(_series())
    tot = frames.fleet_total(df, "requests_per_s")
    assert tot["requests_per_s"].tolist() == [4.0, 2.0]  # b unknown at 00:01: sum of the known
    assert frames.last_value(df, "requests_per_s") == 2.0
    assert frames.mean_value(df, "requests_per_s") == 3.0
    assert frames.mean_value(df, "requests_per_s", total=False) == 2.0
    empty = frames.series_frame({"columns": ["ts", "model", "requests_per_s"], "rows": []})
    assert frames.last_value(empty, "requests_per_s") is None
    assert frames.mean_value(empty, "requests_per_s") is None


def test_decisions_frame_flattens_params_and_inputs_newest_first():
    rows = [
        {
            "ts": "2026-01-01T00:00:00Z",
            "model": "m",
            "policy": "replicas",
            "mode": "active",
            "action": "hold",
            "params": {"current": 2, "recommended": 2, "final": 2, "message": "steady"},
            "inputs": {"observed_replicas": 2, "rate_rps": 10.0},
            "reason_codes": ["within_tolerance"],
        },
        {
            "ts": "2026-01-01T00:05:00Z",
            "model": "m",
            "policy": "replicas",
            "mode": "active",
            "action": "scale_up",
            "params": {"current": 2, "recommended": 4, "final": 3, "message": "step limit"},
            "inputs": {"observed_replicas": 2},
            "reason_codes": ["load_over_capacity", "step_limit_up"],
        },
    ]
    df = frames.decisions_frame(rows)
    assert df["action"].tolist() == ["scale_up", "hold"]
    assert df.loc[0, "final"] == 3 and df.loc[0, "recommended"] == 4
    assert df.loc[0, "reasons"] == "load_over_capacity, step_limit_up"
    assert math.isnan(df.loc[0, "rate_rps"]) and df.loc[1, "rate_rps"] == 10.0


def _event(ts, kind, sev, obs, inc="i1", end=None):
    return {
        "ts": ts,
        "event_id": f"{inc}#{kind}",
        "model": "m",
        "replica": "r1",
        "metric": "p99_latency_ms",
        "severity": sev,
        "score": 0.8,
        "observed_value": obs,
        "expected_value": 20.0,
        "reason_codes": [kind, "detector:robust"],
        "inputs": {"incident_id": inc},
        "window_start": "2026-01-01T00:00:00Z",
        "window_end": end or ts,
    }


def test_incidents_group_events_open_reaches_now_closed_keeps_end():
    now = pd.Timestamp("2026-01-01T01:00:00Z")
    ev = frames.events_frame(
        [
            _event("2026-01-01T00:01:00Z", "open", "warning", 90.0),
            _event("2026-01-01T00:03:00Z", "update", "critical", 150.0),
            _event("2026-01-01T00:02:00Z", "open", "info", 5.0, inc="i2"),
            _event("2026-01-01T00:09:00Z", "closed", "info", 4.0, inc="i2"),
        ]
    )
    assert ev["kind"].tolist()[0] == "closed"
    inc = frames.incidents_frame(ev, now).set_index("incident_id")
    assert inc.loc["i1", "state"] == "open" and inc.loc["i1", "end"] == now
    assert inc.loc["i1", "severity"] == "critical" and inc.loc["i1", "observed_value"] == 150.0
    assert inc.loc["i2", "state"] == "closed"
    assert inc.loc["i2", "end"] == pd.Timestamp("2026-01-01T00:09:00Z")
    assert frames.incidents_frame(frames.events_frame([]), now).empty


def test_forecasts_keep_newest_forecast_per_target_time():
    rows = [
        {
            "ts": "2026-01-01T00:00:00Z",
            "model": "m",
            "metric": "rate",
            "target_ts": "2026-01-01T00:05:00Z",
            "value": 1,
            "lower": 0,
            "upper": 2,
        },
        {
            "ts": "2026-01-01T00:01:00Z",
            "model": "m",
            "metric": "rate",
            "target_ts": "2026-01-01T00:05:00Z",
            "value": 5,
            "lower": 4,
            "upper": 6,
        },
        {
            "ts": "2026-01-01T00:01:00Z",
            "model": "m",
            "metric": "rate",
            "target_ts": "2026-01-01T00:04:00Z",
            "value": 3,
            "lower": 2,
            "upper": 4,
        },
    ]
    df = frames.forecasts_frame(rows)
    assert df["value"].tolist() == [3, 5]


def test_query_frame_types_and_chart_axes():
    res = {
        "columns": ["t", "model", "n"],
        "types": ["DateTime('UTC')", "LowCardinality(String)", "UInt64"],
        "rows": [["2026-01-01T00:00:00Z", "a", "3"], ["2026-01-01T00:01:00Z", "b", 4]],
    }
    df = frames.query_frame(res)
    assert pd.api.types.is_datetime64_any_dtype(df["t"]) and df["n"].tolist() == [3, 4]
    assert frames.chart_axes(df) == ("t", ["n"], "model")
    cat = frames.query_frame(
        {"columns": ["metric", "samples"], "types": ["String", "UInt64"], "rows": [["x", 1]]}
    )
    assert frames.chart_axes(cat) == ("metric", ["samples"], None)
    assert frames.chart_axes(pd.DataFrame()) == (None, [], None)


def test_slo_summary_weights_by_requests_and_takes_worst_burn():
    s = frames.slo_summary(
        {
            "objective_ratio": 0.99,
            "models": [
                {"model": "a", "requests": 900.0, "within_slo_ratio": 1.0, "burn_rate": 0.0},
                {"model": "b", "requests": 100.0, "within_slo_ratio": 0.9, "burn_rate": 10.0},
                {"model": "c", "requests": 0.0, "within_slo_ratio": None, "burn_rate": None},
            ],
        }
    )
    assert s["attainment_ratio"] == pytest.approx(0.99)
    assert s["worst_burn_rate"] == 10.0
    assert frames.slo_summary({"objective_ratio": 0.99, "models": []})["attainment_ratio"] is None


@pytest.mark.parametrize(
    ("fn", "value", "expected"),
    [
        (fmt.number, 1234.5, "1,234"),
        (fmt.number, 0.012345, "0.0123"),
        (fmt.number, None, fmt.NA),
        (fmt.number, float("nan"), fmt.NA),
        (fmt.ratio_pct, 0.99123, "99.1 %"),
        (fmt.ms, 12.34, "12.3 ms"),
        (fmt.ms, 2500.0, "2.50 s"),
        (fmt.seconds, 5.0, "5 s"),
        (fmt.seconds, 5400.0, "1.5 h"),
        (fmt.money, 7.5, "$7.50"),
        (fmt.money, 0.0004, "$0.0004"),
        (fmt.bytes_, 3 * 1024**3, "3.0 GiB"),
        (fmt.energy_j, 5400.0, "5.40 kJ"),
        (fmt.window_label, 900, "last 15 min"),
        (fmt.window_label, 7 * 86400, "last 7 d"),
    ],
)
def test_formatting(fn, value, expected):
    assert fn(value) == expected


def test_parse_ts_and_ago():
    now = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    assert fmt.parse_ts("2026-01-01T00:00:00Z") == datetime(2026, 1, 1, tzinfo=UTC)
    assert fmt.ago("2026-01-01T00:00:30+00:00", now) == "30 s ago"
    with pytest.raises(ValueError, match="not an ISO-8601"):
        fmt.parse_ts("yesterday")


def test_api_url_precedence_and_validation():
    s = Settings()
    assert api_url(s, {}) == "http://127.0.0.1:7070"
    s2 = Settings(dashboard={"api_url": "http://api.internal:9000/"})
    assert api_url(s2, {}) == "http://api.internal:9000"
    assert api_url(s2, {"FLEETPILOT_API_URL": "https://x:1"}) == "https://x:1"
    with pytest.raises(ConfigError, match="FLEETPILOT_API_URL"):
        api_url(s, {"FLEETPILOT_API_URL": "x:1"})
    assert connect_host("0.0.0.0") == "127.0.0.1" and connect_host("::1") == "[::1]"


def test_dashboard_config_rejects_non_http_url():
    with pytest.raises(ValueError, match="http://"):
        Settings(dashboard={"api_url": "api:7070"})


def test_streamlit_command_is_headless_on_configured_port_and_passes_env(tmp_path):
    cfg = tmp_path / "c.yaml"
    s = Settings(dashboard={"port": 18655})
    argv, env = streamlit_command(s, {"FLEETPILOT_API_TOKEN": "t0k"}, config_file=cfg)
    assert argv[1:4] == ["-m", "streamlit", "run"] and argv[4].endswith("dashboards/app.py")
    assert argv[argv.index("--server.port") + 1] == "18655"
    assert argv[argv.index("--server.headless") + 1] == "true"
    assert env["FLEETPILOT_API_TOKEN"] == "t0k"  # passed through untouched
    assert env["FLEETPILOT_API_URL"] == "http://127.0.0.1:7070"
    assert env["FLEETPILOT_CONFIG"] == str(cfg.resolve())
    argv, env = streamlit_command(s, {}, port=18656, api_url_override="http://h:1")
    assert argv[argv.index("--server.port") + 1] == "18656" and env["FLEETPILOT_API_URL"] == "http://h:1"


def test_complete_buckets_drop_the_unfinished_one():
    df = frames.series_frame(_series())
    now = pd.Timestamp("2026-01-01T00:01:30Z")  # the 00:01 bucket ends at 00:02
    assert frames.complete_buckets(df, 60, now)["ts"].nunique() == 1
    assert len(frames.complete_buckets(df, 60, pd.Timestamp("2026-01-01T00:02:00Z"))) == 4
    assert frames.complete_buckets(df, 60, None) is df
    young = frames.complete_buckets(df, 3600, now)  # hourly buckets, all still open
    assert len(young) == len(df)  # nothing complete yet: keep what there is


@pytest.mark.parametrize(
    ("window_s", "step_s"), [(900, 30), (3600, 60), (86400, 900), (1800, 30), (7200, 120)]
)
def test_step_for_window_is_a_multiple_of_30_s(window_s, step_s):
    from dashboards.ui import step_for

    assert step_for(window_s) == step_s
