"""Dashboards: every page through Streamlit's AppTest against the real API on a seeded embedded store.

The API (controlplane/api) runs in this process on a free port in 18660-18689 with its clock frozen
at the seed time, so the numbers on the pages are the seed's (tests/support/api_seed.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from dashboards import formatting as fmt
from dashboards.views.anomalies import EVENT_COLUMNS
from dashboards.views.history import csv_bytes
from tests.support.api_seed import free_port, running_api

APP = str(Path(__file__).resolve().parents[2] / "dashboards" / "app.py")
PORTS = range(18660, 18690)
TIMEOUT_S = 120


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Iterator:
    with running_api(
        tmp_path_factory.mktemp("dash_api"), port=free_port(PORTS), freeze_clock=True
    ) as running:
        yield running


@pytest.fixture
def app_env(api, monkeypatch):
    monkeypatch.setenv("FLEETPILOT_API_URL", api.base_url)
    monkeypatch.delenv("FLEETPILOT_CONFIG", raising=False)
    monkeypatch.delenv("FLEETPILOT_API_TOKEN", raising=False)
    return api


def open_page(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S).run()
    if page:
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def charts(at: AppTest) -> dict[str, list[pd.DataFrame]]:
    """Rendered Vega-Lite charts by title, with the data rows Streamlit sends to the browser."""
    out = {}
    for i, el in enumerate(at.get("vega_lite_chart")):
        spec = json.loads(el.proto.spec)
        title = spec.get("title") or next(
            (layer.get("title") for layer in spec.get("layer", []) if layer.get("title")), f"chart {i}"
        )
        title = title.get("text") if isinstance(title, dict) else title
        out[title] = [pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in el.proto.datasets]
    return out


def rows(frames: list[pd.DataFrame]) -> int:
    return sum(len(f) for f in frames)


def api_get(api, path: str, **params) -> dict:
    return httpx.get(f"{api.base_url}{path}", params=params, timeout=30).json()


def test_overview_shows_seeded_load_slo_gpu_cost_and_incidents(app_env):
    api = app_env
    at = open_page()
    m = metrics(at)
    seed = api.seed
    assert m["Requests/s"] == fmt.rate_per_s(sum(seed["rate_rps"].values()))  # 66.0 req/s
    assert m["Tokens/s"] == fmt.rate_per_s(seed["generation_tokens_per_s"], "tok/s")  # 384 tok/s
    assert m["GPU utilisation"] == fmt.ratio_pct(sum(seed["gpu_util"].values()) / 3)  # 50.0 %
    assert m["Open incidents"] == "1"
    assert m["Replicas ready"] == "3 / 3"
    cost = api_get(api, "/v1/cost", since_s=3600)
    assert m["Cost per hour"] == fmt.money(cost["cost_per_hour"]) and cost["cost_per_hour"] > 0
    slo = api_get(api, "/v1/slo", since_s=3600)
    within = {x["model"]: x for x in slo["models"]}
    reqs = sum(x["requests"] for x in within.values())
    expected = sum(x["within_slo_ratio"] * x["requests"] for x in within.values()) / reqs
    assert m["SLO attainment"] == fmt.ratio_pct(expected, 2)

    c = charts(at)
    assert set(c) == {
        "Requests/s by model",
        "Generated tokens/s",
        "SLO attainment by model",
        "GPU utilisation",
    }
    assert all(rows(f) > 0 for f in c.values())
    rr = pd.concat(c["Requests/s by model"])
    assert set(rr["model"]) == set(seed["models"])
    assert rr.groupby("model")["requests_per_s"].max().round(6).to_dict() == seed["rate_rps"]

    table = at.dataframe[0].value
    assert list(table.columns)[:3] == ["model", "mode", "replicas ready"]
    assert sorted(table["model"]) == sorted(seed["models"])
    assert table.set_index("model").loc["classifier-small", "requests/s"] == pytest.approx(60.0)


def test_model_drill_down_per_model_and_per_replica(app_env):
    seed = app_env.seed
    at = open_page("model")
    at.selectbox(key="drill_model").set_value("classifier-small").run()
    m = metrics(at)
    assert m["Avg queue time"] == fmt.ms(seed["queue_ms"]["classifier-small"])  # 2.00 ms
    assert m["Avg batch size"] == fmt.number(seed["batch_size"]["classifier-small"])  # 4.00
    assert m["Cache hit ratio"] == fmt.ratio_pct(seed["cache_hit_ratio"]["classifier-small"])  # 20.0 %
    c = charts(at)
    assert {"p99 latency", "Batch size (inferences per execution)", "Response-cache hit ratio"} <= set(c)
    assert "Time to first token p99" not in c  # a classifier has no token metrics
    replicas = at.dataframe[0].value
    assert sorted(replicas["replica"]) == seed["replicas"] and "observed state" in replicas.columns

    at.selectbox(key="drill_model").set_value("chat-lm").run()
    m = metrics(at)
    assert m["Avg queue time"] == fmt.ms(seed["queue_ms"]["chat-lm"])  # 40.0 ms
    c = charts(at)
    assert rows(c["Time to first token p99"]) > 0 and rows(c["Inter-token latency p99"]) > 0
    gpu = pd.concat(c["GPU power"])
    assert set(gpu["target"]) == set(seed["replicas"]) and gpu["gpu_power_w"].max() == seed["gpu_power_w"]

    at.toggle(key="drill_per_replica").set_value(True).run()
    lat = pd.concat(charts(at)["p99 latency"])
    assert set(lat["target"].dropna()) == set(seed["replicas"])


def test_anomalies_timeline_and_expected_vs_observed(app_env):
    seed = app_env.seed
    at = open_page("anomalies")
    m = metrics(at)
    assert m["Open incidents"] == "1" and m["Critical (open)"] == "1"
    assert m["Incidents (last 1 h)"] == "2" and m["Events"] == "4"
    open_now, events = at.dataframe[0].value, at.dataframe[1].value
    assert open_now["replica"].tolist() == ["replica-1"] and open_now["severity"].tolist() == ["critical"]
    assert list(events.columns) == EVENT_COLUMNS and len(events) == 4
    c = charts(at)
    timeline = pd.concat(c["Incident timeline"])
    assert sorted(timeline["state"]) == ["closed", "open"]
    assert set(timeline["incident_id"]) == {seed["open_incident_id"], seed["closed_incident_id"]}
    p99 = pd.concat(c["p99_ms: expected (tick) vs observed (dot)"])
    assert sorted(p99["observed_value"]) == [900.0, 1400.0] and set(p99["expected_value"]) == {310.0}

    at.toggle(key="anomaly_open_only").set_value(True).run()
    assert len(pd.concat(charts(at)["Incident timeline"])) == 1


def test_controller_decisions_actions_forecast_and_overrides(app_env):
    at = open_page("controller")
    m = metrics(at)
    assert m["Control loop"] == "stopped" and m["Active overrides"] == "1"
    state, decisions = at.dataframe[0].value, at.dataframe[1].value
    assert state.set_index("model").loc["chat-lm", "pinned"] == 3
    assert {"ts", "model", "action", "reasons"} <= set(decisions.columns)
    assert decisions["reasons"].str.contains("latency_over_slo").any()
    c = charts(at)
    steps = pd.concat(c["Desired vs current replicas"])
    assert set(steps["model"]) == {"classifier-small", "chat-lm"} and steps["replicas"].max() == 3
    band = c["chat-lm: forecast band vs actual"]
    assert any("lower" in f.columns and len(f) > 0 for f in band)  # the band
    assert any("series" in f.columns and "actual" in set(f["series"]) for f in band)  # the actual line
    actions = at.dataframe[2].value
    failed = actions[actions["outcome"] == "failed"]
    assert failed["error"].tolist() == ["router admin endpoint unreachable"]
    overrides = at.dataframe[3].value
    assert overrides["reason"].tolist() == ["launch day"]


@pytest.mark.parametrize(
    ("token", "status"),
    [("", "401"), ("not-the-token", "403")],
)
def test_override_form_shows_the_apis_refusal(app_env, token, status):
    at = open_page("controller")
    at.selectbox(key="ov_action").set_value("pause")
    at.text_input(key="ov_reason").input("dashboard test")
    at.text_input(key="ov_token").input(token)
    at.button(key="ov_submit").click().run()
    errors = [e.value for e in at.error]
    assert any(status in e for e in errors), errors
    ovs = api_get(app_env, "/v1/overrides")["overrides"]
    assert all(o["reason"] != "dashboard test" for o in ovs)


def test_override_form_posts_with_token_and_controller_shows_it(app_env):
    at = open_page("controller")
    at.selectbox(key="ov_model").set_value("classifier-small")
    at.selectbox(key="ov_action").set_value("mode")
    at.selectbox(key="ov_mode").set_value("off")
    at.text_input(key="ov_reason").input("freeze for the AppTest")
    at.number_input(key="ov_ttl_min").set_value(30.0)
    at.text_input(key="ov_token").input(app_env.token)
    at.button(key="ov_submit").click().run()
    assert not at.error, [e.value for e in at.error]
    assert any("Override stored: mode on classifier-small" in s.value for s in at.success)
    shown = at.dataframe[-1].value
    row = shown[shown["reason"] == "freeze for the AppTest"]
    assert row["mode"].tolist() == ["off"] and row["expires_at"].notna().all()
    stored = [
        o for o in api_get(app_env, "/v1/overrides")["overrides"] if o["reason"] == "freeze for the AppTest"
    ]
    assert stored and stored[0]["action"] == "mode" and stored[0]["mode"] == "off"


def test_capacity_and_cost(app_env):
    at = open_page("capacity")
    cost = api_get(app_env, "/v1/cost", since_s=3600)
    m = metrics(at)
    assert m["GPU-hours"] == fmt.number(cost["gpu_hours"]) and cost["gpu_hours"] > 0
    assert m["Cost per 1,000 inferences"] == fmt.money(cost["cost_per_1k_inferences"])
    assert m["Energy per 1,000 inferences"] == fmt.energy_j(cost["energy_j_per_1k_inferences"])
    table = at.dataframe[0].value.set_index("model")
    assert table.loc["classifier-small", "fleet capacity rps"] == pytest.approx(3 * 35.0)
    c = charts(at)
    assert rows(c["Load vs capacity"]) > 0 and rows(c["Energy per 1,000 inferences"]) > 0


def test_history_runs_a_query_charts_it_and_offers_csv(app_env):
    at = open_page("history")
    sql = (
        "SELECT ts, model, sum(increase) / 60 AS requests_per_s FROM fleet_1m "
        "WHERE metric = 'nv_inference_request_success' GROUP BY ts, model ORDER BY ts, model"
    )
    at.text_area(key="history_sql").input(sql)
    at.button(key="history_run").click().run()
    assert not at.error, [e.value for e in at.error]
    df = at.dataframe[0].value
    assert list(df.columns) == ["ts", "model", "requests_per_s"] and len(df) > 10
    assert set(df["model"]) == set(app_env.seed["models"])
    chart = next(iter(charts(at).values()))
    assert rows(chart) == len(df)
    (button,) = at.get("download_button")
    assert button.proto.label == "Download CSV" and button.proto.url.endswith(".csv")
    text = csv_bytes(df).decode()
    assert text.splitlines()[0] == "ts,model,requests_per_s" and len(text.splitlines()) == len(df) + 1

    at.text_area(key="history_sql").input("DROP TABLE samples")
    at.button(key="history_run").click().run()
    (err,) = at.error
    assert "refused (400)" in err.value and "SELECT" in err.value
    assert not at.dataframe


@pytest.mark.parametrize("page", [None, "model", "anomalies", "controller", "capacity", "history"])
def test_unreachable_api_is_a_clear_message_not_a_stack_trace(monkeypatch, page):
    url = f"http://127.0.0.1:{free_port(PORTS)}"  # nothing listens there
    monkeypatch.setenv("FLEETPILOT_API_URL", url)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S).run()
    if page:
        at.switch_page(f"views/{page}.py").run()
    if page == "history":  # the history page calls the API when a query runs
        at.button(key="history_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (err,) = at.error
    assert url in err.value and "fleetpilot up" in err.value and "Traceback" not in err.value


def test_bad_api_url_in_environment_is_reported(monkeypatch):
    monkeypatch.setenv("FLEETPILOT_API_URL", "localhost:7070")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S).run()
    assert not at.exception
    assert any("FLEETPILOT_API_URL" in e.value for e in at.error)
    assert os.environ["FLEETPILOT_API_URL"] == "localhost:7070"
